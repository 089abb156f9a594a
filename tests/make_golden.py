"""Regenerate the golden bitstreams in tests/expected/ with ``python -m tests.make_golden`` from the repository root.

Run it only on purpose, after bumping FORMAT_VERSION or CONTAINER_VERSION; the golden tests import the inputs from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecodec.bitstream import Packet, encode_packet
from edgecodec.container import ContainerHeader, container_bytes
from edgecodec.entropy import StaticPrior, encode_ids, smooth_counts

EXPECTED = Path(__file__).parent / "expected"
PACKET_FILE = EXPECTED / "golden_packet.bin"
CONTAINER_FILE = EXPECTED / "golden.ecz"
REGENERATE = "python -m tests.make_golden"
FINGERPRINT = bytes.fromhex("ec0dec0000000001")


def golden_prior() -> StaticPrior:
    """A fixed integer prior over 256 ids: counts 256, 255, ..., 1 smoothed to a 16-bit table."""
    return StaticPrior(smooth_counts(np.arange(256, 0, -1, dtype=np.int64)))


def golden_packets() -> list[Packet]:
    """Three packets coding fixed id grids from ``default_rng(0)``."""
    rng = np.random.default_rng(0)
    prior = golden_prior()
    p = prior.freqs / prior.freqs.sum()
    packets = []
    for seq, (h, w) in enumerate([(12, 16), (1, 1), (3, 5)]):
        ids = rng.choice(256, size=(h, w), p=p)
        packets.append(
            Packet(
                fingerprint=FINGERPRINT,
                layer=2,
                seq=seq,
                timestamp_us=1_700_000_000_000_000 + 40_000 * seq,
                frame_h=8 * h,
                frame_w=8 * w,
                grid_h=h,
                grid_w=w,
                payload=encode_ids(ids, prior),
                stream_id=1,
            )
        )
    return packets


def golden_header() -> ContainerHeader:
    return ContainerHeader(FINGERPRINT, "golden-hqa-v1", fps_num=25, fps_den=1)


def golden_packet_bytes() -> bytes:
    return encode_packet(golden_packets()[0])


def golden_container_bytes() -> bytes:
    return container_bytes(golden_header(), golden_packets())


def main() -> None:
    EXPECTED.mkdir(exist_ok=True)
    PACKET_FILE.write_bytes(golden_packet_bytes())
    CONTAINER_FILE.write_bytes(golden_container_bytes())
    print(f"wrote {PACKET_FILE} and {CONTAINER_FILE}")


if __name__ == "__main__":
    main()

"""Regenerate the golden bitstreams in tests/expected/ with ``python -m tests.make_golden`` from the repository root.

Run it only on purpose, after a deliberate change of the packet format (bump FORMAT_VERSION), of the container
(bump CONTAINER_VERSION) or of the entropy coding; the golden tests import the inputs from here and compare the files
byte for byte, so any unintended change of the format or the coder fails them.

Written here (packet format version 3):

* ``golden_packet.bin``: a keyframe (the first packet of the stream below).
* ``golden_context_packet.bin``: a keyframe of a 40 x 24 grid coded with :func:`golden_context_prior`, in three
  bands of 16, 16 and 8 rows (how version 3 codes keyframes under a context prior).
* ``golden_inter_packet.bin``: a P-frame coded with :func:`golden_inter_prior` against :func:`golden_reference`
  (the second packet of the stream below; its reference is the keyframe of ``golden_packet.bin``).
* ``golden.ecz``: the whole stream of :func:`golden_packets`, keyframes and P-frames.

Never written: ``golden_v1_packet.bin`` and ``golden_v1.ecz`` are the version 1 goldens, made by the version 1 writer,
which no longer exists. They stay as they are and are only read back (:func:`golden_v1_packets` gives their fields,
:func:`golden_grids` their ids). ``golden_v2_packet.bin``, ``golden_v2_inter_packet.bin``,
``golden_v2_inter_near_packet.bin`` and ``golden_v2.ecz`` are the version 2 goldens: the same packets as their
version 3 namesakes, written by the version 2 writer (their payloads do not depend on the version: static and inter
priors). They are only read back, and :func:`encode_packet` must still write them byte for byte from packets marked
``version=2``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgecodec.bitstream import FLAG_INTER, FLAG_KEYFRAME, INTRA_BAND_ROWS, Packet, encode_packet
from edgecodec.coding.inter import InterCounter, InterPrior
from edgecodec.container import ContainerHeader, container_bytes
from edgecodec.entropy import ContextPrior, StaticPrior, encode_ids, smooth_counts
from edgecodec.priors import PriorCounter

EXPECTED = Path(__file__).parent / "expected"
PACKET_FILE = EXPECTED / "golden_packet.bin"
INTER_PACKET_FILE = EXPECTED / "golden_inter_packet.bin"
INTER_NEAR_PACKET_FILE = EXPECTED / "golden_inter_near_packet.bin"
CONTAINER_FILE = EXPECTED / "golden.ecz"
CONTEXT_PACKET_FILE = EXPECTED / "golden_context_packet.bin"
V2_PACKET_FILE = EXPECTED / "golden_v2_packet.bin"
V2_INTER_PACKET_FILE = EXPECTED / "golden_v2_inter_packet.bin"
V2_INTER_NEAR_PACKET_FILE = EXPECTED / "golden_v2_inter_near_packet.bin"
V2_CONTAINER_FILE = EXPECTED / "golden_v2.ecz"
V1_PACKET_FILE = EXPECTED / "golden_v1_packet.bin"
V1_CONTAINER_FILE = EXPECTED / "golden_v1.ecz"
REGENERATE = "python -m tests.make_golden"
FINGERPRINT = bytes.fromhex("ec0dec0000000001")
NUM_IDS = 256
LAYER = 2
STREAM_ID = 1
SESSION_ID = 0x5E5510D2
INTER_BLOCK = 5  # does not divide the 12 x 16 grid: the golden P-frame has partial tiles


def golden_prior() -> StaticPrior:
    """A fixed integer prior over 256 ids: counts 256, 255, ..., 1 smoothed to a 16-bit table."""
    return StaticPrior(smooth_counts(np.arange(NUM_IDS, 0, -1, dtype=np.int64)))


def golden_grids() -> list[np.ndarray]:
    """Three fixed id grids (12 x 16, 1 x 1, 3 x 5) drawn from ``default_rng(0)`` under :func:`golden_prior`: the ids
    of the version 1 goldens (the exact draws of the version 1 generator) and of the version 2 keyframes."""
    rng = np.random.default_rng(0)
    prior = golden_prior()
    p = prior.freqs / prior.freqs.sum()
    return [rng.choice(NUM_IDS, size=shape, p=p) for shape in [(12, 16), (1, 1), (3, 5)]]


def _timestamp(seq: int) -> int:
    return 1_700_000_000_000_000 + 40_000 * seq


def _packet(seq: int, shape: tuple[int, int], payload: bytes, **fields) -> Packet:
    """A golden packet of a ``shape`` grid at :data:`LAYER` (frames of 8x8 pixels per id); ``fields`` add the rest."""
    h, w = shape
    return Packet(fingerprint=FINGERPRINT, layer=LAYER, seq=seq, timestamp_us=_timestamp(seq), frame_h=8 * h,
                  frame_w=8 * w, grid_h=h, grid_w=w, payload=payload, stream_id=STREAM_ID, **fields)  # fmt: skip


def golden_v1_packets() -> list[Packet]:
    """The fields of the three packets in the version 1 goldens, as read today (keyframes, session 0, version 1),
    with an empty payload: the payloads are checked by decoding them to :func:`golden_grids`."""
    return [
        _packet(seq, g.shape, b"", flags=FLAG_KEYFRAME, session_id=0, ref_seq=0, version=1)
        for seq, g in enumerate(golden_grids())
    ]


# ---- the inter prior -----------------------------------------------------------------------------------------------
def _training_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(P-frame ids, reference ids) of 12 x 16: a blocky reference, a window moved by one step, flicker, new ids."""
    ref = np.kron(rng.integers(0, NUM_IDS, size=(6, 8)), np.ones((2, 2), np.int64))
    ids = ref.copy()
    y, x = int(rng.integers(1, 8)), int(rng.integers(1, 11))
    dy, dx = [(0, -1), (-1, 0), (0, 1), (1, 0)][int(rng.integers(4))]
    ids[y : y + 3, x : x + 4] = ref[y - dy : y - dy + 3, x - dx : x - dx + 4]  # content moved by (dy, dx)
    flicker = rng.random(ref.shape) < 0.05
    ids[:, :-1][flicker[:, :-1]] = ref[:, 1:][flicker[:, :-1]]
    new = rng.random(ref.shape) < 0.03
    ids[new] = rng.integers(0, NUM_IDS, size=int(new.sum()))
    return ids, ref


def golden_inter_prior() -> InterPrior:
    """A fixed inter prior: tables counted by :class:`InterCounter` over 32 pairs drawn from ``default_rng(11)``."""
    counter = InterCounter(NUM_IDS, block=INTER_BLOCK)
    rng = np.random.default_rng(11)
    for _ in range(32):
        counter.add(*_training_pair(rng))
    return InterPrior.from_tensors(counter.tensors())


def golden_near() -> np.ndarray:
    """A fixed near-code table (version 2 tables): the 8 "nearest" codes of code k are k+1, k-1, k+2, k-2, ... mod K."""
    k = np.arange(NUM_IDS)[:, None]
    steps = np.array([1, -1, 2, -2, 3, -3, 4, -4])
    return (k + steps) % NUM_IDS


def golden_inter_near_prior() -> InterPrior:
    """The inter prior of version 2: the same pairs as :func:`golden_inter_prior`, counted with :func:`golden_near`."""
    counter = InterCounter(NUM_IDS, block=INTER_BLOCK, near=golden_near())
    rng = np.random.default_rng(11)
    for _ in range(32):
        counter.add(*_training_pair(rng))
    return InterPrior.from_tensors(counter.tensors())


def golden_inter_near_packet_bytes() -> bytes:
    """The golden P-frame coded with the version 2 tables (its NEW ids 17 and 250 are outside their near lists,
    4 = ref + 1 at (5, 15) is ranked)."""
    payload = encode_ids(golden_inter_near_ids(), golden_inter_near_prior(), golden_reference())
    packet = replace(golden_packets()[1], payload=payload)
    return encode_packet(packet)


def golden_inter_near_ids() -> np.ndarray:
    ids = golden_inter_ids().copy()
    ids[5, 15] = (golden_reference()[5, 15] + 1) % NUM_IDS
    return ids


def golden_reference() -> np.ndarray:
    """The reference of the golden P-frame: the first keyframe's ids."""
    return golden_grids()[0]


def golden_inter_ids() -> np.ndarray:
    """The golden P-frame's ids: fixed edits of :func:`golden_reference` that use every mode (copies from the four
    neighbours, NEW ids) and leave some tiles unchanged."""
    ref = golden_reference()
    ids = ref.copy()
    ids[0:2, 12:16] = ref[0:2, 11:15]  # moved right: copies from the left
    ids[6:8, 10:14] = ref[5:7, 10:14]  # moved down: copies from above
    ids[2:4, 3:8] = ref[2:4, 4:9]  # moved left: copies from the right
    ids[9:11, 0:4] = ref[10:12, 0:4]  # moved up: copies from below
    ids[11, 5], ids[0, 0], ids[5, 15] = 17, 250, 3  # new ids
    return ids


# ---- the stream ------------------------------------------------------------------------------------------
def golden_frames() -> list[tuple[np.ndarray, int | None]]:
    """The stream of the goldens (versions 2 and 3): (ids, sequence number of the reference or None for a keyframe)."""
    g0, g1, g2 = golden_grids()
    p1 = golden_inter_ids()
    p5 = g2.copy()
    p5[1, 2], p5[2, 4] = 200, g2[2, 3]  # a new id and a copy from the left
    return [(g0, None), (p1, 0), (p1, 1), (g1, None), (g2, None), (p5, 4)]


def golden_packets() -> list[Packet]:
    """The packets of :func:`golden_frames`: keyframes under :func:`golden_prior`, P-frames under
    :func:`golden_inter_prior` against their reference's ids (seq 2 repeats seq 1: a static P-frame). P-frames are
    given resolved (fingerprint, stream and sizes of their reference), as the container reader returns them."""
    frames = golden_frames()
    intra, inter = golden_prior(), golden_inter_prior()
    packets = []
    for seq, (ids, ref) in enumerate(frames):
        if ref is None:
            packets.append(_packet(seq, ids.shape, encode_ids(ids, intra), flags=FLAG_KEYFRAME, session_id=SESSION_ID))
            continue
        delta = _timestamp(seq) - _timestamp(ref)
        payload = encode_ids(ids, inter, frames[ref][0])
        packets.append(_packet(seq, ids.shape, payload, flags=FLAG_INTER, session_id=SESSION_ID, ref_seq=ref,
                               timestamp_delta_us=delta))  # fmt: skip
    return packets


# ---- a keyframe under a context prior (version 3: in bands) -------------------------------------------------------
CONTEXT_SHAPE = (40, 24)


def _blocky(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Ids in 2x2 and 4x1 blocks with some noise: copies of every offset, and NEW ids."""
    h, w = shape
    ids = np.kron(rng.integers(0, NUM_IDS, size=(-(-h // 2), -(-w // 2))), np.ones((2, 2), np.int64))[:h, :w]
    ids[:, 8:12] = ids[:, 8:9]  # runs along the row
    noise = rng.random(shape) < 0.1
    ids[noise] = rng.integers(0, NUM_IDS, size=int(noise.sum()))
    return ids


def golden_context_prior() -> ContextPrior:
    """A fixed period-2 context prior: tables counted by :class:`PriorCounter` over 16 grids from ``default_rng(21)``,
    coding in bands of :data:`INTRA_BAND_ROWS` rows."""
    counter = PriorCounter(NUM_IDS, period=2)
    rng = np.random.default_rng(21)
    for _ in range(16):
        counter.add(_blocky(rng, CONTEXT_SHAPE))
    return ContextPrior.from_tensors(counter.unigram, counter.tensors()).with_band_rows(INTRA_BAND_ROWS)


def golden_context_ids() -> np.ndarray:
    return _blocky(np.random.default_rng(22), CONTEXT_SHAPE)


def golden_context_packet() -> Packet:
    ids = golden_context_ids()
    return _packet(7, ids.shape, encode_ids(ids, golden_context_prior()), flags=FLAG_KEYFRAME, session_id=SESSION_ID)


def golden_context_packet_bytes() -> bytes:
    return encode_packet(golden_context_packet())


def golden_header() -> ContainerHeader:
    return ContainerHeader(FINGERPRINT, "golden-hqa-v1", fps_num=25, fps_den=1)


def golden_packet_bytes() -> bytes:
    return encode_packet(golden_packets()[0])


def golden_inter_packet_bytes() -> bytes:
    return encode_packet(golden_packets()[1])


def golden_container_bytes() -> bytes:
    return container_bytes(golden_header(), golden_packets())


def golden_v1_header() -> ContainerHeader:
    """The file header of ``golden_v1.ecz`` (the container format did not change)."""
    return replace(golden_header(), num_frames=3)


def main() -> None:
    EXPECTED.mkdir(exist_ok=True)
    for path, data in (
        (PACKET_FILE, golden_packet_bytes()),
        (INTER_PACKET_FILE, golden_inter_packet_bytes()),
        (INTER_NEAR_PACKET_FILE, golden_inter_near_packet_bytes()),
        (CONTAINER_FILE, golden_container_bytes()),
        (CONTEXT_PACKET_FILE, golden_context_packet_bytes()),
    ):
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")


if __name__ == "__main__":
    main()

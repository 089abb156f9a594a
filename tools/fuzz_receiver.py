"""Fuzz the receiver: mutated packets through parse, reference resolution, the decode budget, entropy decoding and
(every ``--render-every``-th packet that gets that far) the neural decode, exactly as ``edgecodec receive`` runs them.

Mutations (each packet gets one): payload bytes flipped with the CRC re-sealed (so the entropy decoder sees them),
header bytes flipped and re-sealed, one header field set to an extreme (0, 1, the maximum, ...) and re-sealed, frame
and grid sizes of a decode bomb (a consistent grid), payload truncated or padded with the length fixed, two packets
spliced, random bytes. Bases: keyframes of every layer and P-frames whose reference the receiver holds.

Reports how many inputs raised which error, the *untyped* ones (anything not an ``EdgecodecError``: a receiver would
have to treat them as bugs), the inputs that took over 1 s of CPU (and the slowest in wall time), and the peak RSS.
Not run in CI as a whole; the test ``tests/test_fuzz_receiver.py`` runs 10^4 of them.

    python tools/fuzz_receiver.py --packets 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import resource
import struct
import sys
import time
import traceback
import zlib
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from edgecodec import bitstream
from edgecodec.codec import Codec
from edgecodec.config import RateConfig
from edgecodec.errors import EdgecodecError
from edgecodec.limits import DecodeBudget
from edgecodec.rate import RateController
from edgecodec.receiver import FrameReceiver
from edgecodec.sender import FrameCoder
from edgecodec.transport import Message, stream_number

STREAM = "fuzz"
_KEY = struct.Struct("<4sBBBB8sIIIQHHHHII")
_INTER = struct.Struct("<4sBBBBIIiII")
_EXTREMES = {"B": [0, 1, 2, 127, 254, 255], "H": [0, 1, 2, 255, 65535, 16384, 16385],
             "I": [0, 1, 2, 1 << 31, (1 << 32) - 1], "i": [-(1 << 31), -1, 0, 1, (1 << 31) - 1],
             "Q": [0, 1, (1 << 63), (1 << 64) - 1]}  # fmt: skip
_NO_STAGES = lambda stage: nullcontext()  # noqa: E731


@dataclass
class Base:
    data: bytes
    reference: tuple[bitstream.Packet, np.ndarray] | None = None  # (resolved packet, ids) a P-frame decodes against


@dataclass
class Report:
    packets: int = 0
    outcomes: Counter = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)
    slow: list[tuple[float, str]] = field(default_factory=list)
    rendered: int = 0
    max_s: float = 0.0
    max_cpu_s: float = 0.0
    slowest: str = ""
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = [f"{self.packets} packets in {self.seconds:.1f} s ({self.packets / max(self.seconds, 1e-9):.0f}/s); "
               f"{len(self.untyped)} untyped exceptions; {len(self.slow)} inputs over 1 s of CPU (most CPU "
               f"{self.max_cpu_s * 1000:.1f} ms; slowest wall {self.max_s * 1000:.1f} ms: {self.slowest}); "
               f"{self.rendered} decoded to pixels; "
               f"peak RSS {rss:.0f} MB"]  # fmt: skip
        out += [f"  {n:>8}  {name}" for name, n in self.outcomes.most_common()]
        out += [f"  UNTYPED {u}" for u in self.untyped[:20]]
        out += [f"  SLOW {s:.2f} s {what}" for s, what in self.slow[:20]]
        return out


def reseal(data: bytes) -> bytes:
    """Fix the CRC of a packet whose header and payload length are intact enough to locate it."""
    try:
        head = bitstream.header_size(data[:6])
    except EdgecodecError:
        return data
    if len(data) < head:
        return data
    out = bytearray(data)
    crc = zlib.crc32(bytes(out[head:]), zlib.crc32(bytes(out[: head - 4])))
    out[head - 4 : head] = struct.pack("<I", crc)
    return bytes(out)


def make_bases(codec: Codec) -> list[Base]:
    """Keyframes of every layer for two small scenes, and P-frames with their references."""
    bases: list[Base] = []
    y, x = np.mgrid[0:48, 0:64]
    number = stream_number(STREAM)
    for layer in range(1, codec.num_layers + 1):
        coder = FrameCoder(codec, RateController(RateConfig(fixed_layer=layer, keyframe_seconds=100), codec.num_layers),
                           stream_id=number, session_id=0x1234 + layer)  # fmt: skip
        previous = None
        for i in range(3):
            rgb = np.stack([(x * (3 + i)) % 256, (y * 5) % 256, (x + y + 20 * i) % 256], -1).astype(np.uint8)
            rgb[10:30, 10 + 4 * i : 30 + 4 * i] = 240
            code = codec.encode(rgb, latents=coder.latents(i / 10))
            made = coder.code(code, i / 10, seq=i, timestamp_us=1_000_000 + i * 50_000)
            coder.sent(made, i / 10)
            packet = bitstream.decode_packet(made.packet)
            if packet.is_inter and previous is not None:
                bases.append(Base(made.packet, previous))
            else:
                bases.append(Base(made.packet))
            resolved = bitstream.resolve(packet, previous[0]) if packet.is_inter and previous else packet
            previous = (bitstream.replace_payload(resolved), made.coded.ids)
    return bases


def mutate(rng: np.random.Generator, base: Base, bases: list[Base], codec: Codec) -> tuple[bytes, str]:
    data = base.data
    inter = data[5] == bitstream.FLAG_INTER
    head = bitstream.INTER_HEADER_SIZE if inter else bitstream.HEADER_SIZE
    kind = int(rng.integers(0, 10))
    if kind <= 2:  # payload bytes, CRC re-sealed
        out = bytearray(data)
        if len(out) > head:
            for _ in range(int(rng.integers(1, 9))):
                out[int(rng.integers(head, len(out)))] = int(rng.integers(0, 256))
        return reseal(bytes(out)), "payload"
    if kind == 3:  # header bytes (not the CRC), re-sealed
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            out[int(rng.integers(0, head - 4))] = int(rng.integers(0, 256))
        return reseal(bytes(out)), "header bytes"
    if kind in (4, 5):  # one field to an extreme
        layout = _INTER if inter else _KEY
        fields = list(layout.unpack_from(data))
        fmt = layout.format.lstrip("<")
        chars = [c for c in fmt if not c.isdigit()]
        index = int(rng.integers(1, len(fields) - 1))
        if chars[index] == "s":
            fields[index] = bytes(rng.integers(0, 256, 8, dtype=np.uint8))
        else:
            values = _EXTREMES[chars[index]]
            fields[index] = values[int(rng.integers(0, len(values)))]
        return reseal(layout.pack(*fields) + data[head:]), f"field {index}"
    if kind == 6 and not inter:  # a decode bomb: big frame, consistent grid, small payload
        sides = [1, 2, 1000, 4096, 8191, 16384]
        side_h, side_w = (sides[int(rng.integers(0, len(sides)))] for _ in range(2))
        fields = list(_KEY.unpack_from(data))
        layer = fields[3]
        gh, gw = codec.grid_shape((side_h, side_w), layer) if 1 <= layer <= codec.num_layers else (1, 1)
        fields[10:14] = side_h, side_w, min(gh, 65535), min(gw, 65535)
        return reseal(_KEY.pack(*fields) + data[head:]), "bomb"
    if kind == 7:  # payload truncated or padded, length fixed
        payload = data[head:]
        cut = int(rng.integers(0, len(payload) + 1))
        payload = payload[:cut] if rng.random() < 0.5 else payload + bytes(rng.integers(0, 256, cut, dtype=np.uint8))
        layout = _INTER if inter else _KEY
        fields = list(layout.unpack_from(data))
        fields[-2] = len(payload)
        return reseal(layout.pack(*fields) + payload), "length"
    if kind == 8:  # spliced with another packet
        other = bases[int(rng.integers(0, len(bases)))].data
        cut = int(rng.integers(0, min(len(data), len(other)) + 1))
        return reseal(data[:cut] + other[cut:]), "splice"
    n = int(rng.integers(0, 200))
    raw = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    return (bitstream.MAGIC + raw if rng.random() < 0.5 else raw), "random"


def run(packets: int, seed: int = 0, max_pixels: int = 1 << 16, render_every: int = 16,
        codec: Codec | None = None, progress: bool = False) -> Report:  # fmt: skip
    codec = codec or Codec("hqa5-cpu", backend="torch", budget=DecodeBudget(max_pixels))
    bases = make_bases(codec)
    rng = np.random.default_rng(seed)
    report = Report()
    receiver = FrameReceiver(codec)
    receiver.warm_up()  # first-call costs (torch, constriction) are not the inputs' doing
    start = time.perf_counter()
    survived = 0
    for n in range(packets):
        base = bases[int(rng.integers(0, len(bases)))]
        data, kind = mutate(rng, base, bases, codec)
        if n % 512 == 0:
            receiver = FrameReceiver(codec)  # fresh state now and then (streams, sessions)
        if base.reference is not None:
            receiver.references.update(STREAM, *base.reference)
        state = receiver.stream(STREAM)
        state.session, state.last_seen = None, 0.0  # every base session may own the stream
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            pending = receiver.prepare(Message(STREAM, data), _NO_STAGES)
            survived += 1
            if survived % render_every == 0:
                receiver.render(pending, _NO_STAGES)
                report.rendered += 1
            outcome = "decoded"
        except EdgecodecError as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - what the fuzzer is looking for
            outcome = f"UNTYPED {type(exc).__name__}"
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            report.untyped.append(f"{kind}: {type(exc).__name__}: {exc} at {frame.filename}:{frame.lineno}")
        dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
        report.max_cpu_s = max(report.max_cpu_s, cpu)
        if dt > report.max_s:
            report.max_s, report.slowest = dt, f"{kind}, {outcome}"
        if cpu > 1.0:  # CPU time: on a shared machine, wall time also counts the other jobs
            report.slow.append((cpu, f"{kind} {data[:64].hex()}"))
        report.outcomes[outcome] += 1
        report.packets += 1
        if progress and (n + 1) % 25_000 == 0:
            report.seconds = time.perf_counter() - start
            print(report.lines()[0], file=sys.stderr, flush=True)
    report.seconds = time.perf_counter() - start
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-pixels", type=int, default=1 << 16, help="the decode budget (default 65536)")
    ap.add_argument("--render-every", type=int, default=16, help="decode every N-th surviving packet to pixels")
    ns = ap.parse_args(argv)
    report = run(ns.packets, ns.seed, ns.max_pixels, ns.render_every, progress=True)
    print("\n".join(report.lines()))
    return 1 if report.untyped or report.slow else 0


if __name__ == "__main__":
    sys.exit(main())

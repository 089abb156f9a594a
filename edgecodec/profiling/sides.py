"""``edgecodec profile --only sender|receiver`` (issue 16): one side of the pipeline alone, as it runs live.

* **sender**: the pipelined sender (capture, encode, coding + sending) on the source, with no network: every packet
  goes to a null transport. Frames per second is what left the sender over the run; frames the encoder could not
  keep up with (a paced source, ``--fps``) are dropped before encoding and counted.
* **receiver**: the source is coded first (lock-step, not timed), then its packets are sent over ZeroMQ on
  127.0.0.1 at the source's pace (``--fps``, else its own frame rate), each stamped with the time it is sent, to the
  pipelined receiver (network + entropy decoding, decode + output), which shows every frame. Latency is from that
  stamp to the frame at its sink.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import numpy as np

from edgecodec.capture import Size, source_from_args, wall_clock_us
from edgecodec.errors import EdgecodecError
from edgecodec.profiling.inprocess import CpuClock, RecordList, _source_ns, controller_for
from edgecodec.profiling.records import RECEIVE_TIMEOUT_S, STREAM, stats

# stage record names -> the names of the profile's table (edgecodec.profiling docstring); the backend's calls are
# timed as substages (TimedBackend), so "encode" and "decode" keep only the pre- and postprocessing
SENDER_STAGES = {"capture": "capture", "encode": "preprocess", "encode.net": "encode", "rate": "rate",
                 "entropy": "entropy_encode", "packet": "packet", "send": "send"}  # fmt: skip
RECEIVER_STAGES = {"parse": "parse", "entropy": "entropy_decode", "decode.net": "decode", "decode": "postprocess",
                   "output": "output"}  # fmt: skip


def run_sender_only(ns: argparse.Namespace, codec: Any, size: Size | None) -> dict[str, Any]:
    """The pipelined sender alone on the source (module docstring): a run object."""
    from edgecodec.sender import FileOnly, FrameSender, rate_clock, stream_frames
    from edgecodec.timing import StreamMeter

    log, clock = RecordList(), CpuClock()
    with source_from_args(_source_ns(ns, size)) as source:
        sender = FrameSender(codec, controller_for(ns, codec, source), FileOnly(STREAM), skip_unchanged=False)
        sender.warm_up()
        clock.start()
        if not stream_frames(source, sender, clock=rate_clock(source, ns.fps), log=log,
                             meter=StreamMeter(interval_s=0), status=None, pipelined=True):  # fmt: skip
            raise KeyboardInterrupt
        cpu = clock.stop()
        name = source.name
    frames = [r for r in log.records if r["index"] >= ns.warmup]
    return _side_run(ns, "sender", codec, name, frames, SENDER_STAGES, cpu, dropped=sender.frames_dropped, size=size)


def run_receiver_only(ns: argparse.Namespace, send_codec: Any, codec: Any, size: Size | None) -> dict[str, Any]:
    """The pipelined receiver alone, fed the source's packets at its pace (module docstring): a run object."""
    from edgecodec.receiver import FrameReceiver, Outputs
    from edgecodec.receiving import receive_frames
    from edgecodec.timing import StreamMeter
    from edgecodec.transport import Receiver, Sender

    packets, fps, name = _code(ns, send_codec, size)
    log, clock = RecordList(), CpuClock()
    with ExitStack() as stack:
        rx = stack.enter_context(Receiver("tcp://127.0.0.1:*", bind=True, streams=[STREAM]))
        tx = stack.enter_context(Sender(rx.endpoint, bind=False, stream=STREAM))
        receiver = FrameReceiver(codec)
        receiver.warm_up()
        deadline = time.monotonic() + RECEIVE_TIMEOUT_S
        while not tx.has_receiver and time.monotonic() < deadline:
            rx.recv_message(10)
        feeder = threading.Thread(target=_feed, args=(tx, packets, fps), name="edgecodec-profile-feeder")
        clock.start()
        feeder.start()
        outputs = Outputs(display=False, record=None, fps=fps, overlay=False)
        reason = receive_frames(rx, receiver, outputs, log=log, meter=StreamMeter(interval_s=0), status=None,
                                frames=len(packets), timeout_s=RECEIVE_TIMEOUT_S, pipelined=True)  # fmt: skip
        feeder.join()
        cpu = clock.stop()
    if reason == "interrupted":
        raise KeyboardInterrupt
    frames = [r for r in log.records if r["seq"] >= ns.warmup]
    return _side_run(
        ns, "receiver", codec, name, frames, RECEIVER_STAGES, cpu, dropped=len(packets) - len(log.records), size=size
    )


def _code(ns: argparse.Namespace, codec: Any, size: Size | None) -> tuple[list[bytes], float, str]:
    """The source's packets (lock-step, unpaced), its frame rate and name."""
    from edgecodec.sender import FileOnly, FrameSender

    class Kept(FileOnly):
        def __init__(self) -> None:
            super().__init__(STREAM)
            self.packets: list[bytes] = []

        def send(self, packet: bytes) -> bool:
            self.packets.append(packet)
            return super().send(packet)

    unpaced = argparse.Namespace(**{**vars(_source_ns(ns, size)), "fps": None})
    kept = Kept()
    with source_from_args(unpaced) as source:
        fps = ns.fps or source.native_fps or 25.0
        sender = FrameSender(codec, controller_for(ns, codec, source), kept, skip_unchanged=False)
        while (frame := source.read()) is not None:
            sender.process(frame, frame.index / fps)
        return kept.packets, fps, source.name


def _feed(tx: Any, packets: list[bytes], fps: float) -> None:
    """Send ``packets`` at ``fps``, each stamped with the time it goes: a keyframe's capture time is now, a P-frame's
    is its reference's plus the frames between them at ``fps`` (their headers are rewritten, CRC included)."""
    from edgecodec import bitstream

    start = time.monotonic()
    for i, data in enumerate(packets):
        time.sleep(max(0.0, start + i / fps - time.monotonic()))
        packet = bitstream.decode_packet(data)
        if packet.is_inter:
            delta = round(((packet.seq - packet.ref_seq) % (1 << 32)) * 1e6 / fps)
            packet = replace(packet, timestamp_delta_us=delta)
        else:
            packet = replace(packet, timestamp_us=wall_clock_us())
        tx.send(bitstream.encode_packet(packet))


def _side_run(ns: argparse.Namespace, side: str, codec: Any, source: str, frames: list[dict[str, Any]],
              stages: dict[str, str], cpu: dict[str, Any], *, dropped: int,
              size: Size | None) -> dict[str, Any]:  # fmt: skip
    if len(frames) < 2:
        raise EdgecodecError(f"{side} only: {len(frames)} frames measured; give more --frames than --warmup")
    times = sorted(f["timestamp_us"] + f["latency_ms"] * 1000 for f in frames)
    stage_stats = {name: stats([f["ms"].get(key, 0.0) for f in frames]) for key, name in stages.items()
                   if any(key in f["ms"] for f in frames)}  # fmt: skip
    w, h = size if size else (frames[0]["size"][::-1] if "size" in frames[0] else (None, None))
    return {
        "mode": f"{side} only", "side": side, "model": codec.model.name, "backend_used": codec.backend.name,
        "source": source, "size": [w, h] if w else None, "frames": len(frames), "dropped": dropped,
        "fps": round((len(frames) - 1) / ((times[-1] - times[0]) / 1e6), 2), "stages": stage_stats,
        "latency": stats([f["latency_ms"] for f in frames]), "cpu": cpu,
        "layers": {str(k): int(v) for k, v in zip(*np.unique([f["layer"] for f in frames], return_counts=True),
                                                     strict=True)},
        "load_avg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }  # fmt: skip


def format_side(run: dict[str, Any]) -> str:
    head = f"{'stage':<16} {'mean':>8} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms)"
    size = f" at {run['size'][0]}x{run['size'][1]}" if run["size"] else ""
    lines = [f"edgecodec profile: {run['mode']}, model {run['model']}, backend {run['backend_used']}, "
             f"{run['source']}{size}, {run['frames']} frames", head, "-" * len(head)]  # fmt: skip
    rows = [*run["stages"].items(), ("latency", run["latency"])]
    for name, s in rows:
        lines.append(f"{name:<16} {s['mean_ms']:>8.2f} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f} {s['p99_ms']:>8.2f} "
                     f"{s['max_ms']:>8.2f}")  # fmt: skip
    what = "capture -> packet made" if run["side"] == "sender" else "sent -> frame at its sink"
    load = f", load average {run['load_avg'][0]:.1f}" if run["load_avg"] else ""
    lines.append(f"{run['fps']:.2f} fps; {run['dropped']} frames dropped; latency is {what}; CPU "
                 f"{run['cpu']['percent']:.0f}% of one core ({run['cpu']['cores']} cores{load})")  # fmt: skip
    return "\n".join(lines)

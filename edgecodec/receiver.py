"""``edgecodec receive``: take packets off ZeroMQ, decode them, and show, record or just count the frames.

* **Streams.** Any number of senders may feed one receiver; the transport's stream id (the topic) tells them apart,
  and each packet's 32-bit ``stream_id`` must be the CRC-32 of that name (:func:`edgecodec.transport.stream_number`).
* **Gaps and sessions.** Within a stream, sequence numbers count the sender's frames. A step forward by ``1 + k``
  means ``k`` frames were lost (dropped by the sender or on the way). Every sender start draws a new session id
  (packet format 2; for version 1 packets a step backwards modulo 2**32 tells a restart): a new session begins and
  nothing is counted as lost. So a receiver may start before or after its senders and survives their restarts.
* **P-frames** decode against the ids of the frame they name (:class:`~edgecodec.coding.gop.ReferenceStore`). After a
  loss, or when joining late, the receiver holds its last good picture until the next keyframe, and counts the
  frames it could not show as *held* (lost ones included): frames shown + held = frames sent.
* **Latency** is glass to glass: the time the frame has been shown or written, minus the capture time in the packet
  (one clock when both ends run on one machine; across machines it needs synchronised clocks, e.g. PTP or NTP).
* **Bad packets** (corrupt, foreign model, wrong stream number) are counted and reported, never fatal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecodec import bitstream
from edgecodec.capture import wall_clock_us
from edgecodec.cliutil import positive, sigterm_as_interrupt
from edgecodec.codec import Codec
from edgecodec.coding.gop import ReferenceStore
from edgecodec.errors import BitstreamError, ConfigError, EdgecodecError, MissingReferenceError
from edgecodec.runtime import BACKEND_HELP
from edgecodec.sinks import DisplaySink, NullSink, Sink, VideoRecorder, display_available, draw_label
from edgecodec.timing import StageTimer, StatsLog, StreamMeter, frame_hash
from edgecodec.transport import (
    Message,
    Receiver,
    add_transport_arguments,
    check_stream,
    endpoint_from_args,
    load_server_keys,
    normalise_endpoint,
    stream_number,
)

SEQ_MOD = 1 << 32
MAX_GAP = 1 << 31  # a forward step at least this large is a step backwards modulo 2**32: a restarted sender


@dataclass
class StreamState:
    """What a receiver knows of one stream."""

    name: str
    number: int
    last_seq: int | None = None
    session: int | None = None
    sessions: int = 0
    received: int = 0  # frames decoded and shown
    held: int = 0  # frames not shown: lost on the way, or P-frames whose reference is missing
    gaps: int = 0  # frames missing between received ones, summed over sessions
    bad: int = 0
    keyframes: int = 0
    inter: int = 0
    layers: dict[int, int] = field(default_factory=dict)

    def track(self, seq: int, session: int | None = None) -> tuple[int, bool]:
        """Account for sequence number ``seq`` of sender session ``session`` (None: version 1 packets, where only a
        step backwards tells a restart): (frames missing just before it, whether it starts a new session)."""
        if self.last_seq is None or (session is not None and session != self.session):
            gap, new = 0, True
        else:
            step = (seq - self.last_seq - 1) % SEQ_MOD
            gap, new = (step, False) if step < MAX_GAP else (0, True)
        self.last_seq, self.session = seq, session
        self.sessions += new
        self.gaps += gap
        self.held += gap
        return gap, new


@dataclass(frozen=True)
class Decoded:
    """One decoded frame and what the receiver learned from its packet."""

    stream: StreamState
    packet: bitstream.Packet
    ids: np.ndarray
    rgb: np.ndarray
    bits: int
    gap: int
    new_session: bool


class FrameReceiver:
    """Parses, checks and decodes packets, and keeps per-stream state (gaps, sessions, counters, the reference ids
    of P-frames: :class:`~edgecodec.coding.gop.ReferenceStore`)."""

    def __init__(self, codec: Codec, timer: StageTimer | None = None) -> None:
        self.codec = codec
        self.timer = timer or StageTimer()
        self.streams: dict[str, StreamState] = {}
        self.references = ReferenceStore()
        self.bad = 0
        self.arrived = 0  # messages handled: decoded, held or bad

    def warm_up(self) -> None:
        """Decode a small blank grid of every layer once, so first-call costs do not land on the first frame."""
        for layer in range(1, self.codec.num_layers + 1):
            self.codec.decode(np.zeros(self.codec.grid_shape((64, 64), layer), np.int64), layer, (64, 64))

    def stream(self, name: str) -> StreamState:
        state = self.streams.get(name)
        if state is None:
            state = self.streams[name] = StreamState(name, stream_number(name))
        return state

    def _bad(self, state: StreamState) -> None:
        state.bad += 1
        self.bad += 1

    def decode(self, message: Message, stages: Callable[[str], Any]) -> Decoded:
        """Decode one message. A bad packet raises (:class:`EdgecodecError` or ValueError) and is counted as bad; a
        P-frame whose reference is not held raises :class:`MissingReferenceError` and is counted as held."""
        self.arrived += 1
        state = self.stream(message.stream)
        try:
            with stages("parse"):
                packet = self.codec.parse(message.packet)
                if packet.resolved and packet.stream_id != state.number:
                    raise BitstreamError(
                        f"packet stream number {packet.stream_id:08x} is not that of stream {state.name!r} "
                        f"({state.number:08x})"
                    )
        except (EdgecodecError, ValueError):
            self._bad(state)
            raise
        gap, new = state.track(packet.seq, packet.session_id if packet.version >= 2 else None)
        try:
            packet, reference = self.references.resolve(state.name, packet)
        except MissingReferenceError:
            state.held += 1
            raise
        try:
            self.codec.check(packet)
            with stages("entropy"):
                ids = self.codec.packet_ids(packet, reference)
            with stages("decode"):
                rgb = self.codec.decode(ids, packet.layer, (packet.frame_h, packet.frame_w))
        except (EdgecodecError, ValueError):
            self._bad(state)
            self.references.forget(state.name)
            raise
        self.references.update(state.name, packet, ids)
        state.received += 1
        state.inter += packet.is_inter
        state.keyframes += not packet.is_inter
        state.layers[packet.layer] = state.layers.get(packet.layer, 0) + 1
        return Decoded(state, packet, ids, rgb, len(message.packet) * 8, gap, new)

    @property
    def received(self) -> int:
        return sum(s.received for s in self.streams.values())

    @property
    def held(self) -> int:
        return sum(s.held for s in self.streams.values())

    @property
    def gaps(self) -> int:
        return sum(s.gaps for s in self.streams.values())


class FrameOutput(Protocol):
    """Where decoded frames go: :class:`Outputs`, or the demo's side-by-side recorder."""

    def write(self, decoded: Decoded) -> bool: ...


class Outputs:
    """The sinks of every stream, made when a stream first shows up: a window each, and/or an mp4 file each (the
    first stream gets the name given, later ones ``NAME.STREAM.mp4``). Each frame is recorded at its packet's
    capture timestamp, so frames lost on the way, held after a loss or sent at a variable rate keep the stream's
    real timing: the recording lasts as long as the stream (``fps`` only fills in a missing time)."""

    def __init__(self, *, display: bool, record: str | None, fps: float, overlay: bool) -> None:
        self.display, self.record, self.fps, self.overlay = display, record, fps, overlay
        self._sinks: dict[str, list[Sink]] = {}
        if record is not None:
            VideoRecorder(record, fps)  # checks the path (folder, suffix, writable) now rather than at the first frame

    def _make(self, stream: str) -> list[Sink]:
        sinks: list[Sink] = [DisplaySink(f"edgecodec {stream}")] if self.display else []
        if self.record is not None:
            path = Path(self.record)
            if self._sinks:
                path = path.with_name(f"{path.stem}.{stream}{path.suffix or '.mp4'}")
            sinks.append(VideoRecorder(path, self.fps))
        return sinks or [NullSink()]

    def write(self, decoded: Decoded) -> bool:
        """Show/record one frame; False when a window asks to stop."""
        sinks = self._sinks.get(decoded.stream.name)
        if sinks is None:
            sinks = self._sinks[decoded.stream.name] = self._make(decoded.stream.name)
        rgb = decoded.rgb
        if self.overlay:
            rgb = draw_label(rgb, f"{decoded.stream.name} L{decoded.packet.layer} {decoded.bits / 1000:.1f} kbit")
        return all([sink.write(rgb, decoded.packet.timestamp_us) for sink in sinks])

    def describe(self) -> str:
        parts = (["a window per stream"] if self.display else []) + ([f"record {self.record}"] if self.record else [])
        return ", ".join(parts) or "headless"

    def paths(self) -> list[str]:
        return [str(s.path) for sinks in self._sinks.values() for s in sinks if isinstance(s, VideoRecorder)]

    def close(self) -> None:
        for sinks in self._sinks.values():
            for sink in sinks:
                sink.close()


def receive_frames(
    transport: Receiver,
    receiver: FrameReceiver,
    outputs: FrameOutput,
    *,
    log: StatsLog,
    meter: StreamMeter,
    status: Callable[[str], None] | None,
    frames: int | None = None,
    timeout_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_frame: Callable[[Decoded], None] | None = None,
) -> str:
    """Receive until ``frames`` frames, ``timeout_s`` s without a packet, a closed window or a stop; returns why."""
    last_packet = time.monotonic()
    reported: set[tuple[str, str]] = set()
    try:
        while not should_stop():
            if frames is not None and receiver.arrived >= frames:
                return f"{frames} frames received"
            wait_ms = 200
            if timeout_s is not None:
                left = timeout_s - (time.monotonic() - last_packet)
                if left <= 0:
                    return f"no packet for {timeout_s:g} s"
                wait_ms = max(1, min(wait_ms, int(left * 1000) + 1))
            message = transport.recv_message(wait_ms)
            if status is not None and meter.due():
                status(status_line(receiver, transport, meter))
            if message is None:
                continue
            last_packet = time.monotonic()
            stages = receiver.timer.frame()
            try:
                decoded = receiver.decode(message, stages)
            except MissingReferenceError as exc:
                if (message.stream, "held") not in reported:  # once per stream until it shows a frame again
                    reported.add((message.stream, "held"))
                    print(f"edgecodec receive: stream {message.stream!r}: holding the last frame: {exc}",
                          file=sys.stderr)  # fmt: skip
                seq = receiver.stream(message.stream).last_seq
                log.write({"kind": "held", "stream": message.stream, "seq": seq, "reason": str(exc)})
                continue
            except (EdgecodecError, ValueError) as exc:
                key = (message.stream, type(exc).__name__)
                if key not in reported:  # once per stream and kind of error, then only counted
                    reported.add(key)
                    print(f"edgecodec receive: stream {message.stream!r}: bad packet: {exc}", file=sys.stderr)
                continue
            reported.discard((message.stream, "held"))
            with stages("output"):
                keep_going = outputs.write(decoded)
            latency_ms = (wall_clock_us() - decoded.packet.timestamp_us) / 1000
            if on_frame is not None:
                on_frame(decoded)
            log.write(frame_record(decoded, latency_ms, stages.done()))
            meter.add(decoded.packet.layer, decoded.bits, latency_ms)
            if not keep_going:
                return "window closed"
        return "stopped"
    except KeyboardInterrupt:
        return "interrupted"


def frame_record(d: Decoded, latency_ms: float, ms: dict[str, float]) -> dict[str, Any]:
    p = d.packet
    return {
        "kind": "frame", "stream": d.stream.name, "seq": p.seq, "session": d.stream.sessions,
        "session_id": f"{p.session_id:08x}", "new_session": d.new_session, "gap": d.gap, "layer": p.layer,
        "type": "P" if p.is_inter else "I", "ref_seq": p.ref_seq if p.is_inter else None,
        "bits": d.bits, "size": [p.frame_h, p.frame_w],
        "timestamp_us": p.timestamp_us, "latency_ms": round(latency_ms, 3),
        "ids_hash": frame_hash(d.ids.astype("<i8")), "hash": frame_hash(d.rgb), "ms": ms,
    }  # fmt: skip


def status_line(receiver: FrameReceiver, transport: Receiver, meter: StreamMeter) -> str:
    sessions = sum(s.sessions for s in receiver.streams.values())
    return (
        f"receive: {meter.interval().describe()}  gaps {receiver.gaps}  held {receiver.held}"
        f"  bad {receiver.bad + transport.stats.malformed}"
        f"  streams {len(receiver.streams)} (sessions {sessions})"
    )


def summary(receiver: FrameReceiver, transport: Receiver, meter: StreamMeter, reason: str) -> dict[str, Any]:
    codec = receiver.codec
    streams = {
        s.name: {"received": s.received, "held": s.held, "gaps": s.gaps, "sessions": s.sessions, "bad": s.bad,
                 "keyframes": s.keyframes, "inter": s.inter,
                 "layers": {str(k): v for k, v in sorted(s.layers.items())}}
        for s in receiver.streams.values()
    }  # fmt: skip
    return {
        "kind": "summary", **meter.total().as_dict(), "received": receiver.received, "held": receiver.held,
        "gaps": receiver.gaps,
        "bad": receiver.bad, "malformed": transport.stats.malformed, "streams": streams, "ended": reason,
        "model": codec.model.name, "backend": codec.backend.name,
        "stages": {name: round(s.mean_ms, 3) for name, s in receiver.timer.summary().items()},
    }  # fmt: skip


def format_summary(s: dict[str, Any], timer: StageTimer, paths: list[str]) -> str:
    lat = "-" if s["latency_p50_ms"] is None else f"{s['latency_p50_ms']:.1f}/{s['latency_p99_ms']:.1f} ms"
    layers = " ".join(f"L{k}:{v}" for k, v in s["layers"].items()) or "-"
    lines = [
        f"edgecodec receive: {s['received']} frames in {s['seconds']:.1f} s ({s['fps']:.1f} fps), {s['kbps']:.1f} kbps,"
        f" layers {layers}; latency p50/p99 {lat}; gaps {s['gaps']}, held {s['held']},"
        f" bad packets {s['bad'] + s['malformed']}"
        f" ({s['ended']})"
    ]
    for name, st in s["streams"].items():
        lines.append(
            f"  stream {name}: {st['received']} frames shown ({st['keyframes']} I, {st['inter']} P), "
            f"{st['held']} held ({st['gaps']} missing), {st['sessions']} session(s), {st['bad']} bad"
        )
    lines += [f"  recorded {p}" for p in paths]
    if timer.summary():
        lines.append(timer.table("  receiver stages"))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecodec receive", description="Receive, decode and display, record or count one or more streams."
    )
    add_transport_arguments(parser, role="receiver")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--display", action="store_true", help="show each stream in a window (default if a display)")
    out.add_argument("--headless", action="store_true", help="no window: decode and count only")
    parser.add_argument(
        "--record",
        metavar="FILE.mp4",
        help="write the decoded frames, at their capture times, to a video file (.mp4 .mkv .mov .avi)",
    )
    parser.add_argument(
        "--record-fps",
        type=positive(float),
        default=25.0,
        help="nominal frame rate of --record, used where a frame has no usable time (25)",
    )
    parser.add_argument("--overlay", action="store_true", help="draw the stream, layer and size on each frame")
    parser.add_argument("--model", default="hqa5", help="model name or .safetensors path (default hqa5)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--device", default="cpu", help="torch device for the torch backend (default cpu)")
    parser.add_argument("--frames", type=positive(int), metavar="N", help="stop after N frames (all streams)")
    parser.add_argument("--timeout", type=positive(float), metavar="S", help="stop after S seconds without a packet")
    parser.add_argument("--stats", metavar="FILE", help="write one JSON record per frame (and a summary) here")
    parser.add_argument("--quiet", action="store_true", help="no status line every second")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    endpoint, bind = endpoint_from_args(ns, role="receiver")
    normalise_endpoint(endpoint)  # fail fast on a bad endpoint, stream id or key folder, before loading a model
    for stream in ns.stream or ():
        check_stream(stream)
    curve = load_server_keys(ns.curve_keys) if ns.curve_keys else None
    display = ns.display or (not ns.headless and not ns.record and display_available())
    if ns.display and not display_available():
        raise ConfigError("--display: no display (DISPLAY is not set); use --headless or --record FILE")
    err = sys.stderr
    with ExitStack() as stack:
        outputs = Outputs(display=display, record=ns.record, fps=ns.record_fps, overlay=ns.overlay)
        stack.callback(outputs.close)
        codec = Codec(ns.model, backend=ns.backend, device=ns.device)
        receiver = FrameReceiver(codec)
        receiver.warm_up()
        transport = stack.enter_context(Receiver(endpoint, bind=bind, streams=ns.stream, curve=curve))
        log = stack.enter_context(StatsLog(ns.stats))
        streams = ", ".join(ns.stream) if ns.stream else "all streams"
        where = f"{'listening on' if bind else 'connected to'} {transport.endpoint} ({streams})"
        print(f"edgecodec receive: {where}; model {codec.model.name}, backend {codec.backend.name}; "
              f"{outputs.describe()}", file=err, flush=True)  # fmt: skip
        meter = StreamMeter()
        status = None if ns.quiet else (lambda line: print(line, file=err, flush=True))
        with sigterm_as_interrupt():
            reason = receive_frames(transport, receiver, outputs, log=log, meter=meter, status=status,
                                    frames=ns.frames, timeout_s=ns.timeout)  # fmt: skip
        result = summary(receiver, transport, meter, reason)
        log.write(result)
        outputs.close()
        paths = outputs.paths()
    print(format_summary(result, receiver.timer, paths), flush=True)
    return 130 if reason == "interrupted" else 0

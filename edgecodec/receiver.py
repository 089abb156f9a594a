"""``edgecodec receive``: take packets off ZeroMQ, decode them, and show, record or just count the frames.

* **Streams.** Any number of senders may feed one receiver; the transport's stream id (the topic) tells them apart,
  and each packet's 32-bit ``stream_id`` must be the CRC-32 of that name (:func:`edgecodec.transport.stream_number`).
* **Gaps and sessions.** Within a stream, sequence numbers count the sender's frames. A step forward by ``1 + k``
  means ``k`` frames were lost (dropped by the sender or on the way). Every sender start draws a new session id
  (packet format 2; for version 1 packets a step backwards modulo 2**32 tells a restart): a new session begins and
  nothing is counted as lost. So a receiver may start before or after its senders and survives their restarts.
* **P-frames** decode against the ids of the frame they name (:class:`~edgecodec.coding.gop.ReferenceStore`). After a
  loss, or when joining late, the receiver holds its last good picture until the next keyframe, and counts the
  frames it could not show as *held* (lost ones included). A gap before a P-frame that names the frame held was never
  sent (an unchanged frame: the picture is the same), and counts as *unsent*: frames shown + held + unsent = frames
  made, and shown + held = frames sent.
* **Latency** is glass to glass: the time the frame has been shown or written, minus the capture time in the packet
  (one clock when both ends run on one machine; across machines it needs synchronised clocks, e.g. PTP or NTP).
* **Bad packets** (corrupt, foreign model, wrong stream number, over the decode budget ``--max-pixels``) are counted
  and reported, never fatal.
* **Live view**: each round drains what is queued, entropy-decodes all of it in order (references stay right), and
  decodes to pixels only the newest frame of each stream younger than ``--max-latency``; the rest are *skipped*.
* **Stream identity and bounds** (:mod:`edgecodec.streams`): one sender session owns a stream; rivals and superseded
  sessions are refused; at most ``--max-streams``, idle ones closed after ``--idle-close`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecodec import bitstream
from edgecodec.capture import wall_clock_us
from edgecodec.cliutil import ArgumentParser, non_negative, positive, sigterm_as_interrupt
from edgecodec.codec import Codec
from edgecodec.coding.gop import ReferenceStore
from edgecodec.errors import (
    BitstreamError,
    ConfigError,
    EdgecodecError,
    MissingReferenceError,
    RivalSessionError,
    StreamRefusedError,
)
from edgecodec.limits import RECEIVER_MAX_PIXELS, DecodeBudget, message_bound
from edgecodec.liveview import LiveServer, add_http_argument, parse_http_address
from edgecodec.modelset import CodecSet
from edgecodec.runtime import BACKEND_HELP
from edgecodec.sinks import DisplaySink, NullSink, Sink, VideoRecorder, display_available, draw_label
from edgecodec.streams import StreamState, StreamTable, rival_name
from edgecodec.timing import StageTimer, StatsLog, StreamMeter, frame_hash
from edgecodec.transport import (
    Message,
    Receiver,
    add_transport_arguments,
    check_stream,
    endpoint_from_args,
    load_server_keys,
    normalise_endpoint,
)


@dataclass(frozen=True)
class Pending:
    """One entropy-decoded frame (its ids are already the stream's reference), not yet decoded to pixels."""

    stream: StreamState
    packet: bitstream.Packet
    ids: np.ndarray
    bits: int
    gap: int
    new_session: bool
    codec: Codec  # the codec of the packet's model


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

    def __init__(
        self,
        codec: Codec | CodecSet,
        timer: StageTimer | None = None,
        *,
        max_streams: int | None = None,
        idle_s: float | None = None,
    ) -> None:
        self.codecs = codec if isinstance(codec, CodecSet) else CodecSet(codec, others=False)
        self.codec = self.codecs.first  # the --model one
        self.codecs.on_load = self._loaded
        self.timer = timer or StageTimer()
        self.streams = StreamTable(max_streams, idle_s)
        self.references = ReferenceStore()
        self.bad = 0
        self.arrived = 0  # messages handled: decoded, held or bad
        self.notices: list[str] = []  # one-line reports for the user (a rival sender kept apart), printed by the loop

    def warm_up(self) -> None:
        """Decode a small blank grid of every layer once, so first-call costs do not land on the first frame."""
        for codec in self.codecs:
            for layer in range(1, codec.num_layers + 1):
                codec.decode(np.zeros(codec.grid_shape((64, 64), layer), np.int64), layer, (64, 64))

    def _loaded(self, codec: Codec) -> None:
        """A model first named by a packet was loaded: say so (its first frames pay for the load)."""
        self.notices.append(f"loaded model {codec.model.name} ({codec.model.fingerprint_hex}), named by a packet")

    def stream(self, name: str) -> StreamState:
        """The state of stream ``name``, made on first sight (:class:`StreamRefusedError` beyond --max-streams)."""
        return self.streams.get_or_add(name)

    def expire(self, now: float | None = None) -> list[str]:
        """Forget the streams idle for longer than ``idle_s`` (and their references); returns their names."""
        gone = self.streams.expire(time.monotonic() if now is None else now)
        for name in gone:
            self.references.forget(name)
        return gone

    def all_streams(self) -> list[StreamState]:
        return [*self.streams.expired, *self.streams.values()]

    def _bad(self, state: StreamState) -> None:
        state.bad += 1
        self.bad += 1

    def decode(self, message: Message, stages: Callable[[str], Any]) -> Decoded:
        """Decode one message to pixels: :meth:`prepare`, then :meth:`render`."""
        return self.render(self.prepare(message, stages), stages)

    def prepare(self, message: Message, stages: Callable[[str], Any]) -> Pending:
        """Parse, check and entropy-decode one message; its ids become the stream's reference. A bad packet raises
        (:class:`EdgecodecError` or ValueError) and is counted as bad; a P-frame whose reference is not held raises
        :class:`MissingReferenceError` and is counted as held; a packet of a rival or superseded session, or of a
        stream beyond --max-streams, raises :class:`StreamRefusedError`."""
        self.arrived += 1
        state = self.stream(message.stream)
        try:
            with stages("parse"):
                packet = bitstream.decode_packet(message.packet)
                if packet.resolved:
                    self.codecs.get(packet.fingerprint).check(packet)
                if packet.resolved and packet.stream_id != state.number:
                    raise BitstreamError(
                        f"packet stream number {packet.stream_id:08x} is not that of stream {state.name!r} "
                        f"({state.number:08x})"
                    )
        except (EdgecodecError, ValueError):
            self._bad(state)
            raise
        session = packet.session_id if packet.version >= 2 else None
        try:
            state.admit(session, time.monotonic())
        except RivalSessionError as exc:  # a second live sender: kept apart as a stream of its own, never merged
            if rival_name(state.name, session) not in self.streams:
                self.notices.append(str(exc))
            state = self.streams.get_or_add(rival_name(state.name, session), state.number)
            state.admit(session, time.monotonic())
        gap, new = state.track(packet.seq, session)
        try:
            packet, reference = self.references.resolve(state.name, packet)
        except MissingReferenceError:
            state.held += 1
            raise
        if packet.is_inter and gap:  # it names the frame held: those between were never sent (unchanged), not lost
            state.held -= gap
            state.unsent += gap
        try:
            codec = self.codecs.get(packet.fingerprint)
            codec.check(packet)  # a P-frame's budget, now that its sizes are known: before any decoding
            with stages("entropy"):
                ids = codec.packet_ids(packet, reference)
        except (EdgecodecError, ValueError):
            self._bad(state)
            self.references.forget(state.name)
            raise
        self.references.update(state.name, packet, ids)
        state.inter += packet.is_inter
        state.keyframes += not packet.is_inter
        return Pending(state, packet, ids, len(message.packet) * 8, gap, new, codec)

    def render(self, pending: Pending, stages: Callable[[str], Any]) -> Decoded:
        """The neural decode of an entropy-decoded frame."""
        state, packet = pending.stream, pending.packet
        try:
            with stages("decode"):
                rgb = pending.codec.decode(pending.ids, packet.layer, (packet.frame_h, packet.frame_w))
        except (EdgecodecError, ValueError):
            self._bad(state)
            self.references.forget(state.name)
            raise
        state.received += 1
        state.layers[packet.layer] = state.layers.get(packet.layer, 0) + 1
        return Decoded(state, packet, pending.ids, rgb, pending.bits, pending.gap, pending.new_session)

    def skip(self, pending: Pending, rendered: bool = False) -> None:
        """A frame not shown (late, or behind a newer one): its ids stay the reference; counted as skipped.
        ``rendered``: it was decoded to pixels (and counted as received) but is too late to show."""
        state = pending.stream
        state.skipped += 1
        if rendered:
            state.received -= 1
            state.layers[pending.packet.layer] -= 1

    @property
    def received(self) -> int:
        return sum(s.received for s in self.all_streams())

    @property
    def held(self) -> int:
        return sum(s.held for s in self.all_streams())

    @property
    def gaps(self) -> int:
        return sum(s.gaps for s in self.all_streams())

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.all_streams())

    @property
    def refused(self) -> int:
        return self.streams.refused + sum(s.rivals + s.superseded for s in self.all_streams())


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
        self._paths: list[str] = []  # every file recorded, closed ones included
        if record is not None:
            VideoRecorder(record, fps)  # checks the path (folder, suffix, writable) now rather than at the first frame

    def _make(self, stream: str) -> list[Sink]:
        sinks: list[Sink] = [DisplaySink(f"edgecodec {stream}")] if self.display else []
        if self.record is not None:
            path = Path(self.record)
            if self._paths:
                path = path.with_name(f"{path.stem}.{stream}{path.suffix or '.mp4'}")
            n = 1
            while str(path) in self._paths:  # a stream back after it went idle: a new file, never overwrite
                n += 1
                path = Path(self.record).with_name(f"{Path(self.record).stem}.{stream}.{n}{path.suffix or '.mp4'}")
            self._paths.append(str(path))
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
        return list(self._paths)

    def close_stream(self, stream: str) -> None:
        """Close and finalise the sinks of one stream (it went idle)."""
        for sink in self._sinks.pop(stream, []):
            sink.close()

    def close(self) -> None:
        for stream in list(self._sinks):
            self.close_stream(stream)


DRAIN_MAX = 256  # messages read in one go before the newest of each stream is shown


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
    max_latency_s: float | None = None,
) -> str:
    """Receive until ``frames`` frames, ``timeout_s`` s without a packet, a closed window or a stop; returns why.

    Live view (``max_latency_s`` > 0): every round drains what is queued and entropy-decodes all of it in order (so
    P-frame references stay right), then decodes to pixels and shows only the newest frame of each stream, and only if
    it is not older than ``max_latency_s``; the others are counted as skipped. Without it (the demo, or
    ``--max-latency 0``) every frame is shown."""
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
            _housekeeping(transport, receiver, outputs, log)
            if status is not None and meter.due():
                status(status_line(receiver, transport, meter))
            if message is None:
                continue
            last_packet = time.monotonic()
            batch = [message]
            room = DRAIN_MAX if frames is None else min(DRAIN_MAX, frames - receiver.arrived)
            while len(batch) < room:
                more = transport.recv_message(0)
                if more is None:
                    break
                batch.append(more)
            newest: dict[str | int, tuple[Pending, Any]] = {}  # live: the newest per stream; else every frame
            for index, message in enumerate(batch):
                stages = receiver.timer.frame()
                pending = _prepare(receiver, message, stages, log, reported)
                if pending is None:
                    continue
                reported.discard((message.stream, "held"))
                older = newest.get(message.stream) if max_latency_s else None
                if older is not None:
                    receiver.skip(older[0])
                    log.write(skip_record(older[0], "newer frame queued"))
                newest[message.stream if max_latency_s else index] = (pending, stages)
            for pending, stages in newest.values():
                latency_ms = (wall_clock_us() - pending.packet.timestamp_us) / 1000
                if max_latency_s and latency_ms > max_latency_s * 1000:
                    receiver.skip(pending)
                    log.write(skip_record(pending, f"{latency_ms:.0f} ms late"))
                    continue
                wall0, cpu0 = time.monotonic(), time.process_time()
                try:
                    decoded = receiver.render(pending, stages)
                except (EdgecodecError, ValueError) as exc:
                    print(f"edgecodec receive: stream {pending.stream.name!r}: bad packet: {exc}", file=sys.stderr)
                    continue
                off_cpu = (time.monotonic() - wall0) - (time.process_time() - cpu0)
                if max_latency_s and off_cpu > max_latency_s:  # stopped or starved while decoding: stale now
                    receiver.skip(pending, rendered=True)
                    log.write(skip_record(pending, f"stalled {off_cpu:.1f} s while decoding"))
                    continue
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


def _prepare(
    receiver: FrameReceiver, message: Message, stages: Any, log: StatsLog, reported: set[tuple[str, str]]
) -> Pending | None:
    """Entropy-decode one message; None (reported once per stream and kind, then only counted) if it cannot be."""
    try:
        return _try_prepare(receiver, message, stages, log, reported)
    finally:
        for notice in receiver.notices:  # e.g. a second sender kept apart
            print(f"edgecodec receive: {notice}", file=sys.stderr)
        receiver.notices.clear()


def _try_prepare(
    receiver: FrameReceiver, message: Message, stages: Any, log: StatsLog, reported: set[tuple[str, str]]
) -> Pending | None:
    try:
        return receiver.prepare(message, stages)
    except MissingReferenceError as exc:
        if (message.stream, "held") not in reported:  # once per stream until it shows a frame again
            reported.add((message.stream, "held"))
            print(f"edgecodec receive: stream {message.stream!r}: holding the last frame: {exc}", file=sys.stderr)
        state = receiver.streams.get(message.stream)
        log.write({"kind": "held", "stream": message.stream, "seq": state and state.last_seq, "reason": str(exc)})
    except StreamRefusedError as exc:
        key = (message.stream, str(exc)[:60])
        if key not in reported and len(reported) < 4096:
            reported.add(key)
            print(f"edgecodec receive: {exc}", file=sys.stderr)
    except (EdgecodecError, ValueError) as exc:
        key = (message.stream, type(exc).__name__)
        if key not in reported and len(reported) < 4096:  # once per stream and kind of error, then only counted
            reported.add(key)
            print(f"edgecodec receive: stream {message.stream!r}: bad packet: {exc}", file=sys.stderr)
    return None


def _housekeeping(transport: Receiver, receiver: FrameReceiver, outputs: FrameOutput, log: StatsLog) -> None:
    """Between messages: handshake failures and refused keys reported, the allow-list reloaded, idle streams
    closed."""
    for line in [*getattr(transport, "handshake_failures", list)(), *getattr(transport, "refused", [])]:
        print(f"edgecodec receive: {line}", file=sys.stderr, flush=True)
    if hasattr(transport, "refused"):
        transport.refused.clear()
    for key in getattr(transport, "poll_allow_list", set)():
        print(f"edgecodec receive: key {key} revoked: its connection is dropped", file=sys.stderr, flush=True)
    for name in receiver.expire():
        close = getattr(outputs, "close_stream", None)
        if close is not None:
            close(name)
        log.write({"kind": "stream_closed", "stream": name, "reason": "idle"})


def skip_record(p: Pending, reason: str) -> dict[str, Any]:
    return {"kind": "skipped", "stream": p.stream.name, "seq": p.packet.seq, "type": "P" if p.packet.is_inter else "I",
            "timestamp_us": p.packet.timestamp_us, "reason": reason}  # fmt: skip


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
    sessions = sum(s.sessions for s in receiver.all_streams())
    return (
        f"receive: {meter.interval().describe()}  gaps {receiver.gaps}  held {receiver.held}"
        f"  skipped {receiver.skipped}  refused {receiver.refused + transport.stats.unauthorised}"
        f"  bad {receiver.bad + transport.stats.malformed}"
        f"  streams {len(receiver.streams)} (sessions {sessions})"
    )


def summary(receiver: FrameReceiver, transport: Receiver, meter: StreamMeter, reason: str) -> dict[str, Any]:
    streams = {
        s.name: {"received": s.received, "held": s.held, "unsent": s.unsent, "gaps": s.gaps, "sessions": s.sessions,
                 "bad": s.bad,
                 "keyframes": s.keyframes, "inter": s.inter, "skipped": s.skipped, "rivals": s.rivals,
                 "superseded": s.superseded, "layers": {str(k): v for k, v in sorted(s.layers.items())}}
        for s in receiver.all_streams()
    }  # fmt: skip
    return {
        "kind": "summary", **meter.total().as_dict(), "received": receiver.received, "held": receiver.held,
        "gaps": receiver.gaps,
        "bad": receiver.bad, "malformed": transport.stats.malformed, "streams": streams, "ended": reason,
        "skipped": receiver.skipped, "refused": receiver.refused, "unauthorised": transport.stats.unauthorised,
        "model": ", ".join(c.model.name for c in receiver.codecs),
        "backend": receiver.codec.backend.name,
        "stages": {name: round(s.mean_ms, 3) for name, s in receiver.timer.summary().items()},
    }  # fmt: skip


def format_summary(s: dict[str, Any], timer: StageTimer, paths: list[str]) -> str:
    lat = "-" if s["latency_p50_ms"] is None else f"{s['latency_p50_ms']:.1f}/{s['latency_p99_ms']:.1f} ms"
    layers = " ".join(f"L{k}:{v}" for k, v in s["layers"].items()) or "-"
    lines = [
        f"edgecodec receive: {s['received']} frames in {s['seconds']:.1f} s ({s['fps']:.1f} fps), {s['kbps']:.1f} kbps,"
        f" layers {layers}; latency p50/p99 {lat}; gaps {s['gaps']}, held {s['held']}, skipped {s['skipped']},"
        f" refused {s['refused'] + s['unauthorised']},"
        f" bad packets {s['bad'] + s['malformed']}"
        f" ({s['ended']})"
    ]
    for name, st in s["streams"].items():
        lines.append(
            f"  stream {name}: {st['received']} frames shown ({st['keyframes']} I, {st['inter']} P), "
            f"{st['held']} held ({st['gaps']} missing, {st['unsent']} of them not sent), {st['skipped']} skipped, "
            f"{st['sessions']} session(s), "
            f"{st['bad']} bad, {st['rivals']} from a rival sender"
        )
    lines += [f"  recorded {p}" for p in paths]
    if timer.summary():
        lines.append(timer.table("  receiver stages"))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="edgecodec receive", description="Receive, decode and display, record or count one or more streams."
    )
    add_transport_arguments(parser, role="receiver")
    out = parser.add_mutually_exclusive_group()
    out.add_argument(
        "--display", action="store_true", help="show each stream in a window (default if a display and no --http)"
    )
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
    add_http_argument(parser)
    parser.add_argument("--overlay", action="store_true", help="draw the stream, layer and size on each frame")
    parser.add_argument("--model", default="hqa5", help="the model loaded at start, by name or .safetensors path "
                        "(default hqa5); every model in the model folders is also found by the fingerprint "
                        "packets carry, and loaded when a packet first names it")  # fmt: skip
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--device", default="cpu", help="torch device for the torch backend (default cpu)")
    parser.add_argument("--frames", type=positive(int), metavar="N", help="stop after N frames (all streams)")
    parser.add_argument("--timeout", type=positive(float), metavar="S", help="stop after S seconds without a packet")
    parser.add_argument("--stats", metavar="FILE", help="write one JSON record per frame (and a summary) here")
    parser.add_argument("--quiet", action="store_true", help="no status line every second")
    parser.add_argument(
        "--max-pixels",
        type=positive(int),
        default=RECEIVER_MAX_PIXELS,
        metavar="N",
        help=f"decode budget: refuse frames over N pixels (default {RECEIVER_MAX_PIXELS})",
    )
    parser.add_argument(
        "--max-latency",
        type=non_negative(float),
        default=0.5,
        metavar="S",
        help="skip frames older than S seconds (needs synchronised clocks; 0: show all; default 0.5)",
    )
    parser.add_argument(
        "--max-streams",
        type=positive(int),
        default=16,
        metavar="N",
        help="refuse streams beyond N at once (default 16)",
    )
    parser.add_argument(
        "--idle-close",
        type=positive(float),
        default=10.0,
        metavar="S",
        help="close (and finalise the recording of) a stream silent for S seconds (default 10)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    endpoint, bind = endpoint_from_args(ns, role="receiver")
    normalise_endpoint(endpoint, bind=bind)  # fail fast on a bad endpoint, stream id or keys, before loading a model
    for stream in ns.stream or ():
        check_stream(stream)
    curve = load_server_keys(ns.curve_keys) if ns.curve_keys else None
    http = parse_http_address(ns.http) if ns.http is not None else None
    display = ns.display or (not ns.headless and not ns.record and not http and display_available())
    if ns.display and not display_available():
        raise ConfigError("--display: no display (DISPLAY is not set); use --headless or --record FILE")
    err = sys.stderr
    with ExitStack() as stack:
        outputs = Outputs(display=display, record=ns.record, fps=ns.record_fps, overlay=ns.overlay)
        stack.callback(outputs.close)
        live = stack.enter_context(LiveServer(http)) if http else None  # a taken port fails before the model loads
        try:
            budget = DecodeBudget(ns.max_pixels)
        except ValueError as exc:
            raise ConfigError(f"--max-pixels: {exc}") from None
        codec = Codec(ns.model, backend=ns.backend, device=ns.device, budget=budget)
        codecs = CodecSet(codec, backend=ns.backend, device=ns.device, budget=budget)
        receiver = FrameReceiver(codecs, max_streams=ns.max_streams, idle_s=ns.idle_close)
        receiver.warm_up()
        transport = stack.enter_context(Receiver(endpoint, bind=bind, streams=ns.stream, curve=curve,
                                                 max_message_bytes=message_bound(ns.max_pixels)))  # fmt: skip
        log = stack.enter_context(StatsLog(ns.stats))
        streams = ", ".join(ns.stream) if ns.stream else "all streams"
        where = f"{'listening on' if bind else 'connected to'} {transport.endpoint} ({streams})"
        print(f"edgecodec receive: {where}; models {codecs.describe()}, loaded as packets name them; backend "
              f"{codec.backend.name}; {outputs.describe()}", file=err, flush=True)  # fmt: skip
        if live is not None:
            print(f"edgecodec receive: {live.describe()}", file=err, flush=True)
        meter = StreamMeter()
        status = None if ns.quiet else (lambda line: print(line, file=err, flush=True))
        with sigterm_as_interrupt():
            reason = receive_frames(transport, receiver, live.output(outputs) if live else outputs,
                                    log=live.tap(log) if live else log, meter=meter, status=status,
                                    frames=ns.frames, timeout_s=ns.timeout,
                                    max_latency_s=ns.max_latency)  # fmt: skip
        result = summary(receiver, transport, meter, reason)
        log.write(result)
        outputs.close()
        paths = outputs.paths()
    print(format_summary(result, receiver.timer, paths), flush=True)
    if reason == "interrupted":
        return 130
    if receiver.arrived and not result["received"] and not result["held"]:
        print(f"edgecodec receive: error: {receiver.arrived} packets arrived and none could be decoded "
              "(the reasons are above)", file=err)  # fmt: skip
        return 1
    return 0

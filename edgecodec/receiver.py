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
  The loop itself is :mod:`edgecodec.receiving`: by default its network half and its decode half run on two threads
  (``--lockstep``: one).
* **Stream identity and bounds** (:mod:`edgecodec.streams`): one sender session owns a stream; rivals and superseded
  sessions are refused; at most ``--max-streams``, idle ones closed after ``--idle-close`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecodec import bitstream
from edgecodec.cliutil import (
    QUIET_HELP,
    ArgumentParser,
    add_pipeline_arguments,
    non_negative,
    positive,
    sigterm_as_interrupt,
    status_printer,
)
from edgecodec.codec import Codec
from edgecodec.coding.gop import ReferenceStore
from edgecodec.errors import (
    BitstreamError,
    ConfigError,
    EdgecodecError,
    MissingReferenceError,
    RivalSessionError,
)
from edgecodec.limits import RECEIVER_MAX_PIXELS, DecodeBudget, message_bound
from edgecodec.liveview import LiveServer, add_http_argument, parse_http_address
from edgecodec.modelset import CodecSet
from edgecodec.receiving import receive_frames
from edgecodec.runtime import BACKEND_HELP, FAST_CPU_MODEL, streaming_defaults
from edgecodec.sinks import DisplaySink, NullSink, Sink, VideoRecorder, display_available, draw_label
from edgecodec.streams import StreamState, StreamTable, rival_name
from edgecodec.timing import StageTimer, StatsLog, StreamMeter
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
        self.lock = threading.RLock()  # the network and the decode thread of a pipelined receiver share the counters
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
        with self.lock:
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
        with self.lock:
            return self._prepare(message, stages)

    def _prepare(self, message: Message, stages: Callable[[str], Any]) -> Pending:
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
            with self.lock:
                self._bad(state)
                self.references.forget(state.name)
            raise
        with self.lock:
            state.received += 1
            state.layers[packet.layer] = state.layers.get(packet.layer, 0) + 1
        return Decoded(state, packet, pending.ids, rgb, pending.bits, pending.gap, pending.new_session)

    def skip(self, pending: Pending, rendered: bool = False) -> None:
        """A frame not shown (late, or behind a newer one): its ids stay the reference; counted as skipped.
        ``rendered``: it was decoded to pixels (and counted as received) but is too late to show."""
        state = pending.stream
        with self.lock:
            state.skipped += 1
            if rendered:
                state.received -= 1
                state.layers[pending.packet.layer] -= 1

    def _total(self, counter: str) -> int:
        return sum(getattr(s, counter) for s in self.all_streams())

    received = property(lambda self: self._total("received"))
    held = property(lambda self: self._total("held"))
    gaps = property(lambda self: self._total("gaps"))
    skipped = property(lambda self: self._total("skipped"))

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
            f"  stream {name}: {st['received']} frames shown, {st['keyframes'] + st['inter']} entropy-decoded "
            f"({st['keyframes']} I, {st['inter']} P), "
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
    parser.add_argument("--model", help=f"the model loaded at start, by name or .safetensors path (default "
                        f"{FAST_CPU_MODEL} on a CPU, hqa5 with --device cuda); every model in the model folders "
                        "is also found by the fingerprint packets carry, loaded when a packet names it")  # fmt: skip
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP + "; on a CPU auto is onnx-int8 (int8 decoders)")
    add_pipeline_arguments(parser)
    parser.add_argument("--device", default="cpu", help="torch device for the torch backend (default cpu)")
    parser.add_argument("--frames", type=positive(int), metavar="N", help="stop after N frames (all streams)")
    parser.add_argument("--timeout", type=positive(float), metavar="S", help="stop after S seconds without a packet")
    parser.add_argument("--stats", metavar="FILE", help="write one JSON record per frame (and a summary) here")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
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
        default=None,
        metavar="S",
        help="skip frames older than S seconds (needs synchronised clocks; 0: show all; default: 0.5 with a window "
        "or --http, 0 when only recording or counting: a recording keeps every frame)",
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


LIVE_LATENCY_S = 0.5  # a window or a page shows only frames younger than this (the newest frame wins)


def live_latency(ns: argparse.Namespace, display: bool, http: object) -> float:
    """``--max-latency``, else 0.5 s when someone watches (a window, the page) and 0 when only recording or counting:
    a recording keeps every frame, however late (issue 14: a slow receiver recorded nothing)."""
    if ns.max_latency is not None:
        return ns.max_latency
    return LIVE_LATENCY_S if display or http else 0.0


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
        model, backend, note = streaming_defaults(ns.model, ns.backend, ns.device, decode_only=True)
        codec = Codec(model, backend=backend, device=ns.device, budget=budget, threads=ns.threads)
        codecs = CodecSet(codec, backend=backend, device=ns.device, budget=budget, threads=ns.threads)
        codecs.load_all()  # every shipped model ready before the first packet: none of a stream's frames wait
        receiver = FrameReceiver(codecs, max_streams=ns.max_streams, idle_s=ns.idle_close)
        receiver.warm_up()
        transport = stack.enter_context(Receiver(endpoint, bind=bind, streams=ns.stream, curve=curve,
                                                 max_message_bytes=message_bound(ns.max_pixels)))  # fmt: skip
        log = stack.enter_context(StatsLog(ns.stats))
        streams = ", ".join(ns.stream) if ns.stream else "all streams"
        where = f"{'listening on' if bind else 'connected to'} {transport.endpoint} ({streams})"
        if note:  # after every check of the command line, so that an error stays one line
            print(f"edgecodec receive: {note}", file=err, flush=True)
        print(f"edgecodec receive: {where}; models {codecs.describe()}, loaded as packets name them; backend "
              f"{codec.backend.name}; {outputs.describe()}", file=err, flush=True)  # fmt: skip
        if live is not None:
            print(f"edgecodec receive: {live.describe()}", file=err, flush=True)
        meter = StreamMeter()
        status = status_printer(ns.quiet, err)
        with sigterm_as_interrupt():
            reason = receive_frames(transport, receiver, live.output(outputs) if live else outputs,
                                    log=live.tap(log) if live else log, meter=meter, status=status,
                                    frames=ns.frames, timeout_s=ns.timeout,
                                    max_latency_s=live_latency(ns, display, http),
                                    pipelined=not ns.lockstep)  # fmt: skip
        result = summary(receiver, transport, meter, reason)
        log.write(result)
        outputs.close()
        paths = outputs.paths()
    print(format_summary(result, receiver.timer, paths), flush=True)
    if ns.record and not paths:
        print(f"edgecodec receive: no frame arrived, so {ns.record} was not written", file=err, flush=True)
    if reason == "interrupted":
        return 130
    if receiver.arrived and not result["received"] and not result["held"]:
        print(f"edgecodec receive: error: {receiver.arrived} packets arrived and none could be decoded "
              "(the reasons are above)", file=err)  # fmt: skip
        return 1
    return 0

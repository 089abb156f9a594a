"""``edgecodec send``: capture frames, encode them, pick one layer per frame, and publish the packets over ZeroMQ.

Per frame: one encoder pass gives the ids and the quantisation error (qerr) of every layer. The rate controller picks
the layer from the qerrs and the exact packet size of the candidate layers; only the layers it asks about are
entropy-coded (the callable form of :meth:`~edgecodec.rate.RateController.choose`). The packet is queued without
blocking (:class:`edgecodec.transport.Sender`): a frame that cannot be queued is dropped and counted, never waited for.

* Sequence numbers count captured frames, dropped or not, from 0 at every start; a receiver sees drops as gaps and a
  restart as a sequence number that goes back.
* The rate controller's clock is the media time for files (the file's presentation times, so a variable frame rate
  is charged as it plays; ``frame index / fps`` with ``--fps``), image folders and the synthetic source, so the
  budget is per second of video whatever the machine's speed; a camera uses its capture time.
* The budget is charged for every packet made, sent or dropped, so the layer choices do not depend on who listens,
  and drops on a congested link never make the sender pick finer layers. It counts whole packets (header and
  payload), not ZeroMQ framing (a few bytes and the stream id per message).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecodec import bitstream
from edgecodec.capture import CameraSource, Frame, FrameSource, add_source_arguments, source_from_args, wall_clock_us
from edgecodec.cliutil import QUIET_HELP, ArgumentParser, add_pipeline_arguments, sigterm_as_interrupt, status_printer
from edgecodec.codec import Codec, FrameCode
from edgecodec.coding.gop import CodedFrame, InterEncoder
from edgecodec.config import RateConfig, add_rate_arguments, load_rate_config
from edgecodec.container import ContainerHeader, ContainerWriter, fps_fraction
from edgecodec.errors import ConfigError, SinkError
from edgecodec.paths import check_output_file
from edgecodec.pipeline import send_pipelined
from edgecodec.rate import RateController
from edgecodec.runtime import BACKEND_HELP, FAST_CPU_MODEL, streaming_defaults
from edgecodec.timing import StageTimer, StatsLog, StreamMeter, frame_hash
from edgecodec.transport import (
    Sender,
    SenderStats,
    add_transport_arguments,
    check_stream,
    endpoint_from_args,
    load_client_keys,
    normalise_endpoint,
    stream_number,
)

DRAIN_MS = 1000  # at the end of a stream, queued packets get this long to leave


def new_session_id() -> int:
    """A random non-zero 32-bit session id, drawn at every sender start (packets carry it; DESIGN principle 2)."""
    return secrets.randbelow(0xFFFFFFFF) + 1


@dataclass(frozen=True)
class CodedPacket:
    """One frame made into a packet: the bytes, the layer and I/P coding chosen, its size in bits, and the layers
    whose coded size the rate controller asked for."""

    packet: bytes
    coded: CodedFrame
    bits: int
    coded_layers: list[int]
    seq: int
    timestamp_us: int

    @property
    def skipped(self) -> bool:
        """An unchanged P-frame: not sent (``packet`` is empty); the next P-frame names the same reference."""
        return not self.packet


class FrameCoder:
    """The sender's coding decisions without a transport: per frame, the layer (:class:`RateController`), I- or
    P-frame and replenishment (:class:`InterEncoder`), and the packet. Used by :class:`FrameSender` and by the
    benchmarks that must code a clip exactly as ``edgecodec send`` would."""

    def __init__(
        self,
        codec: Codec,
        controller: RateController,
        *,
        stream_id: int = 0,
        session_id: int | None = None,
        intra_only: bool = False,
        skip_unchanged: bool = True,
    ) -> None:
        self.codec = codec
        self.controller = controller
        self.skip_unchanged = skip_unchanged
        self.stream_id = stream_id
        self.session_id = new_session_id() if session_id is None else session_id
        self.inter = InterEncoder(codec, controller.config.inter_settings(intra_only))

    def latents(self, now: float) -> tuple[int, ...]:
        """The layers whose z_e the encoder must return for a frame at time ``now``."""
        return self.inter.latents(now)

    def code(self, code: FrameCode, now: float, *, seq: int, timestamp_us: int, stages: Any = None) -> CodedPacket:
        """Choose the layer and the coding of one encoded frame and make its packet; the rate controller is charged.
        Call :meth:`sent` once the packet is queued (or kept), so that it becomes the reference."""
        stage = stages or (lambda name: nullcontext())
        coded: dict[int, CodedFrame] = {}

        def packet_bits(layer: int) -> int:
            if layer not in coded:
                with stage("entropy"):
                    coded[layer] = self.inter.code(code, layer, now, seq=seq, timestamp_us=timestamp_us)
            if coded[layer].unchanged and self.skip_unchanged:
                return 0  # not sent at all
            header = bitstream.INTER_HEADER_SIZE if coded[layer].is_inter else bitstream.HEADER_SIZE
            return (header + len(coded[layer].payload)) * 8

        with stage("rate"):
            layer = self.controller.choose(code.qerr, packet_bits, now)
        bits = packet_bits(layer)  # codes the chosen layer if the controller did not need its size
        chosen = coded[layer]
        if chosen.unchanged and self.skip_unchanged:
            self.controller.commit(layer, 0, now)
            return CodedPacket(b"", chosen, 0, sorted(coded), seq, timestamp_us)
        with stage("packet"):
            packet = self.codec.packet_for(
                chosen.ids.shape, layer, code.size, chosen.payload, seq=seq, timestamp_us=timestamp_us,
                stream_id=self.stream_id, session_id=self.session_id, ref_seq=chosen.ref_seq,
                timestamp_delta_us=chosen.timestamp_delta_us,
            )  # fmt: skip
        self.controller.commit(layer, bits, now)
        return CodedPacket(packet, chosen, bits, sorted(coded), seq, timestamp_us)

    def sent(self, made: CodedPacket, now: float) -> None:
        """``made`` was queued (or saved): it becomes the reference of the next P-frame."""
        self.inter.sent(made.coded, made.seq, now, made.timestamp_us)


class FrameSender:
    """One frame in, one packet out: encode, choose the layer and I- or P-frame, entropy-code, queue without blocking.

    A frame becomes the reference of the next P-frame once it is queued for sending or saved
    (:mod:`edgecodec.coding.gop`); ``intra_only`` sends keyframes only. When a receiver joins (a new subscription
    to the stream), the next frame is a keyframe, so a late joiner does not wait for the keyframe interval. A P-frame
    that changes no id is not sent at all (``skipped``): a still scene costs the keyframes alone, and the receiver,
    which keeps showing the same picture, counts the frames it did not get but whose successor names its reference
    as not sent rather than lost.
    """

    def __init__(
        self,
        codec: Codec,
        controller: RateController,
        transport: Sender,
        *,
        timer: StageTimer | None = None,
        save: ContainerWriter | None = None,
        intra_only: bool = False,
        session_id: int | None = None,
        skip_unchanged: bool = True,
        media_clock: Callable[[Frame], float] | None = None,
    ) -> None:
        """``media_clock``: packets are stamped with the first frame's capture time plus this media time (s) of each
        frame, not with its capture time: a file made from a video (``send --save`` without a network) then plays at
        the video's pace, whatever the coding speed."""
        self.codec = codec
        self.controller = controller
        self.transport = transport
        self.stream = transport.stream
        self.stream_id = stream_number(transport.stream)
        self.coder = FrameCoder(codec, controller, stream_id=self.stream_id, session_id=session_id,
                                intra_only=intra_only, skip_unchanged=skip_unchanged)  # fmt: skip
        self.session_id = self.coder.session_id
        self.timer = timer or StageTimer()
        self.save = save
        self.seq = 0
        self._joined = 0
        self.frames_dropped = 0  # captured, never encoded: the encoder was behind a live source (pipelined)
        self.on_code: Callable[[Frame, int], None] | None = None  # sees each frame and its seq before it is coded
        self.media_clock = media_clock
        self._media_origin_us: int | None = None

    def warm_up(self) -> None:
        """Encode and code a small blank frame once, so first-call costs do not land on the first real frame."""
        code = self.codec.encode(np.zeros((64, 64, 3), np.uint8))
        for layer in range(1, self.codec.num_layers + 1):
            self.codec.code_ids(code.ids[layer - 1], layer)

    def process(self, frame: Frame, now: float, capture_ms: float = 0.0) -> dict[str, Any]:
        """Encode and send one frame at rate-controller time ``now`` (s); returns its stats record."""
        return self.finish(self.encode(frame, now, capture_ms))

    def encode(self, frame: Frame, now: float, capture_ms: float = 0.0) -> Encoded:
        """The network stage of one frame (a pipeline runs it in a thread of its own, :mod:`edgecodec.pipeline`)."""
        stages = self.timer.frame()
        with stages("encode"):
            code = self.codec.encode(frame.rgb, latents=self.coder.latents(now))
        return Encoded(frame, now, capture_ms, code, stages)

    def dropped(self, frame: Frame, reason: str) -> dict[str, Any]:
        """The record of a captured frame dropped before it was encoded (the encoder was behind a live source)."""
        self.frames_dropped += 1
        return {"kind": "dropped", "stream": self.stream, "index": frame.index, "timestamp_us": frame.timestamp_us,
                "reason": reason}  # fmt: skip

    def finish(self, encoded: Encoded) -> dict[str, Any]:
        """Rate choice, entropy coding, packet and send of an encoded frame; returns its stats record."""
        frame, now, capture_ms, code, stages = (encoded.frame, encoded.now, encoded.capture_ms, encoded.code,
                                                encoded.stages)  # fmt: skip
        if self.transport.has_receiver and self.transport.joined > self._joined:
            self._joined = self.transport.joined  # a receiver joined: P-frames would name frames it never saw
            self.coder.inter.force_keyframe()
        if self.on_code is not None:
            self.on_code(frame, self.seq)
        made = self.coder.code(code, now, seq=self.seq, timestamp_us=self._timestamp(frame), stages=stages)
        before = self.transport.stats.dropped_no_receiver
        sent = False
        if not made.skipped:
            with stages("send"):
                sent = self.transport.send(made.packet)
            if self.save is not None:
                self.save.write_encoded(made.packet)
            if sent or self.save is not None:
                self.coder.sent(made, now)
        ms = {"capture": round(capture_ms, 3), **stages.done()}
        drop = (
            None
            if sent or made.skipped
            else ("no_receiver" if self.transport.stats.dropped_no_receiver > before else "queue_full")
        )
        bucket = None if self.controller.config.unlimited else round(self.controller.fill, 4)
        chosen = made.coded
        record = {
            "kind": "frame", "stream": self.stream, "session": f"{self.session_id:08x}", "seq": self.seq,
            "index": frame.index, "timestamp_us": frame.timestamp_us, "rate_s": round(now, 6), "layer": chosen.layer,
            "type": "P" if chosen.is_inter else "I", "ref_seq": chosen.ref_seq, "skipped": made.skipped,
            "quality_layer": self.controller.last_quality_layer, "budget_layer": self.controller.last_budget_layer,
            "reason": self.controller.last_reason, "bits": made.bits,
            "intra_bytes": chosen.intra_bytes, "inter_bytes": chosen.inter_bytes,
            "switched": chosen.switched, "kept": chosen.kept, "ids_hash": frame_hash(chosen.ids.astype("<i8")),
            "qerr": [round(float(q), 5) for q in code.qerr], "coded_layers": made.coded_layers,
            "sent": sent, "drop": drop, "bucket": bucket,
            "latency_ms": round((wall_clock_us() - frame.timestamp_us) / 1000, 3), "ms": ms,
        }  # fmt: skip
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        return record

    def _timestamp(self, frame: Frame) -> int:
        """The packet timestamp of ``frame`` (us): its capture time, or media time from the first capture time."""
        if self.media_clock is None:
            return frame.timestamp_us
        media_us = round(self.media_clock(frame) * 1e6)
        if self._media_origin_us is None:
            self._media_origin_us = frame.timestamp_us - media_us
        return max(self._media_origin_us + media_us, 0)


@dataclass
class Encoded:
    """One frame through the network: what :meth:`FrameSender.finish` needs."""

    frame: Frame
    now: float  # rate-controller time, s
    capture_ms: float
    code: FrameCode
    stages: Any  # its edgecodec.timing.FrameStages, still open


def rate_clock(source: FrameSource, fps: float | None) -> Callable[[Frame], float]:
    """Seconds for the rate controller: media time for files (their presentation times, or index / ``fps`` when
    ``fps`` is given) and test sources, capture time for a camera."""
    media_fps = fps or source.native_fps
    if isinstance(source, CameraSource) or not media_fps:
        return lambda frame: frame.timestamp_us / 1e6
    if fps is None:
        return lambda frame: frame.pts_us / 1e6 if frame.pts_us is not None else frame.index / media_fps
    return lambda frame: frame.index / media_fps


NO_RECEIVER_WARN_S = 5.0  # a sender with no receiver for this long says what to check


class FileOnly:
    """The transport of ``send --save FILE.ecz`` without ``--bind``/``--connect``: no network; every packet is
    "sent" to the file alone (:attr:`stats` counts them as sent)."""

    endpoint = "no network"
    has_receiver = True
    joined = 0

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.stats = SenderStats()

    def send(self, packet: bytes) -> bool:
        self.stats.sent += 1
        return True

    def close(self, linger_ms: int = 0) -> None:
        pass

    def __enter__(self) -> FileOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReceiverWatch:
    """One line when no receiver has subscribed for ``after_s`` seconds (from the start, or since the last one
    left), saying what to check; quiet again once a receiver comes."""

    def __init__(
        self, transport: Sender, after_s: float = NO_RECEIVER_WARN_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.transport, self.after_s, self.clock = transport, after_s, clock
        self.since = clock()
        self.warned = False

    def check(self) -> str | None:
        now = self.clock()
        if self.transport.has_receiver:
            self.since, self.warned = now, False
            return None
        if self.warned or now - self.since < self.after_s:
            return None
        self.warned = True
        t = self.transport
        if getattr(t, "bind", False):
            where = f"a receiver connects to this machine at {t.endpoint} (--connect on the receiver)"
        else:
            where = f"a receiver is listening at {t.endpoint} (edgecodec receive --bind) with this host and port"
        keys = (
            "; with --curve-keys, that the receiver holds this sender's public key"
            if getattr(t, "curve", False)
            else ""
        )
        return (f"no receiver for {now - self.since:.0f} s, frames are dropped: check that {where}, that no firewall "
                f"blocks the port{keys}")  # fmt: skip


def stream_frames(
    source: FrameSource,
    sender: FrameSender,
    *,
    clock: Callable[[Frame], float],
    log: StatsLog,
    meter: StreamMeter,
    status: Callable[[str], None] | None,
    on_capture: Callable[[Frame, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    watch: ReceiverWatch | None = None,
    pipelined: bool = False,
) -> bool:
    """Send every frame of ``source``; True if it ran to the end, False if interrupted or stopped.

    ``on_capture(frame, seq)`` sees each frame before it is coded (the demo keeps the originals with it); ``watch``
    says when no receiver has come for a while. ``pipelined``: capture, encode and coding + sending overlap on three
    threads (:func:`edgecodec.pipeline.send_pipelined`; a live source drops what the encoder cannot keep up with),
    else one frame at a time in this thread."""

    def on_record(record: dict[str, Any]) -> None:
        log.write(record)
        if record["kind"] != "frame":
            return
        meter.add(record["layer"], record["bits"] if record["sent"] else 0, record["latency_ms"])
        if status is not None and meter.due():
            status(status_line(sender, meter))
        report_handshakes(sender.transport)
        warning = watch.check() if watch is not None else None
        if warning is not None:
            print(f"edgecodec send: {warning}", file=sys.stderr, flush=True)

    sender.on_code = on_capture
    if pipelined:
        live = isinstance(source, CameraSource) or source.pace_fps is not None
        return send_pipelined(source, sender, clock=clock, on_record=on_record, live=live, should_stop=should_stop)
    try:
        while not should_stop():
            start = time.perf_counter_ns()
            frame = source.read()
            if frame is None:
                return True
            capture_ms = (time.perf_counter_ns() - start) / 1e6
            on_record(sender.process(frame, clock(frame), capture_ms))
        return False
    except KeyboardInterrupt:
        return False


def report_handshakes(transport: object) -> None:
    """Print the transport's failed handshakes (a wrong key on either side), one line each."""
    for line in getattr(transport, "handshake_failures", list)():
        print(f"edgecodec send: {line}", file=sys.stderr, flush=True)


def status_line(sender: FrameSender, meter: StreamMeter) -> str:
    stats = sender.transport.stats
    bucket = "" if sender.controller.config.unlimited else f"  bucket {sender.controller.fill:+.2f}"
    return (
        f"send {sender.stream}: {meter.interval().describe()}  dropped {stats.dropped + sender.frames_dropped} "
        f"(encoder behind {sender.frames_dropped}, no receiver {stats.dropped_no_receiver}, "
        f"queue full {stats.dropped_queue_full}){bucket}"
    )


def summary(sender: FrameSender, meter: StreamMeter, media_fps: float | None) -> dict[str, Any]:
    total = meter.total()
    stats, rate = sender.transport.stats, sender.controller.stats
    out = {
        "kind": "summary", "stream": sender.stream, **total.as_dict(), "sent": stats.sent, "dropped": stats.dropped,
        "dropped_no_receiver": stats.dropped_no_receiver, "dropped_queue_full": stats.dropped_queue_full,
        "dropped_encoder_behind": sender.frames_dropped, "captured": total.frames + sender.frames_dropped,
        "over_budget": rate.over_budget, "switches": rate.switches, "rate_config": sender.controller.config.name,
        "budget_kbps": sender.controller.config.kbps, "media_kbps": None,
        "model": sender.codec.model.name, "backend": sender.codec.backend.name,
        "network": not isinstance(sender.transport, FileOnly),
        "stages": {name: round(s.mean_ms, 3) for name, s in sender.timer.summary().items()},
    }  # fmt: skip
    if media_fps and total.frames:
        out["media_kbps"] = round(rate.bits / (total.frames / media_fps) / 1000, 2)
    return out


def format_summary(s: dict[str, Any], timer: StageTimer) -> str:
    media = f" ({s['media_kbps']:.1f} kbps of video time)" if s["media_kbps"] is not None else ""
    budget = f"budget {s['budget_kbps']:g} kbps" if s["budget_kbps"] else "no budget"
    layers = " ".join(f"L{k}:{v}" for k, v in s["layers"].items()) or "-"
    lat = "-" if s["latency_p50_ms"] is None else f"{s['latency_p50_ms']:.1f}/{s['latency_p99_ms']:.1f} ms"
    return "\n".join([
        f"edgecodec send: stream {s['stream']}: {s['frames']} frames in {s['seconds']:.1f} s ({s['fps']:.1f} fps), "
        f"{s['kbps']:.1f} kbps sent{media}",
        f"  rate {s['rate_config']} ({budget}): layers {layers}, {s['switches']} switches, "
        f"{s['over_budget']} over budget",
        (f"  sent {s['sent']}, dropped {s['dropped']} after encoding (no receiver {s['dropped_no_receiver']}, "
         f"queue full {s['dropped_queue_full']}); capture to queued p50/p99 {lat}") if s.get("network", True)
        else f"  saved {s['sent']} packets (no network); capture to saved p50/p99 {lat}",
        *([f"  {s['dropped_encoder_behind']} of {s['captured']} captured frames dropped before encoding: the "
           "encoder was behind the source (newest frame first, no latency queued)"]
          if s.get("dropped_encoder_behind") else []),
        timer.table("  sender stages"),
    ])  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="edgecodec send",
        description="Encode a camera, video or image source and stream it over ZeroMQ, one layer per frame.",
    )
    add_source_arguments(parser)
    add_transport_arguments(parser, role="sender")
    parser.add_argument("--model", help=f"model name or .safetensors path (default: {FAST_CPU_MODEL} on a CPU, the "
                        "fastest encoder; hqa5 with --device cuda)")  # fmt: skip
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP + "; on a CPU auto is onnx")
    parser.add_argument("--device", default="cpu", help="torch device for the torch backend (default cpu)")
    add_pipeline_arguments(parser)
    add_rate_arguments(parser)
    parser.add_argument("--stats", metavar="FILE", help="write one JSON record per frame (and a summary) here")
    parser.add_argument("--save", metavar="FILE.ecz", help="also write every packet made (sent or dropped) here; "
                        "without --bind or --connect, write the file only (no network), stamped with the video's "
                        "own times")  # fmt: skip
    parser.add_argument(
        "--wait-receiver",
        type=float,
        default=0.0,
        metavar="S",
        help="before the first frame, wait up to S seconds for a receiver to subscribe",
    )
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument(
        "--send-unchanged",
        action="store_true",
        help="send P-frames that change nothing too (by default they are not sent; the profiler "
        "sends them to time every frame)",
    )
    return parser  # fmt: skip


def _open_save(path: str | None, codec: Codec, fps: float | None) -> ContainerWriter | None:
    if path is None:
        return None
    check_output_file(path, {".ecz"}, "--save")
    num, den = fps_fraction(fps)
    header = ContainerHeader(codec.fingerprint, codec.model.name, 0, num, den)
    try:
        return ContainerWriter(Path(path), header)
    except OSError as exc:
        raise SinkError(f"cannot write {path!r}: {exc.strerror or exc}") from None


def load_config(name: str, kbps: float | None) -> RateConfig:
    if kbps is not None and not kbps >= 0:
        raise ConfigError(f"--kbps must be >= 0, got {kbps:g}")
    return load_rate_config(name, kbps=kbps)


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    config = load_config(ns.rate_config, ns.kbps)
    endpoint, bind = endpoint_from_args(ns, role="sender")
    offline = ns.save is not None and not (ns.bind or ns.connect)  # --save alone: a file, no network
    if not offline:
        normalise_endpoint(endpoint, bind=bind)  # fail fast on a bad endpoint, stream id or keys, before the model
    check_stream(ns.stream)
    curve = load_client_keys(ns.curve_keys, ns.curve_client) if ns.curve_keys else None
    err = sys.stderr
    with ExitStack() as stack:
        source = stack.enter_context(source_from_args(ns))
        model, backend, note = streaming_defaults(ns.model, ns.backend, ns.device)
        codec = Codec(model, backend=backend, device=ns.device, threads=ns.threads)
        media_fps = ns.fps or source.native_fps
        controller = RateController(config.for_model(codec.model.name), codec.num_layers, media_fps or 25.0)
        transport = stack.enter_context(
            FileOnly(ns.stream) if offline else Sender(endpoint, bind=bind, stream=ns.stream, curve=curve)
        )
        log = stack.enter_context(StatsLog(ns.stats))
        save = _open_save(ns.save, codec, media_fps)
        if save is not None:
            stack.enter_context(save)
        clock = rate_clock(source, ns.fps)
        sender = FrameSender(
            codec,
            controller,
            transport,
            save=save,
            intra_only=ns.intra_only,
            skip_unchanged=not ns.send_unchanged,
            media_clock=clock if offline else None,
        )  # a file of a video keeps the video's times
        sender.warm_up()
        budget = f"{config.kbps:g} kbps" if not config.unlimited else "no budget"
        where = (
            f"saving to {ns.save} only"
            if offline
            else f"{'bound to' if bind else 'connecting to'} {transport.endpoint}"
        )
        if note:  # after every check of the command line, so that an error stays one line
            print(f"edgecodec send: {note}", file=err, flush=True)
        print(f"edgecodec send: stream {ns.stream!r} {where}; "
              f"{source.name}; model {codec.model.name}, backend {codec.backend.name}; "
              f"rate {config.name} ({budget})", file=err, flush=True)  # fmt: skip
        if ns.wait_receiver > 0 and not transport.wait_for_receiver(ns.wait_receiver):
            report_handshakes(transport)
            print(f"edgecodec send: no receiver after {ns.wait_receiver:g} s; sending anyway", file=err, flush=True)
        meter = StreamMeter()
        status = status_printer(ns.quiet, err)
        with sigterm_as_interrupt():
            finished = stream_frames(source, sender, clock=clock, log=log, meter=meter,
                                     status=status, watch=None if offline else ReceiverWatch(transport),
                                     pipelined=not ns.lockstep)  # fmt: skip
        result = summary(sender, meter, media_fps)
        log.write(result)
        transport.close(linger_ms=DRAIN_MS if finished else 0)
    print(format_summary(result, sender.timer), flush=True)
    return 0 if finished else 130

"""``edgecodec demo``: a sender and a receiver on loopback, on the sample clip shipped with the package.

The receiver binds ``tcp://127.0.0.1`` on a port the system picks and runs in a thread; the sender runs in the main
thread and connects to it. Both are the real ``edgecodec send``/``receive`` pieces (:mod:`edgecodec.sender`,
:mod:`edgecodec.receiver`) over a real ZeroMQ TCP connection. The demo keeps each original frame until its packet has
been decoded, and writes ``original | decoded`` side by side, with the layer and packet size drawn on, to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from edgecodec.capture import SAMPLE_CLIP, Frame, VideoSource, parse_size, sample_path
from edgecodec.cliutil import ArgumentParser, add_pipeline_arguments, progress, sigterm_as_interrupt
from edgecodec.codec import Codec
from edgecodec.config import add_rate_arguments
from edgecodec.errors import ConfigError
from edgecodec.liveview import LiveServer, add_http_argument, parse_http_address
from edgecodec.rate import RateController
from edgecodec.receiver import LIVE_LATENCY_S, Decoded, FrameReceiver
from edgecodec.receiver import format_summary as receiver_summary_text
from edgecodec.receiver import summary as receiver_summary
from edgecodec.receiving import receive_frames
from edgecodec.runtime import BACKEND_HELP, FAST_CPU_MODEL, split_threads, streaming_defaults
from edgecodec.sender import FrameSender, load_config, rate_clock, stream_frames
from edgecodec.sender import format_summary as sender_summary_text
from edgecodec.sender import summary as sender_summary
from edgecodec.sinks import VideoRecorder, draw_label, side_by_side
from edgecodec.timing import StatsLog, StreamMeter
from edgecodec.transport import Receiver, Sender

DRAIN_S = 5.0  # after the last frame is sent, how long the receiver may take to catch up


class SideBySide:
    """Receiver output of the demo: ``original | decoded`` into an mp4 file, with the layer, the frame type, the rate
    over the last second of capture time (kbps, packets as received) and the PSNR against the original drawn on."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.recorder = VideoRecorder(path, fps)
        self.originals: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._recent: deque[tuple[int, int]] = deque()  # (capture time us, bits) of the last second
        from edgecodec.evaluate import psnr  # with torch: not imported for --help

        self._psnr = psnr

    def keep(self, frame: Frame, seq: int) -> None:
        with self._lock:
            self.originals[seq] = frame.rgb

    def write(self, decoded: Decoded) -> bool:
        with self._lock:
            original = self.originals.pop(decoded.packet.seq, None)
            for seq in [s for s in self.originals if s < decoded.packet.seq]:  # frames that will never arrive
                del self.originals[seq]
        if original is None:
            return True
        p = decoded.packet
        self._recent.append((p.timestamp_us, decoded.bits))
        while self._recent[0][0] < p.timestamp_us - 1_000_000:
            self._recent.popleft()
        kbps = sum(bits for _, bits in self._recent) / 1000  # over the last second
        quality = self._psnr(original, decoded.rgb)
        label = f"layer {p.layer} {'P' if p.is_inter else 'I'}  {kbps:.0f} kbps  {quality:.1f} dB"
        right = draw_label(decoded.rgb, label)
        self.recorder.write(side_by_side(draw_label(original, f"original #{p.seq}"), right), p.timestamp_us)
        return True

    def close(self) -> None:
        self.recorder.close()


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="edgecodec demo",
        description="Stream the shipped sample clip through a sender and a receiver on loopback, paced at its "
        "frame rate as a camera would be, and write original | decoded side by side to an mp4 file. With --http the "
        "clip loops until Ctrl-C, watched live in a browser (as receive --http: only frames younger than 0.5 s are "
        "shown and recorded; older ones are skipped).",
    )
    parser.add_argument("--video", metavar="FILE", help=f"clip to stream (default: the shipped {SAMPLE_CLIP})")
    parser.add_argument("--out", default="edgecodec-demo.mp4", metavar="FILE.mp4", help="side-by-side output")
    parser.add_argument("--size", metavar="WxH", help="resize the frames first")
    parser.add_argument("--frames", type=int, metavar="N", help="only the first N frames")
    parser.add_argument("--fps", type=float, help="pace the sender at this rate, as a camera would (default: the "
                        "clip's own frame rate; 0: as fast as it can)")  # fmt: skip
    add_rate_arguments(parser)
    parser.add_argument("--model", help=f"model name or .safetensors path (default {FAST_CPU_MODEL} on a CPU)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP + "; on a CPU auto is onnx for the sender, "
                        "onnx-int8 for the receiver")  # fmt: skip
    add_pipeline_arguments(parser)
    parser.add_argument("--stats", metavar="PREFIX", help="write PREFIX.send.jsonl and PREFIX.receive.jsonl")
    add_http_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    config = load_config(ns.rate_config, ns.kbps)
    size = parse_size(ns.size) if ns.size else None
    http = parse_http_address(ns.http) if ns.http is not None else None
    if ns.frames is not None and ns.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {ns.frames}")
    path = Path(ns.video) if ns.video else sample_path()
    with (
        VideoSource(path, size=size, frames=ns.frames, pace_fps=ns.fps or None, loop=http is not None) as source,
        LiveServer(http) if http else nullcontext() as live,
    ):
        if ns.fps is None:
            source.pace_fps = source.native_fps  # a camera's pace: latency and P-frames as live
        fps = ns.fps or source.native_fps or 25.0
        output = SideBySide(ns.out, fps)
        model, send_backend, note = streaming_defaults(ns.model, ns.backend, "cpu", both_sides=True)
        receive_backend = streaming_defaults(ns.model, ns.backend, "cpu", decode_only=True)[1]
        threads = split_threads(ns.threads)  # sender and receiver share this machine's cores
        send_codec = Codec(model, backend=send_backend, threads=threads)
        receive_codec = Codec(model, backend=receive_backend, threads=threads)
        controller = RateController(config.for_model(send_codec.model.name), send_codec.num_layers, fps)
        prefix = ns.stats
        with (
            Receiver("tcp://127.0.0.1:*", bind=True) as rx,
            Sender(rx.endpoint, bind=False, stream="demo") as tx,
            StatsLog(f"{prefix}.send.jsonl" if prefix else None) as send_log,
            StatsLog(f"{prefix}.receive.jsonl" if prefix else None) as receive_log,
        ):
            if note:
                print(f"edgecodec demo: {note}", file=sys.stderr)
            print(f"edgecodec demo: {source.name} -> {rx.endpoint} -> {ns.out}; rate {config.name}", file=sys.stderr)
            if live is not None:
                print(f"edgecodec demo: {live.describe()}", file=sys.stderr, flush=True)
            receiver, receive_meter = FrameReceiver(receive_codec), StreamMeter(interval_s=0)
            receiver.warm_up()
            sent = threading.Event()  # set when the sender is done; then the receiver drains what was queued
            drain_until = [float("inf")]
            reasons: list[str] = []
            errors: list[BaseException] = []

            def receive_done() -> bool:
                return sent.is_set() and (receiver.arrived >= tx.stats.sent or time.monotonic() > drain_until[0])

            def receive() -> None:
                try:
                    reasons.append(receive_frames(rx, receiver, live.output(output) if live else output,
                                                  log=live.tap(receive_log) if live else receive_log,
                                                  meter=receive_meter, status=None, should_stop=receive_done,
                                                  max_latency_s=LIVE_LATENCY_S if live else None,
                                                  pipelined=not ns.lockstep))  # fmt: skip
                except BaseException as exc:  # handed to the main thread, which stops the sender and raises it
                    errors.append(exc)

            thread = threading.Thread(target=receive, name="edgecodec-demo-receiver")
            thread.start()  # the receiver must be polled for its subscription to reach the sender
            if not tx.wait_for_receiver(10.0):
                sent.set()
                drain_until[0] = 0.0
                thread.join()
                raise ConfigError(f"the loopback receiver on {rx.endpoint} never subscribed")
            sender = FrameSender(send_codec, controller, tx, intra_only=ns.intra_only)
            sender.warm_up()
            send_meter = StreamMeter(interval_s=0)
            bar = progress(itertools.repeat(None), source.expected, "edgecodec demo")
            ticks = iter(bar)

            def keep(frame: Frame, seq: int) -> None:
                output.keep(frame, seq)
                next(ticks)

            finished = False
            try:
                with sigterm_as_interrupt():
                    finished = stream_frames(source, sender, clock=rate_clock(source, ns.fps), log=send_log,
                                             meter=send_meter, status=None, on_capture=keep,
                                             should_stop=lambda: bool(errors), pipelined=not ns.lockstep)  # fmt: skip
            finally:
                getattr(bar, "close", lambda: None)()
                drain_until[0] = time.monotonic() + (DRAIN_S if finished else 0.0)
                sent.set()
                thread.join()
                output.close()
            if errors:
                raise errors[0]
            send_result = sender_summary(sender, send_meter, fps)
            receive_result = receiver_summary(receiver, rx, receive_meter, reasons[0] if reasons else "stopped")
            send_log.write(send_result)
            receive_log.write(receive_result)
    print(sender_summary_text(send_result, sender.timer))
    print(receiver_summary_text(receive_result, receiver.timer, []))
    print(f"edgecodec demo: wrote {output.recorder.frames} side-by-side frames to {ns.out}")
    return 0 if finished else 130

"""Pipelined mode of ``edgecodec profile`` (the default, issue 16): the sender and the receiver as they run live,
in one process, each pipelined on threads of its own (:mod:`edgecodec.pipeline`): capture, encode, coding + sending
on the sender's side, network + entropy decoding and neural decode + output on the receiver's, over a real ZeroMQ TCP
connection on 127.0.0.1. The receiver keeps the live-view policy of ``edgecodec receive`` (``--max-latency``,
default 0.5 s): the newest frame of the stream wins and older ones are skipped, so no queue builds up when the
receiver is slower than the sender; 0 shows (and times) every frame. A paced source (``--fps``) drops the frames
the encoder cannot keep up with. Both kinds of frames not shown are counted.
"""

from __future__ import annotations

import argparse
import threading
import time
from contextlib import ExitStack
from typing import Any

from edgecodec.capture import Size, source_from_args
from edgecodec.errors import TransportError
from edgecodec.profiling.inprocess import CpuClock, RecordList, _source_ns, controller_for
from edgecodec.profiling.records import RECEIVE_TIMEOUT_S, STREAM, Measured
from edgecodec.timing import StreamMeter

DRAIN_S = 5.0  # after the last frame is sent, how long the receiver may take to decode what is queued


def run_pipelined(ns: argparse.Namespace, send_codec: Any, receive_codec: Any, size: Size | None) -> Measured:
    """One pipelined run: every frame's sender and receiver records, CPU use, and the frames the sender dropped
    before encoding (``Measured.cpu["dropped_capture"]``)."""
    from edgecodec.receiver import FrameReceiver, Outputs
    from edgecodec.receiving import receive_frames
    from edgecodec.sender import FrameSender, rate_clock, stream_frames
    from edgecodec.transport import Receiver, Sender

    sent_log, got_log, clock = RecordList(), RecordList(), CpuClock()
    with ExitStack() as stack:
        source = stack.enter_context(source_from_args(_source_ns(ns, size)))
        rx = stack.enter_context(Receiver("tcp://127.0.0.1:*", bind=True, streams=[STREAM]))
        tx = stack.enter_context(Sender(rx.endpoint, bind=False, stream=STREAM))
        receiver = FrameReceiver(receive_codec)
        receiver.warm_up()
        sender = FrameSender(send_codec, controller_for(ns, send_codec, source), tx, intra_only=ns.intra_only,
                             skip_unchanged=False)  # fmt: skip
        sender.warm_up()
        _subscribe(tx, rx)
        done, drain_until, reasons, errors = threading.Event(), [float("inf")], [], []

        def receive_done() -> bool:
            return done.is_set() and (receiver.arrived >= tx.stats.sent or time.monotonic() > drain_until[0])

        def receive() -> None:
            try:
                outputs = Outputs(display=False, record=None, fps=25.0, overlay=False)
                reasons.append(receive_frames(rx, receiver, outputs, log=got_log, meter=StreamMeter(interval_s=0),
                                              status=None, should_stop=receive_done, pipelined=True,
                                              max_latency_s=ns.max_latency))  # fmt: skip
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)

        thread = threading.Thread(target=receive, name="edgecodec-profile-receiver")
        thread.start()
        clock.start()
        try:
            finished = stream_frames(source, sender, clock=rate_clock(source, ns.fps), log=sent_log,
                                     meter=StreamMeter(interval_s=0), status=None, should_stop=lambda: bool(errors),
                                     pipelined=True)  # fmt: skip
        finally:
            drain_until[0] = time.monotonic() + DRAIN_S
            done.set()
            thread.join()
        cpu = clock.stop()
        if errors:
            raise errors[0]
        if not finished:
            raise KeyboardInterrupt
    cpu["dropped_capture"] = sender.frames_dropped
    return Measured(sent_log.records, got_log.records, cpu, send_codec.backend.name, source.name,
                    receive_codec.backend.name)  # fmt: skip


def _subscribe(tx: Any, rx: Any) -> None:
    deadline = time.monotonic() + RECEIVE_TIMEOUT_S
    while not tx.has_receiver:  # the SUB socket sends its subscription only when it is used
        if time.monotonic() > deadline:
            raise TransportError(f"the loopback receiver on {rx.endpoint} never subscribed")
        rx.recv_message(10)

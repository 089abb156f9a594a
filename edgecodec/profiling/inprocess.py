"""In-process, lock-step mode of ``edgecodec profile``: the sender and a loopback receiver in this thread, the
backend wrapped so that its network calls are timed as substages, stats records kept in memory, and this process's
CPU time (mode ``inprocess`` in the docstring of :mod:`edgecodec.profiling`). Also :func:`cpu_threads`, which sets the
backend threads of this process for the command's duration.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from edgecodec.capture import Size, source_from_args
from edgecodec.errors import TransportError
from edgecodec.profiling.records import NET_DECODE, NET_ENCODE, RECEIVE_TIMEOUT_S, STREAM, Measured
from edgecodec.timing import StatsLog, StreamMeter, substage


class TimedBackend:
    """Wraps a backend so that its encode and decode calls are timed as substages of the open frame stage: the
    sender's ``encode`` stage then keeps only the preprocessing, the receiver's ``decode`` only the postprocessing."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name, self.multiple, self.num_layers = backend.name, backend.multiple, backend.num_layers

    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        with substage(NET_ENCODE):
            return self.backend.encode(frames)

    def encode_latents(
        self, frames: np.ndarray, layers: Sequence[int]
    ) -> tuple[list[np.ndarray], np.ndarray, dict[int, np.ndarray]]:
        with substage(NET_ENCODE):
            return self.backend.encode_latents(frames, layers)

    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        with substage(NET_DECODE):
            return self.backend.decode(ids, layer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


class RecordList(StatsLog):
    """A stats log that keeps its records in memory."""

    def __init__(self) -> None:
        super().__init__(None)
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        if record.get("kind") == "frame":
            self.records.append(record)


class CpuClock:
    """CPU time of this process over wall time, from :meth:`start` to :meth:`stop`."""

    def __init__(self) -> None:
        self.started: tuple[float, float] | None = None
        self.result: dict[str, Any] = {}

    def start(self) -> None:
        if self.started is None:
            self.started = (time.process_time(), time.perf_counter())

    def stop(self) -> dict[str, Any]:
        cpu0, wall0 = self.started or (time.process_time(), time.perf_counter())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        pct = round(100 * cpu / wall, 1) if wall > 0 else 0.0
        self.result = {"wall_s": round(wall, 3), "cores": os.cpu_count(),
                       "processes": {"profile": {"cpu_s": round(cpu, 3), "percent": pct}}, "percent": pct}  # fmt: skip
        return self.result


def run_inprocess(ns: argparse.Namespace, codec: Any, size: Size | None, receive_codec: Any = None) -> Measured:
    """Send and receive every frame in lock-step, in this thread (module docstring); ``receive_codec`` decodes
    (default ``codec``)."""
    from edgecodec.receiver import FrameReceiver, Outputs
    from edgecodec.receiving import receive_frames
    from edgecodec.sender import FrameSender, rate_clock, stream_frames
    from edgecodec.transport import Receiver, Sender

    sent_log, got_log, clock = RecordList(), RecordList(), CpuClock()
    with ExitStack() as stack:
        source = stack.enter_context(source_from_args(_source_ns(ns, size)))
        rx = stack.enter_context(Receiver("tcp://127.0.0.1:*", bind=True, streams=[STREAM]))
        tx = stack.enter_context(Sender(rx.endpoint, bind=False, stream=STREAM))
        receiver = FrameReceiver(receive_codec or codec)
        receiver.warm_up()
        sender = FrameSender(codec, controller_for(ns, codec, source), tx, intra_only=ns.intra_only,
                             skip_unchanged=False)  # every frame is timed  # fmt: skip
        sender.warm_up()
        deadline = time.monotonic() + RECEIVE_TIMEOUT_S
        while not tx.has_receiver:  # the SUB socket sends its subscription only when it is used
            if time.monotonic() > deadline:
                raise TransportError(f"the loopback receiver on {rx.endpoint} never subscribed")
            rx.recv_message(10)
        outputs = Outputs(display=False, record=None, fps=25.0, overlay=False)
        stack.callback(outputs.close)
        meter = StreamMeter(interval_s=0)

        def receive_sent() -> bool:
            """Called by stream_frames before each capture: the frame just sent is received and decoded first."""
            receive_frames(rx, receiver, outputs, log=got_log, meter=meter, status=None, frames=tx.stats.sent,
                           timeout_s=RECEIVE_TIMEOUT_S)  # fmt: skip
            if receiver.arrived < tx.stats.sent:
                raise TransportError(f"frame {sender.seq - 1} did not arrive over loopback in {RECEIVE_TIMEOUT_S:g} s")
            if receiver.received >= ns.warmup:
                clock.start()
            return False  # never stop: the source ends the run

        finished = stream_frames(source, sender, clock=rate_clock(source, ns.fps), log=sent_log,
                                 meter=StreamMeter(interval_s=0), status=None, should_stop=receive_sent)  # fmt: skip
        if not finished:
            raise KeyboardInterrupt
        receive_sent()
        cpu = clock.stop()
    return Measured(sent_log.records, got_log.records, cpu, codec.backend.name, source.name,
                    (receive_codec or codec).backend.name)  # fmt: skip


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Torch and ONNX Runtime (through $EDGECODEC_THREADS, read when a backend is made) use ``n`` threads in this
    process for the duration; both are restored afterwards."""
    if n is None:
        yield
        return
    import torch

    torch_threads, env = torch.get_num_threads(), os.environ.get("EDGECODEC_THREADS")
    torch.set_num_threads(n)
    os.environ["EDGECODEC_THREADS"] = str(n)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        if env is None:
            os.environ.pop("EDGECODEC_THREADS", None)
        else:
            os.environ["EDGECODEC_THREADS"] = env


def controller_for(ns: argparse.Namespace, codec: Any, source: Any) -> Any:
    """The rate controller of a profiled sender: ``--rate-config`` and ``--kbps`` for ``codec``'s model, at the
    source's frame rate (``--fps``, else its own)."""
    from edgecodec.rate import RateController
    from edgecodec.sender import load_config

    config = load_config(ns.rate_config, ns.kbps).for_model(codec.model.name)
    return RateController(config, codec.num_layers, ns.fps or source.native_fps or 25.0)


def _source_ns(ns: argparse.Namespace, size: Size | None) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(ns), "size": size, "frames": ns.frames + ns.warmup})

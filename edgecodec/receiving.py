"""The receive loop of ``edgecodec receive`` (and of the demo and the profiler): packets in, frames out.

Each round drains what the transport has queued and entropy-decodes all of it in order (P-frame references stay
right); then frames are decoded to pixels and handed to the outputs (display, recording, live view). Live view
(``max_latency_s`` > 0): only the newest frame of each stream is decoded to pixels, and only if it is not older than
``max_latency_s``; the others are counted as skipped. Without it (the demo, or ``--max-latency 0``) every frame is
shown.

Two ways to run it (issue 16):

* **pipelined** (the default): network + parse + entropy decoding in one thread, neural decode + output in the
  calling thread, with a hand-over between them (:class:`edgecodec.pipeline.Mailbox`): the newest frame of each
  stream wins under the live-view policy, else at most two frames wait and the network thread waits for the decoder;
* **lock-step**: both halves in turn in the calling thread.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecodec.capture import wall_clock_us
from edgecodec.errors import EdgecodecError, MissingReferenceError, StreamRefusedError
from edgecodec.pipeline import Closed, Mailbox, Worker
from edgecodec.timing import StatsLog, StreamMeter, frame_hash

if TYPE_CHECKING:
    from edgecodec.receiver import Decoded, FrameOutput, FrameReceiver, Pending
    from edgecodec.transport import Message, Receiver

DRAIN_MAX = 256  # messages read in one go before the newest of each stream is shown
WAITING = 2  # frames that may wait for the decoder when every frame is shown (no live-view policy)


@dataclass
class ReceiveLoop:
    """The state of one receive loop; :meth:`run` runs it. See :func:`receive_frames` for the arguments."""

    transport: Receiver
    receiver: FrameReceiver
    outputs: FrameOutput
    log: StatsLog
    meter: StreamMeter
    status: Callable[[str], None] | None
    frames: int | None = None
    timeout_s: float | None = None
    should_stop: Callable[[], bool] = lambda: False
    on_frame: Callable[[Decoded], None] | None = None
    max_latency_s: float | None = None
    reported: set[tuple[str, str]] = field(default_factory=set)
    last_packet: float = field(default_factory=time.monotonic)

    # -- network half: packets -> entropy-decoded frames ---------------------------------------------------------
    def poll(self) -> list[tuple[Pending, Any]] | str:
        """One network round: wait up to 0.2 s for a packet, drain what is queued and entropy-decode it. Returns the
        frames to decode to pixels (under the live-view policy the newest of each stream; older ones are skipped),
        or why the loop ends."""
        receiver = self.receiver
        if self.frames is not None and receiver.arrived >= self.frames:
            return f"{self.frames} frames received"
        wait_ms = 200
        if self.timeout_s is not None:
            left = self.timeout_s - (time.monotonic() - self.last_packet)
            if left <= 0:
                return f"no packet for {self.timeout_s:g} s"
            wait_ms = max(1, min(wait_ms, int(left * 1000) + 1))
        message = self.transport.recv_message(wait_ms)
        _housekeeping(self.transport, receiver, self.outputs, self.log)
        if self.status is not None and self.meter.due():
            self.status(status_line(receiver, self.transport, self.meter))
        if message is None:
            return []
        self.last_packet = time.monotonic()
        return self._prepare_batch(self._drain(message))

    def _drain(self, first: Message) -> list[Message]:
        batch = [first]
        room = DRAIN_MAX if self.frames is None else min(DRAIN_MAX, self.frames - self.receiver.arrived)
        while len(batch) < room:
            more = self.transport.recv_message(0)
            if more is None:
                break
            batch.append(more)
        return batch

    def _prepare_batch(self, batch: list[Message]) -> list[tuple[Pending, Any]]:
        newest: dict[str | int, tuple[Pending, Any]] = {}  # live: the newest per stream; else every frame
        for index, message in enumerate(batch):
            stages = self.receiver.timer.frame()
            pending = _prepare(self.receiver, message, stages, self.log, self.reported)
            if pending is None:
                continue
            self.reported.discard((message.stream, "held"))
            key = message.stream if self.max_latency_s else index
            if self.max_latency_s and key in newest:
                self.skip(newest[key][0], "newer frame queued")
            newest[key] = (pending, stages)
        return list(newest.values())

    def skip(self, pending: Pending, reason: str) -> None:
        self.receiver.skip(pending)
        self.log.write(skip_record(pending, reason))

    # -- decode half: entropy-decoded frames -> pixels -> outputs ------------------------------------------------
    def show(self, pending: Pending, stages: Any) -> bool:
        """Decode one frame to pixels and hand it to the outputs (unless it is late); False when the window closed."""
        receiver = self.receiver
        latency_ms = (wall_clock_us() - pending.packet.timestamp_us) / 1000
        if self.max_latency_s and latency_ms > self.max_latency_s * 1000:
            self.skip(pending, f"{latency_ms:.0f} ms late")
            return True
        wall0, cpu0 = time.monotonic(), time.thread_time()
        try:
            decoded = receiver.render(pending, stages)
        except (EdgecodecError, ValueError) as exc:
            print(f"edgecodec receive: stream {pending.stream.name!r}: bad packet: {exc}", file=sys.stderr)
            return True
        off_cpu = (time.monotonic() - wall0) - (time.thread_time() - cpu0)
        if self.max_latency_s and off_cpu > self.max_latency_s:  # stopped or starved while decoding: stale now
            receiver.skip(pending, rendered=True)
            self.log.write(skip_record(pending, f"stalled {off_cpu:.1f} s while decoding"))
            return True
        with stages("output"):
            keep_going = self.outputs.write(decoded)
        latency_ms = (wall_clock_us() - decoded.packet.timestamp_us) / 1000
        if self.on_frame is not None:
            self.on_frame(decoded)
        self.log.write(frame_record(decoded, latency_ms, stages.done()))
        self.meter.add(decoded.packet.layer, decoded.bits, latency_ms)
        return keep_going

    # -- the two ways to run it ----------------------------------------------------------------------------------
    def run(self, pipelined: bool = True) -> str:
        try:
            return self._run_pipelined() if pipelined else self._run_lockstep()
        except KeyboardInterrupt:
            return "interrupted"

    def _run_lockstep(self) -> str:
        while not self.should_stop():
            jobs = self.poll()
            if isinstance(jobs, str):
                return jobs
            for pending, stages in jobs:
                if not self.show(pending, stages):
                    return "window closed"
        return "stopped"

    def _run_pipelined(self) -> str:
        live = bool(self.max_latency_s)
        mailbox: Mailbox[tuple[Pending, Any]] = Mailbox(capacity=None if live else WAITING)
        stop, ended = threading.Event(), ["stopped"]

        def network() -> None:
            counter = 0
            try:
                while not stop.is_set() and not self.should_stop():
                    jobs = self.poll()
                    if isinstance(jobs, str):
                        ended[0] = jobs
                        return
                    for job in jobs:
                        counter += 1
                        older = mailbox.put(job[0].stream.name if live else counter, job, replace=live)
                        if older is not None:
                            self.skip(older[0], "newer frame queued")
            finally:
                mailbox.close()

        worker = Worker("receive", network).start()
        try:
            while True:
                worker.check()
                try:
                    job = mailbox.get(timeout=0.1)
                except Closed:
                    worker.join()
                    worker.check()
                    return ended[0]
                if job is not None and not self.show(*job):
                    return "window closed"
        finally:
            stop.set()
            mailbox.close()
            worker.join(5.0)


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
    pipelined: bool = False,
) -> str:
    """Receive until ``frames`` frames, ``timeout_s`` s without a packet, a closed window or a stop; returns why.

    ``max_latency_s`` > 0: the live-view policy (module docstring). ``pipelined``: the network half in a thread of
    its own (module docstring); else both halves in turn in this thread."""
    loop = ReceiveLoop(transport, receiver, outputs, log, meter, status, frames, timeout_s, should_stop, on_frame,
                       max_latency_s)  # fmt: skip
    return loop.run(pipelined)


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

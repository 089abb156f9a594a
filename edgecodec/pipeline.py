"""Pipelined streaming (issue 16): the stages of a sender, and of a receiver, overlap on threads of their own.

In one thread the frame rate is 1 / (sum of the stages); here it is 1 / (the slowest stage). ONNX Runtime, numpy,
OpenCV, PyAV and ZeroMQ release the GIL in their heavy calls, so on two cores the stages really run side by side.

* **Sender** (:func:`send_pipelined`): capture -> encode -> rate choice + entropy coding + send. Each hand-over holds
  one frame (:class:`Handover`). A live source (a camera, or a file paced with ``--fps``) never waits for the
  encoder: when the encoder falls behind, the frame waiting for it is dropped, counted and logged (``kind: dropped``),
  and the newer one takes its place, so latency never queues up. A file read as fast as it can be waits instead (no
  frame of a file is dropped). The entropy coder always waits for the encoder's frame (a frame encoded is sent).
* **Receiver** (:func:`edgecodec.receiver.receive_frames` with ``pipelined=True``): network + parse + entropy decode
  in one thread, neural decode + display, record or live view in the other. With the live-view policy
  (``--max-latency`` > 0) the newest entropy-decoded frame of each stream wins and older ones are skipped; without it
  every frame is decoded and shown, and the network thread waits when two frames are waiting.

The stage times of every frame still go into its stats record; :mod:`edgecodec.profiling` turns them into the
throughput each stage could sustain alone, and names the stage that limits the frame rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """The hand-over was closed: no more items will come."""


class Mailbox(Generic[T]):
    """Keyed hand-over between two threads, first in, first out.

    :meth:`put` with ``replace=True`` replaces the item waiting under the same key and returns it (the newest frame
    of a stream wins); otherwise it waits while ``capacity`` items wait. :meth:`get` waits for an item (None after
    ``timeout`` seconds); :meth:`close` wakes both sides: ``get`` then returns what is left and raises
    :class:`Closed` after it, ``put`` raises :class:`Closed`.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self._items: dict[Any, T] = {}
        self._closed = False
        self._cond = threading.Condition()

    def put(self, key: Any, item: T, *, replace: bool) -> T | None:
        with self._cond:
            old = self._items.pop(key, None) if replace else None
            while self.capacity is not None and len(self._items) >= self.capacity and not self._closed:
                self._cond.wait()
            if self._closed:
                raise Closed
            self._items[key] = item
            self._cond.notify_all()
            return old

    def get(self, timeout: float | None = None) -> T | None:
        """The next item; None after ``timeout`` seconds without one."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                raise Closed
            item = self._items.pop(next(iter(self._items)))
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Handover(Mailbox[T]):
    """A one-item hand-over between two threads: a :class:`Mailbox` of one slot.

    :meth:`put` with ``drop=True`` replaces an item not yet taken and returns it (the caller counts the drop); with
    ``drop=False`` it waits until the slot is free. :meth:`get` waits for an item. :meth:`close` wakes both sides:
    ``get`` then returns what is left and raises :class:`Closed` after it, ``put`` raises :class:`Closed`.
    """

    def __init__(self) -> None:
        super().__init__(capacity=1)

    def put(self, item: T, *, drop: bool) -> T | None:  # type: ignore[override]
        return super().put(None, item, replace=drop)


@dataclass
class Worker:
    """A daemon thread running ``target``; an exception in it is kept for the main thread (:meth:`check`)."""

    name: str
    target: Callable[[], None]
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"edgecodec-{self.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.target()
        except Closed:
            pass
        except BaseException as exc:  # handed to the main thread
            self.error = exc

    def start(self) -> Worker:
        self.thread.start()
        return self

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)


@dataclass
class Captured:
    """A frame between the capture and the encode stages."""

    frame: Any  # edgecodec.capture.Frame
    now: float  # the rate controller's clock, s
    capture_ms: float


def send_pipelined(
    source: Any,
    sender: Any,
    *,
    clock: Callable[[Any], float],
    on_record: Callable[[dict[str, Any]], None],
    live: bool,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Run ``source`` through ``sender`` (:class:`edgecodec.sender.FrameSender`) with capture, encode and coding +
    sending on three threads; ``on_record`` gets every frame's stats record (and one per dropped frame) in the
    calling thread. Returns True when the source ended, False when stopped or interrupted (Ctrl-C).

    ``live``: drop the frame waiting for the encoder when a newer one is captured (a camera, a paced file); else
    the capture waits for the encoder.
    """
    captured: Handover[Captured] = Handover()
    encoded: Handover[Any] = Handover()
    stop = threading.Event()

    def capture() -> None:
        try:
            while not stop.is_set():
                start = time.perf_counter_ns()
                frame = source.read()
                if frame is None:
                    return
                item = Captured(frame, clock(frame), (time.perf_counter_ns() - start) / 1e6)
                dropped = captured.put(item, drop=live)
                if dropped is not None:
                    on_drop.append(dropped)
        finally:
            captured.close()

    def encode() -> None:
        try:
            while True:
                item = captured.get()
                if item is not None:
                    encoded.put(sender.encode(item.frame, item.now, item.capture_ms), drop=False)
        finally:
            encoded.close()

    on_drop: list[Captured] = []  # appended by the capture thread, emptied here (list ops are atomic)
    workers = [Worker("capture", capture).start(), Worker("encode", encode).start()]
    try:
        while True:
            for w in workers:
                w.check()
            while on_drop:
                on_record(sender.dropped(on_drop.pop(0).frame, "encoder behind"))
            if should_stop():
                return False
            try:
                item = encoded.get(timeout=0.1)
            except Closed:
                for w in workers:
                    w.join()
                    w.check()
                return not stop.is_set()
            if item is not None:
                on_record(sender.finish(item))
    except KeyboardInterrupt:
        return False
    finally:
        stop.set()
        captured.close()
        encoded.close()
        for w in workers:
            w.join(2.0)

"""What the live view shows: the newest frame of each stream, encoded to JPEG on demand, and each stream's stats.

Two threads meet here. The **receive loop** hands over every frame it shows (:meth:`LiveView.show`: it keeps a
reference to the newest one and drops the one before, under a lock held for a few assignments) and every stats record
it logs (:meth:`LiveView.observe`). The **server's threads** ask for the newest frame as JPEG (:meth:`LiveView.jpeg`,
encoded there, once per frame whoever asks, and only when someone asks) and for the stats (:meth:`LiveView.stats`).
Nothing the server does can make the receive loop wait for a browser, and nothing queues: a viewer that falls behind
gets the newest frame when it is ready again.

The stats are the receiver's own: the counters of its :class:`~edgecodec.streams.StreamState` (shown, lost, held,
skipped, bad), and the frame records of its stats log (layer, bits, glass-to-glass latency), summed once a second per
stream by a :class:`~edgecodec.timing.StreamMeter`, as the receiver's status line does for all streams together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgecodec.streams import StreamState
from edgecodec.timing import StreamMeter, StreamSnapshot

IDLE_S = 3.0  # a stream without a frame shown for this long reads 0 fps and 0 kbps


@dataclass
class _Stream:
    name: str
    meter: StreamMeter
    state: StreamState | None = None  # the receiver's counters: read here, never written
    rgb: np.ndarray | None = None  # the newest frame shown
    frame_no: int = 0  # frames handed over so far (the number of the newest)
    layer: int | None = None
    size: tuple[int, int] | None = None  # (height, width)
    last_frame: float | None = None
    snapshot: StreamSnapshot | None = None  # the last full interval of the meter
    jpeg: tuple[int, bytes] | None = None  # (frame_no, JPEG) of the last frame encoded
    encoding: threading.Lock = field(default_factory=threading.Lock)  # one encoder per stream; viewers share it


class LiveView:
    """The newest frame and the stats of every stream shown by a receiver (thread-safe).

    ``interval_s``: span of the fps, kbps and latency figures; ``jpeg_quality``: 0..100; ``clock``: monotonic
    seconds (tests pass their own)."""

    def __init__(
        self, *, interval_s: float = 1.0, jpeg_quality: int = 80, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 0 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 0..100, got {jpeg_quality}")
        self.interval_s, self.jpeg_quality, self._clock = interval_s, jpeg_quality, clock
        self._streams: dict[str, _Stream] = {}
        self._changed = threading.Condition()  # its lock guards _streams and every _Stream but `encoding`
        self.closed = False
        self.encoded = 0  # JPEG encodings done (tests: once per frame, whoever watches)

    def _stream(self, name: str) -> _Stream:
        s = self._streams.get(name)
        if s is None:
            s = self._streams[name] = _Stream(name, StreamMeter(self.interval_s, window=1024, clock=self._clock))
        return s

    # -- the receive loop's side: O(1), never waits for a viewer -------------------------------------------------
    def show(self, state: StreamState, rgb: np.ndarray) -> None:
        """The receiver shows ``rgb`` (HxWx3 uint8, not changed afterwards) on stream ``state``: it replaces the
        stream's newest frame."""
        with self._changed:
            s = self._stream(state.name)
            s.state, s.rgb = state, rgb
            s.frame_no += 1
            self._changed.notify_all()

    def observe(self, record: Mapping[str, Any]) -> None:
        """A stats log record of the receiver (:func:`edgecodec.receiver.frame_record` and the others)."""
        kind = record.get("kind")
        if kind == "stream_closed":
            self.forget(str(record["stream"]))
        if kind != "frame":
            return
        with self._changed:
            s = self._stream(str(record["stream"]))
            s.meter.add(int(record["layer"]), int(record["bits"]), record.get("latency_ms"))
            s.layer, s.last_frame = int(record["layer"]), self._clock()
            s.size = tuple(record["size"])  # type: ignore[assignment]
            if s.meter.due():
                s.snapshot = s.meter.interval()

    def forget(self, name: str) -> None:
        """Stream ``name`` is gone (closed when idle): its viewers are told, its frame dropped."""
        with self._changed:
            if self._streams.pop(name, None) is not None:
                self._changed.notify_all()

    def close(self) -> None:
        """No more frames: every viewer waiting is woken up and told."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    # -- the server's side ----------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self._changed:
            return sorted(name for name, s in self._streams.items() if s.rgb is not None)

    def frame_numbers(self) -> dict[str, int]:
        """The number of the newest frame of every stream with one."""
        with self._changed:
            return {name: s.frame_no for name, s in self._streams.items() if s.rgb is not None}

    def wait(self, seen: Mapping[str, int], timeout: float) -> dict[str, int]:
        """Wait up to ``timeout`` s for a stream whose newest frame is not the one in ``seen`` (or for a stream to go,
        or :meth:`close`); returns :meth:`frame_numbers`."""

        def changed() -> bool:
            now = {name: s.frame_no for name, s in self._streams.items() if s.rgb is not None}
            return self.closed or now.keys() != seen.keys() or any(now[n] != seen[n] for n in now)

        with self._changed:
            self._changed.wait_for(changed, timeout)
            return {name: s.frame_no for name, s in self._streams.items() if s.rgb is not None}

    def jpeg(self, name: str) -> tuple[int, bytes] | None:
        """(frame number, JPEG) of the newest frame of ``name``; None without one. Each frame is encoded once, in the
        calling thread, whoever asks for it."""
        with self._changed:
            s = self._streams.get(name)
            if s is None or s.rgb is None:
                return None
        with s.encoding:
            with self._changed:
                rgb, frame_no, cached = s.rgb, s.frame_no, s.jpeg
            if cached is not None and cached[0] == frame_no:
                return cached
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
            )
            if not ok:  # pragma: no cover - OpenCV encodes any HxWx3 uint8 array
                return None
            s.jpeg = (frame_no, data.tobytes())
            self.encoded += 1
            return s.jpeg

    def stats(self) -> dict[str, Any]:
        """Every stream's figures, as the page and ``/stats.json`` show them."""
        now = self._clock()
        with self._changed:
            streams = [_stream_stats(s, now, self.interval_s) for _, s in sorted(self._streams.items())]
        return {"streams": streams, "interval_s": self.interval_s, "closed": self.closed}


def _stream_stats(s: _Stream, now: float, interval_s: float) -> dict[str, Any]:
    idle = s.last_frame is None or now - s.last_frame > max(IDLE_S, 3 * interval_s)
    snap = None if idle else s.snapshot
    st = s.state
    counts = {key: getattr(st, key, 0) for key in ("received", "gaps", "held", "skipped", "unsent", "bad")}
    return {
        "name": s.name,
        "layer": s.layer,
        "width": s.size[1] if s.size else None,
        "height": s.size[0] if s.size else None,
        "fps": round(snap.fps, 2) if snap else (0.0 if idle and s.last_frame is not None else None),
        "kbps": round(snap.kbps, 2) if snap else (0.0 if idle and s.last_frame is not None else None),
        "latency_ms": None if snap is None or snap.latency_p50_ms is None else round(snap.latency_p50_ms, 1),
        "latency_p99_ms": None if snap is None or snap.latency_p99_ms is None else round(snap.latency_p99_ms, 1),
        "frames": counts["received"],  # shown
        "drops": counts["held"] + counts["skipped"],  # not shown: lost on the way or held after a loss, or skipped
        "lost": counts["gaps"],
        "held": counts["held"],
        "skipped": counts["skipped"],
        "unsent": counts["unsent"],
        "bad": counts["bad"],
        "idle": idle,
        "age_s": None if s.last_frame is None else round(now - s.last_frame, 3),
    }

"""Per-stage wall-clock timers shared by the sender, the receiver and the profiler.

>>> timer = StageTimer()
>>> with timer.stage("encode"):
...     pass
>>> timer.summary()["encode"].count
1

Durations are taken with :func:`time.perf_counter_ns`. Counts, totals and maxima are exact over the whole run;
percentiles are over the most recent ``window`` samples of each stage, so memory stays bounded on a long stream.

:meth:`StageTimer.frame` sums the stages of one frame (a stage may run several times per frame, such as entropy coding
of candidate layers) and adds one sample per stage when the frame is done. :func:`substage` lets code deep inside a
stage (a backend call, say) time a part of it into the same frame without being handed the frame's stages.
:class:`StreamMeter` counts frames, bits, layers and latencies for the once-a-second status line and the end-of-run
summary of ``edgecodec send``/``receive``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecodec.errors import SinkError


def frame_hash(array: np.ndarray) -> str:
    """A short digest of a decoded frame or an id grid (stats records; tests compare them with an offline decode)."""
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class StageStats:
    """Summary of one stage, in milliseconds."""

    name: str
    count: int
    total_ms: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class _Stage:
    __slots__ = ("count", "total_ns", "max_ns", "samples")

    def __init__(self, window: int) -> None:
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0
        self.samples: deque[int] = deque(maxlen=window)


class StageTimer:
    """Accumulates durations per named stage; stages are reported in the order they were first seen."""

    def __init__(self, window: int = 4096, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._clock = clock
        self._stages: dict[str, _Stage] = {}

    def add(self, name: str, duration_ns: int) -> None:
        """Record one duration for ``name``."""
        stage = self._stages.get(name)
        if stage is None:
            stage = self._stages[name] = _Stage(self.window)
        duration_ns = max(0, int(duration_ns))
        stage.count += 1
        stage.total_ns += duration_ns
        stage.max_ns = max(stage.max_ns, duration_ns)
        stage.samples.append(duration_ns)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a ``with`` block as one sample of ``name`` (also when it raises)."""
        start = self._clock()
        try:
            yield
        finally:
            self.add(name, self._clock() - start)

    def frame(self) -> FrameStages:
        """Per-frame accumulator: ``with stages("encode"): ...`` then ``stages.done()`` (dict of ms per stage)."""
        return FrameStages(self)

    def reset(self) -> None:
        """Forget every sample."""
        self._stages.clear()

    def summary(self) -> dict[str, StageStats]:
        """Statistics of every stage seen so far."""
        out: dict[str, StageStats] = {}
        for name, stage in self._stages.items():
            p50, p95, p99 = np.percentile(np.fromiter(stage.samples, np.int64), [50, 95, 99]) / 1e6
            out[name] = StageStats(
                name=name,
                count=stage.count,
                total_ms=stage.total_ns / 1e6,
                mean_ms=stage.total_ns / stage.count / 1e6,
                p50_ms=float(p50),
                p95_ms=float(p95),
                p99_ms=float(p99),
                max_ms=stage.max_ns / 1e6,
            )
        return out

    def table(self, title: str | None = None) -> str:
        """A plain-text table of :meth:`summary`."""
        head = f"{'stage':<16} {'count':>7} {'mean':>8} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms)"
        lines = [title] if title else []
        lines += [head, "-" * len(head)]
        for s in self.summary().values():
            lines.append(
                f"{s.name:<16} {s.count:>7} {s.mean_ms:>8.2f} {s.p50_ms:>8.2f} {s.p95_ms:>8.2f} {s.p99_ms:>8.2f}"
                f" {s.max_ms:>8.2f}"
            )
        return "\n".join(lines)


class FrameStages:
    """Sums the stages of one frame; :meth:`done` adds one sample per stage to the timer and returns them in ms.

    Stages may nest; a stage's time excludes that of the stages inside it, so the stages of a frame add up to its
    total (the rate controller's time does not include the entropy coding it asks for).
    """

    def __init__(self, timer: StageTimer) -> None:
        self._timer = timer
        self._ns: dict[str, int] = {}
        self._inner: list[int] = []  # per open stage: time spent in the stages nested in it

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = self._timer._clock()
        self._inner.append(0)
        token = _OPEN_FRAME.set(self)
        try:
            yield
        finally:
            _OPEN_FRAME.reset(token)
            elapsed = self._timer._clock() - start
            inner = self._inner.pop()
            self._ns[name] = self._ns.get(name, 0) + elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed

    def done(self) -> dict[str, float]:
        for name, ns in self._ns.items():
            self._timer.add(name, ns)
        out = {name: round(ns / 1e6, 3) for name, ns in self._ns.items()}
        self._ns = {}
        return out


# The frame whose stage is open in this thread (or task), for substage().
_OPEN_FRAME: ContextVar[FrameStages | None] = ContextVar("edgecodec_open_frame", default=None)


@contextmanager
def substage(name: str) -> Iterator[None]:
    """Time the body as stage ``name`` of the frame that has a stage open in this thread, nested in that stage (whose
    time then excludes it); without an open frame stage it times nothing.

    >>> timer = StageTimer()
    >>> stages = timer.frame()
    >>> with stages("encode"), substage("encode.net"):
    ...     pass
    >>> sorted(stages.done())
    ['encode', 'encode.net']
    """
    stages = _OPEN_FRAME.get()
    if stages is None:
        yield
        return
    with stages(name):
        yield


@dataclass(frozen=True)
class StreamSnapshot:
    """Frames, bits, layers and latency over some span of a stream."""

    frames: int
    seconds: float
    bits: int
    layers: Mapping[int, int]
    latency_p50_ms: float | None
    latency_p99_ms: float | None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def kbps(self) -> float:
        return self.bits / self.seconds / 1000 if self.seconds > 0 else 0.0

    def histogram(self) -> str:
        """Layer histogram, e.g. ``L3:12 L4:13``."""
        return " ".join(f"L{layer}:{n}" for layer, n in sorted(self.layers.items())) or "-"

    def describe(self) -> str:
        lat = "-" if self.latency_p50_ms is None else f"{self.latency_p50_ms:.0f}/{self.latency_p99_ms:.0f} ms"
        return f"{self.fps:5.1f} fps {self.kbps:8.1f} kbps  layers {self.histogram()}  latency p50/p99 {lat}"

    def as_dict(self) -> dict:
        return {
            "frames": self.frames, "seconds": round(self.seconds, 3), "bits": self.bits, "fps": round(self.fps, 2),
            "kbps": round(self.kbps, 2), "layers": {str(k): v for k, v in sorted(self.layers.items())},
            "latency_p50_ms": _round(self.latency_p50_ms), "latency_p99_ms": _round(self.latency_p99_ms),
        }  # fmt: skip


@dataclass
class _Span:
    start: float
    frames: int = 0
    bits: int = 0
    layers: dict[int, int] = field(default_factory=dict)


class StreamMeter:
    """Counts frames, bits, layers and latencies: per status interval and over the whole run.

    >>> t = iter([0.0, 0.0, 0.5, 1.0, 1.0])  # clock reads: start, add, due, due, interval
    >>> meter = StreamMeter(clock=lambda: next(t))
    >>> meter.add(layer=3, bits=8000, latency_ms=40.0)
    >>> meter.due()
    False
    >>> meter.due()
    True
    >>> meter.interval().kbps
    8.0
    """

    def __init__(self, interval_s: float = 1.0, window: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        now = clock()
        self._total = _Span(now)
        self._span = _Span(now)
        self._latency: deque[float] = deque(maxlen=window)
        self._span_latency: list[float] = []
        self._first: float | None = None  # times of the first and the last frame
        self._last = 0.0

    def add(self, layer: int, bits: int, latency_ms: float | None = None) -> None:
        self._last = self._clock()
        if self._first is None:
            self._first = self._last
        for span in (self._total, self._span):
            span.frames += 1
            span.bits += bits
            span.layers[layer] = span.layers.get(layer, 0) + 1
        if latency_ms is not None:
            self._latency.append(latency_ms)
            self._span_latency.append(latency_ms)

    def due(self) -> bool:
        """Whether a status interval has passed since the last :meth:`interval`."""
        return self.interval_s > 0 and self._clock() - self._span.start >= self.interval_s

    def interval(self) -> StreamSnapshot:
        """The span since the previous call (or the start); starts a new one."""
        now = self._clock()
        snap = _snapshot(self._span, now, self._span_latency)
        self._span, self._span_latency = _Span(now), []
        return snap

    def total(self) -> StreamSnapshot:
        """The whole run: from the first frame to one frame interval past the last one, so that start-up and idle
        time after the stream do not count (latency percentiles over the last ``window`` frames)."""
        n = self._total.frames
        if self._first is None or n < 2 or self._last <= self._first:
            return _snapshot(self._total, self._clock(), self._latency)
        seconds = (self._last - self._first) * n / (n - 1)
        return _snapshot(self._total, self._total.start + seconds, self._latency)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _snapshot(span: _Span, now: float, latency: Iterable[float]) -> StreamSnapshot:
    values = np.fromiter(latency, np.float64)
    p50, p99 = (float(v) for v in np.percentile(values, [50, 99])) if values.size else (None, None)
    return StreamSnapshot(span.frames, max(0.0, now - span.start), span.bits, dict(span.layers), p50, p99)


class StatsLog:
    """One JSON object per line (``--stats FILE``); line-buffered, so a killed process leaves whole records behind.
    Without a path it writes nothing."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self._file = None
        self._lock = threading.Lock()
        if self.path is not None:
            try:
                self._file = self.path.open("w", buffering=1, encoding="utf-8")
            except OSError as exc:
                raise SinkError(f"cannot write stats to {str(path)!r}: {exc.strerror or exc}") from None

    def write(self, record: dict[str, Any]) -> None:
        """One record, one line (thread-safe: a pipelined receiver writes from two threads)."""
        if self._file is not None:
            line = json.dumps(record, separators=(",", ":")) + "\n"
            with self._lock:
                self._file.write(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> StatsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

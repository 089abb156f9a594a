"""Per-stage wall-clock timers shared by the sender, the receiver and the profiler.

>>> timer = StageTimer()
>>> with timer.stage("encode"):
...     pass
>>> timer.summary()["encode"].count
1

Durations are taken with :func:`time.perf_counter_ns`. Counts, totals and maxima are exact over the whole run;
percentiles are over the most recent ``window`` samples of each stage, so memory stays bounded on a long stream.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


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

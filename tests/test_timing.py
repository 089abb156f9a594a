"""Stage timers: exact counts and maxima, percentiles over a bounded window."""

from __future__ import annotations

import doctest

import pytest

import edgecodec.timing
from edgecodec.timing import StageTimer


def test_fake_clock_statistics() -> None:
    ticks = iter(range(0, 10**12, 1_000_000))  # every clock read advances 1 ms
    timer = StageTimer(clock=lambda: next(ticks))
    for _ in range(100):
        with timer.stage("encode"):
            pass
    timer.add("send", 5_000_000)
    stats = timer.summary()
    assert list(stats) == ["encode", "send"]
    assert stats["encode"].count == 100 and stats["encode"].p99_ms == pytest.approx(1.0)
    assert stats["send"].max_ms == 5.0 and stats["send"].total_ms == 5.0
    assert "encode" in timer.table("sender") and timer.table().count("\n") == 3


def test_window_bounds_memory_but_not_counts() -> None:
    timer = StageTimer(window=10)
    for i in range(1000):
        timer.add("x", i)
    s = timer.summary()["x"]
    assert s.count == 1000 and s.max_ms == 999 / 1e6 and s.p50_ms > 990 / 1e6


def test_stage_records_when_body_raises() -> None:
    timer = StageTimer()
    with pytest.raises(RuntimeError), timer.stage("boom"):
        raise RuntimeError
    assert timer.summary()["boom"].count == 1


def test_doctest() -> None:
    assert doctest.testmod(edgecodec.timing).failed == 0

"""Stage timers: exact counts and maxima, percentiles over a bounded window."""

from __future__ import annotations

import doctest
import json

import pytest

import edgecodec.timing
from edgecodec.errors import SinkError
from edgecodec.timing import StageTimer, StatsLog, StreamMeter


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


def test_frame_stages_sum_and_exclude_nested() -> None:
    ticks = iter(range(0, 10**12, 1_000_000))  # every clock read advances 1 ms
    timer = StageTimer(clock=lambda: next(ticks))
    stages = timer.frame()
    with stages("rate"):  # reads: start 0
        for _ in range(2):
            with stages("entropy"):  # each 1 ms
                pass
    with stages("send"):
        pass
    ms = stages.done()
    # rate: 0 -> 5 is 5 ms, of which 2 x 1 ms nested entropy (the clock reads between them count as rate)
    assert ms == {"entropy": 2.0, "rate": 3.0, "send": 1.0}
    assert timer.summary()["entropy"].count == 1 and stages.done() == {}


def test_stream_meter_intervals_and_totals() -> None:
    now = [0.0]
    meter = StreamMeter(interval_s=1.0, clock=lambda: now[0])
    for i in range(10):
        now[0] = i * 0.25
        meter.add(3 if i % 2 else 4, 1000, latency_ms=float(i))
    assert meter.due()
    first = meter.interval()
    assert first.frames == 10 and first.layers == {3: 5, 4: 5} and first.histogram() == "L3:5 L4:5"
    now[0] = 4.5
    meter.add(2, 500)
    total = meter.total()
    assert total.frames == 11 and total.bits == 10_500
    assert total.seconds == pytest.approx(4.5 * 11 / 10)  # first to last frame, plus one mean frame interval
    now[0] = 100.0  # idle time after the last frame does not count
    assert meter.total().seconds == pytest.approx(4.95)
    assert total.latency_p50_ms == 4.5 and meter.interval().latency_p50_ms is None


def test_stats_log(tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    with StatsLog(path) as log:
        log.write({"seq": 1})
        log.write({"seq": 2, "ms": {"encode": 1.5}})
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [1, 2]
    with pytest.raises(SinkError, match="cannot write stats"):
        StatsLog(tmp_path / "missing" / "s.jsonl")
    StatsLog(None).write({"ignored": True})

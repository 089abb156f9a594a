"""Rate controller: thresholds, hysteresis, bounds and the token-bucket budget."""

from __future__ import annotations

import numpy as np
import pytest

from edgecodec.config import RateConfig
from edgecodec.errors import ConfigError
from edgecodec.rate import RateController

LAYERS = 6
THRESHOLDS = (np.inf, 0.05, 0.08, 0.12, 0.18, 0.25)


def qerr_for(target: int, slack: float = 0.01) -> np.ndarray:
    """Errors under which exactly layers 1..target pass their thresholds."""
    q = np.array([0.0, 0.05, 0.08, 0.12, 0.18, 0.25]) + slack
    q[:target] -= 2 * slack
    return q


def test_quality_choice_follows_qerr() -> None:
    rc = RateController(RateConfig(qerr_thresholds=THRESHOLDS, hold_frames=0, qerr_margin=0), LAYERS)
    assert [rc.choose(qerr_for(t), None, 0.0) for t in (1, 4, 6, 2)] == [1, 4, 6, 2]


def test_no_layer_passes_gives_finest_allowed() -> None:
    rc = RateController(RateConfig(qerr_thresholds=(0.01,) * 6, min_layer=2, hold_frames=0), LAYERS)
    assert rc.choose(np.full(6, 1.0), None, 0.0) == 2


def test_bounds_respected() -> None:
    config = RateConfig(qerr_thresholds=THRESHOLDS, min_layer=2, max_layer=4, hold_frames=0, kbps=10)
    rc = RateController(config, LAYERS)
    rng = np.random.default_rng(0)
    for i in range(300):
        sizes = [int(s) for s in rng.integers(100, 20_000, size=LAYERS)]
        layer = rc.step(rng.uniform(0, 0.3, size=LAYERS), sizes, i / 30)
        assert 2 <= layer <= 4
    assert rc.stats.over_budget > 0  # 10 kbps is far too little: forced to the coarsest allowed layer


def test_fixed_layer() -> None:
    rc = RateController(RateConfig(fixed_layer=3), LAYERS)
    assert {rc.choose(np.random.default_rng(i).uniform(0, 1, LAYERS), None, i) for i in range(20)} == {3}


def test_hysteresis_reduces_switches() -> None:
    rng = np.random.default_rng(1)
    # qerr of layer 3 hovers around its threshold: without hysteresis the choice flickers between 2 and 3
    qerrs = [np.array([0.0, 0.04, 0.08 + rng.normal(0, 0.004), 0.5, 0.5, 0.5]) for _ in range(600)]
    switches = {}
    for hold, margin in ((0, 0.0), (4, 0.1)):
        rc = RateController(RateConfig(qerr_thresholds=THRESHOLDS, hold_frames=hold, qerr_margin=margin), LAYERS)
        for i, q in enumerate(qerrs):
            rc.choose(q, None, i / 30)
        switches[hold] = rc.stats.switches
    assert switches[0] > 100
    assert switches[4] < switches[0] / 5


def test_coarser_waits_hold_frames_finer_is_immediate() -> None:
    rc = RateController(RateConfig(qerr_thresholds=THRESHOLDS, hold_frames=3, qerr_margin=0), LAYERS)
    assert rc.choose(qerr_for(2), None, 0) == 2
    assert [rc.choose(qerr_for(5), None, 0) for _ in range(3)] == [2, 2, 5]
    assert rc.choose(qerr_for(1), None, 0) == 1


@pytest.mark.parametrize("kbps", [200.0, 800.0])
def test_budget_respected_over_long_sequence(kbps: float) -> None:
    fps, seconds = 30, 120
    config = RateConfig(qerr_thresholds=THRESHOLDS, kbps=kbps, bucket_seconds=1.0, hold_frames=2)
    rc = RateController(config, LAYERS)
    rng = np.random.default_rng(2)
    base = np.array([120_000, 60_000, 30_000, 15_000, 7_500, 3_750])  # bits per layer
    total = 0
    for i in range(fps * seconds):
        scene = 1.0 + 0.8 * np.sin(i / 90)  # slowly varying difficulty
        sizes = [int(s) for s in base * scene * rng.uniform(0.7, 1.3, size=LAYERS)]
        layer = rc.step(np.ones(LAYERS), sizes, i / fps)  # quality always asks for layer 1: the budget binds
        total += sizes[layer - 1]
    rate = total / seconds / 1000
    assert rate <= kbps * 1.10
    assert rate >= kbps * 0.5  # it does use the budget, not just the coarsest layer
    assert rc.stats.bits == total


def test_budget_forces_coarser_only() -> None:
    config = RateConfig(qerr_thresholds=THRESHOLDS, kbps=1, hold_frames=0, qerr_margin=0, initial_fill=1.0)
    rc = RateController(config, LAYERS)
    sizes = [4000, 2000, 1000, 500, 250, 100]
    # bucket holds 1000 bits: quality asks for layer 1, the budget allows layer 3
    assert rc.choose(qerr_for(1), sizes, 0.0) == 3
    assert rc.choose(qerr_for(5), sizes, 0.0) == 5  # never finer than the quality choice


def test_lazy_sizes_and_bad_arguments() -> None:
    rc = RateController(RateConfig(qerr_thresholds=THRESHOLDS, kbps=1, hold_frames=0, initial_fill=1.0), LAYERS)
    asked: list[int] = []

    def size(layer: int) -> int:
        asked.append(layer)
        return 5000 >> layer

    assert rc.choose(qerr_for(1), size, 0.0) == 3
    assert asked == [1, 2, 3]
    with pytest.raises(ValueError, match="qerr has 5 entries"):
        rc.choose(np.zeros(5), size, 0.0)
    with pytest.raises(ValueError, match="coded_bits is required"):
        rc.choose(qerr_for(1), None, 0.0)


def test_bucket_starts_empty_so_short_clips_keep_the_budget() -> None:
    fps, kbps = 25, 100.0
    config = RateConfig(qerr_thresholds=THRESHOLDS, kbps=kbps, bucket_seconds=2.0, hold_frames=0)
    rc = RateController(config, LAYERS)
    sizes = [40_000, 20_000, 8_000, 3_000, 1_000, 400]
    total = sum(sizes[rc.step(np.ones(LAYERS), sizes, i / fps) - 1] for i in range(50))  # 2 s
    assert total / 2.0 / 1000 <= kbps * 1.10
    assert rc.last_quality_layer == 1 and rc.stats.over_budget == 1  # only the very first frame


def test_initial_fill_checked() -> None:
    with pytest.raises(ConfigError, match="initial_fill"):
        RateConfig(qerr_thresholds=THRESHOLDS, initial_fill=1.5)


def test_step_up_fill_makes_runs_instead_of_flicker() -> None:
    fps, kbps, seconds = 25, 100.0, 12
    sizes = [60_000, 17_000, 5_400, 1_600, 700]  # the budget sits between layers 3 and 4
    runs = {}
    for step_up in (0.0, 0.1):
        config = RateConfig(qerr_thresholds=THRESHOLDS[:5], kbps=kbps, bucket_seconds=2.0, hold_frames=0,
                            step_up_fill=step_up)  # fmt: skip
        rc = RateController(config, 5)
        total = sum(sizes[rc.step(np.ones(5), sizes, i / fps) - 1] for i in range(fps * seconds))
        assert abs(total / seconds / 1000 - kbps) <= 0.05 * kbps
        assert set(rc.stats.layer_counts) == {3, 4, 5} or set(rc.stats.layer_counts) == {3, 4}
        runs[step_up] = rc.stats.switches
    assert runs[0.0] > 100 and runs[0.1] < runs[0.0] / 5

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
    config = RateConfig(qerr_thresholds=THRESHOLDS, hold_frames=0, qerr_margin=0, min_dwell_s=0)
    rc = RateController(config, LAYERS)
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
    for hold, margin, dwell in ((0, 0.0, 0.0), (4, 0.1, 0.0), (4, 0.1, 1.0)):
        config = RateConfig(qerr_thresholds=THRESHOLDS, hold_frames=hold, qerr_margin=margin, min_dwell_s=dwell)
        rc = RateController(config, LAYERS)
        for i, q in enumerate(qerrs):
            rc.choose(q, None, i / 30)
        switches[hold, dwell] = rc.stats.switches
    assert switches[0, 0.0] > 100
    assert switches[4, 0.0] < switches[0, 0.0] / 5
    assert switches[4, 1.0] <= len(qerrs) / 30  # at most one switch a second


def test_coarser_waits_hold_frames_finer_is_immediate() -> None:
    rc = RateController(RateConfig(qerr_thresholds=THRESHOLDS, hold_frames=3, qerr_margin=0, min_dwell_s=0), LAYERS)
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
    config = RateConfig(qerr_thresholds=THRESHOLDS, kbps=1, hold_frames=0, qerr_margin=0, initial_fill=1.0,
                        min_dwell_s=0)  # fmt: skip
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


def test_the_first_frame_goes_at_the_layer_one_frames_share_affords() -> None:
    """Issue 14: the bucket starts with one frame's share (100 kbps / 25 fps = 4000 bits), not empty (which sent
    the first frames at the coarsest layer), nor full (a burst); short clips keep the budget."""
    fps, kbps = 25, 100.0
    config = RateConfig(qerr_thresholds=THRESHOLDS, kbps=kbps, bucket_seconds=2.0, hold_frames=0)
    rc = RateController(config, LAYERS, frame_rate=fps)
    sizes = [40_000, 20_000, 8_000, 3_000, 1_000, 400]
    layers = [rc.step(np.ones(LAYERS), sizes, i / fps) for i in range(50)]  # 2 s
    assert layers[0] == 4 and rc.last_reason in ("budget", "dwell")
    assert sum(sizes[layer - 1] for layer in layers) / 2.0 / 1000 <= kbps * 1.10
    assert rc.last_quality_layer == 1 and rc.stats.over_budget == 0


def test_initial_fill_checked() -> None:
    with pytest.raises(ConfigError, match="initial_fill"):
        RateConfig(qerr_thresholds=THRESHOLDS, initial_fill=1.5)


def test_step_up_fill_makes_runs_instead_of_flicker() -> None:
    fps, kbps, seconds = 25, 100.0, 12
    sizes = [60_000, 17_000, 5_400, 1_600, 700]  # the budget sits between layers 3 and 4
    runs = {}
    for step_up in (0.0, 0.1):
        config = RateConfig(qerr_thresholds=THRESHOLDS[:5], kbps=kbps, bucket_seconds=2.0, hold_frames=0,
                            step_up_fill=step_up, min_dwell_s=0)  # fmt: skip
        rc = RateController(config, 5)
        total = sum(sizes[rc.step(np.ones(5), sizes, i / fps) - 1] for i in range(fps * seconds))
        assert abs(total / seconds / 1000 - kbps) <= 0.05 * kbps
        assert set(rc.stats.layer_counts) == {3, 4, 5} or set(rc.stats.layer_counts) == {3, 4}
        runs[step_up] = rc.stats.switches
    assert runs[0.0] > 100 and runs[0.1] < runs[0.0] / 5


@pytest.mark.parametrize("kbps", [100.0, 300.0])
def test_dwell_time_at_most_one_switch_a_second_and_the_budget_holds(kbps: float) -> None:
    """Issue 14: a budget that sits between two layers, steady content: the default preset values (1 s dwell, 10%
    step-up reserve) switch at most once a second and keep the budget within 10%."""
    fps, seconds = 25, 30
    rng = np.random.default_rng(3)
    config = RateConfig(qerr_thresholds=THRESHOLDS[:5], kbps=kbps, bucket_seconds=1.0, step_up_fill=0.1)
    rc = RateController(config, 5, frame_rate=fps)
    total, switches, last = 0, [], None
    for i in range(fps * seconds):
        sizes = [int(s) for s in np.array([60_000, 17_000, 5_400, 1_600, 700]) * rng.uniform(0.9, 1.1, 5)]
        layer = rc.step(np.ones(5), sizes, i / fps)
        total += sizes[layer - 1]
        if last is not None and layer != last:
            switches.append((i / fps, layer > last, rc.last_reason))
        last = layer
    assert abs(total / seconds / 1000 - kbps) <= 0.10 * kbps
    assert 10 <= len(switches) <= seconds  # it does follow the budget, at most once a second
    for (t0, _, _), (t1, coarser, reason) in zip(switches, switches[1:], strict=False):
        assert t1 - t0 >= 1.0 - 1e-9 or (coarser and reason == "budget")  # only the budget cuts a dwell short


def test_dwell_gives_way_to_the_budget_and_to_a_harder_picture() -> None:
    config = RateConfig(qerr_thresholds=THRESHOLDS, kbps=1000, hold_frames=0, qerr_margin=0, initial_fill=1.0)
    rc = RateController(config, LAYERS)
    sizes = [60_000, 30_000, 10_000, 3_000, 1_000, 400]  # one frame's share: 40_000 bits at 25 fps
    assert rc.choose(qerr_for(4), sizes, 0.0) == 4  # quality asks for 4: it fits
    assert rc.choose(qerr_for(2), sizes, 0.04) == 2  # harder picture: finer at once, within the dwell
    assert rc.choose(qerr_for(5), sizes, 0.08) == 2 and rc.last_quality_layer == 2  # easier: must last 1 s first
    rc.tokens = -29_000  # the held layer no longer fits: the budget cuts the dwell short
    assert rc.choose(qerr_for(2), sizes, 0.12) == 3 and rc.last_reason == "budget"
    assert rc.choose(qerr_for(5), sizes, 1.2) == 2  # easier, but the candidate must persist 1 s; the bucket refilled
    assert rc.choose(qerr_for(5), sizes, 2.2) == 5  # ... and has


def test_a_coarser_quality_layer_must_persist_for_the_dwell_time() -> None:
    """A few easier frames in steady content (the demo clip turning its head) do not switch the layer back and forth:
    a coarser quality candidate is taken after hold_frames frames and min_dwell_s seconds."""
    config = RateConfig(qerr_thresholds=THRESHOLDS, hold_frames=4, qerr_margin=0, min_dwell_s=1.0)
    rc = RateController(config, LAYERS)
    fps = 25
    qerrs = [qerr_for(1)] * 25 + [qerr_for(3)] * 5 + [qerr_for(1)] * 25 + [qerr_for(3)] * 40
    layers = [rc.choose(q, None, i / fps) for i, q in enumerate(qerrs)]
    assert set(layers[:55]) == {1}  # five easier frames: no switch
    assert layers[-1] == 3 and layers.index(3) == 55 + fps  # forty: taken after one second

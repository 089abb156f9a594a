"""Per-frame layer choice: quality thresholds with hysteresis, then a token-bucket bitrate budget.

Layers are 1-based; layer 1 is the finest (most bits), a larger layer is coarser. For each frame:

1. *Quality.* The candidate is the coarsest layer within the bounds whose quantisation error is at most its threshold
   (the finest allowed layer if none is). Hysteresis: the layer held now keeps a threshold widened by ``qerr_margin``,
   coarser layers must beat a threshold narrowed by it, and a coarser candidate is taken only after it has persisted
   for ``hold_frames`` frames and ``min_dwell_s`` seconds. A finer candidate (the picture got harder) is taken at once.
2. *Budget.* From the quality layer towards coarser ones, the first layer whose coded size fits the token bucket is
   chosen; if none fits, the coarsest allowed layer is sent and the frame is counted as over budget (the bucket goes
   into debt, so the long-run rate still converges to the budget). The bucket starts with one frame's share of the
   budget (``kbps / frame_rate``), or ``initial_fill`` of it if that is more: the first frame goes at the finest
   layer the budget affords for one frame, not at the coarsest (issue 14), and a stream never starts with a burst of
   ``bucket_seconds`` of budget, which a receiver would see as latency. A layer finer than the previous frame's must
   be affordable for a whole dwell time (below): the bucket must hold what sending it for ``min_dwell_s`` at the
   frame rate costs beyond the budget, and ``step_up_fill`` of the bucket to spare. So a finer layer is taken only
   when it can be kept.
3. *Dwell.* After a layer switch the layer is held for ``min_dwell_s`` seconds (issue 14: a picture that changes
   layer every few frames visibly pumps). Two things cut a dwell short: the budget, towards coarser layers, when the
   layer held no longer fits the bucket; and the picture getting harder (the quality layer steps finer), towards
   finer ones, as far as the bucket allows. So steady content changes layer at most once per ``min_dwell_s``.

The controller is deterministic: time is passed in. :meth:`RateController.commit` charges the bits actually sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgecodec.config import RateConfig

CodedBits = Sequence[int] | Callable[[int], int] | None


@dataclass
class RateStats:
    """Counters of a :class:`RateController`."""

    frames: int = 0
    switches: int = 0
    over_budget: int = 0
    bits: int = 0
    layer_counts: dict[int, int] = field(default_factory=dict)


class RateController:
    """Chooses one layer per frame from its quantisation errors, coded sizes and the bitrate budget."""

    def __init__(self, config: RateConfig, num_layers: int, frame_rate: float = 25.0) -> None:
        """``frame_rate`` (frames/s, the source's) sizes the first frame's share of the budget."""
        if not frame_rate > 0:
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
        self.config = config
        self.num_layers = num_layers
        self.finest, self.coarsest = config.check_layers(num_layers)
        self.capacity = config.kbps * 1000.0 * config.bucket_seconds
        self.tokens = max(self.capacity * config.initial_fill, min(self.capacity, config.kbps * 1000.0 / frame_rate))
        self.stats = RateStats()
        self._last_time: float | None = None
        self._held: int | None = None  # quality layer currently held by the hysteresis
        self._pending = 0  # frames a coarser quality candidate has persisted, since _pending_since (s)
        self._pending_since: float | None = None
        self._last_choice: int | None = None
        self._switched_at = -float("inf")  # when the layer last changed
        self._interval = 1.0 / frame_rate  # seconds between frames, a running mean of the times passed in
        self.last_quality_layer: int | None = None  # what the thresholds asked for on the last frame
        self.last_budget_layer: int | None = None  # the finest layer the bucket afforded on the last frame
        self.last_reason = ""  # why the last frame got its layer: quality, budget, dwell or over budget

    # -- quality -------------------------------------------------------------------------------------------------
    def quality_layer(self, qerr: np.ndarray, now: float | None = None) -> int:
        """The layer the thresholds and hysteresis ask for (updates the hysteresis state); ``now`` (seconds) times how
        long a coarser candidate has persisted (None: frames alone)."""
        qerr = np.asarray(qerr, dtype=np.float64).reshape(-1)
        if qerr.shape[0] != self.num_layers:
            raise ValueError(f"qerr has {qerr.shape[0]} entries, the model has {self.num_layers} layers")
        held, margin = self._held, self.config.qerr_margin
        candidate = self.finest
        for layer in range(self.finest, self.coarsest + 1):
            threshold = self.config.threshold(layer)
            if held is not None and layer == held:
                threshold *= 1 + margin
            elif held is not None and layer > held:
                threshold *= 1 - margin
            if qerr[layer - 1] <= threshold:  # NaN never passes
                candidate = layer
        if held is None or candidate < held:
            held, self._pending = candidate, 0
        elif candidate > held:
            if self._pending == 0:
                self._pending_since = now
            self._pending += 1
            lasted = now is None or self._pending_since is None or now - self._pending_since >= self.config.min_dwell_s
            if self._pending >= self.config.hold_frames and lasted:
                held, self._pending = candidate, 0
        else:
            self._pending = 0
        self._held = held
        return held

    # -- budget --------------------------------------------------------------------------------------------------
    def _refill(self, now: float) -> None:
        if self._last_time is not None and now > self._last_time:
            self.tokens = min(self.capacity, self.tokens + (now - self._last_time) * self.config.kbps * 1000.0)
            self._interval += 0.1 * (min(now - self._last_time, 1.0) - self._interval)
        if self._last_time is None or now > self._last_time:
            self._last_time = now

    def choose(self, qerr: np.ndarray, coded_bits: CodedBits, now: float) -> int:
        """Pick the 1-based layer for one frame.

        ``coded_bits`` gives the size in bits of the packet for each layer: a sequence indexed by layer - 1, or a
        callable ``layer -> bits`` (so a sender codes only the layers it needs). It may be None without a budget.
        """
        previous = self.last_quality_layer
        layer = self.last_quality_layer = self.quality_layer(qerr, now)
        harder = previous is not None and layer < previous
        self.last_budget_layer, self.last_reason = None, "quality"
        size = None
        if not self.config.unlimited:
            if coded_bits is None:
                raise ValueError("coded_bits is required when a bitrate budget is set")
            size = coded_bits if callable(coded_bits) else (lambda layer_: int(coded_bits[layer_ - 1]))
            self._refill(now)
            layer = self.last_budget_layer = self._affordable(layer, size)
        layer = self._dwell(layer, size, now, harder)
        self.stats.frames += 1
        self.stats.layer_counts[layer] = self.stats.layer_counts.get(layer, 0) + 1
        if self._last_choice is not None and layer != self._last_choice:
            self.stats.switches += 1
            self._switched_at = now
        self._last_choice = layer
        return layer

    def _affordable(self, layer: int, size: Callable[[int], int]) -> int:
        """The finest layer from ``layer`` on whose packet fits the bucket (the coarsest, over budget, if none)."""
        for candidate in range(layer, self.coarsest + 1):
            finer = self._last_choice is not None and candidate < self._last_choice
            if size(candidate) + (self._step_up_cost(size(candidate)) if finer else 0.0) <= self.tokens:
                if candidate > layer:
                    self.last_reason = "budget"
                return candidate
        self.stats.over_budget += 1
        self.last_reason = "over budget"
        return self.coarsest

    def _step_up_cost(self, bits: int) -> float:
        """Tokens a step to a finer layer must leave spare: what ``bits`` a frame for the rest of a dwell time costs
        beyond the budget, and at least ``step_up_fill`` of the bucket."""
        share = self.config.kbps * 1000.0 * self._interval
        frames = max(0.0, self.config.min_dwell_s / self._interval - 1)
        return max(self.config.step_up_fill * self.capacity, frames * (bits - share))

    def _dwell(self, layer: int, size: Callable[[int], int] | None, now: float, harder: bool) -> int:
        """``layer``, or the layer held while its dwell time runs, unless the held one no longer fits the bucket or
        the picture got ``harder`` (the quality layer stepped finer on this frame)."""
        held = self._last_choice
        if held is None or layer == held or now - self._switched_at >= self.config.min_dwell_s:
            return layer
        if layer > held and size is not None and size(held) > self.tokens:
            return layer  # the budget forces a coarser layer: the dwell gives way
        if layer < held and harder:
            return layer
        self.last_reason = "dwell"
        return held

    def commit(self, layer: int, bits: int, now: float) -> None:
        """Charge the bits of the packet actually sent for ``layer`` to the token bucket."""
        if not self.finest <= layer <= self.coarsest:
            raise ValueError(f"layer {layer} outside {self.finest}..{self.coarsest}")
        if bits < 0:
            raise ValueError("bits must be >= 0")
        self.stats.bits += int(bits)
        if not self.config.unlimited:
            self._refill(now)
            self.tokens -= bits

    def step(self, qerr: np.ndarray, coded_bits: Sequence[int], now: float) -> int:
        """:meth:`choose` then :meth:`commit` the chosen layer's size; returns the layer."""
        layer = self.choose(qerr, coded_bits, now)
        self.commit(layer, int(coded_bits[layer - 1]), now)
        return layer

    @property
    def fill(self) -> float:
        """Bucket fill in [-inf, 1]: tokens over capacity (1.0 without a budget)."""
        return 1.0 if self.capacity == 0 else self.tokens / self.capacity

    def __repr__(self) -> str:
        budget = "unlimited" if self.config.unlimited else f"{self.config.kbps:g} kbps, fill {self.fill:.2f}"
        return f"RateController({self.config.name!r}, layers {self.finest}..{self.coarsest}, {budget})"

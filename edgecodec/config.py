"""Rate-adaptation presets: TOML files validated into a frozen :class:`RateConfig`.

Presets ship in ``edgecodec/configs/*.toml`` and are named by their stem (``balanced``); any other TOML file can be
given by path. A preset is flat but for one optional table, and every key is optional except ``qerr_thresholds``
(unless ``fixed_layer`` is set)::

    description = "what this preset is for"
    qerr_thresholds = [0.0, 0.02, 0.04, 0.07, 0.11, 0.16]  # layer 1 (finest) .. layer N (coarsest)
    min_layer = 1          # finest layer the sender may use (1-based)
    max_layer = 6          # coarsest layer it may use; absent = the model's coarsest
    fixed_layer = 3        # if set: every frame uses this layer (min_layer = max_layer = fixed_layer)
    kbps = 0               # bitrate budget in kbit/s; 0 = unlimited
    bucket_seconds = 1.0   # token-bucket size, in seconds of budget
    initial_fill = 0.0     # fraction of the bucket that is full at the start (0: no start-up burst)
    step_up_fill = 0.0     # fraction of the bucket that must be spare before the budget allows a finer layer
    hold_frames = 4        # frames a coarser quality choice must persist before it is taken
    min_dwell_s = 1.0      # seconds a layer is held after a switch (only the budget cuts it short, to coarser)
    qerr_margin = 0.1      # relative hysteresis band around the thresholds
    inter = true           # P-frames (inter coding in id space); false: every frame is a keyframe
    keyframe_seconds = 2.0 # longest time between keyframes: bounds a late joiner's or a lossy link's wait
    replenish_lambda = 0.03  # conditional replenishment: distortion a switched id must buy per bit it costs

    [model_qerr_thresholds]  # optional: thresholds calibrated for other models, by model name
    hqa5-cpu = [0.0, 0.03, 0.05, 0.08, 0.12]

A frame uses the coarsest layer whose normalised quantisation error is at most that layer's threshold; layers past
the end of ``qerr_thresholds`` are reached only when the budget forces them. The number of layers of a model is known
only at run time: :meth:`RateConfig.check_layers` validates the layer bounds against it. The qerr of a layer means
something different in every model, so ``qerr_thresholds`` are calibrated for one (the shipped presets: ``hqa5``);
:meth:`RateConfig.for_model` swaps in a model's own row of ``[model_qerr_thresholds]`` where the preset has one.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from edgecodec.coding.gop import InterSettings
from edgecodec.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MAX_LAYERS = 16
_PRESET_PACKAGE = "edgecodec"
_PRESET_DIR = "configs"


@dataclass(frozen=True)
class RateConfig:
    """A validated rate-adaptation preset. Construct it directly or with :func:`load_rate_config`."""

    name: str = "custom"
    description: str = ""
    qerr_thresholds: tuple[float, ...] = ()
    min_layer: int = 1
    max_layer: int | None = None
    fixed_layer: int | None = None
    kbps: float = 0.0
    bucket_seconds: float = 1.0
    initial_fill: float = 0.0
    step_up_fill: float = 0.0
    hold_frames: int = 4
    min_dwell_s: float = 1.0
    qerr_margin: float = 0.1
    inter: bool = True
    keyframe_seconds: float = 2.0
    replenish_lambda: float = 0.03
    model_qerr_thresholds: dict[str, tuple[float, ...]] = field(default_factory=dict)
    _label: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        label = self._label or f"rate config {self.name!r}"
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "qerr_thresholds", tuple(float(t) for t in self.qerr_thresholds))
        _check_range(label, "min_layer", self.min_layer, 1, MAX_LAYERS)
        if self.max_layer is not None:
            _check_range(label, "max_layer", self.max_layer, 1, MAX_LAYERS)
            if self.max_layer < self.min_layer:
                raise ConfigError(f"{label}: 'max_layer' ({self.max_layer}) must be >= 'min_layer' ({self.min_layer})")
        if self.fixed_layer is not None:
            _check_range(label, "fixed_layer", self.fixed_layer, 1, MAX_LAYERS)
            if self.fixed_layer < self.min_layer or (self.max_layer is not None and self.fixed_layer > self.max_layer):
                raise ConfigError(f"{label}: 'fixed_layer' ({self.fixed_layer}) lies outside min_layer..max_layer")
        elif not self.qerr_thresholds:
            raise ConfigError(f"{label}: 'qerr_thresholds' is required unless 'fixed_layer' is set")
        _check_thresholds(label, "qerr_thresholds", self.qerr_thresholds)
        for model, row in self.model_qerr_thresholds.items():
            _check_thresholds(label, f"model_qerr_thresholds.{model}", row)
        if not math.isfinite(self.kbps) or self.kbps < 0:
            raise ConfigError(f"{label}: 'kbps' must be >= 0 (0 = unlimited), got {self.kbps}")
        if not math.isfinite(self.bucket_seconds) or not 0 < self.bucket_seconds <= 60:
            raise ConfigError(f"{label}: 'bucket_seconds' must be in (0, 60], got {self.bucket_seconds}")
        if not math.isfinite(self.initial_fill) or not 0 <= self.initial_fill <= 1:
            raise ConfigError(f"{label}: 'initial_fill' must be in [0, 1], got {self.initial_fill}")
        if not math.isfinite(self.step_up_fill) or not 0 <= self.step_up_fill <= 1:
            raise ConfigError(f"{label}: 'step_up_fill' must be in [0, 1], got {self.step_up_fill}")
        _check_range(label, "hold_frames", self.hold_frames, 0, 1000)
        if not math.isfinite(self.min_dwell_s) or not 0 <= self.min_dwell_s <= 60:
            raise ConfigError(f"{label}: 'min_dwell_s' must be in [0, 60], got {self.min_dwell_s}")
        if not math.isfinite(self.qerr_margin) or not 0 <= self.qerr_margin < 1:
            raise ConfigError(f"{label}: 'qerr_margin' must be in [0, 1), got {self.qerr_margin}")
        if not isinstance(self.inter, bool):
            raise ConfigError(f"{label}: 'inter' must be true or false, got {self.inter!r}")
        if not math.isfinite(self.keyframe_seconds) or not 0 < self.keyframe_seconds <= 3600:
            raise ConfigError(f"{label}: 'keyframe_seconds' must be in (0, 3600], got {self.keyframe_seconds}")
        if not math.isfinite(self.replenish_lambda) or not 0 <= self.replenish_lambda <= 1000:
            raise ConfigError(f"{label}: 'replenish_lambda' must be in [0, 1000], got {self.replenish_lambda}")

    @property
    def unlimited(self) -> bool:
        """True when there is no bitrate budget."""
        return self.kbps == 0

    def check_layers(self, num_layers: int) -> tuple[int, int]:
        """Check the layer bounds against a model with ``num_layers`` layers; return the usable (finest, coarsest)."""
        if not 1 <= num_layers <= MAX_LAYERS:
            raise ConfigError(f"{self._label}: a model with {num_layers} layers is not supported")
        for key in ("min_layer", "max_layer", "fixed_layer"):
            value = getattr(self, key)
            if value is not None and value > num_layers:
                raise ConfigError(f"{self._label}: {key!r} is {value} but the model has only {num_layers} layers")
        if self.fixed_layer is not None:
            return self.fixed_layer, self.fixed_layer
        return self.min_layer, self.max_layer if self.max_layer is not None else num_layers

    def threshold(self, layer: int) -> float:
        """The qerr threshold of a 1-based layer; -inf for layers without one (never chosen for quality)."""
        return self.qerr_thresholds[layer - 1] if layer <= len(self.qerr_thresholds) else -math.inf

    def for_model(self, name: str) -> RateConfig:
        """This preset with the thresholds calibrated for model ``name``, where ``[model_qerr_thresholds]`` has
        them; else this preset unchanged."""
        row = self.model_qerr_thresholds.get(name)
        return self if row is None else replace(self, qerr_thresholds=row)

    def inter_settings(self, intra_only: bool = False) -> InterSettings:
        """The P-frame settings of this preset (``intra_only`` turns P-frames off)."""
        return InterSettings(self.inter and not intra_only, self.keyframe_seconds, self.replenish_lambda)

    def with_kbps(self, kbps: float | None) -> RateConfig:
        """A copy with another budget (None keeps this one)."""
        return self if kbps is None else replace(self, kbps=_as_float(self._label, "kbps", kbps))


def _check_thresholds(label: str, key: str, row: tuple[float, ...]) -> None:
    if len(row) > MAX_LAYERS:
        raise ConfigError(f"{label}: {key!r} has {len(row)} entries, at most {MAX_LAYERS}")
    for i, t in enumerate(row):
        if math.isnan(t) or t < 0:
            raise ConfigError(f"{label}: {key!r} entry {i + 1} must be >= 0 (inf allowed), got {t}")


def _check_range(label: str, key: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{label}: {key!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{label}: {key!r} must be between {lo} and {hi}, got {value}")


def _as_float(label: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{label}: {key!r} must be a number, got {value!r}")
    return float(value)


def _as_int(label: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{label}: {key!r} must be an integer, got {value!r}")
    return value


def _parse(data: dict[str, Any], name: str, label: str) -> RateConfig:
    known = {f.name for f in fields(RateConfig) if not f.name.startswith("_")} - {"name"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{label}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {"name": name, "_label": label}
    for key, value in data.items():
        if key == "description":
            if not isinstance(value, str):
                raise ConfigError(f"{label}: 'description' must be a string")
            kwargs[key] = value
        elif key == "qerr_thresholds":
            if not isinstance(value, list):
                raise ConfigError(f"{label}: 'qerr_thresholds' must be a list of numbers")
            kwargs[key] = tuple(_as_float(label, key, v) for v in value)
        elif key == "model_qerr_thresholds":
            if not isinstance(value, dict):
                raise ConfigError(f"{label}: 'model_qerr_thresholds' must be a table of model name = [numbers]")
            rows = {}
            for model, row in value.items():
                where = f"model_qerr_thresholds.{model}"
                if not isinstance(row, list):
                    raise ConfigError(f"{label}: {where!r} must be a list of numbers")
                rows[model] = tuple(_as_float(label, where, v) for v in row)
            kwargs[key] = rows
        elif key in ("min_layer", "max_layer", "fixed_layer", "hold_frames"):
            kwargs[key] = _as_int(label, key, value)
        elif key == "inter":
            if not isinstance(value, bool):
                raise ConfigError(f"{label}: 'inter' must be true or false, got {value!r}")
            kwargs[key] = value
        else:
            kwargs[key] = _as_float(label, key, value)
    return RateConfig(**kwargs)


def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files(_PRESET_PACKAGE).joinpath(_PRESET_DIR)
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_rate_config(name_or_path: str, *, kbps: float | None = None) -> RateConfig:
    """Load a shipped preset by name (``balanced``) or a TOML file by path; ``kbps`` overrides the budget."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
        label = f"rate config {path.name!r}"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{label}: cannot read {text}: {exc.strerror or exc}") from None
        name = path.stem
    else:
        names = preset_names()
        if text not in names:
            raise ConfigError(f"unknown rate preset {text!r} (choose from {', '.join(names)}, or give a .toml path)")
        label = f"rate preset {text!r}"
        raw = resources.files(_PRESET_PACKAGE).joinpath(_PRESET_DIR, f"{text}.toml").read_bytes()
        name = text
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    return _parse(data, name, label).with_kbps(kbps)


def add_rate_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rate-config NAME|FILE``, ``--kbps N`` and ``--intra-only``, as send, demo and profile take them."""
    parser.add_argument(
        "--rate-config",
        default="balanced",
        metavar="NAME|FILE",
        help=f"rate preset ({', '.join(preset_names())}) or a .toml file (default balanced)",
    )
    parser.add_argument("--kbps", type=float, metavar="N", help="override the preset's budget (0 = unlimited)")
    parser.add_argument(
        "--intra-only", action="store_true", help="send every frame as a keyframe (no P-frames; overrides the preset)"
    )

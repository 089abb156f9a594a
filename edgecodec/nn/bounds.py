"""Bounds on a model file's architecture metadata, checked before anything is built from it.

A model file is input like any other: every field is checked for its type and range, with a
:class:`~edgecodec.errors.ModelError` that names the field (``layers[2].res_blocks``), and the whole network must stay
under :data:`MAX_PARAMETERS` (estimated from the fields alone), so that a file cannot make a loader build a 57 GB
network or 100,000 residual blocks.
"""

from __future__ import annotations

from typing import Any

from edgecodec.errors import ModelError

MAX_LAYERS = 8
MAX_PARAMETERS = 64 << 20
"""64 Mi parameters (the shipped hqa5 has about 2 Mi)."""

# field: (kind, lo, hi); kind "int" or "bool"
LAYER_FIELDS: dict[str, tuple[str, int, int]] = {
    "codebook_size": ("int", 2, 1 << 16),
    "code_dim": ("int", 1, 512),
    "hidden": ("int", 1, 1024),
    "res_blocks": ("int", 0, 16),
    "space_to_depth": ("bool", 0, 1),
    "groups": ("int", 1, 4),
    "encoder_hidden": ("int", 0, 1024),
    "encoder_res_blocks": ("int", -1, 16),
}
REQUIRED = ("codebook_size", "code_dim", "hidden")
MODEL_FIELDS = ("layers", "requantize", "name")


def _value(where: str, value: Any, kind: str, lo: int, hi: int) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise ModelError(f"model metadata {where}: must be true or false, got {value!r:.40}")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ModelError(f"model metadata {where}: must be an integer in {lo}..{hi}, got {value!r:.40}")
    return value


def check_layer_dict(index: int, d: Any) -> dict[str, Any]:
    """The checked keyword arguments of one :class:`~edgecodec.nn.layers.LayerConfig`."""
    where = f"layers[{index}]"
    if not isinstance(d, dict):
        raise ModelError(f"model metadata {where}: must be an object, got {type(d).__name__}")
    unknown = sorted(str(k)[:40] for k in d if k not in LAYER_FIELDS)
    if unknown:
        raise ModelError(f"model metadata {where}: unknown field {unknown[0]!r}")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise ModelError(f"model metadata {where}.{missing[0]}: missing")
    return {k: _value(f"{where}.{k}", v, *LAYER_FIELDS[k]) for k, v in d.items()}


def check_model_dict(d: Any) -> tuple[list[dict[str, Any]], bool, str]:
    """(layer kwargs, requantize, name) of a model's architecture dict, every field checked."""
    if not isinstance(d, dict):
        raise ModelError(f"model metadata: the architecture must be an object, got {type(d).__name__}")
    unknown = sorted(str(k)[:40] for k in d if k not in MODEL_FIELDS)
    if unknown:
        raise ModelError(f"model metadata: unknown field {unknown[0]!r}")
    layers = d.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelError(f"model metadata layers: must be a list of 1..{MAX_LAYERS} layers, got {layers!r:.40}")
    requantize = _value("requantize", d.get("requantize", False), "bool", 0, 1)
    name = d.get("name", "hqa")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise ModelError(f"model metadata name: must be a string of 1..64 characters, got {name!r:.40}")
    return [check_layer_dict(i, c) for i, c in enumerate(layers)], requantize, name


def estimate_parameters(layers: list[Any]) -> int:
    """About how many parameters a stack of these LayerConfigs has (upper side): convolutions dominate."""
    total, in_ch = 0, 3
    for c in layers:
        enc_h = c.encoder_hidden or c.hidden
        enc_res = c.res_blocks if c.encoder_res_blocks < 0 else c.encoder_res_blocks
        first = 16 * in_ch * 9 if c.space_to_depth else in_ch * 16
        total += enc_h * (first + 10 * enc_h * enc_res + enc_h + 4 * c.code_dim + 16)
        total += c.hidden * (4 * c.code_dim * 9 + 10 * c.hidden * c.res_blocks + c.hidden + 4 * in_ch * 4 + 16)
        total += c.codebook_size * c.code_dim
        in_ch = c.code_dim
    return total


def check_size(layers: list[Any]) -> None:
    n = estimate_parameters(layers)
    if n > MAX_PARAMETERS:
        raise ModelError(f"model metadata layers: about {n} parameters, over the limit of {MAX_PARAMETERS}")

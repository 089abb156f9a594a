"""The HQA stack: layer 1 reads pixels, layer l > 1 reads the normalised z_e of layer l - 1.

Device path (deterministic, argmin):
  * :meth:`HQAStack.encode` runs every encoder in one pass and returns the ids and the normalised quantisation error
    of every layer.
  * :meth:`HQAStack.decode` turns the ids of one layer into frames by running decoders L, L-1, ..., 1. Between two
    decoders the reconstructed z_e is, if ``requantize`` is set, snapped to the lower layer's codebook (HQA's
    hierarchy), otherwise projected back onto the unit sphere and passed on (the default: it measured better on
    the validation split, and it is the path the trainer's pixel loss optimises).

Frames are float tensors (N, 3, H, W) in [0, 1] with H and W multiples of :attr:`HQAStack.multiple`; see
:mod:`edgecodec.codec` for padding and uint8 frames of any size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from edgecodec.errors import ModelError
from edgecodec.nn.bounds import check_model_dict, check_size
from edgecodec.nn.layers import HQALayer, LayerConfig


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a stack: one :class:`LayerConfig` per layer, finest first."""

    layers: tuple[LayerConfig, ...]
    requantize: bool = False
    name: str = "hqa"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "requantize": self.requantize, "layers": [_layer_dict(c) for c in self.layers]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """A config from its dict (a model file's metadata): every field checked against
        :mod:`edgecodec.nn.bounds`; :class:`~edgecodec.errors.ModelError` names the field that is wrong."""
        layer_args, requantize, name = check_model_dict(d)
        layers = []
        for i, kwargs in enumerate(layer_args):
            try:
                layers.append(LayerConfig(**kwargs))
            except ValueError as exc:
                raise ModelError(f"model metadata layers[{i}]: {exc}") from None
        check_size(layers)
        return cls(layers=tuple(layers), requantize=requantize, name=name)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


# LayerConfig fields added after models were shipped: written only when they differ from their defaults, so that
# the canonical JSON, and with it the fingerprint, of an older model stays what it was.
_LATER_FIELDS = ("groups", "encoder_hidden", "encoder_res_blocks")


def _layer_dict(c: LayerConfig) -> dict[str, Any]:
    defaults = {f.name: f.default for f in fields(LayerConfig)}
    return {k: v for k, v in asdict(c).items() if k not in _LATER_FIELDS or v != defaults[k]}


def default_config() -> ModelConfig:
    """The shipped architecture: 5 rates from ~2 bpp down to ~0.01 bpp (fixed-length)."""
    return ModelConfig(
        layers=(
            LayerConfig(codebook_size=256, code_dim=8, hidden=96, res_blocks=0, space_to_depth=True),  # 1/2: 2.00 bpp
            LayerConfig(codebook_size=512, code_dim=16, hidden=96, res_blocks=0),  # 1/4:  0.56 bpp
            LayerConfig(codebook_size=2048, code_dim=32, hidden=128, res_blocks=1),  # 1/8:  0.172 bpp
            LayerConfig(codebook_size=1024, code_dim=32, hidden=128, res_blocks=1),  # 1/16: 0.039 bpp
            LayerConfig(codebook_size=1024, code_dim=32, hidden=128, res_blocks=1),  # 1/32: 0.0098 bpp
        )
    )


def cpu_fast_config() -> ModelConfig:
    """An architecture for senders on two CPU cores: the encoder fits a 640x480 frame in under 33 ms.

    Against :func:`default_config`: product codebooks at layers 1-3 (16 x 16, 32 x 32 and 64 x 64 sub-codes, so the
    nearest-code search scores 32, 64 and 128 codes per position instead of 256, 512 and 2048) and lighter encoders
    at layers 1-3; the decoders are the same size. ``python tools/bench_arch.py`` measures it untrained.
    """
    return ModelConfig(
        layers=(
            LayerConfig(256, 8, 96, res_blocks=0, space_to_depth=True, groups=2, encoder_hidden=64),  # 2.00 bpp
            LayerConfig(1024, 16, 96, res_blocks=0, groups=2, encoder_hidden=64),  # 0.625 bpp
            LayerConfig(4096, 32, 128, res_blocks=1, groups=2, encoder_hidden=96, encoder_res_blocks=0),  # 0.1875
            LayerConfig(1024, 32, 128, res_blocks=1),  # 0.039 bpp
            LayerConfig(1024, 32, 128, res_blocks=1),  # 0.0098 bpp
        ),
        name="hqa-cpu-fast",
    )


def tiny_config() -> ModelConfig:
    """A small stack for tests: 3 layers, untrained weights are enough to exercise every code path."""
    return ModelConfig(
        layers=(
            LayerConfig(codebook_size=64, code_dim=8, hidden=16, res_blocks=1),
            LayerConfig(codebook_size=64, code_dim=8, hidden=16, res_blocks=1),
            LayerConfig(codebook_size=32, code_dim=8, hidden=16, res_blocks=1),
        ),
        name="tiny",
    )


ARCHITECTURES: dict[str, Callable[[], ModelConfig]] = {
    "default": default_config,
    "cpu-fast": cpu_fast_config,
    "tiny": tiny_config,
}


class Encoded(NamedTuple):
    ids: list[torch.Tensor]  # per layer, (N, h_l, w_l) int64
    qerr: torch.Tensor  # (N, L) normalised quantisation error
    # z_e of the layers asked for with ``encode(latents=...)``, by 1-based layer: (N, h_l, w_l, D_l), channels last
    z: Mapping[int, torch.Tensor] = MappingProxyType({})


class HQAStack(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if len(config.layers) < 1:
            raise ValueError("a model needs at least one layer")
        self.config = config
        in_chs = [3] + [c.code_dim for c in config.layers[:-1]]
        self.layers = nn.ModuleList(HQALayer(i, c) for i, c in zip(in_chs, config.layers, strict=True))

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def multiple(self) -> int:
        """Frame sides must be multiples of this (2 ** number of layers)."""
        return 2**self.num_layers

    def factor(self, layer: int) -> int:
        """Downsampling factor of ``layer`` (1-based) relative to pixels."""
        self._check_layer(layer)
        return 2**layer

    def _check_layer(self, layer: int) -> None:
        if not 1 <= layer <= self.num_layers:
            raise ValueError(f"layer {layer} out of range 1..{self.num_layers}")

    # ---- encoder side -------------------------------------------------------------------------------
    def layer_input(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Input of ``layer``: pixels - 0.5 for layer 1, else the normalised z_e of the layer below."""
        h = x - 0.5
        for lyr in self.layers[: layer - 1]:
            h = lyr.normalize(lyr.encode_ze(h))
        return h

    @torch.no_grad()
    def encode(self, x: torch.Tensor, max_layer: int | None = None, latents: Sequence[int] = ()) -> Encoded:
        """Ids and normalised quantisation error of every layer (up to ``max_layer``), in one pass.

        ``latents``: 1-based layers (up to ``max_layer``) whose encoder output z_e is also returned, in
        :attr:`Encoded.z`, as (N, h, w, D) contiguous tensors: the unit vectors the nearest-code search scores
        (:meth:`HQALayer.encode_ze`). A layer outside 1..``max_layer`` is a ValueError.
        """
        top = self.num_layers if max_layer is None else max_layer
        self._check_layer(top)
        want = set()
        for layer in latents:
            if not 1 <= layer <= top:
                raise ValueError(f"latent layer {layer} out of range 1..{top}")
            want.add(int(layer))
        h = x - 0.5
        ids, qerr, zs = [], [], {}
        for number, lyr in enumerate(self.layers[:top], start=1):
            z_e = lyr.encode_ze(h)
            i = lyr.quantizer.ids(z_e)
            ids.append(i)
            qerr.append(lyr.qerr(z_e, i))
            if number in want:
                zs[number] = z_e.permute(0, 2, 3, 1).contiguous()
            h = lyr.normalize(z_e)
        return Encoded(ids, torch.stack(qerr, 1), zs)

    # ---- decoder side -------------------------------------------------------------------------------
    def decode_from(self, z_q: torch.Tensor, layer: int, requantize: bool | None = None) -> torch.Tensor:
        """Run decoders ``layer`` .. 1 starting from quantised vectors of ``layer``; returns frames in [0, 1].

        Differentiable unless ``requantize`` (default: the model's setting) snaps to the lower codebooks.
        """
        requantize = self.config.requantize if requantize is None else requantize
        h = z_q
        for idx in range(layer - 1, 0, -1):
            below = self.layers[idx - 1]
            z_e = below.denormalize(self.layers[idx].decoder(h))
            h = below.quantizer.lookup(below.quantizer.ids(z_e)) if requantize else F.normalize(z_e, dim=1)
        return (self.layers[0].decoder(h) + 0.5).clamp(0, 1)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, layer: int) -> torch.Tensor:
        """Frames (N, 3, H, W) in [0, 1] from the ids (N, h, w) of ``layer`` (1-based)."""
        self._check_layer(layer)
        return self.decode_from(self.layers[layer - 1].quantizer.lookup(ids), layer)

    def forward(self, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Training path of ``layer``: (reconstruction of its input, ids, losses).

        The reconstruction target is ``layer_input(x, layer)``. In eval mode this quantises by argmin, so
        ``decode_from(quantised, layer)`` equals ``decode(encode(x).ids[layer - 1], layer)``.
        """
        self._check_layer(layer)
        lyr = self.layers[layer - 1]
        with torch.no_grad():
            h = self.layer_input(x, layer)
        z_e = lyr.encode_ze(h)
        if self.training:
            lyr.update_stats(z_e)
        z_q, ids, losses = lyr.quantizer(z_e)
        return lyr.decoder(z_q), ids, losses

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Pixels reconstructed through ``layer`` along the training path (eval mode gives the device result)."""
        lyr = self.layers[layer - 1]
        z_q, _, _ = lyr.quantizer(lyr.encode_ze(self.layer_input(x, layer)))
        return self.decode_from(z_q, layer)

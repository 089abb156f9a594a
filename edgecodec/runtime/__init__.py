"""Inference backends. Each one implements :class:`Backend`: encode frames into the ids and quantisation error of
every layer, and decode the ids of one layer into frames (DESIGN.md, principle 5)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    """The two calls every backend provides. Frames are float32 (N, 3, H, W) in [0, 1], H and W multiples of
    ``multiple``; ids are int64 (N, h, w)."""

    name: str
    multiple: int
    num_layers: int

    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(ids of every layer, qerr (N, L))."""
        ...

    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        """Frames (N, 3, H, W) float32 in [0, 1] from the ids of ``layer`` (1-based)."""
        ...


def make_backend(name: str, model, device: str = "cpu") -> Backend:  # noqa: ANN001 - zoo.Model
    """Backend by name: 'torch' or 'auto' (the torch backend until others are added)."""
    from edgecodec.errors import ConfigError

    if name in ("auto", "torch"):
        from edgecodec.runtime.torch_backend import TorchBackend

        return TorchBackend(model.net, device=device)
    raise ConfigError(f"unknown backend {name!r} (available: auto, torch)")

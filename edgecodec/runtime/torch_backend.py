"""The torch backends: eager PyTorch on a CPU or a CUDA device, optionally through ``torch.compile``.

Eager (``torch``) runs :meth:`HQAStack.encode` and :meth:`HQAStack.decode` themselves: it is the reference the
other backends are checked against. ``torch-compile`` compiles the export-friendly graphs of
:mod:`edgecodec.runtime.graphs` (the same arithmetic, whole-graph) on first use; dynamic shapes are on, so a new frame
size does not always mean a new compilation. :meth:`TorchBackend.encode_latents` compiles a second encoder graph, the
one with every output (``EncoderGraph(outputs="all")``), on its first call.

On CUDA the backend turns TF32 off (``torch.backends.cudnn.allow_tf32`` and ``cuda.matmul.allow_tf32``, process-wide)
unless ``tf32=True``: with PyTorch's default (TF32 convolutions) 0.2% of the ids of an H100 differed from the CPU's,
with TF32 off 0.002%, at the same speed (docs/backends.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edgecodec.errors import ConfigError
from edgecodec.nn import HQAStack
from edgecodec.runtime import check_frames, check_ids, check_layers


class TorchBackend:
    def __init__(
        self,
        net: HQAStack,
        device: str = "cpu",
        compile: bool = False,
        mode: str | None = None,
        compile_backend: str = "inductor",
        tf32: bool = False,
    ) -> None:
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"bad torch device {device!r} ({exc})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available")
        if self.device.type == "cuda":
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        self.name = "torch-compile" if compile else "torch"
        self.net = net.eval().to(self.device)
        self.multiple = net.multiple
        self.num_layers = net.num_layers
        self._codebook_sizes = [c.codebook_size for c in net.config.layers]
        self._encoder = self._decoders = self._latent_encoder = None
        self._build = None
        if compile:
            from edgecodec.runtime.graphs import DecoderGraph, EncoderGraph

            cfg = torch._dynamo.config  # the decoders share one forward(): one compiled entry per layer and size
            for key in ("recompile_limit", "cache_size_limit"):
                if hasattr(cfg, key):
                    setattr(cfg, key, max(getattr(cfg, key), 64))

            def build(module: torch.nn.Module):  # noqa: ANN202
                return torch.compile(module.to(self.device).eval(), dynamic=True, mode=mode, backend=compile_backend)

            self._build = build
            self._encoder = build(EncoderGraph(self.net))
            self._decoders = [build(DecoderGraph(self.net, layer)) for layer in range(1, self.num_layers + 1)]

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        x = torch.from_numpy(check_frames(frames, self.multiple)).to(self.device)
        if self._encoder is None:
            enc = self.net.encode(x)
            ids, qerr = enc.ids, enc.qerr
        else:
            *ids, qerr = self._encoder(x)
        return [i.cpu().numpy() for i in ids], qerr.float().cpu().numpy()

    @torch.inference_mode()
    def encode_latents(
        self, frames: np.ndarray, layers: Sequence[int]
    ) -> tuple[list[np.ndarray], np.ndarray, dict[int, np.ndarray]]:
        """:meth:`encode`, plus z[l] (N, h, w, D) float32 for each layer l in ``layers`` (see ``Backend``)."""
        want = check_layers(layers, self.num_layers)
        x = torch.from_numpy(check_frames(frames, self.multiple)).to(self.device)
        if self._build is None:
            enc = self.net.encode(x, latents=want)
            ids, qerr, zs = enc.ids, enc.qerr, enc.z
        else:
            if self._latent_encoder is None:
                from edgecodec.runtime.graphs import EncoderGraph

                self._latent_encoder = self._build(EncoderGraph(self.net, outputs="all"))
            out = self._latent_encoder(x)
            ids, qerr, zall = out[: self.num_layers], out[self.num_layers], out[self.num_layers + 1 :]
            zs = {layer: zall[layer - 1] for layer in want}
        z = {layer: np.ascontiguousarray(zs[layer].float().cpu().numpy()) for layer in want}
        return [i.cpu().numpy() for i in ids], qerr.float().cpu().numpy(), z

    @torch.inference_mode()
    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        t = torch.from_numpy(check_ids(ids, layer, self._codebook_sizes)).to(self.device)
        out = self.net.decode(t, layer) if self._decoders is None else self._decoders[layer - 1](t)
        return out.float().cpu().numpy()

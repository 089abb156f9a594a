"""One HQA layer: an encoder that halves the grid, a vector quantiser, and a decoder that doubles it back.

`forward` is the training path (Gumbel-softmax in train mode, argmin in eval mode). `encode`/`decode` are the
deterministic device path: ids out of the encoder side, ids into the decoder side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LayerConfig:
    """Shape of one HQA layer."""

    codebook_size: int  # K
    code_dim: int  # D, channels of z_e and of each code
    hidden: int  # channels inside the encoder and decoder
    res_blocks: int = 1
    # Run the convolutions at half the code grid (pixel-unshuffle in, pixel-shuffle out): 4x fewer positions for
    # the big layer-1 grid, which is what makes it affordable on a CPU.
    space_to_depth: bool = False


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


def make_encoder(in_ch: int, cfg: LayerConfig) -> nn.Sequential:
    """Halves the spatial size: stride-2 conv, residual blocks, 1x1 projection to the code dimension."""
    if cfg.space_to_depth:  # body at 1/4 of the input grid, 4 codes out per body position
        mods: list[nn.Module] = [nn.PixelUnshuffle(4), nn.Conv2d(in_ch * 16, cfg.hidden, 3, padding=1)]
    else:
        mods = [nn.Conv2d(in_ch, cfg.hidden, 4, stride=2, padding=1)]
    mods += [ResBlock(cfg.hidden) for _ in range(cfg.res_blocks)]
    mods += [nn.GELU(), nn.Conv2d(cfg.hidden, cfg.hidden, 1), nn.GELU()]
    if cfg.space_to_depth:
        mods += [nn.Conv2d(cfg.hidden, cfg.code_dim * 4, 1), nn.PixelShuffle(2)]
    else:
        mods += [nn.Conv2d(cfg.hidden, cfg.code_dim, 1)]
    return nn.Sequential(*mods)


def make_decoder(out_ch: int, cfg: LayerConfig) -> nn.Sequential:
    """Doubles the spatial size with a pixel shuffle."""
    if cfg.space_to_depth:
        mods: list[nn.Module] = [nn.PixelUnshuffle(2), nn.Conv2d(cfg.code_dim * 4, cfg.hidden, 3, padding=1)]
    else:
        mods = [nn.Conv2d(cfg.code_dim, cfg.hidden, 3, padding=1)]
    mods += [ResBlock(cfg.hidden) for _ in range(cfg.res_blocks)]
    mods += [nn.GELU(), nn.Conv2d(cfg.hidden, cfg.hidden, 1), nn.GELU()]
    up = 4 if cfg.space_to_depth else 2
    mods += [nn.Conv2d(cfg.hidden, out_ch * up * up, 3, padding=1), nn.PixelShuffle(up)]
    return nn.Sequential(*mods)


class VectorQuantizer(nn.Module):
    """A codebook of K unit vectors of dimension D (cosine-similarity VQ).

    Inputs are unit vectors too (see :meth:`HQALayer.encode_ze`), so squared distances lie in [0, 4] and the
    Gumbel logits ``-logit_scale * distance`` have a fixed, well-conditioned scale.

    Training: Gumbel-softmax over those logits (temperature set by the trainer), with a KL term to the uniform
    prior and a commitment term. Inference: argmin.
    """

    def __init__(self, codebook_size: int, code_dim: int, logit_scale: float = 10.0) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim))
        self.logit_scale = logit_scale
        self.temperature = 1.0

    @property
    def codes(self) -> torch.Tensor:
        """The codebook as unit vectors, (K, D)."""
        return F.normalize(self.codebook, dim=1)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared distances, (N, K, h, w), from z (N, D, h, w) to every code."""
        c = self.codes
        zz = (z * z).sum(1, keepdim=True)
        zc = torch.einsum("ndhw,kd->nkhw", z, c)
        return (zz - 2 * zc + (c * c).sum(1).view(1, -1, 1, 1)).clamp_min(0)

    # Positions per block of the CPU search: a block's (positions, K) scores stay in cache instead of a fresh
    # (positions, K) matrix (78 MB for a 640x480 frame at layer 1) being written, page-faulted and read back.
    CPU_BLOCK = 2048

    def ids(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code per position, (N, h, w) int64.

        argmax of z.c - |c|^2 / 2 (|z|^2 is constant per position), as one fused matrix product over a
        (positions, K) layout so that the reduction runs over contiguous memory. On a CPU, large grids are
        searched in blocks of positions: each score is the same dot product, so the ids are the same.
        """
        n, d, h, w = z.shape
        c = self.codes
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        bias = (c * c).sum(1)
        block = self.CPU_BLOCK
        if (
            flat.device.type != "cpu"
            or flat.shape[0] <= block
            or torch.jit.is_tracing()
            or torch.compiler.is_compiling()
        ):
            return torch.addmm(bias, flat, c.t(), beta=-0.5).argmax(1).view(n, h, w)
        with torch.no_grad():  # ids carry no gradient; out= needs no autograd
            flat, c_t, bias = flat.detach(), c.detach().t(), bias.detach()
            out = torch.empty(flat.shape[0], dtype=torch.int64)
            scores = torch.empty(block, c.shape[0], dtype=flat.dtype)
            for start in range(0, flat.shape[0], block):
                stop = min(start + block, flat.shape[0])
                s = torch.addmm(bias, flat[start:stop], c_t, beta=-0.5, out=scores[: stop - start])
                torch.argmax(s, 1, out=out[start:stop])
        return out.view(n, h, w)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Codes for ids (N, h, w) -> (N, D, h, w)."""
        return F.embedding(ids, self.codes).permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Returns (z_q, ids, losses). In eval mode z_q is the argmin code and losses are empty."""
        if not self.training:
            ids = self.ids(z)
            return self.lookup(ids), ids, {}
        d = self.distances(z)
        logits = -self.logit_scale * d
        soft = F.gumbel_softmax(logits, tau=self.temperature, hard=False, dim=1)
        z_q = torch.einsum("nkhw,kd->ndhw", soft, self.codes)
        ids = d.argmin(1)
        log_q = F.log_softmax(logits, dim=1)
        kl = (log_q.exp() * (log_q + math.log(self.codebook.shape[0]))).sum(1).mean()
        commit = F.mse_loss(z, self.lookup(ids).detach())
        return z_q, ids, {"kl": kl, "commit": commit}


class HQALayer(nn.Module):
    """Encoder, quantiser and decoder of one layer, plus running statistics of its own z_e.

    The statistics normalise z_e for the layer above (its input and its reconstruction target) and normalise this
    layer's quantisation error.
    """

    def __init__(self, in_ch: int, cfg: LayerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = make_encoder(in_ch, cfg)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim)
        self.decoder = make_decoder(in_ch, cfg)
        self.register_buffer("ze_mean", torch.zeros(cfg.code_dim))
        self.register_buffer("ze_std", torch.ones(cfg.code_dim))

    def encode_ze(self, h: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
        """Continuous encoder output z_e, as unit vectors along the channel axis (``encoder``: an equivalent
        stand-in for :attr:`encoder`, such as the export's rewritten copy)."""
        return F.normalize((self.encoder if encoder is None else encoder)(h), dim=1)

    @torch.no_grad()
    def update_stats(self, z_e: torch.Tensor, momentum: float = 0.01) -> None:
        mean = z_e.mean((0, 2, 3))
        std = z_e.std((0, 2, 3)).clamp_min(1e-3)
        self.ze_mean.lerp_(mean, momentum)
        self.ze_std.lerp_(std, momentum)

    def normalize(self, z_e: torch.Tensor) -> torch.Tensor:
        return (z_e - self.ze_mean.view(1, -1, 1, 1)) / self.ze_std.view(1, -1, 1, 1)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.ze_std.view(1, -1, 1, 1) + self.ze_mean.view(1, -1, 1, 1)

    def qerr(self, z_e: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Normalised quantisation error per frame: mean squared (z_e - code) / std^2, shape (N,)."""
        diff = (z_e - self.quantizer.lookup(ids)) / self.ze_std.view(1, -1, 1, 1)
        return diff.pow(2).mean((1, 2, 3))

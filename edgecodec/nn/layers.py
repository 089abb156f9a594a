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
    # Product codebook: a code is `groups` unit sub-codes of D / groups channels, each from its own sub-codebook of
    # K ** (1 / groups) codes, so the search scores groups * K ** (1 / groups) codes instead of K (32 instead of
    # 256 at K = 256, groups = 2). The id is the sub-ids' mixed-radix number, so ids still run over 0..K-1.
    groups: int = 1
    # The encoder's own width and depth (0 / -1: those of the decoder). A sender on a small device runs only the
    # encoders, so they can be lighter than the decoders.
    encoder_hidden: int = 0
    encoder_res_blocks: int = -1

    def __post_init__(self) -> None:
        if self.groups < 1 or self.code_dim % self.groups:
            raise ValueError(f"groups {self.groups} must divide code_dim {self.code_dim}")
        if round(self.codebook_size ** (1 / self.groups)) ** self.groups != self.codebook_size:
            raise ValueError(f"codebook_size {self.codebook_size} is not a {self.groups}-th power")

    @property
    def sub_codebook_size(self) -> int:
        """Codes per sub-codebook (K for a plain codebook)."""
        return round(self.codebook_size ** (1 / self.groups))

    @property
    def enc_hidden(self) -> int:
        return self.encoder_hidden or self.hidden

    @property
    def enc_res_blocks(self) -> int:
        return self.res_blocks if self.encoder_res_blocks < 0 else self.encoder_res_blocks


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


def make_encoder(in_ch: int, cfg: LayerConfig) -> nn.Sequential:
    """Halves the spatial size: stride-2 conv, residual blocks, 1x1 projection to the code dimension."""
    hidden = cfg.enc_hidden
    if cfg.space_to_depth:  # body at 1/4 of the input grid, 4 codes out per body position
        mods: list[nn.Module] = [nn.PixelUnshuffle(4), nn.Conv2d(in_ch * 16, hidden, 3, padding=1)]
    else:
        mods = [nn.Conv2d(in_ch, hidden, 4, stride=2, padding=1)]
    mods += [ResBlock(hidden) for _ in range(cfg.enc_res_blocks)]
    mods += [nn.GELU(), nn.Conv2d(hidden, hidden, 1), nn.GELU()]
    if cfg.space_to_depth:
        mods += [nn.Conv2d(hidden, cfg.code_dim * 4, 1), nn.PixelShuffle(2)]
    else:
        mods += [nn.Conv2d(hidden, cfg.code_dim, 1)]
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
    """A codebook of K unit vectors of dimension D (cosine-similarity VQ), plain or as a product of sub-codebooks.

    Inputs are unit vectors too (see :meth:`HQALayer.encode_ze`), so squared distances lie in [0, 4] and the
    Gumbel logits ``-logit_scale * distance`` have a fixed, well-conditioned scale.

    With ``groups`` G > 1 (a product codebook) a code is the concatenation of G unit sub-codes of D / G channels,
    scaled by 1 / sqrt(G) so that it is a unit vector again; sub-codebook g has Kg = K ** (1 / G) codes and the id
    is the mixed-radix number of the sub-ids, sub-codebook 0 most significant. z is a unit vector of the same kind
    (each group normalised), so the nearest code of the whole product is the nearest sub-code of every group:
    G * Kg scores instead of K. :attr:`codes` is the whole (K, D) table, for lookups.

    Training: Gumbel-softmax over those logits (per group; temperature set by the trainer), with a KL term to the
    uniform prior and a commitment term. Inference: argmin.
    """

    def __init__(self, codebook_size: int, code_dim: int, logit_scale: float = 10.0, groups: int = 1) -> None:
        super().__init__()
        self.groups = groups
        self.sub_size = round(codebook_size ** (1 / groups))
        self.codebook_size = codebook_size
        shape = (codebook_size, code_dim) if groups == 1 else (groups, self.sub_size, code_dim // groups)
        self.codebook = nn.Parameter(torch.randn(shape))  # plain: (K, D); product: (G, Kg, D / G)
        self.logit_scale = logit_scale
        self.temperature = 1.0

    @property
    def sub_codes(self) -> torch.Tensor:
        """The sub-codebooks as unit vectors, (G, Kg, D / G); (1, K, D) for a plain codebook."""
        cb = self.codebook if self.groups > 1 else self.codebook.unsqueeze(0)
        return F.normalize(cb, dim=-1)

    @property
    def codes(self) -> torch.Tensor:
        """The codebook as unit vectors, (K, D)."""
        if self.groups == 1:
            return F.normalize(self.codebook, dim=1)
        sub = self.sub_codes
        digits = self.digits(torch.arange(self.codebook_size, device=sub.device))  # (K, G)
        parts = [sub[g][digits[:, g]] for g in range(self.groups)]
        return torch.cat(parts, 1) / math.sqrt(self.groups)

    def digits(self, ids: torch.Tensor) -> torch.Tensor:
        """Sub-ids of ``ids``, (..., G), sub-codebook 0 first."""
        radix = self.sub_size ** torch.arange(self.groups - 1, -1, -1, device=ids.device)
        return torch.div(ids.unsqueeze(-1), radix, rounding_mode="floor") % self.sub_size

    def combine(self, digits: torch.Tensor) -> torch.Tensor:
        """Ids from sub-ids (..., G)."""
        radix = self.sub_size ** torch.arange(self.groups - 1, -1, -1, device=digits.device)
        return (digits * radix).sum(-1)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared distances (N, G, Kg, h, w) from each unit sub-vector of z (N, D, h, w) to its sub-codes."""
        c = self.sub_codes  # (G, Kg, Dg)
        zg = z.unflatten(1, (self.groups, -1)) * math.sqrt(self.groups)  # (N, G, Dg, h, w), unit per group
        zz = (zg * zg).sum(2, keepdim=True)
        zc = torch.einsum("ngdhw,gkd->ngkhw", zg, c)
        return (zz - 2 * zc + (c * c).sum(-1).view(1, self.groups, -1, 1, 1)).clamp_min(0)

    # Positions per block of the CPU search: a block's (positions, K) scores stay in cache instead of a fresh
    # (positions, K) matrix (78 MB for a 640x480 frame at layer 1) being written, page-faulted and read back.
    CPU_BLOCK = 2048

    def ids(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code per position, (N, h, w) int64.

        argmax of z.c - |c|^2 / 2 (|z|^2 is constant per position), as one fused matrix product over a
        (positions, K) layout so that the reduction runs over contiguous memory. On a CPU, large grids are
        searched in blocks of positions: each score is the same dot product, so the ids are the same. A product
        codebook is searched group by group.
        """
        if self.groups > 1:
            n, d, h, w = z.shape
            zg = z.permute(0, 2, 3, 1).reshape(-1, self.groups, d // self.groups)  # (P, G, Dg)
            c = self.sub_codes
            scores = torch.einsum("pgd,gkd->pgk", zg, c) - 0.5 * (c * c).sum(-1)
            return self.combine(scores.argmax(-1)).view(n, h, w)
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
        d = self.distances(z)  # (N, G, Kg, h, w)
        logits = -self.logit_scale * d
        soft = F.gumbel_softmax(logits, tau=self.temperature, hard=False, dim=2)
        z_q = torch.einsum("ngkhw,gkd->ngdhw", soft, self.sub_codes).flatten(1, 2) / math.sqrt(self.groups)
        ids = self.combine(d.argmin(2).movedim(1, -1))  # (N, h, w)
        log_q = F.log_softmax(logits, dim=2)
        kl = (log_q.exp() * (log_q + math.log(self.sub_size))).sum(2).mean()
        commit = F.mse_loss(z, self.lookup(ids).detach())
        return z_q, ids, {"kl": kl, "commit": commit}

    # ---- training helpers --------------------------------------------------------------------------
    def usage(self, ids: torch.Tensor) -> torch.Tensor:
        """How often each sub-code is used in ``ids``, (G, Kg)."""
        digits = self.digits(ids.flatten())
        return torch.stack([torch.bincount(digits[:, g], minlength=self.sub_size) for g in range(self.groups)]).float()

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, gen: torch.Generator) -> None:
        """Start every sub-codebook on sub-vectors of encoder outputs ``z`` (N, D, h, w) at random positions."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.groups, z.shape[1] // self.groups)
        idx = torch.randint(flat.shape[0], (self.sub_size,), generator=gen, device="cpu").to(flat.device)
        start = flat[idx].transpose(0, 1)  # (G, Kg, Dg)
        start = start + 0.01 * torch.randn_like(start)
        self.codebook.copy_(start if self.groups > 1 else start[0])

    @torch.no_grad()
    def reset_dead(self, usage: torch.Tensor, gen: torch.Generator) -> int:
        """Move sub-codes used less than 3% of their sub-codebook's mean usage onto busy ones plus noise; returns
        how many moved. ``usage``: (G, Kg) from :meth:`usage`."""
        moved = 0
        for g in range(self.groups):
            cb = self.codebook[g] if self.groups > 1 else self.codebook
            u = usage[g]
            dead = (u < 0.03 * u.mean()).nonzero().flatten()
            if len(dead) == 0 or u.sum() == 0:
                continue
            busy = torch.multinomial(u.float().cpu(), len(dead), replacement=True, generator=gen).to(cb.device)
            noise = torch.randn(len(dead), cb.shape[1], generator=gen).to(cb.device)
            cb[dead] = cb[busy] + 0.05 * cb[busy].norm(dim=1, keepdim=True) / cb.shape[1] ** 0.5 * noise
            moved += len(dead)
        return moved


class HQALayer(nn.Module):
    """Encoder, quantiser and decoder of one layer, plus running statistics of its own z_e.

    The statistics normalise z_e for the layer above (its input and its reconstruction target) and normalise this
    layer's quantisation error.
    """

    def __init__(self, in_ch: int, cfg: LayerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = make_encoder(in_ch, cfg)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, groups=cfg.groups)
        self.decoder = make_decoder(in_ch, cfg)
        self.register_buffer("ze_mean", torch.zeros(cfg.code_dim))
        self.register_buffer("ze_std", torch.ones(cfg.code_dim))

    def encode_ze(self, h: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
        """Continuous encoder output z_e, as unit vectors along the channel axis (``encoder``: an equivalent
        stand-in for :attr:`encoder`, such as the export's rewritten copy). With a product codebook each group
        of channels is a unit vector, scaled by 1 / sqrt(groups)."""
        z = (self.encoder if encoder is None else encoder)(h)
        g = self.cfg.groups
        if g == 1:
            return F.normalize(z, dim=1)
        return F.normalize(z.unflatten(1, (g, -1)), dim=2).flatten(1, 2) / math.sqrt(g)

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

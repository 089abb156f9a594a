"""Export-friendly views of an :class:`~edgecodec.nn.HQAStack`: whole-graph encoder and per-layer decoders.

They compute exactly what :meth:`HQAStack.encode` and :meth:`HQAStack.decode` compute, written with plain tensor
operations only (no Python loops over data, no ``out=`` arguments), so that ``torch.onnx.export``,
``torch.export`` (torch-tensorrt) and ``torch.compile`` can capture them whole, with dynamic N, H and W:

* :class:`EncoderGraph`: frames (N, 3, H, W) float32 in [0, 1] -> ids of every layer (N, h_l, w_l) int64 and the
  normalised quantisation error (N, L). The nearest-code search (argmax of z.c - |c|^2/2 over the unit codes) and
  the codebook lookup that qerr needs are inside the graph. With ``outputs="z"`` it stops before the search and
  returns each layer's unit z_e in (N, h, w, D) layout instead (the ONNX exporter appends its own search). With
  ``outputs="all"`` it returns both: the ids of every layer, qerr, then the z_e of every layer (what
  ``Backend.encode_latents`` needs: torch-compile and TensorRT run this mode for it).
* :class:`DecoderGraph`: ids (N, h, w) int64 of one layer -> frames (N, 3, H, W) float32 in [0, 1], the codebook
  lookup inside the graph.

With ``space_to_depth_op=True`` (the ONNX export) every pixel-unshuffle that feeds a convolution becomes ONNX's
``SpaceToDepth``, and that convolution's input channels are permuted to match: ``SpaceToDepth`` orders channels
offset-major ("DCR"), pixel-unshuffle channel-major, and as a 6-D Transpose the unshuffle of a 640x480 frame took
3.7 ms on 2 cores against 0.3 ms (tools/bench_onnx_options.py, docs/backends.md). Same products, summed in another
order.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from edgecodec.nn import HQAStack


class _SpaceToDepthFn(torch.autograd.Function):
    """Space-to-depth with ONNX's channel order: out[:, (i * b + j) * C + c] = x[:, c, i::b, j::b]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, block: int) -> torch.Tensor:  # noqa: ANN001
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // block, block, w // block, block).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(n, block * block * c, h // block, w // block)

    @staticmethod
    def symbolic(g, x, block: int):  # noqa: ANN001, ANN205 - torch.onnx graph context and values
        return g.op("SpaceToDepth", x, blocksize_i=block)


class SpaceToDepth(nn.Module):
    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SpaceToDepthFn.apply(x, self.block)


def with_space_to_depth(seq: nn.Sequential) -> nn.Sequential:
    """A copy of ``seq`` where each PixelUnshuffle(b) followed by a Conv2d is a :class:`SpaceToDepth` followed by
    the same convolution with its input channels permuted to SpaceToDepth's order."""
    mods = list(seq)
    out: list[nn.Module] = []
    for i, mod in enumerate(mods):
        prev = mods[i - 1] if i else None
        if isinstance(mod, nn.PixelUnshuffle) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.Conv2d):
            out.append(SpaceToDepth(mod.downscale_factor))
        elif isinstance(prev, nn.PixelUnshuffle) and isinstance(mod, nn.Conv2d):
            b2 = prev.downscale_factor**2
            c = mod.in_channels // b2
            # new channel (offset o, channel c) reads old channel c * b2 + o
            order = torch.arange(mod.in_channels).view(c, b2).t().reshape(-1)
            conv = copy.deepcopy(mod)
            with torch.no_grad():
                conv.weight.copy_(mod.weight[:, order])
            out.append(conv)
        else:
            out.append(mod)
    return nn.Sequential(*out).eval()


def _codes(net: HQAStack, index: int) -> torch.Tensor:
    return net.layers[index].quantizer.codes.detach().clone()


ENCODER_OUTPUTS = ("ids", "z", "all")


class EncoderGraph(nn.Module):
    """frames -> ``outputs``: "ids" (ids_1 .. ids_L, qerr), "z" (z_1 .. z_L) or "all" (ids_1 .. ids_L, qerr,
    z_1 .. z_L); ids (N, h_l, w_l) int64, qerr (N, L), z_l (N, h_l, w_l, D_l) unit vectors (per group, scaled by
    1 / sqrt(G), for a product codebook)."""

    def __init__(self, net: HQAStack, outputs: str = "ids", space_to_depth_op: bool = False) -> None:
        super().__init__()
        if outputs not in ENCODER_OUTPUTS:
            raise ValueError(f"outputs must be one of {', '.join(map(repr, ENCODER_OUTPUTS))}, not {outputs!r}")
        self.net = net.eval()
        self.outputs = outputs
        rewrite = with_space_to_depth if space_to_depth_op else (lambda seq: seq)
        self.encoders = nn.ModuleList(rewrite(lyr.encoder) for lyr in net.layers)
        for i in range(net.num_layers):
            q = net.layers[i].quantizer
            c = _codes(net, i)
            self.register_buffer(f"codes_{i}", c)
            # the search's codebook: the codes themselves, or a product codebook's sub-codes (G, Kg, D / G)
            s = c if q.groups == 1 else q.sub_codes.detach().clone()
            self.register_buffer(f"codes_t_{i}", s.transpose(-1, -2).contiguous())
            bias = -0.5 * (s * s).sum(-1)  # (K,) or (G, Kg)
            self.register_buffer(f"bias_{i}", bias if q.groups == 1 else bias.unsqueeze(1))  # (G, 1, Kg)
            self.register_buffer(f"radix_{i}", q.sub_size ** torch.arange(q.groups - 1, -1, -1))
            self.register_buffer(f"inv_std_{i}", 1.0 / net.layers[i].ze_std.detach().clone())

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = frames - 0.5
        ids, qerr, zs = [], [], []
        for i, lyr in enumerate(self.net.layers):
            z_e = lyr.encode_ze(h, self.encoders[i])
            zt = z_e.permute(0, 2, 3, 1)  # (N, h, w, D)
            if self.outputs != "ids":
                zs.append(zt)
            if self.outputs != "z":
                radix = getattr(self, f"radix_{i}")
                if radix.numel() == 1:
                    score = torch.matmul(zt, getattr(self, f"codes_t_{i}")) + getattr(self, f"bias_{i}")
                    idx = score.argmax(-1)
                else:  # per group: (N, h, w, G, 1, D / G) @ (G, D / G, Kg) -> (N, h, w, G, 1, Kg)
                    zg = zt.unflatten(-1, (radix.numel(), -1)).unsqueeze(-2)
                    score = torch.matmul(zg, getattr(self, f"codes_t_{i}")) + getattr(self, f"bias_{i}")
                    idx = (score.squeeze(-2).argmax(-1) * radix).sum(-1)
                d = (zt - F.embedding(idx, getattr(self, f"codes_{i}"))) * getattr(self, f"inv_std_{i}")
                ids.append(idx)
                qerr.append((d * d).mean((1, 2, 3)))
            h = lyr.normalize(z_e)
        if self.outputs == "z":
            return tuple(zs)
        return (*ids, torch.stack(qerr, 1), *zs)


class DecoderGraph(nn.Module):
    def __init__(self, net: HQAStack, layer: int, space_to_depth_op: bool = False) -> None:
        super().__init__()
        if not 1 <= layer <= net.num_layers:
            raise ValueError(f"layer {layer} out of range 1..{net.num_layers}")
        self.net = net.eval()
        rewrite = with_space_to_depth if space_to_depth_op else (lambda seq: seq)
        self.decoders = nn.ModuleList(rewrite(lyr.decoder) for lyr in net.layers[:layer])
        self.layer = layer
        self.requantize = net.config.requantize
        for i in range(layer):
            self.register_buffer(f"codes_{i}", _codes(net, i))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        layers = self.net.layers
        h = F.embedding(ids, getattr(self, f"codes_{self.layer - 1}")).permute(0, 3, 1, 2)
        for idx in range(self.layer - 1, 0, -1):  # mirrors HQAStack.decode_from
            below = layers[idx - 1]
            z_e = below.denormalize(self.decoders[idx](h))
            if self.requantize:
                c = getattr(self, f"codes_{idx - 1}")
                zt = z_e.permute(0, 2, 3, 1)
                near = (torch.matmul(zt, c.t()) - 0.5 * (c * c).sum(1)).argmax(-1)
                h = F.embedding(near, c).permute(0, 3, 1, 2)
            else:
                h = F.normalize(z_e, dim=1)
        return (self.decoders[0](h) + 0.5).clamp(0, 1)

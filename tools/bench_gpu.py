"""Frames per second of eager PyTorch and torch.compile on a CUDA GPU (or the CPU): encode and decode per layer.

    python tools/bench_gpu.py [--sizes 1280x720 1920x1080] [--modes eager compile] [--iters 50] [--json FILE]
    python tools/bench_gpu.py --device cpu --sizes 64x64 --iters 1          # a smoke run without a GPU

Needs only torch, numpy and safetensors (no onnxruntime, no constriction): it runs from a checkout without
installing the package. Each row gives end-to-end fps as the codec sees them (numpy frame in, numpy ids out, copies
to and from the GPU included) and, in brackets, fps of the GPU work alone (tensors already on the device). The last
column is the fraction of ids that differ from eager fp32 on the CPU, per layer (TF32, fp16 or a compiler's
reordering moves near-ties). Frames are padded to the model's multiple, as the codec does (1080 -> 1088).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecodec.runtime.graphs import DecoderGraph, EncoderGraph  # noqa: E402
from edgecodec.zoo import DEFAULT_MODEL, load_model  # noqa: E402


def parse_size(text: str, multiple: int) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


def frame(size: tuple[int, int]) -> np.ndarray:
    """A deterministic smooth frame with edges, (1, 3, H, W) float32 in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    h, w = size
    x = F.interpolate(torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g), size=size, mode="bilinear")
    x[..., h // 4 : h // 2, w // 4 : w // 2] = 0.9
    return x.clamp(0, 1).numpy()


def raise_recompile_limit(limit: int = 64) -> None:
    """The decoders of all layers share one forward(): each layer and size is one more compiled entry."""
    cfg = torch._dynamo.config
    for key in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, key):
            setattr(cfg, key, max(getattr(cfg, key), limit))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, iters: int, warmup: int, device: torch.device) -> float:  # noqa: ANN001
    """Median seconds of fn()."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run_mode(mode: str, net, ref_ids, size, args, device, autocast) -> dict:  # noqa: ANN001
    x_np = frame(size)
    enc_mod = EncoderGraph(net).to(device).eval()
    dec_mods = [DecoderGraph(net, layer).to(device).eval() for layer in range(1, net.num_layers + 1)]
    if mode == "compile":
        raise_recompile_limit()
        opts = {"backend": args.compile_backend, "dynamic": False}
        if args.compile_mode:
            opts["mode"] = args.compile_mode
        enc_mod = torch.compile(enc_mod, **opts)
        dec_mods = [torch.compile(d, **opts) for d in dec_mods]

    def encode(x: torch.Tensor):  # noqa: ANN202
        with torch.inference_mode(), autocast():
            return enc_mod(x)

    def decode(ids: torch.Tensor, layer: int):  # noqa: ANN202
        with torch.inference_mode(), autocast():
            return dec_mods[layer - 1](ids)

    t0 = time.perf_counter()
    x_dev = torch.from_numpy(x_np).to(device)
    outs = encode(x_dev)
    ids_dev = [torch.from_numpy(o.cpu().numpy()).to(device) for o in outs[:-1]]  # plain tensors, as in e2e calls
    for layer in range(1, net.num_layers + 1):
        decode(ids_dev[layer - 1], layer)
    sync(device)
    first_call_s = time.perf_counter() - t0  # includes compilation for mode compile

    enc_e2e = timed(
        lambda: [o.cpu() for o in encode(torch.from_numpy(x_np).to(device))], args.iters, args.warmup, device
    )
    enc_dev = timed(lambda: encode(x_dev), args.iters, args.warmup, device)
    ids_np = [i.cpu().numpy() for i in ids_dev]
    dec_e2e, dec_dev = [], []
    for layer in range(1, net.num_layers + 1):
        i_np, i_dev = ids_np[layer - 1], ids_dev[layer - 1]
        dec_e2e.append(
            timed(
                lambda i_np=i_np, layer=layer: decode(torch.from_numpy(i_np).to(device), layer).cpu(),
                args.iters,
                args.warmup,
                device,
            )
        )
        dec_dev.append(timed(lambda i_dev=i_dev, layer=layer: decode(i_dev, layer), args.iters, args.warmup, device))
    mismatch = [float(np.mean(a != r)) for a, r in zip(ids_np, ref_ids, strict=True)]
    return {
        "mode": mode,
        "size": f"{size[1]}x{size[0]}",
        "first_call_s": round(first_call_s, 2),
        "encode_fps": round(1 / enc_e2e, 1),
        "encode_fps_device": round(1 / enc_dev, 1),
        "decode_fps_per_layer": [round(1 / t, 1) for t in dec_e2e],
        "decode_fps_per_layer_device": [round(1 / t, 1) for t in dec_dev],
        "id_mismatch_vs_cpu": mismatch,
    }


def print_header(n: int) -> None:
    print(
        "| mode | size | encode fps | "
        + " | ".join(f"decode L{i} fps" for i in range(1, n + 1))
        + " | ids differing from CPU (max over layers) | first call s |"
    )
    print("|" + "---|" * (n + 5), flush=True)


def print_row(r: dict) -> None:
    dec = " | ".join(
        f"{a:.0f} ({b:.0f})" for a, b in zip(r["decode_fps_per_layer"], r["decode_fps_per_layer_device"], strict=True)
    )
    print(
        f"| {r['mode']} | {r['size']} | {r['encode_fps']:.0f} ({r['encode_fps_device']:.0f}) | {dec} | "
        f"{max(r['id_mismatch_vs_cpu']):.4%} | {r['first_call_s']:.1f} |",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    ap.add_argument("--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument(
        "--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead (CUDA graphs) or max-autotune"
    )
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default inductor)")
    ap.add_argument(
        "--autocast",
        default="none",
        choices=["none", "fp16", "bf16"],
        help="run under torch.autocast in this dtype (default none: fp32)",
    )
    ap.add_argument(
        "--tf32",
        default="off",
        choices=["default", "on", "off"],
        help="TF32 for CUDA matmuls and convolutions: off (default, as the torch backend sets it), on, or "
        "default (PyTorch's defaults: TF32 convolutions)",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available here; use --device cpu for a smoke run", file=sys.stderr)
        return 2
    if args.tf32 != "default":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.autocast)

    def autocast():  # noqa: ANN202
        return torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)

    model = load_model(args.model)
    cpu_net = load_model(args.model).net  # the reference, eager fp32 on the CPU
    net = model.net.to(device).eval()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"model {model.name} ({model.fingerprint_hex}) on {name}; torch {torch.__version__}; autocast "
        f"{args.autocast}; TF32 {args.tf32} (matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn "
        f"{torch.backends.cudnn.allow_tf32}); compile {args.compile_backend}/{args.compile_mode or 'default'}; "
        f"median of {args.iters}"
    )
    print("fps end to end (numpy in, numpy out) and, in brackets, of the device work alone\n")
    print_header(net.num_layers)
    rows = []
    for text in args.sizes:
        size = parse_size(text, net.multiple)
        with torch.inference_mode():
            ref_ids = [i.numpy() for i in cpu_net.encode(torch.from_numpy(frame(size))).ids]
        for mode in args.modes:
            rows.append(run_mode(mode, net, ref_ids, size, args, device, autocast))
            print_row(rows[-1])
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Frames per second of each inference backend on this machine: encode (every layer + qerr) and decode per layer.

    python tools/bench_backends.py [--sizes 320x240 640x480 1280x720] [--backends torch onnx] [--threads 2]
                                   [--json FILE]

Frames are padded to the model's multiple, as the codec does (1280x720 runs at 1280x736). Each number is the median
of ``--iters`` timed calls after warm-up calls; the load average before and after is printed because a shared machine
makes numbers noisy. ONNX graphs come from the artefact cache (exported on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecodec.export import padded, parse_size, synthetic_frame  # noqa: E402
from edgecodec.zoo import DEFAULT_MODEL, load_model  # noqa: E402


def timed(fn, iters: int, warmup: int) -> tuple[float, float]:  # noqa: ANN001
    """(median, min) seconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), float(np.min(times))


def bench(backend, size: tuple[int, int], iters: int, warmup: int) -> dict:  # noqa: ANN001
    frames = synthetic_frame(size)
    enc_med, enc_min = timed(lambda: backend.encode(frames), iters, warmup)
    ids, _ = backend.encode(frames)
    dec_med, dec_min = [], []
    for layer in range(1, backend.num_layers + 1):
        med, best = timed(lambda layer=layer: backend.decode(ids[layer - 1], layer), iters, warmup)
        dec_med.append(med)
        dec_min.append(best)
    return {
        "backend": backend.name,
        "size": f"{size[1]}x{size[0]}",
        "encode_fps": round(1 / enc_med, 2),
        "decode_fps_per_layer": [round(1 / t, 2) for t in dec_med],
        "encode_ms": {"median": round(enc_med * 1e3, 2), "min": round(enc_min * 1e3, 2)},
        "decode_ms_per_layer": {
            "median": [round(t * 1e3, 2) for t in dec_med],
            "min": [round(t * 1e3, 2) for t in dec_min],
        },
    }


def table(rows: list[dict]) -> str:
    n = max(len(r["decode_fps_per_layer"]) for r in rows)
    head = "| backend | size | encode fps | " + " | ".join(f"decode L{i} fps" for i in range(1, n + 1)) + " |"
    lines = [head, "|" + "---|" * (3 + n)]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['size']} | {r['encode_fps']:.1f} | "
            + " | ".join(f"{v:.1f}" for v in r["decode_fps_per_layer"])
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--sizes", nargs="+", default=["320x240", "640x480", "1280x720"])
    ap.add_argument(
        "--backends",
        nargs="+",
        default=["torch", "onnx"],
        help="any of torch, torch-compile, onnx, tensorrt (default torch onnx)",
    )
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime (default 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cache", default=None, help="artefact cache folder")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    import torch

    from edgecodec.runtime import make_backend

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    sizes = [padded(parse_size(s), model.net.multiple) for s in args.sizes]
    load_before = os.getloadavg()
    rows = []
    for name in args.backends:
        backend = make_backend(name, model, args.device, cache_dir=args.cache, threads=args.threads)
        for size in sizes:
            rows.append(bench(backend, size, args.iters, args.warmup))
            print(f"{name} {size[1]}x{size[0]}: encode {rows[-1]['encode_fps']:.1f} fps", file=sys.stderr)
    load_after = os.getloadavg()
    print(
        f"model {model.name}, {args.threads} threads, device {args.device}, median of {args.iters} calls; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} CPUs\n"
    )
    print(table(rows))
    if args.json:
        meta = {
            "model": model.name,
            "fingerprint": model.fingerprint_hex,
            "threads": args.threads,
            "device": args.device,
            "iters": args.iters,
            "loadavg": [load_before[0], load_after[0]],
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

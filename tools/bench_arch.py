"""Speed of an architecture before it is trained: encode and decode fps of its ONNX graphs on this machine.

    python tools/bench_arch.py [--arch default cpu-fast] [--models hqa5] [--sizes 640x480] [--threads 2]
                               [--iters 30] [--json FILE]

Weights are random (seeded): the time of a network does not depend on its weights, so an architecture can be sized
for a CPU here and trained on a GPU elsewhere. Each architecture is saved as a model in a temporary folder and run
through the onnx backend exactly as a trained one is, timed by tools/bench_backends.py (blocks of calls, the
architectures taking turns; fps is 1 / median). ``--models`` adds trained models, with their own weights. The table
also gives each encoder's multiply-accumulates per frame (convolutions, and the scores of the search).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backends import bench  # noqa: E402

from edgecodec.export import padded, parse_size  # noqa: E402


def encoder_macs(net, size: tuple[int, int]) -> tuple[float, float]:  # noqa: ANN001 - HQAStack
    """(convolution, search) multiply-accumulates of one encode at ``size`` (H, W), in GMAC."""
    import torch

    conv = 0

    def hook(mod, _inp, out) -> None:  # noqa: ANN001
        nonlocal conv
        conv += out.numel() * mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        enc = net.encode(torch.rand(1, 3, *size))
    for h in handles:
        h.remove()
    # a position scores groups x sub_size codes of code_dim / groups channels each
    search = sum(
        ids.numel() * lyr.quantizer.sub_size * lyr.cfg.code_dim for lyr, ids in zip(net.layers, enc.ids, strict=True)
    )
    return conv / 1e9, search / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--arch",
        nargs="+",
        default=["default", "cpu-fast"],
        help="architecture names (edgecodec train --arch) or JSON files",
    )
    ap.add_argument(
        "--models",
        nargs="*",
        default=[],
        metavar="MODEL",
        help="trained models to time beside them (by name or path), with their own weights",
    )
    ap.add_argument("--sizes", nargs="+", default=["640x480"], metavar="WxH")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch

    from edgecodec.nn import HQAStack
    from edgecodec.runtime import make_backend
    from edgecodec.train import load_arch
    from edgecodec.zoo import load_model, save_model

    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for i, name in enumerate(args.arch):
            torch.manual_seed(0)
            net = HQAStack(load_arch(name)).eval()
            priors = [np.ones(c.codebook_size, np.int64) for c in net.config.layers]
            models[name] = save_model(net, Path(tmp) / f"arch{i}", priors=priors)
        models |= {f"{name} (trained)": load_model(name) for name in args.models}
        backends = []
        for label, model in models.items():
            backend = make_backend("onnx", model, cache_dir=Path(tmp) / "cache", threads=args.threads)
            backend.name = label  # bench() keys its rows by name
            backends.append(backend)
        multiples = {m.net.multiple for m in models.values()}
        if len(multiples) > 1:
            ap.error(f"the architectures need frame sides of different multiples ({sorted(multiples)}); time apart")
        (multiple,) = multiples
        print(
            f"# {os.cpu_count()} CPUs, {args.threads} threads, onnxruntime {ort.__version__}, "
            f"load average {os.getloadavg()[0]:.2f}; architectures with random weights\n"
        )
        n_max = max(m.num_layers for m in models.values())
        print(
            "| architecture | size | encoder GMAC (convs + search) | encode fps | "
            + " | ".join(f"decode L{i}" for i in range(1, n_max + 1))
            + " |"
        )
        print("|---|---|---|---|" + "---|" * n_max)
        rows = []
        for text in args.sizes:
            size = parse_size(text)
            for row in bench(backends, size, args.iters, args.warmup, multiple):
                conv, search = encoder_macs(models[row["backend"]].net, padded(size, multiple))
                row |= {"arch": row.pop("backend"), "conv_gmac": round(conv, 3), "search_gmac": round(search, 3)}
                rows.append(row)
                print(
                    f"| {row['arch']} | {text} | {conv + search:.2f} ({conv:.2f} + {search:.2f}) | "
                    f"{row['encode_fps']:.1f} | " + " | ".join(f"{f:.1f}" for f in row["decode_fps_per_layer"]) + " |"
                )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

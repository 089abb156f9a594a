"""Speed of an architecture before it is trained: encode and decode fps of its ONNX graphs on this machine.

    python tools/bench_arch.py [--arch default cpu-fast] [--models hqa5] [--sizes 640x480] [--threads 2]
                               [--iters 30] [--json FILE]

Weights are random (seeded): the time of a network does not depend on its weights, so an architecture can be sized
for a CPU here and trained on a GPU elsewhere. Each architecture is exported as the onnx backend exports a model
(the nearest-code search inside the graph) and run through ONNX Runtime with the backend's session options. The
table also gives each encoder's multiply-accumulates per frame (convolutions, and the scores of the search).
Architectures take turns in blocks of their own calls (as in tools/bench_backends.py); fps is 1 / median.
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

ROUNDS = 2


def encoder_macs(net, size: tuple[int, int]) -> tuple[float, float]:  # noqa: ANN001 - HQAStack
    """(convolution, search) multiply-accumulates of one encode at ``size`` (H, W), in GMAC."""
    import torch

    conv = 0

    def hook(mod, _inp, out) -> None:  # noqa: ANN001
        nonlocal conv
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        conv += out.numel() * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        enc = net.encode(torch.rand(1, 3, *size))
    for h in handles:
        h.remove()
    search = 0
    for lyr, ids in zip(net.layers, enc.ids, strict=True):
        q = lyr.quantizer
        search += ids.numel() * q.groups * q.sub_size * lyr.cfg.code_dim // q.groups
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
    from edgecodec.runtime.onnx_backend import export_decoder, export_encoder, session_options
    from edgecodec.train import load_arch

    torch.manual_seed(0)
    from edgecodec.zoo import load_model

    nets = {name: HQAStack(load_arch(name)).eval() for name in args.arch}
    nets |= {f"{name} (trained)": load_model(name).net for name in args.models}
    opts = session_options(ort, args.threads)
    sessions = {}
    for name, net in nets.items():
        enc = ort.InferenceSession(export_encoder(net), opts, providers=["CPUExecutionProvider"])
        decs = [
            ort.InferenceSession(export_decoder(net, layer), opts, providers=["CPUExecutionProvider"])
            for layer in range(1, net.num_layers + 1)
        ]
        sessions[name] = (enc, decs)
    print(
        f"# {os.cpu_count()} CPUs, {args.threads} threads, onnxruntime {ort.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}; architectures with random weights\n"
    )
    rows = []
    n_max = max(n.num_layers for n in nets.values())
    print(
        "| architecture | size | encoder GMAC (convs + search) | encode fps | "
        + " | ".join(f"decode L{i}" for i in range(1, n_max + 1))
        + " |"
    )
    print("|---|---|---|---|" + "---|" * n_max)
    for text in args.sizes:
        size = parse_size(text)
        times = {name: ([], [[] for _ in nets[name].layers]) for name in nets}
        frames = {name: synthetic_frame(padded(size, nets[name].multiple)) for name in nets}
        ids = {name: sessions[name][0].run(None, {"frames": frames[name]})[:-1] for name in nets}
        for r in range(ROUNDS):
            n = args.iters // ROUNDS + (r < args.iters % ROUNDS)
            for name, (enc, decs) in sessions.items():
                for i in range(args.warmup + n):
                    t = time.perf_counter()
                    enc.run(None, {"frames": frames[name]})
                    te = time.perf_counter() - t
                    td = []
                    for layer, dec in enumerate(decs):
                        t = time.perf_counter()
                        dec.run(None, {"ids": ids[name][layer]})
                        td.append(time.perf_counter() - t)
                    if i >= args.warmup:
                        times[name][0].append(te)
                        for layer, v in enumerate(td):
                            times[name][1][layer].append(v)
        for name, net in nets.items():
            conv, search = encoder_macs(net, padded(size, net.multiple))
            enc_fps = 1 / float(np.median(times[name][0]))
            dec_fps = [1 / float(np.median(t)) for t in times[name][1]]
            rows.append(
                {
                    "arch": name,
                    "size": text,
                    "encoder_gmac": round(conv + search, 3),
                    "conv_gmac": round(conv, 3),
                    "search_gmac": round(search, 3),
                    "encode_fps": round(enc_fps, 1),
                    "decode_fps_per_layer": [round(f, 1) for f in dec_fps],
                }
            )
            print(
                f"| {name} | {text} | {conv + search:.2f} ({conv:.2f} + {search:.2f}) | {enc_fps:.1f} | "
                + " | ".join(f"{f:.1f}" for f in dec_fps)
                + " |" * (1 + n_max - len(dec_fps))
            )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Frames per second of each inference backend on this machine: encode (every layer + qerr) and decode per layer.

    python tools/bench_backends.py [--sizes 320x240 640x480 1280x720] [--backends torch onnx onnx-int8] [--threads 2]
                                   [--json FILE]

Frames are padded to the model's multiple, as the codec does: 320x240 runs at 320x256 and 1280x720 at 1280x736
(the table shows the padded size in brackets). Each number is the median
of ``--iters`` timed calls after warm-up calls; the load average before and after is printed because a shared machine
makes numbers noisy. Each backend is timed in a process of its own, one after the other (issue 16: two ONNX Runtime
backends in one process under-reported both by 25-45%, their thread pools competing); ``--same-process`` times them
in one process, in blocks of their own calls, taking turns. ONNX graphs come from the artefact cache (exported on
first use).

    python tools/bench_backends.py --backends torch onnx --parity [DATA]

compares instead: ids per layer and PSNR of frames decoded from the same ids, on every Kodak image and frames of each
clip under DATA (default ../shared/data).
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

ROUNDS = 2  # each backend runs in this many blocks, alternating, so that load changes hit all alike


def bench(backends: list, size: tuple[int, int], iters: int, warmup: int, multiple: int) -> list[dict]:  # noqa: ANN001
    """fps of each backend at ``size`` (H, W), padded to ``multiple`` as the codec pads.

    Each backend runs in blocks of its own calls (``warmup`` untimed calls, then its share of ``iters``), the
    backends taking turns for :data:`ROUNDS` rounds. Blocks rather than call-by-call interleaving: right after a
    torch call, torch's idle OpenMP threads still compete for the two cores, and interleaved ONNX Runtime calls
    measured up to 1.8x slower than in a block of their own (docs/backends.md).
    """
    run = padded(size, multiple)
    frames = synthetic_frame(run)
    ids = {b.name: b.encode(frames)[0] for b in backends}
    enc = {b.name: [] for b in backends}
    dec = {b.name: [[] for _ in range(b.num_layers)] for b in backends}
    share = [iters // ROUNDS + (r < iters % ROUNDS) for r in range(ROUNDS)]
    for n in share:
        for b in backends:
            for i in range(warmup + n):
                t = time.perf_counter()
                b.encode(frames)
                e = time.perf_counter() - t
                d = []
                for layer in range(1, b.num_layers + 1):
                    t = time.perf_counter()
                    b.decode(ids[b.name][layer - 1], layer)
                    d.append(time.perf_counter() - t)
                if i >= warmup:
                    enc[b.name].append(e)
                    for layer, v in enumerate(d):
                        dec[b.name][layer].append(v)
    rows = []
    for b in backends:
        e = np.array(enc[b.name])
        d = [np.array(v) for v in dec[b.name]]
        rows.append(
            {
                "backend": b.name,
                "size": f"{size[1]}x{size[0]}",
                "padded_size": f"{run[1]}x{run[0]}",
                "encode_fps": round(1 / float(np.median(e)), 2),
                "decode_fps_per_layer": [round(1 / float(np.median(v)), 2) for v in d],
                "encode_ms": {"median": round(float(np.median(e)) * 1e3, 2), "min": round(float(e.min()) * 1e3, 2)},
                "decode_ms_per_layer": {
                    "median": [round(float(np.median(v)) * 1e3, 2) for v in d],
                    "min": [round(float(v.min()) * 1e3, 2) for v in d],
                },
            }
        )
    return rows


def parity_frames(data: Path, per_clip: int = 3) -> list[tuple[str, np.ndarray]]:
    """Every Kodak image and ``per_clip`` frames of each clip in ``data``/video, as (1, 3, H, W) float32, cropped to
    multiples of 32."""
    import cv2

    images = [(p.name, cv2.imread(str(p))[:, :, ::-1]) for p in sorted((data / "eval" / "kodak").glob("*.png"))]
    for clip in sorted((data / "video").iterdir()):
        if clip.suffix == ".yuv":  # raw I420, size in the name
            w, h = (int(v) for v in clip.name.split("_")[1].split("x"))
            raw = np.fromfile(clip, np.uint8)
            n = raw.size // (w * h * 3 // 2)
            for i in np.linspace(0, n - 1, per_clip).astype(int):
                yuv = raw[i * w * h * 3 // 2 : (i + 1) * w * h * 3 // 2].reshape(h * 3 // 2, w)
                images.append((f"{clip.name}#{i}", cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)))
            continue
        cap = cv2.VideoCapture(str(clip))
        for i in range(per_clip * 20):
            ok, bgr = cap.read()
            if not ok:
                break
            if i % 20 == 0:
                images.append((f"{clip.name}#{i}", bgr[:, :, ::-1]))
        cap.release()
    out = []
    for name, im in images:
        h, w = im.shape[0] // 32 * 32, im.shape[1] // 32 * 32
        out.append((name, np.ascontiguousarray(im[:h, :w].transpose(2, 0, 1)[None], dtype=np.float32) / 255))
    return out


def parity_report(ref, other, data: Path) -> dict:  # noqa: ANN001
    from edgecodec.runtime.parity import compare

    frames = parity_frames(data)
    results = [compare(ref, other, x) for _, x in frames]
    n = len(results[0].id_mismatch)
    report = {
        "reference": ref.name,
        "backend": other.name,
        "frames": [name for name, _ in frames],
        "id_mismatch_mean": [float(np.mean([r.id_mismatch[i] for r in results])) for i in range(n)],
        "id_mismatch_max": [max(r.id_mismatch[i] for r in results) for i in range(n)],
        "psnr_delta_max_db": [max(r.psnr_delta[i] for r in results) for i in range(n)],
        "psnr_change_mean_db": [float(np.mean([r.psnr_change[i] for r in results])) for i in range(n)],
        "qerr_max_diff": max(r.qerr_max_diff for r in results),
    }
    print(f"\nparity of {other.name} against {ref.name} on {len(frames)} frames (24 Kodak images + video frames):\n")
    print(
        "| layer | ids differing, mean | ids differing, worst frame | PSNR delta of the same ids, worst frame "
        "| PSNR change of the same ids, mean |"
    )
    print("|---|---|---|---|---|")
    for i in range(n):
        print(
            f"| {i + 1} | {report['id_mismatch_mean'][i]:.4%} | {report['id_mismatch_max'][i]:.4%} | "
            f"{report['psnr_delta_max_db'][i]:.4f} dB | {report['psnr_change_mean_db'][i]:+.4f} dB |"
        )
    return report


def table(rows: list[dict]) -> str:
    n = max(len(r["decode_fps_per_layer"]) for r in rows)
    head = "| backend | size | encode fps | " + " | ".join(f"decode L{i} fps" for i in range(1, n + 1)) + " |"
    lines = [head, "|" + "---|" * (3 + n)]
    for r in rows:
        size = r["size"] if r.get("padded_size", r["size"]) == r["size"] else f"{r['size']} ({r['padded_size']})"
        lines.append(
            f"| {r['backend']} | {size} | {r['encode_fps']:.1f} | "
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
        default=["torch", "onnx", "onnx-int8"],
        help="any of torch, torch-compile, onnx, onnx-int8, tensorrt (default torch onnx onnx-int8)",
    )
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime (default 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cache", default=None, help="artefact cache folder")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    ap.add_argument("--same-process", action="store_true",
                    help="time every backend in this process (default: each in a process of its own)")  # fmt: skip
    ap.add_argument(
        "--parity",
        nargs="?",
        const=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
        default=None,
        metavar="DATA",
        help="instead of timing, compare each backend after the first with the first on the Kodak images and video "
        "frames under DATA (default ../shared/data)",
    )
    args = ap.parse_args(argv)
    if len(args.backends) > 1 and not args.parity and not args.same_process:
        return in_own_processes(args, list(argv if argv is not None else sys.argv[1:]))

    import torch

    from edgecodec.runtime import make_backend

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    sizes = [parse_size(s) for s in args.sizes]
    backends = [make_backend(n, model, args.device, cache_dir=args.cache, threads=args.threads) for n in args.backends]
    if args.parity:
        reports = [parity_report(backends[0], b, Path(args.parity)) for b in backends[1:]]
        if args.json:
            Path(args.json).write_text(json.dumps({"parity": reports}, indent=2) + "\n")
        return 0
    load_before = os.getloadavg()
    rows = []
    for size in sizes:
        new = bench(backends, size, args.iters, args.warmup, model.net.multiple)
        rows += new
        print(" ".join(f"{r['backend']} {r['size']}: encode {r['encode_fps']:.1f} fps" for r in new), file=sys.stderr)
    rows.sort(key=lambda r: args.backends.index(r["backend"]))
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


def in_own_processes(args: argparse.Namespace, argv: list[str]) -> int:
    """Run this script once per backend, each in a process of its own, one after the other; merge their rows."""
    import subprocess
    import tempfile

    keep = _without(argv, {"--backends", "--json"})
    load_before, rows, meta = os.getloadavg(), [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends:
            out = Path(tmp) / f"{name}.json"
            done = subprocess.run([sys.executable, __file__, *keep, "--backends", name, "--json", str(out)],
                                  stdout=subprocess.DEVNULL)  # fmt: skip
            if done.returncode != 0:
                return done.returncode
            result = json.loads(out.read_text())
            rows += result["rows"]
            meta = result["meta"]
    load_after = os.getloadavg()
    print(
        f"model {meta['model']}, {args.threads} threads, device {args.device}, median of {args.iters} calls, each "
        f"backend in a process of its own; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, "
        f"{os.cpu_count()} CPUs\n"
    )
    print(table(rows))
    if args.json:
        meta.update(loadavg=[load_before[0], load_after[0]], processes="one per backend")
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


def _without(argv: list[str], options: set[str]) -> list[str]:
    """``argv`` less ``options`` and their values."""
    out, skipping = [], False
    for arg in argv:
        if arg.startswith("--"):
            skipping = arg.split("=", 1)[0] in options
        if not skipping:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())

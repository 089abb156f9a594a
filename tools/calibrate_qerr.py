#!/usr/bin/env python3
"""How the quantisation error (qerr) of each layer maps to PSNR for a model: the table behind the rate presets.

For every frame, one encoder pass gives the qerr of every layer; each layer's ids are then decoded and the PSNR
against the original is measured. The table bins qerr per layer and prints the mean PSNR (and bits per pixel) of each
bin, then, for a few target PSNRs, the largest qerr at which a layer still reaches the target on average (a linear fit
of PSNR against qerr per layer). Those are the numbers ``edgecodec/configs/*.toml`` use as thresholds.

Data (never Kodak, which is the evaluation set): frames of the clips in ``shared/data/video`` and the BSDS500 test
split. Run from the repository root::

    python tools/calibrate_qerr.py                       # default data, ~2 min on 2 CPU cores
    python tools/calibrate_qerr.py --images 200 --frames-per-clip 30 --json calib.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecodec.capture import VideoSource  # noqa: E402
from edgecodec.codec import Codec  # noqa: E402
from edgecodec.config import load_rate_config, preset_names  # noqa: E402
from edgecodec.data import read_rgb  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CLIPS = {  # file -> (frame size for raw video, resize to)
    "foreman_cif_352x288_299f.264": (None, None),
    "multiscene_qcif_176x144_1700f.264": (None, None),
    "CiscoVT2people_320x192_12fps_i420.yuv": ((320, 192), None),
    "solidWhiteRight.mp4": (None, (640, 360)),
    "static_street_690x388_example01.mp4": (None, None),
    "static_videoconf_1280x720_19f.264": (None, (640, 360)),
}
BINS = (0.0, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.20, 0.25, np.inf)
TARGETS = (32.0, 30.0, 28.0, 26.0, 24.0, 22.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def frames(ns: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    out: list[tuple[str, np.ndarray]] = []
    video = SHARED / "video"
    for name, (raw_size, resize) in CLIPS.items():
        path = video / name
        if not path.is_file():
            print(f"skip {name}: not found", file=sys.stderr)
            continue
        size = raw_size or resize
        with VideoSource(path, size=size) as src:
            clip = [f.rgb for f in src]
        step = max(1, len(clip) // ns.frames_per_clip)
        out += [(name, f) for f in clip[::step][: ns.frames_per_clip]]
    test = sorted((SHARED / "train" / "bsds500" / "test").glob("*.jpg"))[: ns.images]
    if not test:
        print("skip BSDS500 test: not found", file=sys.stderr)
    out += [("bsds500/test", read_rgb(p)) for p in test]
    return out


def measure(codec: Codec, data: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """qerr, PSNR and bpp of every layer for every frame: arrays (N, L)."""
    n, layers = len(data), codec.num_layers
    qerr, quality, bpp = np.zeros((n, layers)), np.zeros((n, layers)), np.zeros((n, layers))
    for i, (_, rgb) in enumerate(data):
        code = codec.encode(rgb)
        qerr[i] = code.qerr
        for layer in range(1, layers + 1):
            ids = code.ids[layer - 1]
            quality[i, layer - 1] = psnr(codec.decode(ids, layer, code.size), rgb)
            bpp[i, layer - 1] = len(codec.code_ids(ids, layer)) * 8 / (rgb.shape[0] * rgb.shape[1])
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{n} frames", file=sys.stderr)
    return {"qerr": qerr, "psnr": quality, "bpp": bpp}


def thresholds(qerr: np.ndarray, quality: np.ndarray) -> dict[float, list[float]]:
    """Per target PSNR: for each layer, the qerr at which the linear fit PSNR(qerr) meets the target."""
    out: dict[float, list[float]] = {}
    fits = [np.polyfit(qerr[:, k], quality[:, k], 1) for k in range(qerr.shape[1])]
    for target in TARGETS:
        row = []
        for slope, intercept in fits:
            t = (target - intercept) / slope if slope < 0 else (np.inf if intercept >= target else 0.0)
            row.append(float(max(t, 0.0)))
        out[target] = row
    return out


def preset_check(qerr: np.ndarray, quality: np.ndarray, bpp: np.ndarray, model: str) -> list[str]:
    """The quality choice of every shipped preset on these frames (no budget, no hysteresis), with the thresholds
    the preset holds for ``model``."""
    from edgecodec.rate import RateController

    n, layers = qerr.shape
    lines = [f"{'preset':<14}{'layers used (L1..L' + str(layers) + ')':<26}{'mean PSNR':>10}{'p10 PSNR':>10}{'bpp':>8}"]
    for name in preset_names():
        config = load_rate_config(name).for_model(model)
        quality_only = replace(config, kbps=0.0, hold_frames=0, qerr_margin=0.0)
        chosen = np.array([RateController(quality_only, layers).choose(q, None, 0.0) for q in qerr])
        rows = np.arange(n)
        got, rate = quality[rows, chosen - 1], bpp[rows, chosen - 1]
        hist = " ".join(str(int((chosen == k).sum())) for k in range(1, layers + 1))
        lines.append(f"{name:<14}{hist:<26}{got.mean():>10.2f}{np.percentile(got, 10):>10.2f}{rate.mean():>8.3f}")
    return lines


def report(result: dict[str, np.ndarray], sources: list[str], model: str) -> str:
    qerr, quality, bpp = result["qerr"], result["psnr"], result["bpp"]
    n, layers = qerr.shape
    counts = {s: sources.count(s) for s in dict.fromkeys(sources)}
    lines = [f"{n} frames: " + ", ".join(f"{k} {v}" for k, v in counts.items()), ""]
    lines.append("per layer: mean qerr, mean PSNR (dB), mean bpp, correlation of qerr with PSNR")
    for k in range(layers):
        r = np.corrcoef(qerr[:, k], quality[:, k])[0, 1]
        lines.append(
            f"  layer {k + 1}: qerr {qerr[:, k].mean():.3f} [{np.percentile(qerr[:, k], 5):.3f}.."
            f"{np.percentile(qerr[:, k], 95):.3f}]  PSNR {quality[:, k].mean():5.2f}  bpp {bpp[:, k].mean():.3f}"
            f"  r {r:+.2f}"
        )
    lines += ["", "mean PSNR (dB) per qerr bin (frames in the bin); '-' = no frame"]
    labels = [
        f"{lo:.2f}-{hi:.2f}" if np.isfinite(hi) else f">{lo:.2f}" for lo, hi in zip(BINS[:-1], BINS[1:], strict=True)
    ]
    lines.append(f"{'qerr':<10}" + "".join(f"{'layer ' + str(k + 1):>14}" for k in range(layers)))
    for label, lo, hi in zip(labels, BINS[:-1], BINS[1:], strict=True):
        cells = []
        for k in range(layers):
            sel = (qerr[:, k] >= lo) & (qerr[:, k] < hi)
            cells.append(f"{quality[sel, k].mean():6.2f} ({int(sel.sum()):3d})" if sel.any() else f"{'-':>12}")
        lines.append(f"{label:<10}" + "".join(f"{c:>14}" for c in cells))
    lines += ["", "qerr threshold at which each layer reaches a target PSNR on average (linear fit; inf = always)"]
    lines.append(f"{'target':<10}" + "".join(f"{'layer ' + str(k + 1):>10}" for k in range(layers)))
    for target, row in thresholds(qerr, quality).items():
        lines.append(f"{target:<10.1f}" + "".join(f"{t:>10.3f}" if np.isfinite(t) else f"{'inf':>10}" for t in row))
    lines += ["", f"shipped presets with their thresholds for {model}, quality choice only (no budget, no hysteresis)"]
    lines += preset_check(qerr, quality, bpp, model)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="hqa5")
    parser.add_argument("--images", type=int, default=100, help="BSDS500 test images to use (default 100)")
    parser.add_argument("--frames-per-clip", type=int, default=20, help="frames taken evenly from each clip")
    parser.add_argument("--json", metavar="FILE", help="also write the raw per-frame measurements")
    parser.add_argument("--from-json", metavar="FILE", help="print the table from measurements saved with --json")
    ns = parser.parse_args(argv)
    if ns.from_json:
        saved = json.loads(Path(ns.from_json).read_text())
        rows = {k: np.array(saved[k]) for k in ("qerr", "psnr", "bpp")}
        print(report(rows, saved["sources"], saved.get("model", "hqa5")))
        return 0
    data = frames(ns)
    if not data:
        print("error: no calibration data found under " + str(SHARED), file=sys.stderr)
        return 2
    codec = Codec(ns.model)
    result = measure(codec, data)
    sources = [s for s, _ in data]
    print(f"model {codec.model.name} ({codec.fingerprint.hex()})")
    print(report(result, sources, codec.model.name))
    if ns.json:
        saved = {"model": codec.model.name, "sources": sources, **{k: v.tolist() for k, v in result.items()}}
        Path(ns.json).write_text(json.dumps(saved))
    return 0


if __name__ == "__main__":
    sys.exit(main())

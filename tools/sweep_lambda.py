#!/usr/bin/env python3
"""The replenishment lambda against rate and PSNR: how the rate presets' ``replenish_lambda`` was chosen.

``python tools/sweep_lambda.py --model hqa5-cpu --clips DATA/video_train/static_bottles_640x360_1189f.mp4@0:150
--lambdas 0 0.02 0.05 0.1 0.2``

For each clip (``PATH@START:STOP``), each lambda and each layer held fixed, the clip is coded as ``edgecodec send``
would (keyframes every ``--keyframe-seconds``, P-frames in between; tools/rd_inter.py) and decoded as a receiver
would. Printed per row: kbps, PSNR, mean bits of the P-frames, how many times fewer than an intra frame of the same
layer (keyframes of the lambda-0 run's layer, the same frames), and the P-frames' PSNR against intra coding of the
same frames. Lambda is the preset's ``replenish_lambda``: layer 1's, doubled at each coarser layer. Choose it on clips
that are not used for acceptance.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "tools"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from count_inter_priors import parse_clip  # noqa: E402
from rd_inter import measure_inter  # noqa: E402

from edgecodec.capture import VideoSource  # noqa: E402
from edgecodec.codec import Codec  # noqa: E402
from edgecodec.config import RateConfig  # noqa: E402
from edgecodec.evaluate import psnr  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="hqa5")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--clips", nargs="+", required=True, metavar="PATH[@START:STOP]")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--layers", type=int, nargs="*", help="layers to run (default all)")
    ap.add_argument("--keyframe-seconds", type=float, default=2.0)
    args = ap.parse_args(argv)
    codec = Codec(args.model, backend=args.backend)
    layers = args.layers or list(range(1, codec.num_layers + 1))
    print(f"{codec.model.name} ({codec.fingerprint.hex()}), keyframes every {args.keyframe_seconds:g} s")
    print("| clip | layer | lambda | kbps | PSNR | P bits/frame | P saving | P-frame PSNR change |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for clip in args.clips:
        path, start, stop = parse_clip(clip)
        with VideoSource(path, frames=stop) as source:
            frames = [f.rgb for f in source][start:]
            fps = source.native_fps or 25.0
        configs = {
            (layer, lam): RateConfig(
                name=f"L{layer}", fixed_layer=layer, keyframe_seconds=args.keyframe_seconds, replenish_lambda=lam
            )
            for layer in layers
            for lam in args.lambdas
        }
        configs |= {(layer, None): RateConfig(name=f"L{layer}", fixed_layer=layer, inter=False) for layer in layers}
        out = measure_inter(codec, frames, fps, configs, psnr, lambda a, b: [None] * len(a))
        for layer in layers:
            ref = out[(layer, None)]
            for lam in args.lambdas:
                m = out[(layer, lam)]
                p = m["inter"] > 0
                kbps = m["bits"].sum() / (len(frames) / fps) / 1000
                saving = ref["bits"][p].mean() / m["bits"][p].mean() if p.any() else float("nan")
                dpsnr = (m["psnr"][p] - ref["psnr"][p]).mean() if p.any() else float("nan")
                print(f"| {path.name}@{start}:{start + len(frames)} | {layer} | {lam:g} | {kbps:.1f} | "
                      f"{m['psnr'].mean():.2f} | {m['bits'][p].mean() if p.any() else float('nan'):.0f} | "
                      f"{saving:.1f}x | {dpsnr:+.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

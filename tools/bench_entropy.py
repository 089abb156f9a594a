"""Entropy-coding time of one frame at every layer: ``python tools/bench_entropy.py [--size 640x480] [--repeats 20]``.

The frame is a Kodak image (``../shared/data/eval/kodak/kodim01.png``, or ``--image``) resized to ``--size``; a
synthetic pattern if none is found. It is run through the network once; then, per layer, ``Codec.code_ids`` (ids ->
payload) and ``Codec.packet_ids`` (parsed packet -> ids) are timed over ``--repeats`` calls each, after one warm-up
call, and the median and the fastest call are printed in milliseconds. Only the entropy coder is timed, not the network.
The load averages before and after are printed too: on a shared machine, quote timings only with them.

P-frames (second table): the next frame is the same picture with sensor noise (sigma 3) and a 96x96 patch moved by
8 pixels, coded against the first frame's ids. Timed per layer: the conditional replenishment decision
(:func:`edgecodec.coding.replenish.replenish`), the inter coding of its ids, and their decoding; ``P added`` is what
a sender spends on top of the intra coding it does anyway (decision + inter coding).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgecodec import entropy
from edgecodec.capture import SyntheticSource, parse_size
from edgecodec.codec import Codec
from edgecodec.coding.gop import InterSettings
from edgecodec.coding.replenish import replenish
from edgecodec.data import read_rgb

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval" / "kodak" / "kodim01.png"


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, fastest) wall time of ``call`` in milliseconds, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, default=KODAK, help=f"source image (default {KODAK})")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--model", default="hqa5")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    width, height = parse_size(args.size)
    if args.image.is_file():
        rgb, what = cv2.resize(read_rgb(args.image), (width, height), interpolation=cv2.INTER_AREA), args.image.name
    else:
        rgb, what = SyntheticSource((width, height)).read().rgb, "synthetic pattern"
    codec = Codec(args.model)
    code = codec.encode(rgb)
    print(f"model {codec.model.name}, {what} at {width}x{height}, {args.repeats} repeats (median / fastest, ms); "
          f"load average {load()}")  # fmt: skip
    print(f"{'layer':>5} {'grid':>9} {'ids':>7} {'payload B':>9} {'bpp':>7} {'encode ms':>15} {'decode ms':>15}")
    for layer in range(1, codec.num_layers + 1):
        ids = code.ids[layer - 1]
        payload = codec.code_ids(ids, layer)
        packet = codec.parse(codec.packet(code, layer, payload=payload))
        if not np.array_equal(codec.packet_ids(packet), ids):
            raise SystemExit(f"layer {layer}: decoded ids differ from the encoded ones")
        enc = timed(lambda ids=ids, layer=layer: codec.code_ids(ids, layer), args.repeats)
        dec = timed(lambda packet=packet: codec.packet_ids(packet), args.repeats)
        grid = f"{ids.shape[1]}x{ids.shape[0]}"
        bpp = 8 * len(payload) / (width * height)
        print(f"{layer:>5} {grid:>9} {ids.size:>7} {len(payload):>9} {bpp:>7.4f} "
              f"{enc[0]:>7.3f} / {enc[1]:<5.3f} {dec[0]:>7.3f} / {dec[1]:<5.3f}")  # fmt: skip
    inter_table(codec, code, next_frame(rgb), args.repeats)
    print(f"\nload average {load()} (1, 5, 15 min): timings need a quiet machine")


def load() -> str:
    """The 1, 5 and 15 minute load averages, as ``/proc/loadavg`` gives them (``n/a`` where there is none)."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def next_frame(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` one frame later: sensor noise (sigma 3) and a 96x96 patch moved 8 pixels right."""
    out = rgb.astype(np.float64) + np.random.default_rng(0).normal(0, 3, rgb.shape)
    h, w = rgb.shape[:2]
    y, x = h // 3, w // 3
    out[y : y + 96, x + 8 : x + 104] = rgb[y : y + 96, x : x + 96]
    return np.clip(out, 0, 255).astype(np.uint8)


def inter_table(codec: Codec, first, rgb: np.ndarray, repeats: int) -> None:  # noqa: ANN001 - FrameCode
    layers = [layer for layer in range(1, codec.num_layers + 1) if codec.has_inter(layer)]
    if not layers:
        print(f"model {codec.model.name} has no inter tables: no P-frame timings")
        return
    settings = InterSettings()
    code = codec.encode(rgb, latents=tuple(layers))
    print(f"\nP-frames (lambda {settings.lam:g} at layer 1, doubled per layer; median / fastest, ms)")
    print(f"{'layer':>5} {'changed':>8} {'payload B':>9} {'intra B':>8} {'replenish ms':>15} {'encode ms':>15} "
          f"{'decode ms':>15} {'P added ms':>10}")  # fmt: skip
    for layer in layers:
        ref, best, z = first.ids[layer - 1], code.ids[layer - 1], code.latents[layer]
        lam = settings.layer_lambda(layer)
        lc = codec.layer_codes(layer)
        ids = replenish(best, ref, z, lc, lam).ids
        payload = codec.code_ids(ids, layer, reference=ref)
        if not np.array_equal(decode_inter(codec, payload, layer, ids.shape, ref), ids):
            raise SystemExit(f"layer {layer}: decoded P-frame ids differ from the encoded ones")
        rep = timed(lambda best=best, ref=ref, z=z, lc=lc, lam=lam: replenish(best, ref, z, lc, lam), repeats)
        enc = timed(lambda ids=ids, layer=layer, ref=ref: codec.code_ids(ids, layer, reference=ref), repeats)
        dec = timed(lambda p=payload, layer=layer, ref=ref: decode_inter(codec, p, layer, ref.shape, ref), repeats)
        intra = len(codec.code_ids(best, layer))
        print(f"{layer:>5} {int((ids != ref).sum()):>8} {len(payload):>9} {intra:>8} {rep[0]:>7.3f} / {rep[1]:<5.3f} "
              f"{enc[0]:>7.3f} / {enc[1]:<5.3f} {dec[0]:>7.3f} / {dec[1]:<5.3f} {rep[0] + enc[0]:>10.3f}")  # fmt: skip


def decode_inter(codec: Codec, payload: bytes, layer: int, shape: tuple[int, int], ref: np.ndarray) -> np.ndarray:
    return entropy.decode_ids(payload, codec.inter_priors[layer - 1], shape, ref)


if __name__ == "__main__":
    main()

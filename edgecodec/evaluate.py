"""`edgecodec eval`: rate-distortion of a model on an image folder, layer by layer, against JPEG and WebP.

Every number is measured per image and then averaged over the images (means of ratios, not ratios of sums).
``pixels`` is always the original image's H x W, before the codec pads it to the stack's multiple. Per layer:

- ``bpp_fixed``: ids in the grid x log2 K / pixels (a fixed-length code, no header).
- ``bpp_entropy``: the empirical order-0 entropy of *this image's* id histogram for the layer, x ids / pixels: what an
  ideal coder would spend with a table fitted to the image itself and sent for free (a bound, not a real code).
- ``bpp_xent``: the ideal code length of the ids under the prior the coder really uses (the model's integer
  tables; :func:`~edgecodec.entropy.ideal_bits`, context included) / pixels.
- ``bpp_payload``: bytes of the ANS payload x 8 / pixels; ``bpp_coded``: bytes of the whole packet, header included.
  ``overhead_bits`` (mean and max) is payload bits minus the ideal ``xent`` bits of one packet.
- ``bpp_zstd``: zstd level 19 over the raw ids as little-endian uint16, x 8 / pixels.
- ``psnr`` (RGB, 8-bit, capped at 100 dB) and ``ms_ssim`` (pytorch_msssim, RGB, data_range 255) of the frame the
  receiver gets: packet -> parse -> entropy decode -> network decode, cropped, uint8. MS-SSIM needs a shorter side
  above 160 pixels; smaller images are left out of its mean (``ms_ssim_images`` counts those in it).
- ``encode_ms``: one encoder pass that gives every layer's ids (the same for every row); ``decode_ms``: the
  receiver's work for that layer's packet (parse, entropy decode, network decode). Wall time; the first image is
  run once beforehand to warm up.
- ``jpeg``/``webp``: OpenCV ``imencode`` at the quality (1..100) whose file size comes closest to that layer's
  ``bpp_coded`` on the same image; mean bpp, PSNR, MS-SSIM and quality. ``floor_images`` counts images where even the
  smallest file (over all qualities) is larger than the target, so the point is that smallest file, not a match.

Every packet is decoded back and its ids compared with the encoder's, so the table never reports a broken stream.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zstandard

from edgecodec.bitstream import HEADER_SIZE
from edgecodec.cliutil import ArgumentParser
from edgecodec.codec import Codec
from edgecodec.data import list_images, read_rgb
from edgecodec.entropy import ideal_bits
from edgecodec.errors import ModelError, require
from edgecodec.runtime import BACKEND_HELP

QUALITIES = tuple(range(1, 101))
"""Qualities searched for the nearest-bpp JPEG/WebP point (file size only, so cheap)."""
PLOT_QUALITIES = (1, 3, 5, 10, 20, 30, 50, 70, 85, 95)
"""Qualities of the full JPEG/WebP RD sweeps (PSNR and MS-SSIM measured at each)."""
PSNR_CAP = 100.0
MSSSIM_MIN_SIDE = 161  # pytorch_msssim: shorter side must exceed (win 11 - 1) * 2**4
FORMATS = {"jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY), "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY)}
LAYER_KEYS = (
    "bpp_fixed",
    "bpp_entropy",
    "bpp_xent",
    "bpp_payload",
    "bpp_coded",
    "bpp_zstd",
    "psnr",
    "ms_ssim",
    "encode_ms",
    "decode_ms",
)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# ---- metrics ------------------------------------------------------------------------------------------------
def psnr(ref: np.ndarray, out: np.ndarray) -> float:
    """PSNR in dB of two uint8 images over every channel, capped at :data:`PSNR_CAP`."""
    mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(255.0**2 / mse))


def ms_ssim(ref: np.ndarray, out: np.ndarray) -> float | None:
    """MS-SSIM of two RGB uint8 images (data range 255), or None when the image is too small for 5 scales."""
    if min(ref.shape[:2]) < MSSSIM_MIN_SIDE:
        return None
    _ms_ssim = require("pytorch_msssim", "MS-SSIM", package="pytorch-msssim").ms_ssim

    import torch

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()

    # One thread: its small depthwise convolutions run many times slower on two threads when the cores are busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            return float(_ms_ssim(t(ref), t(out), data_range=255))
    finally:
        torch.set_num_threads(threads)


def entropy_bits(ids: np.ndarray) -> float:
    """Order-0 empirical entropy of the ids, times their number: bits for an ideal code fitted to these ids."""
    counts = np.unique(ids, return_counts=True)[1].astype(np.float64)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


# ---- JPEG / WebP --------------------------------------------------------------------------------------------
class Classic:
    """JPEG or WebP through OpenCV on one RGB image; sizes and measured points are cached per quality."""

    def __init__(self, fmt: str, rgb: np.ndarray) -> None:
        self.ext, self.flag = FORMATS[fmt]
        self.rgb, self.bgr = rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        self.pixels = rgb.shape[0] * rgb.shape[1]
        self._files: dict[int, bytes] = {}
        self._points: dict[int, dict[str, Any]] = {}

    def file(self, quality: int) -> bytes:
        if quality not in self._files:
            ok, buf = cv2.imencode(self.ext, self.bgr, [self.flag, quality])
            if not ok:
                raise RuntimeError(f"OpenCV could not encode {self.ext} at quality {quality}")
            self._files[quality] = buf.tobytes()
        return self._files[quality]

    def bpp(self, quality: int) -> float:
        return len(self.file(quality)) * 8 / self.pixels

    def point(self, quality: int) -> dict[str, Any]:
        if quality not in self._points:
            bgr = cv2.imdecode(np.frombuffer(self.file(quality), np.uint8), cv2.IMREAD_COLOR)
            out = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self._points[quality] = {
                "quality": quality,
                "bpp": self.bpp(quality),
                "psnr": psnr(self.rgb, out),
                "ms_ssim": ms_ssim(self.rgb, out),
            }
        return self._points[quality]

    def nearest(self, target_bpp: float) -> dict[str, Any]:
        """The point whose bpp is closest to ``target_bpp`` (ties to the lower quality); flags a floor."""
        sizes = {q: self.bpp(q) for q in QUALITIES}
        best = min(QUALITIES, key=lambda q: (abs(sizes[q] - target_bpp), q))
        return {**self.point(best), "floor": min(sizes.values()) > target_bpp, "min_bpp": min(sizes.values())}


# ---- one image ----------------------------------------------------------------------------------------------
def evaluate_image(codec: Codec, rgb: np.ndarray, zstd: zstandard.ZstdCompressor) -> dict[str, Any]:
    """Every per-layer measure of one image, plus JPEG/WebP at each layer's bpp and their RD sweeps."""
    pixels = rgb.shape[0] * rgb.shape[1]
    t0 = time.perf_counter()
    code = codec.encode(rgb)
    encode_ms = (time.perf_counter() - t0) * 1e3
    classic = {fmt: Classic(fmt, rgb) for fmt in FORMATS}
    layers = []
    for layer in range(1, codec.num_layers + 1):
        ids = code.ids[layer - 1]
        k = codec.model.net.config.layers[layer - 1].codebook_size
        payload = codec.code_ids(ids, layer)
        packet = codec.packet(code, layer, payload=payload)
        t0 = time.perf_counter()
        parsed, out = codec.decode_packet(packet)
        decode_ms = (time.perf_counter() - t0) * 1e3
        if not np.array_equal(codec.packet_ids(parsed), ids):
            raise RuntimeError(f"layer {layer}: the ids decoded from the packet differ from the encoder's")
        xent = ideal_bits(ids, codec.priors[layer - 1])
        row = {
            "layer": layer,
            "bpp_fixed": ids.size * math.log2(k) / pixels,
            "bpp_entropy": entropy_bits(ids) / pixels,
            "bpp_xent": xent / pixels,
            "bpp_payload": len(payload) * 8 / pixels,
            "bpp_coded": len(packet) * 8 / pixels,
            "bpp_zstd": len(zstd.compress(ids.astype("<u2").tobytes())) * 8 / pixels,
            "overhead_bits": len(payload) * 8 - xent,
            "psnr": psnr(rgb, out),
            "ms_ssim": ms_ssim(rgb, out),
            "encode_ms": encode_ms,
            "decode_ms": decode_ms,
        }
        for fmt, c in classic.items():
            row[fmt] = c.nearest(row["bpp_coded"])
        layers.append(row)
    sweeps = {fmt: [c.point(q) for q in PLOT_QUALITIES] for fmt, c in classic.items()}
    return {"pixels": pixels, "size": list(rgb.shape[:2]), "layers": layers, "sweeps": sweeps}


# ---- many images --------------------------------------------------------------------------------------------
def _summarise_classic(points: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "bpp": _mean([p["bpp"] for p in points]),
        "psnr": _mean([p["psnr"] for p in points]),
        "ms_ssim": _mean([p["ms_ssim"] for p in points]),
        "quality": _mean([p["quality"] for p in points]),
        "floor_images": sum(p["floor"] for p in points),
        "min_bpp": _mean([p["min_bpp"] for p in points]),
    }


def evaluate(codec: Codec, paths: Sequence[Path], data: str, progress: bool = True) -> dict[str, Any]:
    """Evaluate ``codec`` on the images at ``paths`` (``data`` names the set): the dict that ``--json`` writes."""
    from tqdm import tqdm

    zstd = zstandard.ZstdCompressor(level=19)
    warm = read_rgb(paths[0])
    code = codec.encode(warm)
    for layer in range(1, codec.num_layers + 1):
        codec.decode(code.ids[layer - 1], layer, code.size)
    per_image = []
    for path in tqdm(paths, desc="eval", unit="img", disable=not progress):
        per_image.append({"image": path.name, **evaluate_image(codec, read_rgb(path), zstd)})
    layers = []
    for i in range(codec.num_layers):
        rows = [im["layers"][i] for im in per_image]
        summary: dict[str, Any] = {"layer": i + 1, **{key: _mean([r[key] for r in rows]) for key in LAYER_KEYS}}
        summary["overhead_bits"] = _mean([r["overhead_bits"] for r in rows])
        summary["overhead_bits_max"] = max(r["overhead_bits"] for r in rows)
        for fmt in FORMATS:
            summary[fmt] = _summarise_classic([r[fmt] for r in rows])
        layers.append(summary)
    sweeps = {}
    for fmt in FORMATS:
        sweeps[fmt] = [
            {
                key: _mean([im["sweeps"][fmt][j][key] for im in per_image]) if key != "quality" else q
                for key in ("quality", "bpp", "psnr", "ms_ssim")
            }
            for j, q in enumerate(PLOT_QUALITIES)
        ]
    return {
        "model": codec.model.name,
        "fingerprint": codec.model.fingerprint_hex,
        "data": data,
        "backend": codec.backend.name,
        "threads": _torch_threads(),
        "images": len(per_image),
        "ms_ssim_images": sum(im["layers"][0]["ms_ssim"] is not None for im in per_image),
        "header_bytes": HEADER_SIZE,
        "layers": layers,
        "sweeps": sweeps,
        "per_image": [{"image": im["image"], "size": im["size"], "layers": im["layers"]} for im in per_image],
    }


# ---- output -------------------------------------------------------------------------------------------------
def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table (readable as plain text) with notes below it."""
    head = [
        "layer",
        "bpp fixed",
        "bpp entropy",
        "bpp xent",
        "bpp payload",
        "bpp coded",
        "bpp zstd",
        "PSNR dB",
        "MS-SSIM",
        "enc ms",
        "dec ms",
        "JPEG bpp",
        "JPEG PSNR",
        "JPEG MS-SSIM",
        "WebP bpp",
        "WebP PSNR",
        "WebP MS-SSIM",
    ]
    rows, notes = [], []
    for r in result["layers"]:
        row = [str(r["layer"])] + [
            _f(r[k]) for k in ("bpp_fixed", "bpp_entropy", "bpp_xent", "bpp_payload", "bpp_coded", "bpp_zstd")
        ]
        row += [f"{r['psnr']:.2f}", _f(r["ms_ssim"]), f"{r['encode_ms']:.0f}", f"{r['decode_ms']:.0f}"]
        for fmt, name in (("jpeg", "JPEG"), ("webp", "WebP")):
            c = r[fmt]
            star = "*" if c["floor_images"] else ""
            row += [_f(c["bpp"]) + star, f"{c['psnr']:.2f}", _f(c["ms_ssim"])]
            if c["floor_images"]:
                notes.append(
                    f"\\* layer {r['layer']}: {name} cannot go this low: min {c['min_bpp']:.3g} bpp "
                    f"(mean over images of its smallest file) vs {r['bpp_coded']:.3g} bpp coded; "
                    f"{c['floor_images']}/{result['images']} images at their smallest file"
                )
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [
        "| " + " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    title = (
        f"{result['model']} ({result['fingerprint']}, {result['backend']}, {result['threads']} threads) on "
        f"{result['data']}: {result['images']} images, means per image; MS-SSIM over {result['ms_ssim_images']} images"
    )
    return "\n".join([title, "", *lines, "", *notes]).rstrip() + "\n"


def plot(result: dict[str, Any], path: str | Path) -> None:
    """PSNR and MS-SSIM against bpp (log x) for every layer and for the JPEG and WebP sweeps."""
    matplotlib = require("matplotlib", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, metric, label in ((axes[0], "psnr", "PSNR (dB, RGB)"), (axes[1], "ms_ssim", "MS-SSIM (RGB)")):
        for fmt, name, style in (("jpeg", "JPEG", "s--"), ("webp", "WebP", "^--")):
            pts = [p for p in result["sweeps"][fmt] if p[metric] is not None]
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], style, label=f"{name} (OpenCV, quality sweep)")
        pts = [r for r in result["layers"] if r[metric] is not None]
        ax.plot([r["bpp_coded"] for r in pts], [r[metric] for r in pts], "o-", lw=2, label=f"{result['model']}")
        for r in pts:
            ax.annotate(f"L{r['layer']}", (r["bpp_coded"], r[metric]), textcoords="offset points", xytext=(4, -10))
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (packet / file, headers included)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{result['model']} on {result['data']} ({result['images']} images, mean per image)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def update_card(codec: Codec, result: dict[str, Any]) -> Path:
    """Write the per-layer means into the model card (``card["eval"][data]``); never touches the weights."""
    model = codec.model
    if model.path is None:
        raise ModelError(f"model {model.name} was not loaded from a file: no card to update")
    card_path = model.path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {"name": model.name}
    if card.get("fingerprint", model.fingerprint_hex) != model.fingerprint_hex:
        raise ModelError(
            f"{card_path}: card fingerprint {card['fingerprint']} is not the weights' "
            f"{model.fingerprint_hex}; not updating it"
        )
    card["fingerprint"] = model.fingerprint_hex
    card.setdefault("eval", {})[result["data"]] = {
        "images": result["images"],
        "backend": result["backend"],
        "layers": result["layers"],
    }
    tmp = card_path.with_name(card_path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, card_path)
    return card_path


# ---- CLI ----------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """`edgecodec eval`: per-layer rate-distortion of a model on an image folder, beside JPEG and WebP."""
    ap = ArgumentParser(prog="edgecodec eval", description=main.__doc__)
    ap.add_argument("--model", default="hqa5", help="model name or .safetensors path (default hqa5)")
    ap.add_argument("--data", required=True, help="folder of images (searched recursively)")
    ap.add_argument("--json", metavar="FILE", help="write every measure as JSON")
    ap.add_argument("--plot", metavar="FILE.png", help="draw RD curves (PSNR and MS-SSIM vs bpp)")
    ap.add_argument("--backend", default="auto", help=BACKEND_HELP)
    ap.add_argument("--max-images", type=int, metavar="N", help="only the first N images (sorted by path)")
    ap.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    ap.add_argument("--update-card", action="store_true", help="write the per-layer means into the model card JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        ap.error("--max-images must be >= 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    paths = list_images([args.data])[: args.max_images]
    codec = Codec(args.model, backend=args.backend)
    result = evaluate(codec, paths, Path(args.data).resolve().name, progress=not args.quiet)
    print(format_table(result), end="")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(result, args.plot)
    if args.update_card:
        print(f"updated {update_card(codec, result)}")
    return 0

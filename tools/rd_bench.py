#!/usr/bin/env python3
"""Rate-distortion of edgecodec against the classic codecs: JPEG/WebP on images, x264/x265 on video.

Two modes, run from the repository root::

    python tools/rd_bench.py --images ../shared/data/eval/kodak --md kodak.md --plot kodak.png --json kodak.json
    python tools/rd_bench.py --video clip.mp4 --frames 60 --size 352x288 --kbps 150 500 --md clip.md

**Images.** Per image: every edgecodec layer is encoded into a real packet (52-byte keyframe header), parsed and
decoded as a receiver would; bpp = packet bytes x 8 / pixels. JPEG and WebP (OpenCV ``imencode``) are taken at the
quality whose file is nearest to that layer's bpp on the same image ("matched"; flagged ``floor`` when even quality
1 is larger, i.e. the format cannot go that low), and over a quality sweep for the curves. Metrics are computed per
image and then averaged.

**Video.** The same decoded source frames go to every codec. edgecodec: each layer held fixed, and each rate preset
with the :class:`~edgecodec.rate.RateController` choosing per frame from the qerr thresholds and the exact packet size
of every candidate layer (time = frame index / fps). x264 and x265 (and, with ``--codecs x264-intra``, x264 with
every frame an IDR, as every edgecodec frame is intra) through PyAV with ``tune=zerolatency``: no B-frames and no
lookahead, so decode order is display order; the decoded frame count is checked. For each edgecodec point, an ABR
run at the same kbps with VBV max rate = target and a 1 s buffer ("matched"; when the stream misses the target by
more than 5 %, the request is rescaled by target / achieved and the run repeated, up to ``--match-tries`` runs,
keeping the nearest). A CRF sweep gives the curves, plus constant QP 51 and CRF 51; an encoder's minimum rate is
the least any of its runs spent. Bytes are those of every encoded packet (parameter sets and SEI included); the
stream is decoded with PyAV and compared with the source in RGB, so x264/x265 numbers include the RGB -> YUV 4:2:0
-> RGB conversion that any H.264 pipeline pays.

Metrics: PSNR over RGB, 8-bit (mean of per-frame / per-image values, capped at 100 dB); MS-SSIM from pytorch_msssim
on RGB with data_range 255 (n/a when the shorter side is under 161 pixels); encode fps = frames / the wall time of
the encoder calls (edgecodec: encoder pass + entropy coding of every layer the controller looked at + packet; x26x:
RGB -> YUV conversion + encode). Timings are wall time on whatever machine runs this: indicative only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "tools"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from rd_inter import SAVINGS_HEAD, fixed_layer_config, inter_point, measure_inter, savings_rows  # noqa: E402

from edgecodec.capture import VideoSource  # noqa: E402
from edgecodec.codec import Codec  # noqa: E402
from edgecodec.config import RateConfig, load_rate_config, preset_names  # noqa: E402
from edgecodec.data import list_images, read_rgb  # noqa: E402
from edgecodec.errors import ConfigError  # noqa: E402
from edgecodec.evaluate import FORMATS, MSSSIM_MIN_SIDE, PLOT_QUALITIES, Classic, psnr  # noqa: E402
from edgecodec.rate import RateController  # noqa: E402

X26X = {  # name -> (encoder, decoder, params option, extra params)
    "x264": ("libx264", "h264", "x264-params", []),
    "x265": ("libx265", "hevc", "x265-params", ["log-level=error", "info=0"]),
    "x264-intra": ("libx264", "h264", "x264-params", ["keyint=1"]),  # every frame an IDR, as edgecodec's are
}
CRFS = (8, 13, 18, 23, 28, 33, 38, 43, 48, 51)
RAW_STREAMS = {".264", ".h264", ".265", ".h265", ".hevc", ".yuv"}  # carry no reliable frame rate
DEFAULT_FPS = 25.0
REACH_TOLERANCE = 1.10  # a matched run more than 10 % off its target (either way) is flagged
MATCH_TOLERANCE = 0.05  # matched ABR runs are retried with a rescaled request until within 5 % of the target


# ---- metrics ------------------------------------------------------------------------------------------------
def ms_ssim_batch(refs: Sequence[np.ndarray], outs: Sequence[np.ndarray], batch: int = 8) -> list[float | None]:
    """MS-SSIM (RGB, data_range 255) of each pair of uint8 frames; None for frames too small for 5 scales."""
    if not refs or min(refs[0].shape[:2]) < MSSSIM_MIN_SIDE:
        return [None] * len(refs)
    from pytorch_msssim import ms_ssim

    def t(frames: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()

    out: list[float | None] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # its small depthwise convolutions run ~4x slower on 2 threads when the cores are busy
    try:
        with torch.inference_mode():
            for i in range(0, len(refs), batch):
                values = ms_ssim(t(refs[i : i + batch]), t(outs[i : i + batch]), data_range=255, size_average=False)
                out += [float(v) for v in values]
    finally:
        torch.set_num_threads(threads)
    return out


def mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


# ---- edgecodec ----------------------------------------------------------------------------------------------
def measure_edgecodec(codec: Codec, frames: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per frame and layer: packet bits, PSNR, MS-SSIM (NaN if n/a) and coding times, through the receiver's path.

    Arrays: ``bits``, ``psnr``, ``ms_ssim``, ``code_s`` (N, L); ``encode_s`` (N,); ``qerr`` (N, L).
    """
    n, layers = len(frames), codec.num_layers
    out = {k: np.zeros((n, layers)) for k in ("bits", "psnr", "ms_ssim", "code_s", "qerr")}
    out["encode_s"] = np.zeros(n)
    for i, rgb in enumerate(frames):
        t0 = time.perf_counter()
        code = codec.encode(rgb)
        out["encode_s"][i] = time.perf_counter() - t0
        out["qerr"][i] = code.qerr
        decoded = []
        for layer in range(1, layers + 1):
            t0 = time.perf_counter()
            packet = codec.packet(code, layer, seq=i)
            out["code_s"][i, layer - 1] = time.perf_counter() - t0
            parsed, rec = codec.decode_packet(packet)
            if not np.array_equal(codec.packet_ids(parsed), code.ids[layer - 1]):
                raise RuntimeError(f"frame {i} layer {layer}: ids decoded from the packet differ from the encoder's")
            out["bits"][i, layer - 1] = len(packet) * 8
            out["psnr"][i, layer - 1] = psnr(rgb, rec)
            decoded.append(rec)
        scores = ms_ssim_batch([rgb] * layers, decoded)
        out["ms_ssim"][i] = [np.nan if s is None else s for s in scores]
    return out


def warm_up(codec: Codec, frame: np.ndarray) -> None:
    """First use of a frame size may build graphs (onnx export): do it before anything is timed."""
    code = codec.encode(frame)
    for layer in range(1, codec.num_layers + 1):
        codec.decode_packet(codec.packet(code, layer))


def _ms(values: np.ndarray) -> float | None:
    return None if np.isnan(values).all() else float(np.nanmean(values))


def layer_point(m: dict[str, np.ndarray], layer: int, fps: float, pixels: int) -> dict[str, Any]:
    """edgecodec with one layer for every frame."""
    j = layer - 1
    n = len(m["encode_s"])
    return {
        "label": f"L{layer} intra",
        "kind": "layer",
        "coding": "intra",
        "layer": layer,
        "kbps": float(m["bits"][:, j].sum()) / (n / fps) / 1000,
        "bpp": float(m["bits"][:, j].mean()) / pixels,
        "psnr": float(m["psnr"][:, j].mean()),
        "ms_ssim": _ms(m["ms_ssim"][:, j]),
        "encode_fps": n / float((m["encode_s"] + m["code_s"][:, j]).sum()),
        "layer_counts": {str(layer): n},
        "per_frame": {
            "layer": [layer] * n,
            "bits": m["bits"][:, j].astype(int).tolist(),
            "psnr": np.round(m["psnr"][:, j], 3).tolist(),
        },
    }


def preset_point(m: dict[str, np.ndarray], config: RateConfig, label: str, fps: float, pixels: int) -> dict[str, Any]:
    """edgecodec with the rate controller choosing each frame's layer, as the sender does (bits = exact packets)."""
    n, layers = m["bits"].shape
    ctl = RateController(config, layers)
    chosen, seconds = [], 0.0
    for i in range(n):
        coded: set[int] = set()

        def bits(layer: int, i: int = i, coded: set[int] = coded) -> int:
            coded.add(layer)
            return int(m["bits"][i, layer - 1])

        now = i / fps
        layer = ctl.choose(m["qerr"][i], bits, now)
        ctl.commit(layer, bits(layer), now)
        chosen.append(layer)
        seconds += m["encode_s"][i] + sum(m["code_s"][i, c - 1] for c in coded)
    idx = (np.arange(n), np.array(chosen) - 1)
    return {
        "label": label,
        "kind": "preset",
        "coding": "intra",
        "preset": config.name,
        "budget_kbps": config.kbps,
        "kbps": float(m["bits"][idx].sum()) / (n / fps) / 1000,
        "bpp": float(m["bits"][idx].mean()) / pixels,
        "psnr": float(m["psnr"][idx].mean()),
        "ms_ssim": _ms(m["ms_ssim"][idx]),
        "encode_fps": n / seconds,
        "layer_counts": {str(k): v for k, v in sorted(ctl.stats.layer_counts.items())},
        "over_budget": ctl.stats.over_budget,
        "switches": ctl.stats.switches,
        "per_frame": {
            "layer": chosen,
            "bits": m["bits"][idx].astype(int).tolist(),
            "psnr": np.round(m["psnr"][idx], 3).tolist(),
        },
    }


# ---- x264 / x265 --------------------------------------------------------------------------------------------
def x26x_encode(
    name: str,
    frames: Sequence[np.ndarray],
    fps: float,
    preset: str,
    *,
    crf: int | None = None,
    qp: int | None = None,
    kbps: float | None = None,
    threads: int = 2,
) -> tuple[list[bytes], float]:
    """Encode RGB frames with x264/x265 (``tune=zerolatency``) in CRF, constant-QP or ABR+VBV mode.

    Returns every packet's bytes and the wall time of conversion + encoding.
    """
    import av

    enc_name, _, params_key, extra = X26X[name]
    cc = av.CodecContext.create(enc_name, "w")
    cc.height, cc.width = frames[0].shape[:2]
    cc.pix_fmt = "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    cc.framerate, cc.time_base = rate, 1 / rate
    cc.thread_count = threads
    params = list(extra)
    options = {"preset": preset, "tune": "zerolatency"}
    if crf is not None:
        options["crf"] = str(crf)
    elif qp is not None:
        options["qp"] = str(qp)
    elif kbps is not None:
        k = max(1, round(kbps))  # x264/x265 take whole kbit/s
        cc.bit_rate = k * 1000
        params += [f"bitrate={k}", f"vbv-maxrate={k}", f"vbv-bufsize={k}"]
    else:
        raise ValueError("give crf, qp or kbps")
    if params:
        options[params_key] = ":".join(params)
    cc.options = options
    packets = []
    t0 = time.perf_counter()
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in cc.encode(frame)]
    packets += [bytes(p) for p in cc.encode(None)]
    return packets, time.perf_counter() - t0


def x26x_decode(name: str, packets: Sequence[bytes]) -> list[np.ndarray]:
    """Decode an x264/x265 stream with PyAV into RGB frames, in output order."""
    import av

    dec = av.CodecContext.create(X26X[name][1], "r")
    frames = []
    for data in [*packets, None]:
        for f in dec.decode(None if data is None else av.Packet(data)):
            frames.append(f.to_ndarray(format="rgb24"))
    return frames


def header_bytes(name: str, packets: Sequence[bytes]) -> int:
    """Bytes of parameter-set and SEI NAL units in an Annex B stream (already counted in its size)."""
    total = 0
    for data in packets:
        starts = [i + 3 for i in range(len(data) - 3) if data[i : i + 3] == b"\x00\x00\x01"]
        for a, b in zip(starts, [*starts[1:], len(data) + 3], strict=True):
            avc = X26X[name][1] == "h264"
            kind = data[a] & 0x1F if avc else (data[a] >> 1) & 0x3F
            if kind in ((6, 7, 8) if avc else (32, 33, 34, 39, 40)):
                total += b - 3 - a
    return total


def x26x_point(
    name: str, frames: Sequence[np.ndarray], fps: float, preset: str, label: str, kind: str, threads: int, **mode: Any
) -> dict[str, Any]:
    """Encode, decode, check the frame count, and measure one x264/x265 run."""
    packets, seconds = x26x_encode(name, frames, fps, preset, threads=threads, **mode)
    decoded = x26x_decode(name, packets)
    if len(decoded) != len(frames):
        raise RuntimeError(f"{name} {label}: {len(frames)} frames in, {len(decoded)} decoded")
    n, nbytes = len(frames), sum(map(len, packets))
    pixels = frames[0].shape[0] * frames[0].shape[1]
    return {
        "label": label,
        "kind": kind,
        **{("request_kbps" if k == "kbps" else k): v for k, v in mode.items() if v is not None},
        "kbps": nbytes * 8 / (n / fps) / 1000,
        "bpp": nbytes * 8 / n / pixels,
        "psnr": float(np.mean([psnr(a, b) for a, b in zip(frames, decoded, strict=True)])),
        "ms_ssim": mean(ms_ssim_batch(frames, decoded)),
        "encode_fps": n / seconds,
        "frames_decoded": len(decoded),
        "bytes": nbytes,
        "header_bytes": header_bytes(name, packets),
    }


def matched_run(name: str, frames: Sequence[np.ndarray], target_kbps: float, tries: int, **x26x: Any) -> dict[str, Any]:
    """ABR runs at ``target_kbps``, the request rescaled by target / achieved after each run (up to ``tries`` runs)
    until the achieved rate is within :data:`MATCH_TOLERANCE`; the run nearest the target (in log rate) is kept."""
    request, runs = float(max(1, round(target_kbps))), []
    for _ in range(tries):
        run = x26x_point(name, frames, label=f"ABR {request:.0f} kbps", kind="matched", kbps=request, **x26x)
        runs.append(run)
        ratio = run["kbps"] / target_kbps
        following = float(max(1, round(request / ratio)))
        if abs(ratio - 1) <= MATCH_TOLERANCE or following == request:
            break
        request = following
    best = min(runs, key=lambda r: abs(math.log(r["kbps"] / target_kbps)))
    return {**best, "requests_kbps": [r["request_kbps"] for r in runs], "achieved_kbps": [r["kbps"] for r in runs]}


def yuv420_ceiling(frames: Sequence[np.ndarray]) -> float:
    """PSNR of RGB -> YUV 4:2:0 -> RGB alone (no coding): the most an x26x stream can reach here."""
    import av

    back = [
        av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
        for f in frames
    ]
    return float(np.mean([psnr(a, b) for a, b in zip(frames, back, strict=True)]))


# ---- the two modes ------------------------------------------------------------------------------------------
def _codec_info(codec: Codec) -> dict[str, Any]:
    return {
        "model": codec.model.name,
        "fingerprint": codec.model.fingerprint_hex,
        "backend": codec.backend.name,
        "threads": torch.get_num_threads(),
    }


def run_images(args: argparse.Namespace, codec: Codec) -> dict[str, Any]:
    paths = list_images([args.images])[: args.max_images]
    warm_up(codec, read_rgb(paths[0]))
    per_image, classic_time = [], {fmt: [0.0] * codec.num_layers for fmt in FORMATS}
    for path in paths:
        rgb = read_rgb(path)
        pixels = rgb.shape[0] * rgb.shape[1]
        m = measure_edgecodec(codec, [rgb])
        points = [layer_point(m, layer, 1.0, pixels) for layer in range(1, codec.num_layers + 1)]
        layers = [{k: v for k, v in p.items() if k not in ("kbps", "layer_counts", "per_frame")} for p in points]
        classic = {fmt: Classic(fmt, rgb) for fmt in FORMATS}
        matched = {fmt: [c.nearest(p["bpp"]) for p in layers] for fmt, c in classic.items()}
        for fmt, c in classic.items():
            for j, point in enumerate(matched[fmt]):
                t0 = time.perf_counter()
                cv2.imencode(c.ext, c.bgr, [c.flag, point["quality"]])
                classic_time[fmt][j] += time.perf_counter() - t0
        sweeps = {fmt: [c.point(q) for q in PLOT_QUALITIES] for fmt, c in classic.items()}
        per_image.append(
            {"image": path.name, "size": list(rgb.shape[:2]), "layers": layers, "matched": matched, "sweeps": sweeps}
        )
        if not args.quiet:
            print(
                f"{path.name}: " + ", ".join(f"L{p['layer']} {p['bpp']:.3f} bpp {p['psnr']:.2f} dB" for p in layers),
                file=sys.stderr,
            )
    n = len(per_image)
    edge = []
    for j in range(codec.num_layers):
        rows = [im["layers"][j] for im in per_image]
        edge.append(
            {
                "label": f"L{j + 1}",
                "kind": "layer",
                "layer": j + 1,
                **{k: mean([r[k] for r in rows]) for k in ("bpp", "psnr", "ms_ssim")},
                "encode_fps": n / sum(1 / r["encode_fps"] for r in rows),
            }
        )
    matched = {
        fmt: [
            {
                "label": f"at L{j + 1}",
                "kind": "matched",
                "target": f"L{j + 1}",
                "target_bpp": edge[j]["bpp"],
                **{
                    k: mean([im["matched"][fmt][j][k] for im in per_image])
                    for k in ("bpp", "psnr", "ms_ssim", "quality")
                },
                "floor_images": sum(im["matched"][fmt][j]["floor"] for im in per_image),
                "min_bpp": mean([im["matched"][fmt][j]["min_bpp"] for im in per_image]),
                "encode_fps": n / classic_time[fmt][j],
            }
            for j in range(codec.num_layers)
        ]
        for fmt in FORMATS
    }
    sweeps = {
        fmt: [
            {
                "label": f"q{q}",
                "kind": "sweep",
                "quality": q,
                **{k: mean([im["sweeps"][fmt][i][k] for im in per_image]) for k in ("bpp", "psnr", "ms_ssim")},
            }
            for i, q in enumerate(PLOT_QUALITIES)
        ]
        for fmt in FORMATS
    }
    return {
        "mode": "images",
        "source": Path(args.images).resolve().name,
        "images": n,
        **_codec_info(codec),
        "keyframe_seconds": inter_overrides(args, load_rate_config("balanced")).keyframe_seconds,
        "lambda": inter_overrides(args, load_rate_config("balanced")).replenish_lambda,
        "edgecodec": edge,
        "matched": matched,
        "sweeps": sweeps,
        "per_image": per_image,
    }


def read_clip(args: argparse.Namespace) -> tuple[list[np.ndarray], float, str]:
    """The clip's frames, its frame rate and where that rate came from."""
    stop = None if args.frames is None else args.start + args.frames
    with VideoSource(args.video, size=args.size, frames=stop) as src:
        frames = [f.rgb for f in src][args.start :]
        native = src.native_fps
    if not frames:
        raise SystemExit(f"{args.video}: no frames from frame {args.start} on")
    if args.fps:
        return frames, args.fps, "given with --fps"
    if Path(args.video).suffix.lower() in RAW_STREAMS or not native:
        return frames, DEFAULT_FPS, f"assumed {DEFAULT_FPS:g} fps: a raw stream carries no reliable frame rate"
    return frames, float(native), "from the container"


def edgecodec_points(
    args: argparse.Namespace, m: dict[str, np.ndarray], codec: Codec, frames: Sequence[np.ndarray], fps: float
) -> list[dict[str, Any]]:
    """edgecodec with P-frames (each layer fixed, each preset; unless --intra-only), then intra-only."""
    pixels, model = frames[0].shape[0] * frames[0].shape[1], codec.model.name
    presets = {}
    for name in args.presets:
        config = inter_overrides(args, load_rate_config(name).for_model(model))  # as the sender would run it
        budget = "no budget" if config.unlimited else f"{config.kbps:g} kbps"
        presets[f"{name} ({budget})"] = config
        if config.fixed_layer is None:
            presets.update({f"{name} @ {kbps:g} kbps": config.with_kbps(kbps) for kbps in args.kbps})
    points = []
    if not args.intra_only:
        base = inter_overrides(args, load_rate_config("balanced"))
        configs = {f"L{layer}": fixed_layer_config(layer, base) for layer in range(1, codec.num_layers + 1)}
        configs.update(presets)
        series = measure_inter(codec, frames, fps, configs, psnr, ms_ssim_batch)
        for label, config in configs.items():
            extra = {"layer": config.fixed_layer} if label.startswith("L") and label[1:].isdigit() else {}
            kind = "layer" if extra else "preset"
            if kind == "preset":
                extra = {"preset": config.name, "budget_kbps": config.kbps}
            points.append(inter_point(label, kind, series[label], fps, pixels, **extra))
    points += [layer_point(m, layer, fps, pixels) for layer in range(1, codec.num_layers + 1)]
    points += [preset_point(m, config, f"{label} intra", fps, pixels) for label, config in presets.items()]
    return points


def inter_overrides(args: argparse.Namespace, config: RateConfig) -> RateConfig:
    """``config`` with --keyframe-seconds and --lambda applied where given."""
    changes = {"keyframe_seconds": args.keyframe_seconds, "replenish_lambda": args.lam}
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def run_video(args: argparse.Namespace, codec: Codec) -> dict[str, Any]:
    frames, fps, fps_note = read_clip(args)
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise SystemExit(f"x264/x265 need an even frame size for 4:2:0, got {w}x{h}: use --size")
    warm_up(codec, frames[0])
    t0 = time.perf_counter()
    m = measure_edgecodec(codec, frames)
    if not args.quiet:
        print(f"edgecodec: {len(frames)} frames measured in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    edge = edgecodec_points(args, m, codec, frames, fps)
    x26x = dict(fps=fps, preset=args.x26x_preset, threads=args.x26x_threads)
    matched: dict[str, list[dict[str, Any]]] = {}
    sweeps: dict[str, list[dict[str, Any]]] = {}
    floors: dict[str, list[dict[str, Any]]] = {}
    minimum: dict[str, dict[str, Any]] = {}
    for name in args.codecs:
        t0 = time.perf_counter()
        sweeps[name] = [x26x_point(name, frames, label=f"CRF {c}", kind="sweep", crf=c, **x26x) for c in args.crf]
        floors[name] = [x26x_point(name, frames, label="QP 51", kind="floor", qp=51, **x26x)]
        if 51 not in args.crf:
            floors[name].append(x26x_point(name, frames, label="CRF 51", kind="floor", crf=51, **x26x))
        runs: dict[int, dict[str, Any]] = {}  # by rounded target: presets often land on a layer's rate
        for p in edge:
            target = max(1, round(p["kbps"]))
            if target not in runs:
                runs[target] = matched_run(name, frames, p["kbps"], args.match_tries, **x26x)
        minimum[name] = min([*sweeps[name], *floors[name], *runs.values()], key=lambda r: r["kbps"])
        matched[name] = []
        for p in edge:
            run = runs[max(1, round(p["kbps"]))]
            matched[name].append(
                {
                    **run,
                    "target": p["label"],
                    "target_kbps": p["kbps"],
                    "reached": abs(math.log(run["kbps"] / p["kbps"])) <= math.log(REACH_TOLERANCE),
                    "below_minimum": minimum[name]["kbps"] > p["kbps"],
                }
            )
        if not args.quiet:
            tries = sum(len(r["requests_kbps"]) for r in runs.values())
            print(
                f"{name}: {tries + len(args.crf) + len(floors[name])} runs in {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
            )
    return {
        "mode": "video",
        "source": Path(args.video).name,
        "frames": len(frames),
        "start": args.start,
        "size": [w, h],
        "fps": fps,
        "fps_note": fps_note,
        "resized": args.size is not None,
        **_codec_info(codec),
        "x26x": {
            "preset": args.x26x_preset,
            "tune": "zerolatency",
            "threads": args.x26x_threads,
            "matched": (
                "ABR with bitrate = vbv-maxrate = R and vbv-bufsize = 1 s of R, R re-requested (up to "
                f"{args.match_tries} runs) until the stream's rate is within {MATCH_TOLERANCE:.0%} of edgecodec's"
            ),
            "codecs": args.codecs,
            "yuv420_ceiling_psnr": yuv420_ceiling(frames) if args.codecs else None,
        },
        "keyframe_seconds": inter_overrides(args, load_rate_config("balanced")).keyframe_seconds,
        "lambda": inter_overrides(args, load_rate_config("balanced")).replenish_lambda,
        "edgecodec": edge,
        "matched": matched,
        "sweeps": sweeps,
        "floors": floors,
        "minimum": minimum,
    }


# ---- output -------------------------------------------------------------------------------------------------
def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _fps(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [
        "| " + " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|",
    ]
    return lines + ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]


def _layers(counts: dict[str, int]) -> str:
    return " ".join(f"L{k}:{v}" for k, v in counts.items())


def images_table(result: dict[str, Any]) -> str:
    names = {"jpeg": "JPEG", "webp": "WebP"}
    head = ["edgecodec", "bpp", "PSNR", "MS-SSIM", "enc fps"]
    for fmt in FORMATS:
        head += [
            f"{names[fmt]} q",
            f"{names[fmt]} bpp",
            f"{names[fmt]} PSNR",
            f"{names[fmt]} MS-SSIM",
            f"{names[fmt]} fps",
        ]
    rows, notes = [], []
    for j, p in enumerate(result["edgecodec"]):
        row = [p["label"], _f(p["bpp"]), _db(p["psnr"]), _f(p["ms_ssim"]), _fps(p["encode_fps"])]
        for fmt in FORMATS:
            c = result["matched"][fmt][j]
            star = "*" if c["floor_images"] else ""
            row += [f"{c['quality']:.3g}", _f(c["bpp"]) + star, _db(c["psnr"]), _f(c["ms_ssim"]), _fps(c["encode_fps"])]
            if c["floor_images"]:
                notes.append(
                    f"\\* {p['label']}: {names[fmt]} cannot go as low as {p['bpp']:.3g} bpp on "
                    f"{c['floor_images']}/{result['images']} images (its smallest file, quality 1, is "
                    f"{c['min_bpp']:.3g} bpp on average): those images are at quality 1, not matched"
                )
        rows.append(row)
    sweep = [
        [names[fmt], p["label"], _f(p["bpp"]), _db(p["psnr"]), _f(p["ms_ssim"])]
        for fmt in FORMATS
        for p in result["sweeps"][fmt]
    ]
    title = (
        f"{result['model']} ({result['fingerprint']}, {result['backend']}, {result['threads']} threads) on "
        f"{result['source']}: {result['images']} images, metrics per image then means. JPEG/WebP (OpenCV) at the "
        "quality whose bpp is nearest to each layer's on each image; bpp = packet/file bytes x 8 / pixels."
    )
    out = [
        title,
        "",
        *markdown(head, rows),
        "",
        *notes,
        "",
        "JPEG/WebP quality sweep (means over images):",
        "",
        *markdown(["codec", "quality", "bpp", "PSNR", "MS-SSIM"], sweep),
    ]
    return "\n".join(out).rstrip() + "\n"


def _miss(result: dict[str, Any], name: str, c: dict[str, Any]) -> str:
    """Why a matched x264/x265 run is off its target."""
    lo = result["minimum"][name]
    tries = ", ".join(f"{a:.0f} -> {b:.1f}" for a, b in zip(c["requests_kbps"], c["achieved_kbps"], strict=True))
    if c["below_minimum"]:
        return (
            f"{name} cannot go as low as {c['target_kbps']:.1f} kbps on this clip: the least it spent in any run "
            f"is {lo['kbps']:.1f} kbps ({lo['label']}, {lo['psnr']:.2f} dB); ABR requested -> got: {tries} kbps"
        )
    way = "overshot" if c["kbps"] > c["target_kbps"] else "undershot"
    return (
        f"{name} ABR {way} {c['target_kbps']:.1f} kbps by more than {REACH_TOLERANCE - 1:.0%} (requested -> got: "
        f"{tries} kbps), though it reaches {lo['kbps']:.1f} kbps ({lo['label']})"
    )


def video_table(result: dict[str, Any]) -> str:
    codecs = result["x26x"]["codecs"]
    head = ["edgecodec", "layers used", "kbps", "PSNR", "MS-SSIM", "enc fps"]
    for name in codecs:
        head += [f"{name} kbps", f"{name} PSNR", f"{name} MS-SSIM", f"{name} fps"]
    rows, notes = [], {}
    for j, p in enumerate(result["edgecodec"]):
        over = f" ({p['over_budget']} over budget)" if p.get("over_budget") else ""
        row = [p["label"], _layers(p["layer_counts"]) + over, f"{p['kbps']:.1f}", _db(p["psnr"]), _f(p["ms_ssim"])]
        row.append(_fps(p["encode_fps"]))
        for name in codecs:
            c = result["matched"][name][j]
            row += [f"{c['kbps']:.1f}{'' if c['reached'] else '*'}", _db(c["psnr"]), _f(c["ms_ssim"])]
            row.append(_fps(c["encode_fps"]))
            if not c["reached"]:
                labels, _ = notes.setdefault((name, round(c["target_kbps"])), ([], _miss(result, name, c)))
                labels.append(p["label"])
        rows.append(row)
    curves = []
    for name in codecs:
        for p in [*result["sweeps"][name], *result["floors"][name]]:
            curves.append(
                [
                    name,
                    p["label"],
                    f"{p['kbps']:.1f}",
                    _db(p["psnr"]),
                    _f(p["ms_ssim"]),
                    _fps(p["encode_fps"]),
                    str(p["header_bytes"]),
                ]
            )
    w, h = result["size"]
    x = result["x26x"]
    title = (
        f"{result['model']} ({result['fingerprint']}, {result['backend']}, {result['threads']} threads) on "
        f"{result['source']}: {result['frames']} frames (from frame {result.get('start', 0)}) at {w}x{h}"
        f"{' (resized)' if result['resized'] else ''}, "
        f"{result['fps']:g} fps ({result['fps_note']}). x264/x265 via PyAV: preset={x['preset']}, "
        f"tune=zerolatency, {x['threads']} threads; matched = {x['matched']}. kbps = all bytes x 8 / "
        "(frames / fps); PSNR/MS-SSIM per frame (RGB), then means."
    )
    out = [title, "", *markdown(head, rows), ""]
    out += [f"\\* {', '.join(labels)}: {text}" for labels, text in notes.values()]
    savings = savings_rows(result["edgecodec"])
    if savings:
        out += [
            "",
            "P-frames against intra-only coding of the same frames, each layer fixed (keyframes every "
            f"{result['keyframe_seconds']:g} s, replenishment lambda {result['lambda']:g}):",
            "",
            *markdown(SAVINGS_HEAD, savings),
        ]
    if codecs:
        out += [
            "",
            "x264/x265 curves: CRF sweep, and constant QP 51 (with CRF 51, the floor of each encoder). "
            f"RGB -> YUV 4:2:0 -> RGB alone caps PSNR at {x['yuv420_ceiling_psnr']:.2f} dB. "
            "'hdr B' = parameter-set + SEI bytes in the stream (counted in kbps).",
            "",
            *markdown(["codec", "setting", "kbps", "PSNR", "MS-SSIM", "enc fps", "hdr B"], curves),
        ]
    return "\n".join(out).rstrip() + "\n"


def plot(result: dict[str, Any], path: str | Path) -> None:
    """PSNR and MS-SSIM against bpp (images) or kbps (video), log x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = "bpp" if result["mode"] == "images" else "kbps"
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
    for ax, metric, label in ((axes[0], "psnr", "PSNR (dB, RGB)"), (axes[1], "ms_ssim", "MS-SSIM (RGB)")):
        for k, (name, curve) in enumerate(result["sweeps"].items()):
            pts = [p for p in [*curve, *result.get("floors", {}).get(name, [])] if p[metric]]
            pts.sort(key=lambda p: p[x])
            line = ax.plot(
                [p[x] for p in pts],
                [p[metric] for p in pts],
                "s^dv"[k % 4] + "--",
                ms=4,
                alpha=0.7,
                label=f"{name} sweep",
            )[0]
            pts = [p for p in result["matched"][name] if p[metric]]
            ax.plot(
                [p[x] for p in pts],
                [p[metric] for p in pts],
                "s^dv"[k % 4],
                mfc="none",
                ms=9,
                color=line.get_color(),
                label=f"{name} matched",
                ls="none",
            )
        for coding, style, color in (("inter", "o-", "k"), ("intra", "o--", "0.55")):
            layers = [p for p in result["edgecodec"] if p["kind"] == "layer" and p.get("coding", "intra") == coding]
            layers = [p for p in layers if p[metric]]
            if not layers:
                continue
            name = "edgecodec layers" + (" (intra-only)" if coding == "intra" else " (P-frames)")
            ax.plot([p[x] for p in layers], [p[metric] for p in layers], style, lw=2, color=color, label=name)
            for p in layers:
                ax.annotate(p["label"].split()[0], (p[x], p[metric]), textcoords="offset points", xytext=(4, -10),
                            color=color)  # fmt: skip
        presets = [p for p in result["edgecodec"] if p["kind"] == "preset" and p[metric] and p.get("coding") != "intra"]
        for p in presets:
            ax.plot([p[x]], [p[metric]], "*", ms=11, label=p["label"])
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel" if x == "bpp" else f"kbit/s at {result['fps']:g} fps")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8)
    count = f"{result['images']} images" if x == "bpp" else f"{result['frames']} frames"
    fig.suptitle(f"{result['model']} vs classic codecs on {result['source']} ({count})")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- CLI ----------------------------------------------------------------------------------------------------
def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"expected a positive WxH, got {text!r}")
    return w, h


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="rd_bench.py", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="image folder (searched recursively): vs JPEG and WebP")
    src.add_argument("--video", metavar="FILE", help="video file: vs x264 and x265")
    ap.add_argument("--model", default="hqa5", help="model name or .safetensors path (default hqa5)")
    ap.add_argument("--backend", default="auto", help="edgecodec inference backend (default auto)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--max-images", type=int, metavar="N", help="only the first N images")
    ap.add_argument("--frames", type=int, metavar="N", help="only N frames of the video (from --start)")
    ap.add_argument("--start", type=int, default=0, metavar="K", help="skip the first K frames of the video")
    ap.add_argument("--size", type=_size, metavar="WxH", help="resize video frames to WxH")
    ap.add_argument("--fps", type=float, help="the clip's frame rate (default: the container's, 25 for raw streams)")
    ap.add_argument("--presets", nargs="*", default=preset_names(), help="rate presets (default: all shipped)")
    ap.add_argument("--kbps", type=float, nargs="*", default=[], help="also run each threshold preset at these budgets")
    ap.add_argument("--intra-only", action="store_true", help="video: edgecodec without P-frames only")
    ap.add_argument(
        "--keyframe-seconds", type=float, metavar="S", help="video: keyframe interval (default: the preset's)"
    )
    ap.add_argument(
        "--lambda", dest="lam", type=float, metavar="L", help="video: replenishment lambda (default: preset's)"
    )
    ap.add_argument("--codecs", nargs="*", default=list(X26X), choices=list(X26X), help="x264 and/or x265")
    ap.add_argument("--x26x-preset", default="veryfast", help="x264/x265 preset (default veryfast)")
    ap.add_argument("--x26x-threads", type=int, default=2, help="x264/x265 threads (default 2)")
    ap.add_argument("--match-tries", type=int, default=3, help="ABR runs per matched point (default 3)")
    ap.add_argument("--crf", type=int, nargs="*", default=list(CRFS), help=f"CRF sweep (default {CRFS})")
    ap.add_argument("--md", metavar="FILE", help="write the tables as Markdown")
    ap.add_argument("--plot", metavar="FILE.png", help="draw PSNR and MS-SSIM against rate")
    ap.add_argument("--json", metavar="FILE", help="write every number as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    for key in ("max_images", "frames", "threads", "x26x_threads", "match_tries"):
        if getattr(args, key) is not None and getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.fps is not None and not args.fps > 0:
        ap.error("--fps must be > 0")
    if any(not k > 0 for k in args.kbps):
        ap.error("--kbps values must be > 0")
    for name in args.presets:
        try:
            load_rate_config(name)  # unknown names fail here, before any work
        except ConfigError as exc:
            ap.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    codec = Codec(args.model, backend=args.backend)
    result = run_images(args, codec) if args.images else run_video(args, codec)
    text = images_table(result) if args.images else video_table(result)
    print(text, end="")
    for path, content in ((args.md, text), (args.json, json.dumps(result, indent=1) + "\n")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""edgecodec with P-frames on a clip, for tools/rd_bench.py: each configuration coded as ``edgecodec send`` codes it.

Every frame is encoded once (with the latents that any configuration's P-frame needs); each configuration (a fixed
layer, or a rate preset) then runs its own :class:`~edgecodec.sender.FrameCoder` (layer choice, I/P decision,
conditional replenishment, packet) and its own receiver (parse, the reference store, entropy decode, decode), so the
bits are those of real packets and the PSNR that of what a receiver shows. An unchanged P-frame is not sent (0 bits):
the receiver shows the frame before, as it would. The receiver's ids are checked against the
sender's for every frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgecodec.codec import Codec
from edgecodec.coding.gop import ReferenceStore
from edgecodec.config import RateConfig
from edgecodec.rate import RateController
from edgecodec.sender import FrameCoder

Metric = Callable[[np.ndarray, np.ndarray], float]
BatchMetric = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list]


def fixed_layer_config(layer: int, base: RateConfig) -> RateConfig:
    """``base``'s P-frame settings with every frame at ``layer`` and no budget."""
    return RateConfig(name=f"L{layer}", fixed_layer=layer, inter=base.inter, keyframe_seconds=base.keyframe_seconds,
                      replenish_lambda=base.replenish_lambda)  # fmt: skip


def measure_inter(
    codec: Codec,
    frames: Sequence[np.ndarray],
    fps: float,
    configs: dict[str, RateConfig],
    psnr: Metric,
    ms_ssim: BatchMetric,
) -> dict[str, dict[str, np.ndarray]]:
    """Per configuration, per frame: ``bits``, ``psnr``, ``ms_ssim`` (NaN if n/a), ``layer``, ``inter`` (0/1),
    ``code_s`` (coding time), plus ``encode_s`` (the shared encoder pass, same array in every entry)."""
    n = len(frames)
    coders = {k: FrameCoder(codec, RateController(c, codec.num_layers), session_id=1) for k, c in configs.items()}
    stores = {k: ReferenceStore() for k in configs}
    last: dict[str, np.ndarray] = {}
    out = {k: {m: np.zeros(n) for m in ("bits", "psnr", "ms_ssim", "layer", "inter", "code_s")} for k in configs}
    encode_s = np.zeros(n)
    for i, rgb in enumerate(frames):
        now = i / fps
        latents = tuple(sorted({layer for c in coders.values() for layer in c.latents(now)}))
        t0 = time.perf_counter()
        code = codec.encode(rgb, latents=latents)
        encode_s[i] = time.perf_counter() - t0
        shown = []
        for key, coder in coders.items():
            t0 = time.perf_counter()
            made = coder.code(code, now, seq=i, timestamp_us=round(now * 1e6))
            out[key]["code_s"][i] = time.perf_counter() - t0
            row = out[key]
            if made.skipped:  # an unchanged P-frame is not sent: the receiver keeps showing the frame before
                rec = last[key]
                row["bits"][i], row["layer"][i], row["inter"][i] = 0, made.coded.layer, True
            else:
                coder.sent(made, now)
                packet, reference = stores[key].resolve("clip", codec.parse(made.packet))
                ids = codec.packet_ids(codec.check(packet), reference)
                if not np.array_equal(ids, made.coded.ids):
                    raise RuntimeError(f"{key} frame {i}: the receiver's ids differ from the sender's")
                stores[key].update("clip", packet, ids)
                rec = last[key] = codec.decode(ids, packet.layer, rgb.shape[:2])
                row["bits"][i], row["layer"][i], row["inter"][i] = len(made.packet) * 8, packet.layer, packet.is_inter
            shown.append(rec)
            row["psnr"][i] = psnr(rgb, rec)
        for key, score in zip(out, ms_ssim([rgb] * len(shown), shown), strict=True):
            out[key]["ms_ssim"][i] = np.nan if score is None else score
    for row in out.values():
        row["encode_s"] = encode_s
    return out


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def inter_point(label: str, kind: str, m: dict[str, np.ndarray], fps: float, pixels: int, **extra: Any) -> dict:
    """A point of rd_bench's table from :func:`measure_inter`'s arrays of one configuration."""
    n = len(m["bits"])
    layers, counts = np.unique(m["layer"].astype(int), return_counts=True)
    p, i = m["inter"] > 0, m["inter"] == 0
    ms = None if np.isnan(m["ms_ssim"]).all() else float(np.nanmean(m["ms_ssim"]))
    return {
        "label": label,
        "kind": kind,
        "coding": "inter",
        **extra,
        "kbps": float(m["bits"].sum()) / (n / fps) / 1000,
        "bpp": float(m["bits"].mean()) / pixels,
        "psnr": float(m["psnr"].mean()),
        "ms_ssim": ms,
        "encode_fps": n / float((m["encode_s"] + m["code_s"]).sum()),
        "layer_counts": {str(k): int(v) for k, v in zip(layers, counts, strict=True)},
        "frame_types": {"I": int(i.sum()), "P": int(p.sum())},
        "bits_I": _mean(m["bits"][i]),
        "bits_P": _mean(m["bits"][p]),
        "psnr_I": _mean(m["psnr"][i]),
        "psnr_P": _mean(m["psnr"][p]),
        "per_frame": {
            "layer": m["layer"].astype(int).tolist(),
            "type": ["P" if v else "I" for v in m["inter"]],
            "bits": m["bits"].astype(int).tolist(),
            "psnr": np.round(m["psnr"], 3).tolist(),
        },
    }


def savings_rows(points: list[dict]) -> list[list[str]]:
    """Per layer: intra-only against inter coding (same frames): rates, PSNR, mean bits of P-frames against intra
    frames, and the PSNR of the P-frames against the intra coding of the same frames."""
    intra = {p["layer"]: p for p in points if p["kind"] == "layer" and p.get("coding") == "intra"}
    rows = []
    for p in points:
        if p["kind"] != "layer" or p.get("coding") != "inter" or p["layer"] not in intra:
            continue
        q = intra[p["layer"]]
        types = p["per_frame"]["type"]
        q_bits, q_psnr = np.array(q["per_frame"]["bits"]), np.array(q["per_frame"]["psnr"])
        is_p = np.array([t == "P" for t in types])
        ratio = float(q_bits[is_p].mean() / p["bits_P"]) if p["bits_P"] else None
        dpsnr = float(np.array(p["per_frame"]["psnr"])[is_p].mean() - q_psnr[is_p].mean()) if is_p.any() else None
        rows.append([
            f"L{p['layer']}", f"{q['kbps']:.1f}", f"{q['psnr']:.2f}", f"{p['kbps']:.1f}", f"{p['psnr']:.2f}",
            f"{100 * (p['kbps'] / q['kbps'] - 1):+.1f}%", f"{p['frame_types']['I']} / {p['frame_types']['P']}",
            f"{q_bits.mean():.0f}", "-" if p["bits_P"] is None else f"{p['bits_P']:.0f}",
            "-" if ratio is None else f"{ratio:.1f}x", "-" if dpsnr is None else f"{dpsnr:+.2f}",
        ])  # fmt: skip
    return rows


SAVINGS_HEAD = ["layer", "intra kbps", "intra PSNR", "inter kbps", "inter PSNR", "rate change", "I / P frames",
                "intra bits/frame", "P bits/frame", "P saving", "P-frame PSNR change"]  # fmt: skip

#!/usr/bin/env python3
"""The inter-frame issue's acceptance checks, from ``tools/rd_bench.py --json`` results of video clips.

``python tools/inter_report.py docs/rd/static_street.json docs/rd/bottles.json --static --md out.md``
``python tools/inter_report.py docs/rd/foreman.json --moving``

Static clips (``--static``):

* **floor**: x264's lowest rate (CRF 51) and PSNR, against edgecodec's PSNR at that rate (interpolated on the
  P-frame layer curve in log rate; "below" when every layer costs more), and edgecodec's best PSNR at a third of it;
* **<= 100 kbps**: every edgecodec point with P-frames at or below 100 kbps against x264 and x265 at the matched rate;
* **P-frames**: per layer, how many times fewer bits a P-frame costs than an intra frame of the same frames, and the
  PSNR it gives up.

Moving clips (``--moving``): per layer, the rate with P-frames against intra-only, and the PSNR difference. Both:
each preset's rate against its budget.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _points(result: dict[str, Any], coding: str, kind: str = "layer") -> list[dict[str, Any]]:
    return [p for p in result["edgecodec"] if p["kind"] == kind and p.get("coding", "intra") == coding]


def psnr_at(points: list[dict[str, Any]], kbps: float) -> float | None:
    """PSNR of the layer curve at ``kbps``, linear in log rate between neighbours; None below the cheapest point."""
    pts = sorted(points, key=lambda p: p["kbps"])
    if not pts or kbps < pts[0]["kbps"]:
        return None
    for a, b in zip(pts, pts[1:], strict=False):
        if a["kbps"] <= kbps <= b["kbps"]:
            t = math.log(kbps / a["kbps"]) / math.log(b["kbps"] / a["kbps"])
            return a["psnr"] + t * (b["psnr"] - a["psnr"])
    return max(p["psnr"] for p in pts)


def static_rows(name: str, r: dict[str, Any]) -> dict[str, list[str]]:
    inter = _points(r, "inter")
    floor = next(p for p in [*r["floors"]["x264"], *r["sweeps"]["x264"]] if p["label"] == "CRF 51")
    at_floor = psnr_at(inter, floor["kbps"])
    third = [p for p in inter if p["kbps"] <= floor["kbps"] / 3]
    best_third = max(third, key=lambda p: p["psnr"]) if third else None
    rows = {
        "floor": [
            name, f"{floor['kbps']:.1f} / {floor['psnr']:.2f}",
            "below its cheapest layer" if at_floor is None else f"{at_floor:.2f}",
            "yes" if at_floor is not None and at_floor >= floor["psnr"] else "no",
            f"{floor['kbps'] / 3:.1f}",
            "-" if best_third is None else f"{best_third['label']}: {best_third['kbps']:.1f} / "
            f"{best_third['psnr']:.2f}",
            "yes" if best_third is not None and best_third["psnr"] >= 22.0 else "no",
        ],
        "low": [],
        "savings": [],
    }  # fmt: skip
    labels = [p["label"] for p in r["edgecodec"]]
    for p in r["edgecodec"]:
        if p.get("coding") != "inter" or p["kbps"] > 100:
            continue
        j = labels.index(p["label"])
        x264 = r["matched"]["x264"][j]
        x265 = f"{r['matched']['x265'][j]['psnr']:.2f}" if "x265" in r["matched"] else "-"
        gap = x264["psnr"] - p["psnr"]
        rows["low"].append([
            name, p["label"], f"{p['kbps']:.1f}", f"{p['psnr']:.2f}", f"{x264['kbps']:.1f}", f"{x264['psnr']:.2f}",
            x265, f"{gap:+.2f}", "yes" if gap <= 1.0 else "no",
        ])  # fmt: skip
    intra = {p["layer"]: p for p in _points(r, "intra")}
    for p in inter:
        q = intra[p["layer"]]
        is_p = [t == "P" for t in p["per_frame"]["type"]]
        if not any(is_p):
            continue
        q_bits = sum(b for b, s in zip(q["per_frame"]["bits"], is_p, strict=True) if s) / sum(is_p)
        p_bits = sum(b for b, s in zip(p["per_frame"]["bits"], is_p, strict=True) if s) / sum(is_p)
        dpsnr = sum(
            a - b for a, b, s in zip(p["per_frame"]["psnr"], q["per_frame"]["psnr"], is_p, strict=True) if s
        ) / sum(is_p)
        ratio = q_bits / p_bits
        rows["savings"].append([
            name, f"L{p['layer']}", f"{q_bits:.0f}", f"{p_bits:.0f}", f"{ratio:.1f}x", f"{dpsnr:+.2f}",
            "yes" if ratio >= 5 and dpsnr >= -0.5 else "no",
        ])  # fmt: skip
    return rows


def moving_rows(name: str, r: dict[str, Any]) -> list[list[str]]:
    intra = {p["layer"]: p for p in _points(r, "intra")}
    out = []
    for p in _points(r, "inter"):
        q = intra[p["layer"]]
        more, dpsnr = p["kbps"] / q["kbps"] - 1, p["psnr"] - q["psnr"]
        out.append([
            name, f"L{p['layer']}", f"{q['kbps']:.1f}", f"{p['kbps']:.1f}", f"{100 * more:+.2f}%", f"{dpsnr:+.3f}",
            f"{p['frame_types']['I']} / {p['frame_types']['P']}", "yes" if more <= 0.02 and abs(dpsnr) <= 0.1 else "no",
        ])  # fmt: skip
    return out


def budget_rows(name: str, r: dict[str, Any]) -> list[list[str]]:
    out = []
    for p in _points(r, "inter", "preset"):
        if p.get("budget_kbps"):
            over = p["kbps"] / p["budget_kbps"] - 1
            out.append([name, p["label"], f"{p['kbps']:.1f}", f"{100 * over:+.1f}%", "yes" if over <= 0.10 else "no"])
    return out


def table(head: Sequence[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows), ""]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="rd_bench --json files")
    kind = ap.add_mutually_exclusive_group(required=True)
    kind.add_argument("--static", action="store_true", help="static-camera checks")
    kind.add_argument("--moving", action="store_true", help="moving-camera checks")
    ap.add_argument("--md", type=Path, help="also write the tables here")
    args = ap.parse_args(argv)
    results = {p.stem: json.loads(p.read_text()) for p in args.results}
    out: list[str] = []
    if args.static:
        rows = {k: [] for k in ("floor", "low", "savings")}
        for name, r in results.items():
            for k, v in static_rows(name, r).items():
                rows[k] += v if k != "floor" else [v]
        out += ["At and below x264's floor (CRF 51), kbps / PSNR dB:", ""]
        out += table(["clip", "x264 CRF 51", "edgecodec there", ">= x264", "a third of it", "edgecodec best there",
                      ">= 22 dB"], rows["floor"])  # fmt: skip
        out += ["edgecodec with P-frames at <= 100 kbps against x264 / x265 zerolatency at the matched rate:", ""]
        out += table(["clip", "edgecodec", "kbps", "PSNR", "x264 kbps", "x264 PSNR", "x265 PSNR", "x264 - edgecodec",
                      "within 1 dB"], rows["low"])  # fmt: skip
        out += ["P-frames against intra coding of the same frames (mean bits per frame, headers included):", ""]
        out += table(["clip", "layer", "intra bits", "P bits", "saving", "PSNR change", ">= 5x, >= -0.5 dB"],
                     rows["savings"])  # fmt: skip
    else:
        rows = [row for name, r in results.items() for row in moving_rows(name, r)]
        out += ["P-frames against intra-only at the same layer (a moving camera):", ""]
        out += table(["clip", "layer", "intra kbps", "inter kbps", "rate change", "PSNR change dB", "I / P",
                      "<= +2%, within 0.1 dB"], rows)  # fmt: skip
    budgets = [row for name, r in results.items() for row in budget_rows(name, r)]
    if budgets:
        out += ["Presets with P-frames against their budget:", ""]
        out += table(["clip", "preset", "kbps", "over budget", "within 10%"], budgets)
    text = "\n".join(out)
    print(text)
    if args.md:
        args.md.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

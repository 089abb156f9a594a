"""Records and statistics of ``edgecodec profile``: the stage names and timeouts, one frame's row from its sender and
receiver stats records, percentiles, and :func:`analyse`, which turns one run's records into a run object (the stages,
the modes and the run object are documented in the docstring of :mod:`edgecodec.profiling`). The other modules of the
package import from here; nothing here imports them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecodec.errors import EdgecodecError

STAGES = ("capture", "preprocess", "encode", "rate", "entropy_encode", "packet", "send", "receive", "parse",
          "entropy_decode", "decode", "postprocess", "output")  # fmt: skip
OUTSIDE = "capture"  # ends at the capture timestamp: not part of glass-to-glass
DERIVED = "receive"  # from wall clocks, not a timer
NET_ENCODE, NET_DECODE = "encode.net", "decode.net"  # substages of TimedBackend (in-process mode)
STREAM = "profile"
# The stage groups of the pipelined mode, each on a thread of its own (edgecodec.pipeline): what each could sustain
# alone is one over its mean time.
GROUPS = {
    "capture": ("capture",),
    "encode": ("preprocess", "encode"),
    "code+send": ("rate", "entropy_encode", "packet", "send"),
    "receive+entropy": ("parse", "entropy_decode"),
    "decode+output": ("decode", "postprocess", "output"),
}
CODEC_STAGES = ("preprocess", "encode", "entropy_encode", "entropy_decode", "decode", "postprocess")
RECEIVE_TIMEOUT_S = 10.0  # lock-step: the frame just sent must arrive within this
STARTUP_TIMEOUT_S = 120.0  # processes: model loading and warm-up (slow on a busy machine)
DRAIN_S = 3.0  # processes: after the sender exits, the receiver gets this long to take the last packets


# -- records -> per-frame rows -------------------------------------------------------------------------------------
def frame_row(sent: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """One frame's profile stages (ms) from its sender and receiver stats records (``--stats`` JSONL format)."""
    s, r = sent["ms"], got["ms"]
    pre, enc = (s.get("encode", 0.0), s[NET_ENCODE]) if NET_ENCODE in s else (None, s.get("encode", 0.0))
    post, dec = (r.get("decode", 0.0), r[NET_DECODE]) if NET_DECODE in r else (None, r.get("decode", 0.0))
    queued_us = sent["timestamp_us"] + sent["latency_ms"] * 1000
    taken_us = got["timestamp_us"] + (got["latency_ms"] - sum(r.values())) * 1000
    stages = {
        "capture": s.get("capture", 0.0), "preprocess": pre, "encode": enc, "rate": s.get("rate", 0.0),
        "entropy_encode": s.get("entropy", 0.0), "packet": s.get("packet", 0.0), "send": s.get("send", 0.0),
        "receive": (taken_us - queued_us) / 1000, "parse": r.get("parse", 0.0), "entropy_decode": r.get("entropy", 0.0),
        "decode": dec, "postprocess": post, "output": r.get("output", 0.0),
    }  # fmt: skip
    row = {"seq": got["seq"], "layer": got["layer"], "bits": got["bits"]}
    row.update({name: round(ms, 3) for name, ms in stages.items() if ms is not None})
    row["glass_to_glass"] = got["latency_ms"]
    row["out_s"] = (got["timestamp_us"] + got["latency_ms"] * 1000) / 1e6  # when the frame reached its sink
    return row


def stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(a.max()), 3), "mean_ms": round(float(a.mean()), 3)}  # fmt: skip


@dataclass
class Measured:
    """What one run of the pipeline gave: stats records of both sides, CPU use, and what ran."""

    sent: list[dict[str, Any]]
    got: list[dict[str, Any]]
    cpu: dict[str, Any]
    backend_used: str
    source: str
    decoder_backend: str | None = None  # the receiver's, where it differs from the sender's


def analyse(m: Measured, *, mode: str, backend: str, ns: argparse.Namespace) -> dict[str, Any]:
    """A run object (module docstring) and its per-frame rows under ``"rows"``."""
    sent = {r["seq"]: r for r in m.sent}
    rows = [frame_row(sent[g["seq"]], g) for g in m.got if g["seq"] in sent and g["seq"] >= ns.warmup]
    measured = [s for s in m.sent if s["seq"] >= ns.warmup]
    if not rows:
        raise EdgecodecError(f"no frame measured: {len(m.sent)} sent, {len(m.got)} received, --warmup {ns.warmup}")
    present = [s for s in STAGES if any(s in row for row in rows)]
    timed = [s for s in present if s not in (OUTSIDE, DERIVED)]
    g2g = [row["glass_to_glass"] for row in rows]
    stage_stats = {s: stats([row[s] for row in rows if s in row]) for s in present}
    g2g_stats = stats(g2g)
    p50_sum = sum(stage_stats[s]["p50_ms"] for s in timed)
    mean_timed = float(np.mean([sum(row.get(s, 0.0) for s in timed) for row in rows]))
    mean_receive = float(np.mean([row[DERIVED] for row in rows]))
    outs = [row["out_s"] for row in rows]
    n = len(rows)
    span = max(outs) - min(outs)
    fps = (n - 1) / span if n > 1 and span > 0 else 1000.0 / g2g_stats["mean_ms"]
    layers: dict[str, int] = {}
    for row in rows:
        layers[str(row["layer"])] = layers.get(str(row["layer"]), 0) + 1
    h, w = m.got[0]["size"]
    return {
        "mode": mode, "backend": backend, "backend_used": m.backend_used,
        "backend_decoders": m.decoder_backend or m.backend_used, "model": ns.model,
        "rate_config": ns.rate_config, "source": m.source, "size": [w, h], "frames": n, "warmup": ns.warmup,
        "threads": ns.threads, "dropped": len(measured) - n, "stages": stage_stats, "glass_to_glass": g2g_stats,
        "fps": round(fps, 3), "cpu": m.cpu,
        "stage_sum": {
            "timed_stages": timed, "p50_sum_ms": round(p50_sum, 3), "glass_to_glass_p50_ms": g2g_stats["p50_ms"],
            "gap_ms": round(g2g_stats["p50_ms"] - p50_sum, 3), "mean_timed_ms": round(mean_timed, 3),
            "mean_receive_ms": round(mean_receive, 3),
            "mean_untimed_ms": round(g2g_stats["mean_ms"] - mean_timed - mean_receive, 3),
            "mean_glass_to_glass_ms": g2g_stats["mean_ms"],
        },
        "layers": dict(sorted(layers.items())), "bits_mean": round(float(np.mean([r["bits"] for r in rows])), 1),
        "dropped_capture": m.cpu.get("dropped_capture", 0), **group_throughput(rows),
        "codec_ms": round(float(np.mean([sum(row.get(s, 0.0) for s in CODEC_STAGES) for row in rows])), 3),
        "load_avg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "rows": rows,
    }  # fmt: skip


def group_throughput(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``stage_fps``: frames per second each stage group (:data:`GROUPS`) could sustain alone, one over its mean time
    per frame; ``limiting_stage``: the slowest group."""
    fps = {}
    for name, stages in GROUPS.items():
        mean = float(np.mean([sum(row.get(s, 0.0) for s in stages) for row in rows]))
        if mean > 0:
            fps[name] = round(1000.0 / mean, 1)
    return {"stage_fps": fps, "limiting_stage": min(fps, key=fps.get) if fps else None}

#!/usr/bin/env python3
"""Streaming report: ``edgecodec send`` and ``edgecodec receive`` as two processes on loopback, for every rate preset
on two clips, and the per-frame layer trace of foreman under the low-bandwidth preset.

For each (clip, preset) the sender reads the clip paced at its native frame rate (as a camera would deliver it), the
receiver decodes headless, and both write ``--stats`` files, from which the table is computed:

* ``fps``: frames decoded per second at the receiver (end to end; below the clip's rate when the pipeline is slower);
* ``kbps``: bits received per second of wall-clock time, and ``kbps/video``: bits made per second of video (what the
  budget governs: the controller's clock is the media time);
* ``latency``: glass to glass, the time a frame has been decoded and handed to the (null) sink minus its capture time;
* ``layers``: how many frames used each layer; ``drops``: frames the sender could not queue, ``gaps``: frames the
  receiver found missing.

Each process gets one CPU thread (``OMP_NUM_THREADS=1``, ``EDGECODEC_THREADS=1``), so on a 2-core machine sender and
receiver each have a core. Run from the repository root::

    python tools/stream_report.py                       # ~4 minutes on 2 cores
    python tools/stream_report.py --presets balanced --clips foreman --frames 50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "video"
SAMPLE = ROOT / "edgecodec" / "samples" / "foreman_352x288_75f.mp4"
CLIPS = {  # name -> (file, --size or None, frames for the table)
    "foreman": (SHARED / "foreman_cif_352x288_299f.264", None, 150),
    "solidWhiteRight": (SHARED / "solidWhiteRight.mp4", "640x360", 60),
}
PRESETS = ("quality", "balanced", "low-bandwidth", "fixed")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "EDGECODEC_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def edgecodec(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgecodec", *args], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def frames_of(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "frame":
            out.append(record)
    return out


def run_pair(clip: Path, size: str | None, preset: str, frames: int, kbps: float | None, tmp: Path) -> dict:
    """One sender and one receiver process; returns the per-frame records of both."""
    receiver = edgecodec("receive", "--bind", "tcp://127.0.0.1:*", "--headless", "--quiet", "--timeout", "60",
                         "--stats", str(tmp / "receive.jsonl"))  # fmt: skip
    try:
        assert receiver.stderr is not None
        line = receiver.stderr.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            raise RuntimeError(f"receiver did not start: {line}{receiver.stderr.read()}")
        args = ["send", "--video", str(clip), "--fps", "25", "--frames", str(frames), "--connect", match.group(1),
                "--rate-config", preset, "--wait-receiver", "60", "--quiet",
                "--stats", str(tmp / "send.jsonl")]  # fmt: skip
        if size:
            args += ["--size", size]
        if kbps is not None:
            args += ["--kbps", str(kbps)]
        sender = edgecodec(*args)
        out, err = sender.communicate(timeout=600)
        if sender.returncode:
            raise RuntimeError(f"sender failed: {err}")
        sent = json.loads((tmp / "send.jsonl").read_text().splitlines()[-1])["sent"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(frames_of(tmp / "receive.jsonl")) < sent:
            time.sleep(0.1)
    finally:
        receiver.send_signal(signal.SIGTERM)
        try:
            receiver.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            receiver.kill()
            receiver.communicate()
    lines = (tmp / "send.jsonl").read_text().splitlines()
    return {"send": [json.loads(x) for x in lines[:-1]], "send_summary": json.loads(lines[-1]),
            "receive": frames_of(tmp / "receive.jsonl")}  # fmt: skip


def row(clip: str, preset: str, run: dict) -> dict:
    rx, tx, summary = run["receive"], run["send"], run["send_summary"]
    arrival = np.array([r["timestamp_us"] / 1e6 + r["latency_ms"] / 1000 for r in rx])
    span = float(arrival[-1] - arrival[0]) if len(rx) > 1 else 0.0
    latency = np.array([r["latency_ms"] for r in rx])
    layers = {k: sum(r["layer"] == k for r in tx) for k in sorted({r["layer"] for r in tx})}
    return {
        "clip": clip, "preset": preset, "budget_kbps": summary["budget_kbps"], "frames": len(tx),
        "received": len(rx), "fps": (len(rx) - 1) / span if span else 0.0,
        "kbps": sum(r["bits"] for r in rx[1:]) / span / 1000 if span else 0.0,
        "video_kbps": summary["media_kbps"], "latency_p50": float(np.percentile(latency, 50)),
        "latency_p99": float(np.percentile(latency, 99)), "layers": layers, "drops": summary["dropped"],
        "gaps": sum(r["gap"] for r in rx), "backend": summary["backend"],
        "encode_ms": summary["stages"].get("encode", 0.0),
        "decode_ms": float(np.mean([r["ms"].get("decode", 0.0) for r in rx])) if rx else 0.0,
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    head = ("| clip | preset (budget) | frames | fps | kbps | kbps/video | latency p50 / p99 ms | layers | "
            "drops / gaps | encode / decode ms |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        budget = f"{r['budget_kbps']:g} kbps" if r["budget_kbps"] else "no budget"
        layers = " ".join(f"L{k}:{v}" for k, v in r["layers"].items())
        lines.append(
            f"| {r['clip']} | {r['preset']} ({budget}) | {r['received']}/{r['frames']} | {r['fps']:.1f} | "
            f"{r['kbps']:.0f} | {r['video_kbps']:.0f} | {r['latency_p50']:.0f} / {r['latency_p99']:.0f} | {layers} | "
            f"{r['drops']} / {r['gaps']} | {r['encode_ms']:.0f} / {r['decode_ms']:.0f} |"
        )
    return "\n".join(lines)


def trace(run: dict, width: int = 75) -> str:
    chosen = "".join(str(r["layer"]) for r in run["send"])
    quality = "".join(str(r["quality_layer"]) for r in run["send"])
    lines = []
    for start in range(0, len(chosen), width):
        lines.append(
            f"frames {start:3d}-{min(start + width, len(chosen)) - 1:3d}  sent    {chosen[start : start + width]}"
        )
        lines.append(f"{'':17}quality {quality[start : start + width]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--frames", type=int, help="frames per run (default: per clip, 150 and 60)")
    parser.add_argument("--trace-frames", type=int, default=299, help="frames of the foreman trace (0: no trace)")
    parser.add_argument("--trace-kbps", type=float, help="budget of the trace (default: the preset's 300 kbps)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    ns = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in ns.clips:
            path, size, frames = CLIPS[name]
            if not path.is_file():
                if name != "foreman":
                    print(f"skip {name}: {path} not found", file=sys.stderr)
                    continue
                path, size, frames = SAMPLE, None, 75
                print(f"foreman: {CLIPS[name][0]} not found, using the sample clip", file=sys.stderr)
            for preset in ns.presets:
                t0 = time.monotonic()
                result = row(name, preset, run_pair(path, size, preset, ns.frames or frames, None, tmp))
                rows.append(result)
                print(f"  {name} {preset}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        print(f"backend {rows[0]['backend'] if rows else '?'}; one CPU thread per process\n")
        print(table(rows))
        if ns.trace_frames:
            path = CLIPS["foreman"][0] if CLIPS["foreman"][0].is_file() else SAMPLE
            run = run_pair(path, None, "low-bandwidth", ns.trace_frames, ns.trace_kbps, tmp)
            r = row("foreman", "low-bandwidth", run)
            print(f"\nlayer trace: {path.name}, low-bandwidth, {r['budget_kbps']:g} kbps budget, {r['frames']} frames; "
                  f"{r['video_kbps']:.1f} kbps per second of video, layers "
                  + " ".join(f"L{k}:{v}" for k, v in r["layers"].items()))  # fmt: skip
            print(trace(run))
            rows.append({**r, "trace": [x["layer"] for x in run["send"]]})
    if ns.json:
        Path(ns.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

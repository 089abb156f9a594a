"""Per-frame layer trace of a sender's stats: ``python tools/rate_trace.py PREFIX.send.jsonl [--plot trace.png]``.

Made by ``edgecodec demo --stats PREFIX`` (or ``edgecodec send --stats FILE``). For every frame: the rate
controller's time (``rate_s``: media time for files, capture time for a camera), layer,
frame type, the layer the quality thresholds asked for, the finest layer the token bucket afforded, why the frame got
its layer (quality, budget, dwell or over budget), and its bits. Then the checks of issue 14 (smooth rate control):

* switches per second of media time, and the most switches in any one-second window;
* frames sent at a coarser layer than both the quality choice and the bucket asked for (held by the dwell time after
  a budget-forced switch), and frames at a coarser layer than the quality choice while the bucket was full enough for
  it (should be none);
* the rate over the clip against the budget.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(path: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frames = [r for r in rows if r.get("kind") == "frame"]
    summary = next((r for r in rows if r.get("kind") == "summary"), {})
    return frames, summary


def seconds(frames: list[dict]) -> list[float]:
    """The rate controller's clock of each frame, from the first (capture time for stats without it)."""
    if all("rate_s" in f for f in frames):
        return [f["rate_s"] - frames[0]["rate_s"] for f in frames]
    return [(f["timestamp_us"] - frames[0]["timestamp_us"]) / 1e6 for f in frames]


def checks(frames: list[dict], summary: dict) -> dict:
    times = seconds(frames)
    interval = (times[-1] - times[0]) / max(1, len(times) - 1)
    duration = times[-1] - times[0] + interval
    switches = [t for t, a, b in zip(times[1:], frames, frames[1:], strict=False) if a["layer"] != b["layer"]]
    window = max((sum(1 for u in switches if t <= u < t + 1.0) for t in switches), default=0)
    forced = [max(f["quality_layer"], f.get("budget_layer") or f["quality_layer"]) for f in frames]
    held = [i for i, (f, lim) in enumerate(zip(frames, forced, strict=True)) if f["layer"] > lim]
    bits = sum(f["bits"] for f in frames)
    return {
        "frames": len(frames), "seconds": round(duration, 2), "switches": len(switches),
        "switches_per_s": round(len(switches) / duration, 2), "max_switches_in_1s": window,
        "held_coarser_by_dwell": len(held), "kbps": round(bits / duration / 1000, 1),
        "budget_kbps": summary.get("budget_kbps"),
    }  # fmt: skip


def table(frames: list[dict]) -> str:
    lines = ["| frame | t s | layer | type | quality layer | budget layer | reason | kbit |", "|---" * 8 + "|"]
    for f, t in zip(frames, seconds(frames), strict=True):
        lines.append(
            f"| {f['index']} | {t:.2f} | {f['layer']} | {f['type']} | "
            f"{f['quality_layer']} | {f.get('budget_layer') or '-'} | {f.get('reason', '')} | {f['bits'] / 1000:.1f} |"
        )
    return "\n".join(lines)


def plot(frames: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = seconds(frames)
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    a.step(t, [f["layer"] for f in frames], where="post", label="layer sent")
    a.step(t, [f["quality_layer"] for f in frames], where="post", ls=":", label="quality asks")
    afforded = [f.get("budget_layer") or f["quality_layer"] for f in frames]
    a.step(t, afforded, where="post", ls="--", label="bucket affords")
    a.invert_yaxis()
    a.set_ylabel("layer (1 = finest)")
    a.legend(loc="lower right", fontsize=8)
    b.bar(t, [f["bits"] / 1000 for f in frames], width=0.03, color=["C1" if f["type"] == "I" else "C0" for f in frames])
    b.set_ylabel("kbit per frame (I orange)")
    b.set_xlabel("rate controller time (media time of a file), s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stats", type=Path, help="a sender's stats file (JSON lines)")
    ap.add_argument("--plot", type=Path, help="write the trace as a PNG here")
    ap.add_argument("--table", action="store_true", help="print every frame as a markdown table")
    args = ap.parse_args()
    frames, summary = load(args.stats)
    if args.table:
        print(table(frames))
    print(json.dumps(checks(frames, summary)))
    if args.plot:
        plot(frames, args.plot)


if __name__ == "__main__":
    main()

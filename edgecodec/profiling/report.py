"""Output of ``edgecodec profile``: the table of each run with its stage sum against glass-to-glass, the comparison
table of several runs, and the ``--json``, ``--csv`` and ``--plot`` files (the run object is documented in the
docstring of :mod:`edgecodec.profiling`).
"""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path
from typing import Any

from edgecodec.errors import SinkError
from edgecodec.profiling.records import OUTSIDE, STAGES

NOTES = {
    "capture": "before the capture timestamp: not in glass-to-glass",
    "receive": "derived: sent -> taken by the receiver (see below)",
    "preprocess": "pad, to CHW float",
    "postprocess": "crop, clip, to uint8",
}
EXPLAIN = {
    "pipelined": (
        "Pipelined (one process, the sender's capture, encode and coding + sending on three threads, the receiver's "
        "network + entropy decoding and decoding + output on two): stages of successive frames overlap, so the frame "
        "rate is set by the slowest stage group, not by the sum. 'receive' is socket transit plus the time a packet "
        "waits while the receiver's threads are busy with earlier frames. On two cores every stage's wall time "
        "includes waits for a core."
    ),
    "lockstep": (
        "Lock-step (one thread): each frame is received and decoded before the next is captured, so nothing queues: "
        "'receive' is ZeroMQ's loopback transit plus the sender's bookkeeping after the send (its stats record), and "
        "'untimed' the code between the timed stages (the rate controller's commit, the receiver's record)."
    ),
    "processes": (
        "Pipelined (two processes): the sender encodes the next frame while the receiver decodes this one. 'receive' "
        "is socket transit plus the time a packet waits in ZeroMQ's queues while the receiver is busy with earlier "
        "frames (it grows when the receiver is slower than the sender). With --fps the pacing wait is inside "
        "'capture', before the capture timestamp, so it is in neither. preprocess and postprocess are inside encode "
        "and decode here. On a busy machine every stage's wall time includes waits for a core, and the two "
        "processes' stages overlap: 'receive' goes negative when the receiver took the packet before the sender's "
        "'send' stage had ended (the sender lost its core after the packet left)."
    ),
}


def _size_text(size: list[int]) -> str:
    return f"{size[0]}x{size[1]}"


def format_run(run: dict[str, Any]) -> str:
    """The table of one run, with the stage sum against glass-to-glass."""
    used = run["backend"] if run["backend_used"] == run["backend"] else f"{run['backend']} -> {run['backend_used']}"
    decoders = run.get("backend_decoders", run["backend_used"])
    if decoders != run["backend_used"]:
        used += f" (encoder), {decoders} (decoders)"
    head = f"{'stage':<16} {'mean':>8} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms)"
    lines = [
        f"edgecodec profile: {run['mode']}, backend {used}, {run['source']} at {_size_text(run['size'])}, "
        f"{run['frames']} frames (+{run['warmup']} warm-up), model {run['model']}, rate {run['rate_config']}",
        head, "-" * len(head),
    ]  # fmt: skip

    def line(name: str, s: dict[str, float], note: str = "") -> str:
        return (f"{name:<16} {s['mean_ms']:>8.2f} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f} {s['p99_ms']:>8.2f} "
                f"{s['max_ms']:>8.2f}  {note}").rstrip()  # fmt: skip

    lines += [line(name, s, NOTES.get(name, "")) for name, s in run["stages"].items()]
    lines += ["-" * len(head), line("glass-to-glass", run["glass_to_glass"], "capture timestamp -> frame at its sink")]
    cpu = run["cpu"]
    procs = ", ".join(f"{name} {c['percent']:.0f}%" for name, c in cpu["processes"].items() if c["percent"] is not None)
    layers = " ".join(f"L{k}:{v}" for k, v in run["layers"].items())
    load = f"; load average {run['load_avg'][0]:.1f}" if run["load_avg"] else ""
    before = f" (+{run['dropped_capture']} before encoding)" if run.get("dropped_capture") else ""
    lines.append(f"{run['fps']:.2f} fps; CPU {procs or '-'} of one core over {cpu['wall_s']:.1f} s "
                 f"({cpu['cores']} cores{load}); layers {layers}; {run['bits_mean'] / 8000:.2f} kB/frame; "
                 f"dropped {run['dropped']}{before}")  # fmt: skip
    if run.get("stage_fps"):
        alone = ", ".join(f"{name} {fps:.1f}" for name, fps in run["stage_fps"].items())
        lines += textwrap.wrap(f"Throughput each stage group could sustain alone (fps): {alone}; the limit: "
                               f"{run['limiting_stage']}", width=118)  # fmt: skip
    if run.get("x264"):
        x = run["x264"]
        lines += textwrap.wrap(f"x264 {x['preset']} {x['tune']} on the same frames: encode {x['encode_ms']:.2f} + "
                               f"decode {x['decode_ms']:.2f} ms/frame; edgecodec's codec (encode, entropy coding both "
                               f"ways, decode) {x['edgecodec_ms']:.2f} ms/frame: {x['ratio']:.1f} times x264's",
                               width=118)  # fmt: skip
    ss = run["stage_sum"]
    share = 100 * ss["p50_sum_ms"] / ss["glass_to_glass_p50_ms"] if ss["glass_to_glass_p50_ms"] > 0 else 0.0
    summed = f"{ss['timed_stages'][0]}..{ss['timed_stages'][-1]}, without capture and receive"
    lines += textwrap.wrap(
        f"Do the stages add up to glass-to-glass? The p50s of the timed stages ({summed}) add up to "
        f"{ss['p50_sum_ms']:.2f} ms, {share:.0f}% of the glass-to-glass p50 of {ss['glass_to_glass_p50_ms']:.2f} ms: "
        f"gap {ss['gap_ms']:+.2f} ms.",
        width=118,
    )
    lines += textwrap.wrap(
        f"Per-frame means do add up: timed {ss['mean_timed_ms']:.2f} + receive {ss['mean_receive_ms']:.2f} + untimed "
        f"{ss['mean_untimed_ms']:.2f} = glass-to-glass {ss['mean_glass_to_glass_ms']:.2f} ms. {EXPLAIN[run['mode']]} "
        "Percentiles do not add: the p50 of a sum is not the sum of the p50s.",
        width=118, initial_indent="  ", subsequent_indent="  ",
    )  # fmt: skip
    return "\n".join(lines)


def format_comparison(runs: list[dict[str, Any]]) -> str:
    """One row per run (backend x size)."""
    head = (f"{'backend':<16} {'size':>9} {'fps':>7} {'g2g p50':>8} {'p95':>8} {'p99':>8} {'max':>8} "
            f"{'encode':>8} {'decode':>8} {'CPU %':>6}")  # fmt: skip
    lines = ["comparison (ms; encode and decode are p50s)", head, "-" * len(head)]
    for r in runs:
        g, st = r["glass_to_glass"], r["stages"]
        used = r["backend"] if r["backend_used"] == r["backend"] else f"{r['backend']}->{r['backend_used']}"
        cpu = "-" if r["cpu"]["percent"] is None else f"{r['cpu']['percent']:.0f}"
        lines.append(f"{used:<16} {_size_text(r['size']):>9} {r['fps']:>7.2f} {g['p50_ms']:>8.2f} {g['p95_ms']:>8.2f} "
                     f"{g['p99_ms']:>8.2f} {g['max_ms']:>8.2f} {st['encode']['p50_ms']:>8.2f} "
                     f"{st['decode']['p50_ms']:>8.2f} {cpu:>6}")  # fmt: skip
    return "\n".join(lines)


def write_json(runs: list[dict[str, Any]], path: str) -> None:
    clean = [{k: v for k, v in r.items() if k != "rows"} for r in runs]
    _write(path, json.dumps(clean[0] if len(clean) == 1 else {"runs": clean}, indent=1) + "\n")


def write_csv(runs: list[dict[str, Any]], path: str) -> None:
    stages = [s for s in STAGES if any(s in r["stages"] for r in runs)]
    columns = ["backend", "size", "seq", "layer", "bits", *(f"{s}_ms" for s in stages), "glass_to_glass_ms"]
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(columns)
            for r in runs:
                for row in r["rows"]:
                    out.writerow([r["backend_used"], _size_text(r["size"]), row["seq"], row["layer"], row["bits"],
                                  *(row.get(s, "") for s in stages), row["glass_to_glass"]])  # fmt: skip
    except OSError as exc:
        raise SinkError(f"cannot write {path!r}: {exc.strerror or exc}") from None


def write_plot(runs: list[dict[str, Any]], path: str) -> None:
    """Left: mean ms per stage stacked (they add up to the mean glass-to-glass); right: latency of every frame."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 1.6 + 0.9 * len(runs) + 2.5))
    canvas = FigureCanvasAgg(fig)
    bars, lines = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    parts = [s for s in STAGES if s != OUTSIDE and any(s in r["stages"] for r in runs)] + ["untimed"]
    tab20 = matplotlib.colormaps["tab20"]  # the dark colours first, then their light pairs
    colours = {name: tab20((2 * i) % 20 + (2 * i) // 20) for i, name in enumerate(parts)}
    labels = [f"{r['backend_used']} {_size_text(r['size'])} ({r['mode']})" for r in runs]
    for i, r in enumerate(runs):
        left = 0.0
        for name in parts:
            ms = r["stage_sum"]["mean_untimed_ms"] if name == "untimed" else r["stages"].get(name, {}).get("mean_ms", 0)
            ms = max(ms, 0.0)
            bars.barh(i, ms, left=left, color=colours[name], label=name if i == 0 else None, edgecolor="white", lw=0.5)
            left += ms
        bars.plot(
            [r["glass_to_glass"]["p50_ms"]], [i], "k|", ms=22, mew=2, label="glass-to-glass p50" if i == 0 else None
        )
    bars.set_yticks(range(len(runs)), labels)
    bars.invert_yaxis()
    bars.set_xlabel("mean ms per frame (stacked = mean glass-to-glass; capture excluded)")
    bars.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    bars.grid(True, axis="x", alpha=0.3)
    for r, label in zip(runs, labels, strict=True):
        lines.plot([row["seq"] for row in r["rows"]], [row["glass_to_glass"] for row in r["rows"]], label=label)
    if len(runs) == 1:
        for name in ("encode", "decode", "receive"):
            rows = runs[0]["rows"]
            lines.plot([row["seq"] for row in rows], [row[name] for row in rows], lw=1, alpha=0.8, label=name)
    lines.set_xlabel("frame (sequence number)")
    lines.set_ylabel("ms")
    lines.set_title("glass-to-glass latency per frame", fontsize=10)
    lines.grid(True, alpha=0.3)
    lines.legend(fontsize=7)
    fig.suptitle(f"edgecodec profile: {runs[0]['model']}, {runs[0]['source']}, {runs[0]['frames']} frames")
    fig.tight_layout()
    try:
        canvas.print_png(path)
    except OSError as exc:
        raise SinkError(f"cannot write {path!r}: {exc.strerror or exc}") from None


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SinkError(f"cannot write {path!r}: {exc.strerror or exc}") from None

"""``edgecodec profile``: per-stage and glass-to-glass latency of the whole pipeline, frames per second and CPU use.

It runs the real sender and receiver pieces and reads their per-frame stage records (the :class:`~edgecodec.timing.
StageTimer` stages that ``edgecodec send``/``receive`` write with ``--stats``); it times nothing of its own except
the split of preprocessing and postprocessing from the network calls (in-process mode). Stages of one frame:

==============  ========  ===================================================================================
stage           side      what it covers
==============  ========  ===================================================================================
capture         sender    reading the frame: file decode, resize, the pacing sleep with ``--fps``. It ends at
                          the capture timestamp, so it is *not* part of glass-to-glass.
preprocess      sender    frame checks, edge padding, HWC to CHW, to float (in-process mode only; in processes
                          mode it is inside ``encode``)
encode          sender    the backend's encoder pass (ids and qerr of every layer)
rate            sender    the rate controller's choice, without the entropy coding it asks for
entropy_encode  sender    entropy coding of the candidate layers (one to a few per frame)
packet          sender    packet header and checksum
send            sender    the non-blocking queueing into ZeroMQ
receive         derived   from the packet queued by the sender to the receiver taking it off its socket: socket
                          transit, and queueing behind frames the receiver is still busy with (wall clocks)
parse           receiver  header parse and checks
entropy_decode  receiver  entropy decoding of the id grid
decode          receiver  the backend's decoders L..1
postprocess     receiver  crop, clip, to uint8 (in-process mode only; in processes mode inside ``decode``)
output          receiver  handing the frame to its sink (headless here: nothing to draw)
==============  ========  ===================================================================================

Glass-to-glass is the receiver's latency: the time the decoded frame has been handed to its sink minus the capture
timestamp in the packet. The timed stages from preprocess to output, plus ``receive``, plus a little untimed code
(the rate controller's commit, stats records) make up glass-to-glass exactly *on average*; percentiles do not add.

Modes:

* ``lockstep`` (``inprocess``, the default): one process and one thread, lock-step.
  :func:`edgecodec.sender.stream_frames` captures, encodes and sends each frame over a real ZeroMQ TCP connection on
  127.0.0.1 to a :class:`~edgecodec.receiver.FrameReceiver` in the same process, which
  :func:`edgecodec.receiving.receive_frames` makes take and decode it before the next frame is captured. Nothing
  queues, so this is the cost of each stage; frames per second is one over the sum of both sides. When both sides
  share the cores this is also the lowest glass-to-glass latency: the two networks fill both cores, so overlapping
  them gains no frame rate and only adds waits (measured on 2 cores, solidWhiteRight at 640x480 paced at 25 fps:
  lock-step 14.0 fps, p50 62 ms; pipelined 14.9-17.3 fps, p50 142-195 ms).
* ``pipelined``: one process, the sender and the receiver each pipelined on threads of their own, as
  ``edgecodec send`` and ``receive`` run (:mod:`edgecodec.profiling.pipelined`, :mod:`edgecodec.pipeline`), each
  network on half the cores. Frames per second is what the slowest stage allows; the run also reports the
  throughput each stage group could sustain alone (capture, encode, code + send, receive + entropy decode, decode +
  output: one over its mean time) and names the one that limits the frame rate. With ``--fps`` the source is paced,
  and frames the encoder cannot keep up with are dropped before encoding and counted (``dropped_capture``).
* ``--only sender`` / ``--only receiver`` (:mod:`edgecodec.profiling.sides`): one side alone, pipelined, as it runs
  on a machine of its own: what a camera box sends and what a viewer decodes.
* ``processes``: a real ``edgecodec send`` and ``edgecodec receive`` as two processes on tcp://127.0.0.1, pipelined
  (the sender encodes the next frame while the receiver decodes this one); their ``--stats`` JSONL records are
  merged by sequence number. This is the live pipeline's throughput and latency, queueing included.

CPU use is CPU time over wall time of the measured span, 100% being one core busy: for the profiling process itself
(in-process mode, :func:`time.process_time`), or for each of the two processes from its start-up line (model loaded
and warmed up) to its exit (``/proc/PID/stat`` at the start line, ``os.wait4`` at exit).

``--backend`` and ``--size`` take lists; every combination is one run. ``--json`` then holds ``{"runs": [run, ...]}``
instead of a single run object; a run object is::

    {"mode", "backend" (asked for), "backend_used" (the encoder's), "backend_decoders", "model", "rate_config",
     "source", "size": [W, H], "frames", "warmup",
     "threads", "dropped", "stages": {stage: {"p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"}},
     "glass_to_glass": {...same keys}, "fps", "cpu": {"wall_s", "cores", "processes": {name: {"cpu_s", "percent"}},
     "percent"}, "stage_sum": {"timed_stages", "p50_sum_ms", "glass_to_glass_p50_ms", "gap_ms", "mean_timed_ms",
     "mean_receive_ms", "mean_untimed_ms", "mean_glass_to_glass_ms"}, "layers": {layer: frames}, "bits_mean",
     "load_avg": [1, 5, 15 min]}
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecodec.capture import Size, add_source_arguments, parse_size, source_from_args
from edgecodec.cliutil import at_least
from edgecodec.errors import ConfigError, SinkError, require
from edgecodec.profiling.inprocess import CpuClock, RecordList, TimedBackend, _source_ns, cpu_threads, run_inprocess
from edgecodec.profiling.pipelined import run_pipelined
from edgecodec.profiling.processes import Child, run_processes
from edgecodec.profiling.records import (
    DERIVED,
    DRAIN_S,
    NET_DECODE,
    NET_ENCODE,
    OUTSIDE,
    RECEIVE_TIMEOUT_S,
    STAGES,
    STARTUP_TIMEOUT_S,
    STREAM,
    Measured,
    analyse,
    frame_row,
    stats,
)
from edgecodec.profiling.report import (
    EXPLAIN,
    NOTES,
    _size_text,
    format_comparison,
    format_run,
    write_csv,
    write_json,
    write_plot,
)
from edgecodec.profiling.x264 import x264_baseline
from edgecodec.runtime import BACKEND_HELP, FAST_CPU_MODEL, split_threads, streaming_defaults

__all__ = [
    "DERIVED", "DRAIN_S", "EXPLAIN", "NET_DECODE", "NET_ENCODE", "NOTES", "OUTSIDE", "RECEIVE_TIMEOUT_S", "STAGES",
    "STARTUP_TIMEOUT_S", "STREAM", "Child", "CpuClock", "Measured", "RecordList", "TimedBackend", "analyse",
    "build_parser", "cpu_threads", "format_comparison", "format_run", "frame_row", "main", "run_inprocess",
    "run_processes", "stats", "write_csv", "write_json", "write_plot",
]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """Usage errors become a ConfigError: one line on stderr and exit status 2 through the CLI."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _size(text: str) -> Size:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--size: ")) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgecodec profile",
        conflict_handler="resolve",
        description="Per-stage and glass-to-glass latency, fps and CPU use of the whole pipeline.",
    )
    add_source_arguments(parser)  # --size and --frames are replaced below: a list of sizes, and 100 frames
    parser.add_argument("--size", type=_size, nargs="+", metavar="WxH", help="frame sizes to compare (resize)")
    parser.add_argument("--frames", type=at_least(1), default=100, metavar="N", help="frames measured (default 100)")
    parser.add_argument("--warmup", type=at_least(0), default=2, metavar="K",
                        help="frames run first and left out of the statistics (default 2)")  # fmt: skip
    parser.add_argument(
        "--mode",
        choices=("lockstep", "inprocess", "pipelined", "processes"),
        default="lockstep",
        help="lockstep (or inprocess, the default): both sides in one thread, one frame at a time: the lowest "
        "latency when they share the cores; pipelined: both sides pipelined in one process; processes: edgecodec "
        "send + receive. --only sender|receiver: one side alone, pipelined",
    )
    parser.add_argument("--backend", nargs="+", default=["auto"], metavar="NAME",
                        help=f"backends to compare, one run each; {BACKEND_HELP}")  # fmt: skip
    parser.add_argument("--threads", type=at_least(1), metavar="N",
                        help="CPU threads of each network (default: all usable CPUs; --mode pipelined: half each "
                             "for the sender's and the receiver's)")  # fmt: skip
    parser.add_argument("--model", help=f"model name or .safetensors path (default {FAST_CPU_MODEL} on a CPU)")
    parser.add_argument("--max-latency", type=float, default=0.5, metavar="S",
                        help="pipelined: the receiver's live-view policy, as edgecodec receive's (newest frame wins, "
                             "older than S s skipped; 0: every frame shown; default 0.5)")  # fmt: skip
    parser.add_argument("--only", choices=("sender", "receiver"),
                        help="one side alone, pipelined, as it runs live (edgecodec/profiling/sides.py): the sender "
                             "with no network, or the receiver fed the source's packets at its pace")  # fmt: skip
    parser.add_argument("--x264", action=argparse.BooleanOptionalAction, default=True,
                        help="also time x264 ultrafast zerolatency on the same frames, and report the ratio of "
                             "edgecodec's codec time to it (default on)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device for the torch backend (default cpu)")
    parser.add_argument("--rate-config", default="balanced", metavar="NAME|FILE", help="rate preset (default balanced)")
    parser.add_argument("--kbps", type=float, metavar="N", help="override the preset's budget (0 = unlimited)")
    parser.add_argument("--intra-only", action="store_true", help="every frame a keyframe (no P-frames)")
    parser.add_argument("--json", metavar="FILE", help="write the statistics as JSON")
    parser.add_argument("--csv", metavar="FILE", help="write one row per frame with the ms of every stage")
    parser.add_argument("--plot", metavar="FILE.png", help="per-stage breakdown and latency over time")
    return parser


def _check_args(ns: argparse.Namespace) -> None:
    from edgecodec import runtime
    from edgecodec.sender import load_config

    load_config(ns.rate_config, ns.kbps)
    known = getattr(runtime, "BACKENDS", None)  # older trees have no list; make_backend still refuses unknown names
    for name in ns.backend:
        if known is not None and name not in known:
            raise ConfigError(f"unknown backend {name!r} (available: {', '.join(known)})")
    for path in (ns.json, ns.csv, ns.plot):
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise SinkError(f"cannot write {path!r}: its folder does not exist")
    if ns.camera is None:  # a missing file or folder is an error now, not after the model has loaded
        with source_from_args(_source_ns(ns, None)):
            pass
    if ns.plot is not None:
        require("matplotlib", "--plot")


def _measure(ns: argparse.Namespace, backend: str, size: Size | None, codecs: dict[str, Any]) -> Measured:
    if ns.mode == "processes":
        return run_processes(ns, backend, size)
    if backend not in codecs:  # one codec per backend and side, for all its sizes
        codecs.clear()
        codecs[backend] = (_codec(ns, backend, decode_only=False), _codec(ns, backend, decode_only=True))
    send_codec, receive_codec = codecs[backend]
    if ns.mode == "pipelined":
        return run_pipelined(ns, send_codec, receive_codec, size)
    return run_inprocess(ns, send_codec, size, receive_codec)


def _codec(ns: argparse.Namespace, backend: str, *, decode_only: bool) -> Any:
    from edgecodec.codec import Codec

    model, chosen, _ = streaming_defaults(ns.model, backend, ns.device, decode_only=decode_only)
    threads = split_threads(ns.threads) if ns.mode == "pipelined" and not ns.only else ns.threads
    codec = Codec(model, backend=chosen, device=ns.device, threads=threads)
    codec.backend = TimedBackend(codec.backend)
    return codec


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    _check_args(ns)
    if ns.mode == "inprocess":
        ns.mode = "lockstep"
    asked = ns.backend[0] if len(ns.backend) == 1 else "auto"  # the note names what a single --backend gives
    model, _, note = streaming_defaults(ns.model, asked, ns.device, decode_only=ns.only == "receiver",
                                        both_sides=not ns.only)  # fmt: skip
    if note and ns.model is None:
        print(f"edgecodec profile: {note}", file=sys.stderr, flush=True)
    ns.model = model
    combos = [(backend, size) for backend in ns.backend for size in ns.size or [None]]
    runs: list[dict[str, Any]] = []
    codecs: dict[str, Any] = {}
    if ns.only:
        if ns.csv or ns.plot:
            raise ConfigError("--csv and --plot are for the runs of both sides; with --only, use --json")
        return _main_side(ns)
    with cpu_threads(ns.threads if ns.mode == "lockstep" else None):
        for i, (backend, size) in enumerate(combos, 1):
            if len(combos) > 1:
                where = _size_text(list(size)) if size else "native size"
                print(f"edgecodec profile: run {i}/{len(combos)}: {ns.mode}, backend {backend}, {where}",
                      file=sys.stderr, flush=True)  # fmt: skip
            run = analyse(_measure(ns, backend, size, codecs), mode=ns.mode, backend=backend, ns=ns)
            if ns.x264:
                run["x264"] = x264_baseline(ns, size, run)
            _note_short(ns, run)
            print(format_run(run) + "\n", flush=True)
            runs.append(run)
    if len(runs) > 1:
        print(format_comparison(runs), flush=True)
    if ns.json:
        write_json(runs, ns.json)
    if ns.csv:
        write_csv(runs, ns.csv)
    if ns.plot:
        write_plot(runs, ns.plot)
    return 0


def _note_short(ns: argparse.Namespace, run: dict[str, Any]) -> None:
    """Say so when the source ran out before ``--frames`` frames were measured (a short clip without ``--loop``)."""
    made = run["frames"] + run.get("dropped", 0)
    if made < ns.frames and not getattr(ns, "loop", False):
        print(f"edgecodec profile: the source ended after {made} of the {ns.frames} frames asked for (--frames); "
              "--loop repeats it", file=sys.stderr, flush=True)  # fmt: skip


def _main_side(ns: argparse.Namespace) -> int:
    """``--only sender|receiver``: one run per backend and size, printed and written with ``--json``."""
    from edgecodec.profiling.sides import format_side, run_receiver_only, run_sender_only

    runs = []
    for backend in ns.backend:
        send_codec = _codec(ns, backend, decode_only=False)
        receive_codec = _codec(ns, backend, decode_only=True) if ns.only == "receiver" else None
        for size in ns.size or [None]:
            if ns.only == "sender":
                run = run_sender_only(ns, send_codec, size)
            else:
                run = run_receiver_only(ns, send_codec, receive_codec, size)
            _note_short(ns, run)
            print(format_side(run) + "\n", flush=True)
            runs.append(run)
    if ns.json:
        write_json(runs, ns.json)
    return 0

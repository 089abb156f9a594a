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

* ``inprocess``: one process and one thread, lock-step. :func:`edgecodec.sender.stream_frames` captures, encodes and
  sends each frame over a real ZeroMQ TCP connection on 127.0.0.1 to a :class:`~edgecodec.receiver.FrameReceiver` in
  the same process, which :func:`edgecodec.receiver.receive_frames` makes take and decode it before the next frame is
  captured. Nothing queues, so this is the cost of each stage; frames per second is one over the sum of both sides.
* ``processes``: a real ``edgecodec send`` and ``edgecodec receive`` as two processes on tcp://127.0.0.1, pipelined
  (the sender encodes the next frame while the receiver decodes this one); their ``--stats`` JSONL records are
  merged by sequence number. This is the live pipeline's throughput and latency, queueing included.

CPU use is CPU time over wall time of the measured span, 100% being one core busy: for the profiling process itself
(in-process mode, :func:`time.process_time`), or for each of the two processes from its start-up line (model loaded
and warmed up) to its exit (``/proc/PID/stat`` at the start line, ``os.wait4`` at exit).

``--backend`` and ``--size`` take lists; every combination is one run. ``--json`` then holds ``{"runs": [run, ...]}``
instead of a single run object; a run object is::

    {"mode", "backend" (asked for), "backend_used", "model", "rate_config", "source", "size": [W, H], "frames",
     "warmup", "threads", "dropped", "stages": {stage: {"p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"}},
     "glass_to_glass": {...same keys}, "fps", "cpu": {"wall_s", "cores", "processes": {name: {"cpu_s", "percent"}},
     "percent"}, "stage_sum": {"timed_stages", "p50_sum_ms", "glass_to_glass_p50_ms", "gap_ms", "mean_timed_ms",
     "mean_receive_ms", "mean_untimed_ms", "mean_glass_to_glass_ms"}, "layers": {layer: frames}, "bits_mean",
     "load_avg": [1, 5, 15 min]}
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecodec.capture import Size, add_source_arguments, parse_size, source_from_args
from edgecodec.cliutil import at_least
from edgecodec.errors import ConfigError, EdgecodecError, SinkError, TransportError
from edgecodec.timing import StatsLog, StreamMeter, substage

STAGES = ("capture", "preprocess", "encode", "rate", "entropy_encode", "packet", "send", "receive", "parse",
          "entropy_decode", "decode", "postprocess", "output")  # fmt: skip
OUTSIDE = "capture"  # ends at the capture timestamp: not part of glass-to-glass
DERIVED = "receive"  # from wall clocks, not a timer
NET_ENCODE, NET_DECODE = "encode.net", "decode.net"  # substages of TimedBackend (in-process mode)
STREAM = "profile"
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
        "mode": mode, "backend": backend, "backend_used": m.backend_used, "model": ns.model,
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
        "load_avg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "rows": rows,
    }  # fmt: skip


# -- in-process, lock-step -----------------------------------------------------------------------------------------
class TimedBackend:
    """Wraps a backend so that its encode and decode calls are timed as substages of the open frame stage: the
    sender's ``encode`` stage then keeps only the preprocessing, the receiver's ``decode`` only the postprocessing."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name, self.multiple, self.num_layers = backend.name, backend.multiple, backend.num_layers

    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        with substage(NET_ENCODE):
            return self.backend.encode(frames)

    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        with substage(NET_DECODE):
            return self.backend.decode(ids, layer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


class RecordList(StatsLog):
    """A stats log that keeps its records in memory."""

    def __init__(self) -> None:
        super().__init__(None)
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        if record.get("kind") == "frame":
            self.records.append(record)


class CpuClock:
    """CPU time of this process over wall time, from :meth:`start` to :meth:`stop`."""

    def __init__(self) -> None:
        self.started: tuple[float, float] | None = None
        self.result: dict[str, Any] = {}

    def start(self) -> None:
        if self.started is None:
            self.started = (time.process_time(), time.perf_counter())

    def stop(self) -> dict[str, Any]:
        cpu0, wall0 = self.started or (time.process_time(), time.perf_counter())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        pct = round(100 * cpu / wall, 1) if wall > 0 else 0.0
        self.result = {"wall_s": round(wall, 3), "cores": os.cpu_count(),
                       "processes": {"profile": {"cpu_s": round(cpu, 3), "percent": pct}}, "percent": pct}  # fmt: skip
        return self.result


def run_inprocess(ns: argparse.Namespace, codec: Any, size: Size | None) -> Measured:
    """Send and receive every frame in lock-step, in this thread (module docstring)."""
    from edgecodec.rate import RateController
    from edgecodec.receiver import FrameReceiver, Outputs, receive_frames
    from edgecodec.sender import FrameSender, load_config, rate_clock, stream_frames
    from edgecodec.transport import Receiver, Sender

    sent_log, got_log, clock = RecordList(), RecordList(), CpuClock()
    with ExitStack() as stack:
        source = stack.enter_context(source_from_args(_source_ns(ns, size)))
        rx = stack.enter_context(Receiver("tcp://127.0.0.1:*", bind=True, streams=[STREAM]))
        tx = stack.enter_context(Sender(rx.endpoint, bind=False, stream=STREAM))
        receiver = FrameReceiver(codec)
        receiver.warm_up()
        sender = FrameSender(codec, RateController(load_config(ns.rate_config, ns.kbps), codec.num_layers), tx)
        sender.warm_up()
        deadline = time.monotonic() + RECEIVE_TIMEOUT_S
        while not tx.has_receiver:  # the SUB socket sends its subscription only when it is used
            if time.monotonic() > deadline:
                raise TransportError(f"the loopback receiver on {rx.endpoint} never subscribed")
            rx.recv_message(10)
        outputs = Outputs(display=False, record=None, fps=25.0, overlay=False)
        stack.callback(outputs.close)
        meter = StreamMeter(interval_s=0)

        def receive_sent() -> bool:
            """Called by stream_frames before each capture: the frame just sent is received and decoded first."""
            receive_frames(rx, receiver, outputs, log=got_log, meter=meter, status=None, frames=tx.stats.sent,
                           timeout_s=RECEIVE_TIMEOUT_S)  # fmt: skip
            if receiver.received < tx.stats.sent:
                raise TransportError(f"frame {sender.seq - 1} did not arrive over loopback in {RECEIVE_TIMEOUT_S:g} s")
            if receiver.received >= ns.warmup:
                clock.start()
            return False  # never stop: the source ends the run

        finished = stream_frames(source, sender, clock=rate_clock(source, ns.fps), log=sent_log,
                                 meter=StreamMeter(interval_s=0), status=None, should_stop=receive_sent)  # fmt: skip
        if not finished:
            raise KeyboardInterrupt
        receive_sent()
        cpu = clock.stop()
    return Measured(sent_log.records, got_log.records, cpu, codec.backend.name, source.name)


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Torch and ONNX Runtime (through $EDGECODEC_THREADS, read when a backend is made) use ``n`` threads in this
    process for the duration; both are restored afterwards."""
    if n is None:
        yield
        return
    import torch

    torch_threads, env = torch.get_num_threads(), os.environ.get("EDGECODEC_THREADS")
    torch.set_num_threads(n)
    os.environ["EDGECODEC_THREADS"] = str(n)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        if env is None:
            os.environ.pop("EDGECODEC_THREADS", None)
        else:
            os.environ["EDGECODEC_THREADS"] = env


def _source_ns(ns: argparse.Namespace, size: Size | None) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(ns), "size": size, "frames": ns.frames + ns.warmup})


# -- two processes -------------------------------------------------------------------------------------------------
class Child:
    """An ``edgecodec`` subcommand in its own process; its output is read by threads, its CPU time taken at exit."""

    def __init__(self, role: str, args: list[str], env: dict[str, str]) -> None:
        self.role = role
        self.popen = subprocess.Popen([sys.executable, "-m", "edgecodec", role, *args], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        self.err: list[str] = []
        self.out: list[str] = []
        self.cpu_start: float | None = None
        self.cpu_total: float | None = None
        self.ended: float | None = None
        self._threads = [threading.Thread(target=self._drain, args=(f, lines), daemon=True)
                         for f, lines in ((self.popen.stderr, self.err), (self.popen.stdout, self.out))]  # fmt: skip
        for t in self._threads:
            t.start()

    @staticmethod
    def _drain(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first stderr line matching ``pattern``; raises if the process ends or the time runs out first."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for line in self.err[seen:]:
                match = re.search(pattern, line)
                if match:
                    return match
            seen = len(self.err)
            if not self.alive():
                for t in self._threads:
                    t.join(timeout=2)
                raise EdgecodecError(f"edgecodec {self.role} ended early: {self.last_line()}")
            time.sleep(0.02)
        raise EdgecodecError(f"edgecodec {self.role} did not start within {timeout_s:g} s")

    def last_line(self) -> str:
        return next((line.strip() for line in reversed(self.err) if line.strip()), "no message")

    def mark_start(self) -> None:
        self.cpu_start = _proc_cpu_s(self.popen.pid)

    def alive(self) -> bool:
        """Reap the process if it has ended (taking its CPU time); True while it runs."""
        if self.popen.returncode is not None:
            return False
        if hasattr(os, "wait4"):
            pid, status, usage = os.wait4(self.popen.pid, os.WNOHANG)
            if pid == 0:
                return True
            self.popen.returncode = os.waitstatus_to_exitcode(status)
            self.cpu_total = usage.ru_utime + usage.ru_stime
        elif self.popen.poll() is None:
            return True
        self.ended = time.perf_counter()
        return False

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait(timeout=10)
        for thread, pipe in zip(self._threads, (self.popen.stderr, self.popen.stdout), strict=True):
            thread.join(timeout=2)
            if pipe is not None and not thread.is_alive():
                pipe.close()

    def cpu(self, wall_s: float) -> dict[str, Any]:
        if self.cpu_total is None:
            return {"cpu_s": None, "percent": None}
        cpu = self.cpu_total - (self.cpu_start or 0.0)
        out = {"cpu_s": round(cpu, 3), "percent": round(100 * cpu / wall_s, 1) if wall_s > 0 else None}
        if self.cpu_start is None:
            out["includes_startup"] = True
        return out


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _source_argv(ns: argparse.Namespace, size: Size | None) -> list[str]:
    if ns.camera is not None:
        argv = ["--camera", str(ns.camera)]
    elif ns.video is not None:
        argv = ["--video", ns.video]
    elif ns.images is not None:
        argv = ["--images", ns.images]
    else:
        argv = ["--synthetic"]
    argv += ["--size", f"{size[0]}x{size[1]}"] if size else []
    argv += ["--fps", repr(ns.fps)] if ns.fps else []
    argv += ["--loop"] if ns.loop else []
    return argv + ["--frames", str(ns.frames + ns.warmup)]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise EdgecodecError(f"cannot read the stats of a child process ({path.name}): {exc}") from None


def run_processes(ns: argparse.Namespace, backend: str, size: Size | None) -> Measured:
    """``edgecodec receive`` and ``edgecodec send`` as two processes on tcp://127.0.0.1 (module docstring)."""
    total = ns.frames + ns.warmup
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if ns.threads is not None:
        env.update(OMP_NUM_THREADS=str(ns.threads), EDGECODEC_THREADS=str(ns.threads))
    common = ["--model", ns.model, "--backend", backend, "--device", ns.device, "--quiet"]
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="edgecodec-profile-") as tmp:
        send_stats, got_stats = Path(tmp) / "send.jsonl", Path(tmp) / "receive.jsonl"
        try:
            receiver = Child("receive", ["--bind", "tcp://127.0.0.1:*", "--headless", "--frames", str(total),
                                         "--stats", str(got_stats), "--stream", STREAM, *common], env)  # fmt: skip
            children.append(receiver)
            endpoint = receiver.wait_line(r"listening on (tcp://\S+)", STARTUP_TIMEOUT_S).group(1)
            receiver.mark_start()
            kbps = ["--kbps", repr(ns.kbps)] if ns.kbps is not None else []
            sender = Child("send", [*_source_argv(ns, size), "--connect", endpoint, "--stream", STREAM,
                                    "--wait-receiver", "30", "--stats", str(send_stats),
                                    "--rate-config", ns.rate_config, *kbps, *common], env)  # fmt: skip
            children.append(sender)
            sender.wait_line(r"^edgecodec send: stream", STARTUP_TIMEOUT_S)
            sender.mark_start()
            start = time.perf_counter()
            _wait_for(sender, receiver, deadline=time.monotonic() + 60 + 10 * total)
        finally:
            for child in children:
                child.kill()
        if sender.popen.returncode != 0:
            raise EdgecodecError(f"edgecodec send failed (status {sender.popen.returncode}): {sender.last_line()}")
        if receiver.popen.returncode not in (0, 130, -signal.SIGTERM):
            raise EdgecodecError(f"edgecodec receive failed (status {receiver.popen.returncode}): "
                                 f"{receiver.last_line()}")  # fmt: skip
        sent, got = _read_jsonl(send_stats), _read_jsonl(got_stats)
    wall = max(c.ended or start for c in children) - start
    cpu_each = {"sender": sender.cpu(wall), "receiver": receiver.cpu(wall)}
    pcts = [c["percent"] for c in cpu_each.values() if c["percent"] is not None]
    cpu = {"wall_s": round(wall, 3), "cores": os.cpu_count(), "processes": cpu_each,
           "percent": round(sum(pcts), 1) if pcts else None}  # fmt: skip
    summary = next((r for r in reversed(sent) if r.get("kind") == "summary"), {})
    source = next((line.split("; ")[1] for line in sender.err if line.startswith("edgecodec send: stream")), "?")
    return Measured([r for r in sent if r.get("kind") == "frame"], [r for r in got if r.get("kind") == "frame"],
                    cpu, summary.get("backend", backend), source)  # fmt: skip


def _wait_for(sender: Child, receiver: Child, deadline: float) -> None:
    """Until both have ended: the receiver stops by itself after --frames, or is stopped DRAIN_S after the sender
    (frames were dropped) or when the sender failed."""
    stop_at: float | None = None
    while sender.alive() or receiver.alive():
        now = time.monotonic()
        if now > deadline:
            raise EdgecodecError("the sender and receiver processes did not finish in time")
        if not sender.alive() and stop_at is None:
            stop_at = now + (DRAIN_S if sender.popen.returncode == 0 else 0.0)
        if stop_at is not None and now >= stop_at and receiver.alive():
            receiver.stop()
            stop_at = deadline  # SIGTERM once; the receiver ends with its summary
        time.sleep(0.02)


# -- report --------------------------------------------------------------------------------------------------------
NOTES = {
    "capture": "before the capture timestamp: not in glass-to-glass",
    "receive": "derived: sent -> taken by the receiver (see below)",
    "preprocess": "pad, to CHW float",
    "postprocess": "crop, clip, to uint8",
}
EXPLAIN = {
    "inprocess": (
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
    lines.append(f"{run['fps']:.2f} fps; CPU {procs or '-'} of one core over {cpu['wall_s']:.1f} s "
                 f"({cpu['cores']} cores{load}); layers {layers}; {run['bits_mean'] / 8000:.2f} kB/frame; "
                 f"dropped {run['dropped']}")  # fmt: skip
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


# -- command line --------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Usage errors become a ConfigError: one line on stderr and exit status 2 through the CLI."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _size(text: str) -> Size:
    try:
        return parse_size(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 640x480, got {text!r}") from None


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
        choices=("inprocess", "processes"),
        default="inprocess",
        help="one process in lock-step, or edgecodec send + receive processes (default inprocess)",
    )
    parser.add_argument("--backend", nargs="+", default=["auto"], metavar="NAME",
                        help="backends to compare: auto, torch, onnx, tensorrt (default auto)")  # fmt: skip
    parser.add_argument("--threads", type=at_least(1), metavar="N",
                        help="CPU threads of each process's backend (default: all usable CPUs)")  # fmt: skip
    parser.add_argument("--model", default="hqa5", help="model name or .safetensors path (default hqa5)")
    parser.add_argument("--device", default="cpu", help="torch device for the torch backend (default cpu)")
    parser.add_argument("--rate-config", default="balanced", metavar="NAME|FILE", help="rate preset (default balanced)")
    parser.add_argument("--kbps", type=float, metavar="N", help="override the preset's budget (0 = unlimited)")
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
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--plot needs matplotlib (pip install 'edgecodec[bench]')") from None


def _measure(ns: argparse.Namespace, backend: str, size: Size | None, codecs: dict[str, Any]) -> Measured:
    if ns.mode == "processes":
        return run_processes(ns, backend, size)
    if backend not in codecs:  # one codec per backend, for all its sizes
        from edgecodec.codec import Codec

        codecs.clear()
        codec = codecs[backend] = Codec(ns.model, backend=backend, device=ns.device)
        codec.backend = TimedBackend(codec.backend)
    return run_inprocess(ns, codecs[backend], size)


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    _check_args(ns)
    combos = [(backend, size) for backend in ns.backend for size in ns.size or [None]]
    runs: list[dict[str, Any]] = []
    codecs: dict[str, Any] = {}
    with cpu_threads(ns.threads if ns.mode == "inprocess" else None):
        for i, (backend, size) in enumerate(combos, 1):
            if len(combos) > 1:
                where = _size_text(list(size)) if size else "native size"
                print(f"edgecodec profile: run {i}/{len(combos)}: {ns.mode}, backend {backend}, {where}",
                      file=sys.stderr, flush=True)  # fmt: skip
            run = analyse(_measure(ns, backend, size, codecs), mode=ns.mode, backend=backend, ns=ns)
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

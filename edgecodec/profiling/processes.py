"""Two-process mode of ``edgecodec profile``: a real ``edgecodec receive`` and ``edgecodec send`` as child
processes on tcp://127.0.0.1, their start-up lines awaited, their ``--stats`` JSONL files read back and their CPU
time taken from ``/proc`` and ``os.wait4`` (mode ``processes`` in the docstring of :mod:`edgecodec.profiling`).
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
import threading
import time
from pathlib import Path
from typing import Any

from edgecodec.capture import Size
from edgecodec.errors import EdgecodecError
from edgecodec.profiling.records import DRAIN_S, STARTUP_TIMEOUT_S, STREAM, Measured


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
            kbps += (["--intra-only"] if ns.intra_only else []) + ["--send-unchanged"]  # every frame is timed
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
        if receiver.popen.returncode not in (0, 130, 128 + signal.SIGTERM, -signal.SIGTERM):
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

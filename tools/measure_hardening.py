"""The acceptance figures of issue 12, measured on real processes over 127.0.0.1.

    python tools/measure_hardening.py bombs    # CPU per refused bomb (in process), and a live receiver under a flood
    python tools/measure_hardening.py stall    # SIGSTOP the receiver for 5 s while a sender runs at 20 fps
    python tools/measure_hardening.py streams  # 1,000 stream ids at a receiver with --record: its peak RSS

Each prints a few lines; the stats files are left in a temporary folder named in the output.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from edgecodec.capture import wall_clock_us
from edgecodec.codec import Codec
from edgecodec.errors import EdgecodecError
from edgecodec.limits import RECEIVER_MAX_PIXELS, DecodeBudget
from edgecodec.receiver import FrameReceiver
from edgecodec.transport import Message, stream_number

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "EDGECODEC_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def bombs(codec: Codec) -> list[tuple[str, bytes]]:
    """Valid packets (right CRC, a grid consistent with the model) that claim huge frames."""
    out = []
    for (h, w), layer, payload in (((4096, 4096), 5, 8), ((4096, 4096), 3, 300), ((16384, 16384), 5, 15000)):
        data = codec.packet_for(codec.grid_shape((h, w), layer), layer, (h, w), b"\0" * payload, seq=1,
                                timestamp_us=0, stream_id=stream_number("evil"), session_id=66)  # fmt: skip
        out.append((f"{w}x{h} L{layer}, {len(data)} bytes", data))
    return out


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def start_receiver(tmp: Path, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "edgecodec", "receive", "--bind", "tcp://127.0.0.1:*", "--quiet",
                             "--stats", str(tmp / "r.jsonl"), *args], env=ENV, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    for line in proc.stderr:
        if "listening on" in line:
            endpoint = line.split("listening on ")[1].split()[0]
            break
    else:
        raise SystemExit("receiver did not start")
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, endpoint


def records(path: Path, kind: str = "frame") -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("kind") == kind:
            out.append(r)
    return out


def measure_bombs() -> None:
    codec = Codec("hqa5", budget=DecodeBudget(RECEIVER_MAX_PIXELS))
    receiver = FrameReceiver(codec)
    receiver.warm_up()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, data in bombs(codec):
        times = []
        for _ in range(200):
            t0 = time.process_time()
            try:
                receiver.decode(Message("evil", data), lambda stage: __import__("contextlib").nullcontext())
            except EdgecodecError as exc:
                kind = type(exc).__name__
            times.append(time.process_time() - t0)
        print(f"in process: {name}: refused ({kind}) in {np.mean(times) * 1000:.3f} ms CPU mean, "
              f"{np.max(times) * 1000:.3f} ms max over 200")  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"in process: peak RSS {before:.0f} MB before the bombs, {after:.0f} MB after")
    with tempfile.TemporaryDirectory(prefix="bombs-") as d:
        tmp = Path(d)
        proc, endpoint = start_receiver(tmp, "--headless")
        sender = subprocess.Popen([sys.executable, "-m", "edgecodec", "send", "--synthetic", "--size", "320x240",
                                   "--fps", "10", "--frames", "100", "--connect", endpoint, "--stream", "cam",
                                   "--wait-receiver", "30", "--quiet"], env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        pub.connect(endpoint)
        time.sleep(4)
        shown_before = len(records(tmp / "r.jsonl"))
        cpu0, rss0 = cpu_s(proc.pid), rss_mb(proc.pid)
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() - t0 < 4:  # 4 s of bombs at ~100 per second, between the live frames
            for _, data in bombs(codec):
                pub.send_multipart([b"evil", data])
                sent += 1
            time.sleep(0.03)
        cpu1, rss1 = cpu_s(proc.pid), rss_mb(proc.pid)
        shown_during = len(records(tmp / "r.jsonl")) - shown_before
        sender.wait(60)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        summary = records(tmp / "r.jsonl", "summary")[0]
        print(f"receiver process: {sent} bombs in 4 s; its CPU {cpu1 - cpu0:.2f} s over those 4 s (live stream "
              f"included), RSS {rss0:.0f} -> {rss1:.0f} MB; stream cam shown {shown_during} frames during the flood "
              f"(sent at 10 fps), {summary['streams']['cam']['received']} in all; bad {summary['bad']}")  # fmt: skip
        pub.close(0)
        ctx.term()


def measure_stall() -> None:
    with tempfile.TemporaryDirectory(prefix="stall-") as d:
        tmp = Path(d)
        proc, endpoint = start_receiver(tmp, "--headless")
        sender = subprocess.Popen([sys.executable, "-m", "edgecodec", "send", "--synthetic", "--size", "320x240",
                                   "--fps", "20", "--frames", "400", "--connect", endpoint, "--stream", "cam",
                                   "--wait-receiver", "30", "--quiet", "--rate-config", "fixed"], env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(6)
        proc.send_signal(signal.SIGSTOP)
        stop_wall = time.time()
        time.sleep(5)
        proc.send_signal(signal.SIGCONT)
        cont_wall = time.time()
        time.sleep(4)
        sender.send_signal(signal.SIGINT)
        sender.wait(30)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        frames = records(tmp / "r.jsonl")
        skipped = records(tmp / "r.jsonl", "skipped")
        cam = records(tmp / "r.jsonl", "summary")[0]["streams"]["cam"]
        after = [(r["timestamp_us"] / 1e6 + r["latency_ms"] / 1000, r["latency_ms"]) for r in frames]
        after = [(shown - cont_wall, lat) for shown, lat in after if shown > cont_wall]
        live = next((t for t, lat in after if lat < 500), None)
        late_after = [lat for t, lat in after if lat >= 500]
        print(
            f"SIGSTOP for {cont_wall - stop_wall:.1f} s at 20 fps: after SIGCONT, first frame under 0.5 s latency "
            f"shown at +{live if live is None else round(live, 3)} s; {len(late_after)} frames shown with latency "
            f">= 0.5 s after SIGCONT (max {max(late_after, default=0):.0f} ms); {len(skipped)} frames skipped; "
            f"latency of the first 5 frames after SIGCONT: {[round(lat) for _, lat in after[:5]]} ms; "
            f"stream: {cam['received']} shown, {cam['skipped']} skipped, {cam['gaps']} gaps, "
            f"{cam['sessions']} session(s); "
            f"p50 latency before the stall {np.median([lat for r in frames for lat in [r['latency_ms']]]):.0f} ms"
        )


def measure_streams(count: int = 1000) -> None:
    codec = Codec("hqa5")
    rgb = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    code = codec.encode(rgb)
    with tempfile.TemporaryDirectory(prefix="streams-") as d:
        tmp = Path(d)
        proc, endpoint = start_receiver(tmp, "--record", str(tmp / "out.mp4"), "--idle-close", "2")
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, 100000)
        pub.connect(endpoint)
        time.sleep(1)
        t0 = time.monotonic()
        for i in range(count):
            name = f"s{i}"
            data = codec.packet(code, 3, seq=0, stream_id=stream_number(name), session_id=i + 1,
                                timestamp_us=wall_clock_us())  # fmt: skip
            pub.send_multipart([name.encode(), data])
            time.sleep(0.005)
        time.sleep(4)
        peak = rss_mb(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        summary = records(tmp / "r.jsonl", "summary")[0]
        files = sorted(tmp.glob("*.mp4"))
        print(f"{count} stream ids in {time.monotonic() - t0:.1f} s to a receiver with --record (--max-streams 16, "
              f"--idle-close 2): peak RSS {peak:.0f} MB; {summary['received']} frames shown, "
              f"{len(summary['streams'])} streams known at the end, {len(files)} mp4 files, "
              f"{sum(f.stat().st_size > 0 for f in files)} of them non-empty")  # fmt: skip
        pub.close(0)
        ctx.term()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "bombs"
    {"bombs": measure_bombs, "stall": measure_stall, "streams": measure_streams}[what]()

"""``edgecodec send`` and ``edgecodec receive`` as real processes over ZeroMQ on 127.0.0.1.

Every wait is bounded and every process is killed at teardown; nothing here can hang. The clips are the sample
shipped in the package (downscaled), and a synthetic source, so no shared data is needed. Torch gets one thread per
process (two CPU cores are shared by a sender and a receiver).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgecodec.cli import main as cli_main
from edgecodec.codec import Codec
from edgecodec.container import read_container
from edgecodec.errors import BitstreamError
from edgecodec.filecodec import FrameDecoder
from edgecodec.receiver import FrameReceiver, StreamState
from edgecodec.timing import frame_hash
from edgecodec.transport import Message, stream_number

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "edgecodec" / "samples" / "foreman_352x288_75f.mp4"
# the processes run this checkout's edgecodec, whatever copy the interpreter has installed
_PATH = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "EDGECODEC_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": _PATH}
SIZE = "176x144"
KBPS = 100.0


class Proc:
    """A ``python -m edgecodec`` process (or ``python PROGRAM``); its stderr is read by a thread so that lines can be
    waited for."""

    def __init__(self, *args: str, cwd: Path, program: tuple[str, ...] = ("-m", "edgecodec")) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, *program, *args], cwd=cwd, env=ENV, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self._stdout: list[str] = []
        # One reader per pipe, and nothing else reads them: communicate() would also read stderr, racing the
        # reader thread for lines (lines went missing from `stderr` that way).
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        self._stdout.append(self.popen.stdout.read())

    def wait_for(self, pattern: str, timeout: float = 30.0) -> tuple[float, re.Match[str]]:
        """(time the line was read, match) of the first stderr line matching ``pattern``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for when, line in self.lines[seen:]:
                match = re.search(pattern, line)
                if match:
                    return when, match
            seen = len(self.lines)
            if self.popen.poll() is not None and seen == len(self.lines):
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.args[0]}: no line matching {pattern!r}; stderr:\n{self.stderr}")

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        """Wait for the exit; (status, stdout)."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.args[0]} did not finish in {timeout} s; stderr:\n{self.stderr}") from None
        for reader in self._readers:
            reader.join(timeout=5)
        return self.popen.returncode, "".join(self._stdout)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


def start(procs: list[Proc], cwd: Path, *args: str) -> Proc:
    proc = Proc(*args, cwd=cwd)
    procs.append(proc)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(path: Path, kind: str = "frame") -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line being written right now
            continue
        if record.get("kind") == kind:
            out.append(record)
    return out


def wait_records(path: Path, count: int, timeout: float = 30.0, **match: object) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [r for r in records(path) if all(r.get(k) == v for k, v in match.items())]
        if len(got) >= count:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{path.name}: fewer than {count} records matching {match} after {timeout} s")


# -- one loopback run shared by several checks ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A receiver, then two senders into it: the sample clip under low-bandwidth at 100 kbps (stream ``clip``, with
    every packet also saved), and a synthetic pattern (stream ``pattern``)."""
    tmp = tmp_path_factory.mktemp("loopback")
    started: list[Proc] = []
    try:
        receiver = start(started, tmp, "receive", "--bind", "tcp://127.0.0.1:*", "--headless", "--frames", "95",
                         "--timeout", "15", "--stats", "receive.jsonl")  # fmt: skip
        _, match = receiver.wait_for(r"listening on (tcp://127\.0\.0\.1:\d+)")
        endpoint = match.group(1)
        clip = start(started, tmp, "send", "--video", str(SAMPLE), "--size", SIZE, "--fps", "25",
                     "--connect", endpoint, "--stream", "clip", "--rate-config", "low-bandwidth", "--kbps", str(KBPS),
                     "--wait-receiver", "30", "--stats", "clip.jsonl", "--save", "clip.ecz")  # fmt: skip
        pattern = start(started, tmp, "send", "--synthetic", "--size", "64x64", "--frames", "20", "--fps", "10",
                        "--connect", endpoint, "--stream", "pattern", "--rate-config", "fixed",
                        "--wait-receiver", "30", "--stats", "pattern.jsonl")  # fmt: skip
        results = {name: p.finish(60) for name, p in (("clip", clip), ("pattern", pattern), ("receiver", receiver))}
        yield {"tmp": tmp, "results": results, "receiver_stderr": receiver.stderr}
    finally:
        for proc in started:
            proc.kill()


def test_loopback_exits_cleanly_with_summaries(loopback: dict) -> None:
    for name, (status, out) in loopback["results"].items():
        assert status == 0, f"{name} exited {status}: {out}"
    assert re.search(r"edgecodec receive: \d+ frames", loopback["results"]["receiver"][1])
    assert "edgecodec send: stream clip: 75 frames" in loopback["results"]["clip"][1]
    assert re.search(r"receive: .* fps .* kbps .*layers", loopback["receiver_stderr"])  # the status line


def test_every_received_frame_is_bit_exact_with_an_offline_decode(loopback: dict) -> None:
    """The ids of every received frame are those the sender coded (the sender saved every packet it made), and the
    pixels are what an offline decode of those packets gives with the receiver's backend."""
    tmp = loopback["tmp"]
    received = [r for r in records(tmp / "receive.jsonl") if r["stream"] == "clip"]
    backend = records(tmp / "receive.jsonl", "summary")[0]["backend"]
    header, packets = read_container(tmp / "clip.ecz")  # every packet the sender made, sent or dropped
    assert len(packets) == 75 and len(received) > 0
    codec = Codec(header.model_name, backend=backend)
    decoder = FrameDecoder(codec)  # in order: P-frames decode against their references
    by_seq = {p.seq: (p, decoder.ids(p)) for p in packets}
    for r in received:
        packet, ids = by_seq[r["seq"]]
        assert (r["layer"], r["ids_hash"]) == (packet.layer, frame_hash(ids.astype("<i8"))), f"frame {r['seq']}"
        rgb = codec.decode(ids, packet.layer, (packet.frame_h, packet.frame_w))
        assert r["hash"] == frame_hash(rgb), f"frame {r['seq']} differs from the offline {backend} decode"


def test_frames_sent_equal_received_plus_dropped(loopback: dict) -> None:
    tmp = loopback["tmp"]
    rx = records(tmp / "receive.jsonl", "summary")[0]
    for stream, frames in (("clip", 75), ("pattern", 20)):
        tx = records(tmp / f"{stream}.jsonl", "summary")[0]
        got = rx["streams"][stream]
        assert tx["frames"] == frames == tx["sent"] + tx["dropped"]
        assert got["received"] == tx["sent"]  # nothing lost once queued
        sent = [r["seq"] for r in records(tmp / f"{stream}.jsonl") if r["sent"]]
        seqs = [r["seq"] for r in records(tmp / "receive.jsonl") if r["stream"] == stream]
        assert seqs == sent  # in order, told apart by stream id
        assert got["gaps"] == (max(seqs) - min(seqs) + 1) - len(seqs)
    assert rx["received"] == 95 and rx["bad"] == 0 and rx["streams"]["pattern"]["layers"] == {"3": 20}


def test_bitrate_follows_the_budget_and_layers_follow_content(loopback: dict) -> None:
    sent = records(loopback["tmp"] / "clip.jsonl")
    rate_kbps = sum(r["bits"] for r in sent) / (len(sent) / 25) / 1000  # bits per second of video
    # the budget caps the rate; with P-frames the layer the content asks for may cost less than the budget
    assert 0.5 * KBPS <= rate_kbps <= 1.10 * KBPS, f"{rate_kbps:.1f} kbps for a {KBPS:g} kbps budget"
    received = [r for r in records(loopback["tmp"] / "receive.jsonl") if r["stream"] == "clip"]
    span_s = (received[-1]["timestamp_us"] - received[0]["timestamp_us"]) / 1e6 + 1 / 25
    wire_kbps = sum(r["bits"] for r in received) / span_s / 1000  # what arrived, over capture time
    assert wire_kbps <= 1.25 * KBPS
    layers = [r["layer"] for r in sent]
    switches = sum(a != b for a, b in zip(layers[:-1], layers[1:], strict=True))
    assert len(set(layers)) >= 2 and 1 <= switches <= len(layers) / 25  # at most one switch a second (issue 14)
    assert all(layer >= 2 for layer in layers)  # low-bandwidth never uses layer 1
    assert all(set(r["coded_layers"]) <= set(range(r["quality_layer"], r["layer"] + 1)) for r in sent)


# -- restarts ------------------------------------------------------------------------------------------------------
def test_receiver_and_sender_restarts(procs: list[Proc], tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    send_args = ("send", "--synthetic", "--size", "64x64", "--fps", "20", "--frames", "2000", "--connect", endpoint,
                 "--rate-config", "fixed", "--quiet")  # fmt: skip
    receive_args = ("receive", "--bind", endpoint, "--headless", "--quiet", "--timeout", "20")
    first = start(procs, tmp_path, *receive_args, "--stats", "r1.jsonl")
    sender = start(procs, tmp_path, *send_args)
    first.wait_for("listening on")
    wait_records(tmp_path / "r1.jsonl", 5)
    first.kill()  # SIGKILL: no goodbye
    second = start(procs, tmp_path, *receive_args, "--stats", "r2.jsonl")
    ready, _ = second.wait_for("listening on")
    ready_wall = time.time() - (time.monotonic() - ready)
    r2 = wait_records(tmp_path / "r2.jsonl", 1, timeout=10)
    arrived = (r2[0]["timestamp_us"] / 1e6) + r2[0]["latency_ms"] / 1000
    assert arrived - ready_wall < 1.0, "the restarted receiver took over a second to get a frame"
    before = records(tmp_path / "r2.jsonl")[-1]["seq"]
    sender.kill()
    restarted = start(procs, tmp_path, *send_args)
    ready, _ = restarted.wait_for("connecting to")
    ready_wall = time.time() - (time.monotonic() - ready)
    new = wait_records(tmp_path / "r2.jsonl", 1, timeout=10, new_session=True, session=2)
    arrived = (new[0]["timestamp_us"] / 1e6) + new[0]["latency_ms"] / 1000
    assert arrived - ready_wall < 1.0, "the receiver took over a second to pick up the restarted sender"
    assert new[0]["seq"] < before and new[0]["gap"] == 0
    wait_records(tmp_path / "r2.jsonl", 3, timeout=10, session=2)
    restarted.stop()
    second.stop()
    status, out = second.finish(20)
    assert status == 143 and "2 session(s)" in out
    summary = records(tmp_path / "r2.jsonl", "summary")[0]["streams"]["main"]
    assert summary["sessions"] == 2 and summary["gaps"] < 100  # a restart is not billions of lost frames


# -- CURVE ---------------------------------------------------------------------------------------------------------
def test_curve_sender_with_unknown_key_delivers_nothing(procs: list[Proc], tmp_path: Path) -> None:
    keys, stranger = tmp_path / "keys", tmp_path / "stranger"
    assert cli_main(["keygen", "--out", str(keys)]) == 0
    assert cli_main(["keygen", "--out", str(stranger)]) == 0
    (stranger / "server.key").write_bytes((keys / "server.key").read_bytes())  # knows the server, is not authorised
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    receiver = start(procs, tmp_path, "receive", "--bind", endpoint, "--curve-keys", str(keys), "--headless",
                     "--timeout", "60", "--stats", "r.jsonl")  # fmt: skip
    common = ("--synthetic", "--size", "64x64", "--fps", "10", "--frames", "15", "--connect", endpoint,
              "--rate-config", "fixed")  # fmt: skip
    good = start(procs, tmp_path, "send", *common, "--stream", "good", "--curve-keys", str(keys),
                 "--wait-receiver", "30", "--stats", "g.jsonl")  # fmt: skip
    bad = start(procs, tmp_path, "send", *common, "--stream", "bad", "--curve-keys", str(stranger),
                "--wait-receiver", "3", "--stats", "b.jsonl")  # fmt: skip
    assert bad.finish(60)[0] == 0 and good.finish(60)[0] == 0
    assert "no receiver after 3 s" in bad.stderr  # the handshake never completed
    receiver.stop()
    assert receiver.finish(30)[0] == 143  # 128 + SIGTERM
    streams = records(tmp_path / "r.jsonl", "summary")[0]["streams"]
    assert set(streams) == {"good"} and streams["good"]["received"] == 15
    assert records(tmp_path / "b.jsonl", "summary")[0]["dropped_no_receiver"] == 15


# -- in-process: sessions, gaps and hostile packets ----------------------------------------------------------------
def test_gap_and_session_accounting() -> None:
    state = StreamState("cam0", stream_number("cam0"))
    steps = [state.track(seq) for seq in (0, 1, 2, 5, 6, 0, 1, 0xFFFFFFFF, 0, 3)]
    assert steps == [(0, True), (0, False), (0, False), (2, False), (0, False), (0, True), (0, False), (0, True),
                     (0, False), (2, False)]  # fmt: skip
    assert state.sessions == 3 and state.gaps == 4


def test_hostile_packets_are_counted_not_fatal() -> None:
    codec = Codec()
    receiver = FrameReceiver(codec)
    rgb = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    good = codec.packet(codec.encode(rgb), 4, seq=7, stream_id=stream_number("cam0"))
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF
    hostile = [b"", b"ECPK", good[:60], bytes(flipped), good.replace(codec.fingerprint, b"\x00" * 8), good + b"x"]
    for data in hostile:
        with pytest.raises(BitstreamError):
            receiver.decode(Message("cam0", data), receiver.timer.frame())
    with pytest.raises(BitstreamError, match="stream number"):
        receiver.decode(Message("cam1", good), receiver.timer.frame())  # sent under another stream's name
    decoded = receiver.decode(Message("cam0", good), receiver.timer.frame())
    assert decoded.rgb.shape == (64, 96, 3) and decoded.packet.seq == 7
    assert receiver.bad == len(hostile) + 1 and receiver.received == 1


# -- bad command lines: one line, non-zero exit ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (["send", "--video", "no-such-clip.mp4"], "not found"),
        (["send", "--synthetic", "--rate-config", "no-such-preset"], "unknown rate preset"),
        (["send", "--synthetic", "--rate-config", "bad.toml"], "unknown key 'colour'"),
        (["send", "--synthetic", "--kbps", "-5"], "--kbps must be >= 0"),
        (["send", "--synthetic", "--connect", "bogus://x"], "bad endpoint"),
        (["send", "--synthetic", "--stream", "no spaces"], "stream id"),
        (["receive", "--bind", "tcp://nowhere:abc", "--headless"], "port 'abc' must be a number"),
        (["receive", "--bind", "tcp://nowhere.invalid:5555", "--headless"], "cannot bind"),
        (["receive", "--headless", "--curve-keys", "no-such-dir"], "CURVE key"),
        (["receive", "--record", "no/such/folder/out.mp4"], "does not exist"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text('qerr_thresholds = [0.1]\ncolour = "red"\n')
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err

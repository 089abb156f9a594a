"""ZeroMQ transport on 127.0.0.1 with ephemeral ports: delivery, drops, late joiners, restarts, CURVE, keygen.

Every wait is bounded; no test can hang.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from edgecodec.errors import ConfigError, TransportError
from edgecodec.transport import (
    CurveClientKeys,
    Receiver,
    Sender,
    create_keys,
    load_client_keys,
    main_keygen,
)

ANY_PORT = "tcp://127.0.0.1:*"
ROOT = Path(__file__).resolve().parents[1]


def pump(sender: Sender, receiver: Receiver, count: int, timeout_s: float = 5.0) -> list[bytes]:
    """Send numbered packets until ``count`` have arrived or the time is up."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    i = 0
    while len(got) < count and time.monotonic() < deadline:
        sender.send(b"%06d" % i)
        i += 1
        packet = receiver.recv(20)
        if packet is not None:
            got.append(packet)
    return got


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("receiver_binds", [True, False])
def test_packets_arrive_in_order(receiver_binds: bool) -> None:
    if receiver_binds:
        receiver = Receiver(ANY_PORT, bind=True, hwm=64)
        sender = Sender(receiver.endpoint, bind=False, stream="cam0", hwm=64)  # room for a burst of 20
    else:
        sender = Sender(ANY_PORT, bind=True, stream="cam0", hwm=64)
        receiver = Receiver(sender.endpoint, bind=False, hwm=64)
    with sender, receiver:
        assert wait_until(lambda: receiver.recv(0) is None and sender.has_receiver)
        payloads = [bytes([i]) * (1 + 1000 * i) for i in range(20)]
        for p in payloads:
            assert sender.send(p)
        got = [receiver.recv_message(2000) for _ in payloads]
    assert [m.packet for m in got if m] == payloads
    assert {m.stream for m in got if m} == {"cam0"}
    assert sender.stats.sent == 20 and sender.dropped == 0 and receiver.stats.received == 20


def test_drops_counted_when_no_receiver() -> None:
    with Receiver(ANY_PORT, bind=True) as probe:
        endpoint = probe.endpoint  # a port that nobody listens on once closed
    with Sender(endpoint, bind=False) as sender:
        started = time.monotonic()
        results = [sender.send(b"x" * 1000) for _ in range(50)]
        assert time.monotonic() - started < 2  # generous: the point is that send does not wait for a peer
    assert results == [False] * 50
    assert sender.dropped == sender.stats.dropped_no_receiver == 50


def test_drops_counted_when_queue_full() -> None:
    with Receiver(ANY_PORT, bind=True, hwm=2) as receiver, Sender(receiver.endpoint, bind=False, hwm=2) as sender:
        assert wait_until(lambda: receiver.recv(0) is None and sender.has_receiver)
        big = b"\0" * (1 << 20)
        results = [sender.send(big) for _ in range(200)]  # nobody reads: kernel buffers, then the queue fill up
    assert results.count(False) == sender.stats.dropped_queue_full > 0
    assert sender.stats.sent > 0


def test_receiver_started_after_sender_gets_later_frames() -> None:
    with Sender(ANY_PORT, bind=True, stream="late") as sender:
        for _ in range(5):
            assert not sender.send(b"early")
        with Receiver(sender.endpoint, bind=False) as receiver:
            got = pump(sender, receiver, 3)
    assert len(got) == 3 and b"early" not in got
    assert sender.stats.dropped_no_receiver >= 5


def test_many_senders_one_receiver_and_stream_filter() -> None:
    with Receiver(ANY_PORT, bind=True, streams=["cam1"], hwm=64) as receiver:
        one = Sender(receiver.endpoint, bind=False, stream="cam1", hwm=32)
        ten = Sender(receiver.endpoint, bind=False, stream="cam10", hwm=32)
        with one, ten:
            assert wait_until(lambda: receiver.recv(0) is None and one.has_receiver and ten.has_receiver)
            for i in range(10):
                ten.send(b"ten%d" % i)  # "cam1" is a prefix of "cam10": must be filtered out exactly
                one.send(b"one%d" % i)
            got = [receiver.recv_message(1000) for _ in range(10)]
            assert receiver.recv(200) is None
    assert [m.packet for m in got if m] == [b"one%d" % i for i in range(10)]


def test_malformed_messages_are_counted_and_skipped() -> None:
    with Receiver(ANY_PORT, bind=True) as receiver:
        ctx = zmq.Context()
        raw = ctx.socket(zmq.PUB)
        raw.linger = 0
        try:
            raw.connect(receiver.endpoint)
            deadline = time.monotonic() + 5
            message = None
            while message is None and time.monotonic() < deadline:
                raw.send(b"just one part")
                raw.send_multipart([b"main", b"a", b"b"])
                raw.send_multipart([b"bad topic!", b"x"])
                raw.send_multipart([b"main", b"good"])
                message = receiver.recv_message(50)
        finally:
            raw.close()
            ctx.term()
    assert message is not None and message.packet == b"good"
    assert receiver.stats.malformed >= 3


def test_two_processes_and_receiver_survives_sender_restart() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from edgecodec.transport import Sender
        with Sender(sys.argv[1], bind=False, stream="proc") as s:
            s.wait_for_receiver(5)
            for i in range(30):
                s.send(sys.argv[2].encode() + b"%d" % i)
                time.sleep(0.01)
        """
    )
    with Receiver(ANY_PORT, bind=True) as receiver:
        for run in ("first", "second"):
            child = subprocess.Popen([sys.executable, "-c", script, receiver.endpoint, run], cwd=ROOT)
            got: list[bytes] = []
            try:
                deadline = time.monotonic() + 15
                while child.poll() is None and time.monotonic() < deadline:
                    packet = receiver.recv(50)
                    if packet is not None:
                        got.append(packet)
                while (packet := receiver.recv(100)) is not None:
                    got.append(packet)
            finally:
                child.kill()
                child.wait(5)
            assert child.returncode == 0
            assert len(got) >= 20 and all(p.startswith(run.encode()) for p in got)


def test_curve_authorised_client_delivers_and_unknown_key_delivers_nothing(tmp_path: Path) -> None:
    create_keys(tmp_path / "keys")
    create_keys(tmp_path / "other")  # a key pair the receiver never authorised
    good = load_client_keys(tmp_path / "keys")
    stranger = load_client_keys(tmp_path / "other")
    intruder = CurveClientKeys(stranger.public, stranger.secret, good.server_public)  # knows the server key
    with Receiver(ANY_PORT, bind=True, curve=tmp_path / "keys") as receiver:
        with Sender(receiver.endpoint, bind=False, curve=intruder) as sender:
            assert not sender.wait_for_receiver(1.0)
            for _ in range(20):
                sender.send(b"let me in")
            assert receiver.recv(500) is None
            assert sender.stats.sent == 0 and sender.dropped == 20
        with Sender(receiver.endpoint, bind=False, curve=tmp_path / "keys") as sender:
            assert len(pump(sender, receiver, 3)) == 3
        with Sender(receiver.endpoint, bind=False) as plain:  # no CURVE at all
            assert not plain.wait_for_receiver(0.5)


def test_keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys"
    assert main_keygen(["--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    for name in ("server.key", "server.key_secret", "client.key", "client.key_secret", "authorized/client.key"):
        assert (out / name).is_file()
    assert stat.S_IMODE((out / "client.key_secret").stat().st_mode) == 0o600
    before = (out / "server.key").read_bytes()
    with pytest.raises(TransportError, match="keys exist .* use --force"):
        main_keygen(["--out", str(out)])
    assert (out / "server.key").read_bytes() == before
    assert main_keygen(["--out", str(out), "--add-client", "cam2"]) == 0
    assert (out / "authorized" / "cam2.key").is_file() and load_client_keys(out, "cam2").server_public
    assert main_keygen(["--out", str(out), "--force"]) == 0
    assert (out / "server.key").read_bytes() != before
    with pytest.raises(TransportError, match="no server keys"):
        main_keygen(["--out", str(tmp_path / "empty"), "--add-client", "x"])


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="bad endpoint 'udp://"):
        Sender("udp://127.0.0.1:5", bind=False)
    with pytest.raises(ConfigError, match="stream id 'a b'"):
        Sender(ANY_PORT, bind=True, stream="a b")
    with Receiver(ANY_PORT, bind=True) as receiver, pytest.raises(TransportError, match="cannot bind"):
        Receiver(receiver.endpoint, bind=True)
    with pytest.raises(TransportError, match="CURVE key .*client.key_secret"):
        Sender(ANY_PORT, bind=True, curve=tmp_path)
    (tmp_path / "k").mkdir()
    create_keys(tmp_path / "k")
    for key in (tmp_path / "k" / "authorized").iterdir():
        key.unlink()
    with pytest.raises(TransportError, match="no client keys"):
        Receiver(ANY_PORT, bind=True, curve=tmp_path / "k")

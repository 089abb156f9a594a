"""Issue 14: what a new user meets in the first ten minutes: endpoints, a sender with no receiver, ``send --save``
without a network, messages for missing pieces, help texts and exit statuses."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import read_until

from edgecodec.cli import main as cli
from edgecodec.errors import MissingDependencyError, TransportError, require
from edgecodec.sender import ReceiverWatch
from edgecodec.transport import normalise_endpoint


@pytest.mark.parametrize(
    ("endpoint", "bind", "message"),
    [
        ("tcp://127.0.0.1:99999", False, "port '99999' must be a number in 1..65535"),
        ("tcp://127.0.0.1:0", True, "port '0' must be a number"),
        ("tcp://no-such-host.invalid:5555", False, "host 'no-such-host.invalid' does not resolve"),
        ("tcp://*:5555", False, "\\* is for --bind"),
        ("tcp://127.0.0.1:*", False, "only makes sense with --bind"),
        ("tcp://::1:5555", True, "IPv6 address in brackets"),
        ("tcp://host", True, "no port"),
        ("5555x", True, "no port"),
        ("-1", True, "port '-1' must be a number in 1..65535"),
        (":5555", False, "no host before the port"),
        ("+5555", False, "port '\\+5555' must be a number"),
        ("tcp://no-such-host.invalid:5555", False, "check the host name or address$"),
        ("udp://1.2.3.4:5", True, "expected tcp://HOST:PORT"),
    ],
)
def test_bad_endpoints_are_named_at_start(endpoint: str, bind: bool, message: str) -> None:
    with pytest.raises(TransportError, match=message):
        normalise_endpoint(endpoint, bind=bind)


@pytest.mark.parametrize(
    ("endpoint", "bind", "normal"),
    [
        ("5555", True, "tcp://*:5555"),
        ("5555", False, "tcp://127.0.0.1:5555"),
        ("localhost:5555", False, "tcp://localhost:5555"),
        ("tcp://[::1]:5555", True, "tcp://[::1]:5555"),
        ("tcp://127.0.0.1:*", True, "tcp://127.0.0.1:*"),
        ("ipc:///tmp/edgecodec.sock", True, "ipc:///tmp/edgecodec.sock"),
    ],
)
def test_good_endpoints_are_normalised(endpoint: str, bind: bool, normal: str) -> None:
    assert normalise_endpoint(endpoint, bind=bind) == normal


def test_the_cli_refuses_a_bad_port_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["send", "--synthetic", "--frames", "1", "--connect", "tcp://127.0.0.1:99999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "99999" in err[0]


class FakeTransport:
    def __init__(self, bind: bool = False, curve: bool = False) -> None:
        self.endpoint, self.bind, self.curve, self.has_receiver = "tcp://10.0.0.9:5555", bind, curve, False


def test_a_sender_without_a_receiver_says_what_to_check_once() -> None:
    now = [0.0]
    transport = FakeTransport(curve=True)
    watch = ReceiverWatch(transport, after_s=5.0, clock=lambda: now[0])
    assert watch.check() is None
    now[0] = 6.0
    line = watch.check()
    assert line is not None and "no receiver for 6 s" in line and "tcp://10.0.0.9:5555" in line
    assert "--curve-keys" in line and "firewall" in line
    now[0] = 20.0
    assert watch.check() is None  # said once
    transport.has_receiver = True
    assert watch.check() is None
    transport.has_receiver = False
    now[0] = 26.0
    assert "no receiver for 6 s" in (watch.check() or "")  # the receiver left: said again


def test_send_save_without_an_endpoint_writes_the_file_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "clip.ecz"
    assert cli(["send", "--synthetic", "--size", "64x64", "--frames", "4", "--save", str(out), "--quiet"]) == 0
    text = capsys.readouterr()
    assert "saved 4 packets (no network)" in text.out and "dropped" not in text.out
    assert cli(["info", str(out)]) == 0
    assert "4 frames" in capsys.readouterr().out


def test_a_file_saved_from_a_video_keeps_the_videos_times(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``send --video F --save X.ecz`` with no network and no --fps: packets carry the clip's times (25 fps: 40 ms
    apart), not the coding speed's, so the file plays at the clip's pace."""
    from edgecodec.container import read_container

    clip = Path(__file__).resolve().parents[1] / "edgecodec" / "samples" / "foreman_352x288_75f.mp4"
    out = tmp_path / "clip.ecz"
    assert cli(["send", "--video", str(clip), "--frames", "6", "--save", str(out), "--quiet", "--intra-only"]) == 0
    capsys.readouterr()
    header, packets = read_container(out)
    assert len(packets) == 6 and (header.fps_num, header.fps_den) == (25, 1)
    steps = {b.timestamp_us - a.timestamp_us for a, b in zip(packets, packets[1:], strict=False)}
    assert steps == {40_000}


def test_a_missing_package_names_what_to_install() -> None:
    with pytest.raises(MissingDependencyError, match=r"--plot needs the Python package nosuchplot \(pip install"):
        require("nosuchplot", "--plot")
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgecodec\[tensorrt\]'"):
        require("nosuchtrt", "the tensorrt backend", package="torch-tensorrt", extra="tensorrt")
    assert require("json", "parsing").dumps([1]) == "[1]"


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_end_a_send_with_its_summary(tmp_path: Path, sig: int, status: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecodec", "send", "--synthetic", "--size", "64x64", "--fps", "10", "--save",
         str(tmp_path / "live.ecz"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        read_until(proc.stderr, "saving to")  # the start line: the model is loaded and frames flow
        time.sleep(0.5)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert "edgecodec send: stream main:" in out


def test_ctrl_c_ends_the_demo_with_130(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecodec", "demo", "--out", str(tmp_path / "demo.mp4"), "--backend", "torch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        read_until(proc.stderr, "edgecodec demo: video")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "edgecodec demo: wrote" in out


def test_binding_to_a_host_that_is_not_here_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """The sibling of a --connect host that does not resolve: --bind to a name that is no address or interface."""
    assert cli(["receive", "--bind", "tcp://no-such-host.invalid:5555", "--headless"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such address or interface on this machine" in err[0]


@pytest.mark.parametrize(
    "argv",
    [["send", "--synthetic"], ["profile", "--synthetic"], ["export", "--backend", "onnx"]],
)
@pytest.mark.parametrize("size", ["0x0", "10x99999"])
def test_every_size_option_names_a_side_out_of_range(argv: list[str], size: str, capsys) -> None:  # noqa: ANN001
    """--size 0x0 is well formed; every command that takes a size says the sides must be 1..16384."""
    try:
        status = cli([*argv, "--size", size])
    except SystemExit as exc:  # argparse's own exit (send's --size is checked while parsing)
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "width and height must be 1..16384 pixels" in err[0], err


def test_the_no_gpu_note_names_the_backend_of_each_side() -> None:
    """Issue 16's defaults on a CPU, and the one line that says so: the sender's encoder, the receiver's decoders, or
    both when one process runs both sides (demo, profile)."""
    from edgecodec.runtime import FAST_CPU_MODEL, streaming_defaults

    model, backend, note = streaming_defaults(None, "auto", "cpu")
    assert (model, backend) == (FAST_CPU_MODEL, "onnx") and "backend onnx (encoder), the fastest" in note
    _, backend, note = streaming_defaults(None, "auto", "cpu", decode_only=True)
    assert backend == "onnx-int8" and "backend onnx-int8 (decoders), the fastest" in note
    _, backend, note = streaming_defaults(None, "auto", "cpu", both_sides=True)
    assert backend == "onnx" and "backend onnx (encoder), onnx-int8 (decoders), the fastest" in note
    assert streaming_defaults("hqa5", "auto", "cpu") == ("hqa5", "onnx", None)


def test_status_lines_in_a_log_come_every_ten_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal gets every status line (one a second); a log or pipe at most one every 10 s; --quiet none."""
    import io

    from edgecodec import cliutil

    clock = [100.0]
    monkeypatch.setattr(cliutil.time, "monotonic", lambda: clock[0])
    log = io.StringIO()
    show = cliutil.status_printer(False, log)
    for second in range(25):
        clock[0] = 100.0 + second
        show(f"t={second}")
    assert log.getvalue().split() == ["t=0", "t=10", "t=20"]
    assert cliutil.status_printer(True, log) is None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    show = cliutil.status_printer(False, tty)
    for second in range(3):
        show(f"t={second}")
    assert tty.getvalue().split() == ["t=0", "t=1", "t=2"]


def test_a_recording_that_got_no_frame_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "nothing.mp4"
    status = cli(["receive", "--bind", "tcp://127.0.0.1:*", "--record", str(out), "--timeout", "0.5", "--quiet",
                  "--model", "hqa5-cpu", "--backend", "torch"])  # fmt: skip
    assert status == 0 and not out.exists()
    assert f"no frame arrived, so {out} was not written" in capsys.readouterr().err

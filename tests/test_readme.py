"""The README's commands: CI runs exactly its test command, every line is safe to paste into bash and zsh, and every
example of "Using it" runs as written (issue 14), in a folder with a small clip and photo of its own and the data sets
linked in as ``data/`` where this machine has them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
GLOB = set("*?[")


def _sh_blocks(text: str = README) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[str]:
    """The command lines of a block, without comments."""
    return [re.split(r"\s#\s", ln)[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def _usage() -> list[str]:
    """Every command of the "Using it" section, in order."""
    section = README.split("## Using it", 1)[1].split("\n## ", 1)[0]
    return [c for block in _sh_blocks(section) for c in _commands(block)]


def test_readme_opens_with_the_demo_and_the_test_commands() -> None:
    first, second = (_commands(b)[0] for b in _sh_blocks()[:2])
    assert first.endswith("edgecodec demo") and "pip install torch==2.13.0" in first
    assert second.endswith("python -m pytest -q")
    for command in (first, second):  # PyTorch's CPU build, not the CUDA one PyPI gives on Linux
        assert "--index-url https://download.pytorch.org/whl/cpu" in command


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_cmd = _commands(_sh_blocks()[1])[0]
    ci_lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def unquoted_globs(command: str) -> list[str]:
    """The characters of ``command`` that bash and zsh would expand as a file pattern (outside quotes)."""
    found, quote = [], None
    for ch in command:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in GLOB:
            found.append(ch)
    return found


def test_unquoted_globs_are_found() -> None:
    assert unquoted_globs("edgecodec receive --bind tcp://*:5555") == ["*"]
    assert unquoted_globs("edgecodec receive --bind 'tcp://*:5555' && pip install -e \".[dev]\"") == []


@pytest.mark.parametrize(
    "path", ["README.md", "docs/streaming.md", "docs/backends.md", "docs/profile/README.md", "deploy/README.md"]
)
def test_every_command_is_safe_to_paste_into_zsh(path: str) -> None:
    """zsh stops a command at a pattern that matches no file (``tcp://*:5555``), where bash passes it on."""
    commands = [c for block in _sh_blocks((REPO / path).read_text()) for c in _commands(block)]
    assert commands
    bad = [c for c in commands if unquoted_globs(c)]
    assert not bad, f"quote these for zsh: {bad}"
    zsh = shutil.which("zsh")
    if zsh is None:
        return
    for command in commands:  # the words zsh makes of each simple command (nothing runs): a bad pattern fails
        for segment in simple_commands(command):
            done = subprocess.run([zsh, "-f", "-c", f"set -- {segment}"], capture_output=True, text=True, cwd=REPO)
            assert done.returncode == 0, (segment, done.stderr)


def simple_commands(command: str) -> list[str]:
    """``command`` cut at ``&&``, ``||``, ``;`` and ``|`` outside quotes; parts that could run something when
    expanded (command substitution, redirection) are left out."""
    parts, current, quote, i = [], "", None, 0
    while i < len(command):
        ch = command[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in ";|&":
            parts.append(current)
            current, i = "", i + (2 if command[i : i + 2] in ("&&", "||") else 1)
            continue
        current += ch
        i += 1
    parts.append(current)
    return [p.strip() for p in parts if p.strip() and not any(t in p for t in ("$(", "`", ">", "<"))]


def test_simple_commands_are_cut_outside_quotes() -> None:
    assert simple_commands("a && b 'x && y' | c; d") == ["a", "b 'x && y'", "c", "d"]
    assert simple_commands("a > out && b") == ["b"]


# -- "Using it", run as written ------------------------------------------------------------------------------------
def _make_inputs(folder: Path) -> None:
    import cv2

    y, x = np.mgrid[0:120, 0:160]
    cv2.imwrite(str(folder / "photo.png"), np.stack([x, y, x + y], -1).astype(np.uint8))
    video = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 120))
    for i in range(100):  # a still scene with a small moving square (P-frames); 100 frames for the profile example
        frame = np.stack([x, y, x + y], -1).astype(np.uint8)
        frame[40:60, 20 + i % 100 : 40 + i % 100] = 255
        video.write(frame)
    video.release()
    if SHARED_DATA.is_dir():
        (folder / "data").symlink_to(SHARED_DATA)


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the edgecodec script of this environment
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}


def _run(command: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _start(command: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, out, err


def _wait_for(predicate, timeout: float = 90.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def _frames_on_page(port: int = 8080) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=2) as r:
            import json

            return sum(s.get("frames", 0) for s in json.load(r)["streams"])
    except (OSError, ValueError, KeyError):
        return 0


def _streaming(usage: list[str], cwd: Path) -> None:
    """The receiver lines run as written, each fed by the README's clip sender; then Ctrl-C: exit 130."""
    sender_cmd = next(c for c in usage if c.startswith("edgecodec send --video clip.mp4 --loop"))
    for receiver_cmd in [c for c in usage if c.startswith("edgecodec receive")]:
        receiver = _start(receiver_cmd, cwd)
        sender = _start(sender_cmd, cwd)
        try:
            if "--http" in receiver_cmd:
                assert _wait_for(lambda: _frames_on_page() >= 10), "no frames on the live view page"
            else:
                time.sleep(8)
        finally:
            sender_status, _, sender_err = _stop(sender)
            status, out, err = _stop(receiver)
        assert sender_status == 130, sender_err
        assert status == 130 and re.search(r"edgecodec receive: [1-9]\d* frames", out), (receiver_cmd, err)
    assert (cwd / "out.mp4").stat().st_size > 0


def test_every_example_of_using_it_runs_as_written(tmp_path: Path) -> None:
    usage = _usage()
    _make_inputs(tmp_path)
    ran = set()
    for command in usage:
        if command.startswith(("edgecodec receive", "edgecodec send --video clip.mp4 --loop")):
            continue  # run together below
        if command.startswith("edgecodec demo --http"):  # loops until Ctrl-C: watched on its page, then stopped
            demo = _start(command, tmp_path)
            try:
                assert _wait_for(lambda: _frames_on_page() >= 10), "no frames on the demo's page"
            finally:
                status, out, err = _stop(demo)
            assert status == 130 and "edgecodec demo: wrote" in out, err
            ran.add(command)
            continue
        if command.startswith("edgecodec send --camera"):  # no camera here: the one-line error, and exit 2
            done = _run(command, tmp_path)
            assert done.returncode == 2 and "camera" in done.stderr and done.stderr.count("\n") == 1, done.stderr
        elif command.startswith("edgecodec train"):  # 50 minutes: checked for its options and data, not run
            done = _run(command.replace("edgecodec train", "edgecodec train --help", 1), tmp_path)
            assert done.returncode == 0
            for folder in re.findall(r"(data/\S+)", command):
                if SHARED_DATA.is_dir():
                    assert (tmp_path / folder).is_dir(), folder
        elif command.startswith("edgecodec eval") and not (tmp_path / "data").is_dir():
            continue  # needs the data sets
        else:
            done = _run(command, tmp_path)
            assert done.returncode == 0, (command, done.stderr[-2000:])
        ran.add(command)
    _streaming(usage, tmp_path)
    for made in ("photo_decoded.png", "clip_decoded.mp4", "live.ecz", "profile.png", "keys"):
        assert (tmp_path / made).exists(), made
    assert len(ran) >= 12

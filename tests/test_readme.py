"""The README's commands: CI runs exactly its test command, and its file examples run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np

from edgecodec.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def _commands(block: str) -> list[str]:
    return [re.split(r"\s#\s", ln)[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_opens_with_the_demo_and_the_test_commands() -> None:
    first, second = (_commands(b)[0] for b in _sh_blocks()[:2])
    assert first.endswith("edgecodec demo") and "pip install torch==2.13.0" in first
    assert second.endswith("python -m pytest -q")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_cmd = _commands(_sh_blocks()[1])[0]
    ci_lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def test_usage_examples_for_files_run_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    import cv2

    monkeypatch.chdir(tmp_path)
    y, x = np.mgrid[0:120, 0:160]
    cv2.imwrite("photo.png", np.stack([x, y, x + y], -1).astype(np.uint8))
    video = cv2.VideoWriter("clip.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(4):  # a still scene with a small moving square: P-frames
        frame = np.stack([x, y, x + y], -1).astype(np.uint8)
        frame[40:60, 20 + 4 * i : 40 + 4 * i] = 255
        video.write(frame)
    video.release()
    usage = _commands(_sh_blocks()[2])
    runnable = [c for c in usage if c.split()[1] in ("--help", "models", "encode", "decode", "info")]
    assert len(runnable) == 6
    for command in runnable:
        argv = shlex.split(command)
        assert argv[0] == "edgecodec"
        assert cli(argv[1:]) == 0, command
    assert Path("photo_decoded.png").is_file()
    out = capsys.readouterr().out
    assert "photo.ecz" in out and "clip.ecz: 4 frames" in out

"""``edgecodec demo``: loopback sender and receiver on the shipped sample clip, side-by-side mp4 out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgecodec.capture import VideoSource, sample_path
from edgecodec.cli import main as cli_main

SAMPLE_FRAMES = 75


def test_sample_clip_ships_with_its_licence() -> None:
    path = sample_path()
    assert path.is_file() and path.stat().st_size < 300_000
    assert (
        "BSD" in (path.parent / "LICENSE").read_text() and "cisco/openh264" in (path.parent / "README.md").read_text()
    )
    with VideoSource(path) as source:
        assert sum(1 for _ in source) == SAMPLE_FRAMES and source.native_fps == 25


def test_demo_with_no_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_main(["demo"]) == 0
    out = capsys.readouterr().out
    # paced at the clip's rate like a camera, so a loaded machine may drop a frame the encoder could not take: the
    # frames sent and those dropped before encoding are every frame of the clip
    sent = int(re.search(r"edgecodec send: stream demo: (\d+) frames", out).group(1))
    behind = re.search(r"(\d+) of (\d+) captured frames dropped before encoding", out)
    assert sent + (int(behind.group(1)) if behind else 0) == SAMPLE_FRAMES and sent >= SAMPLE_FRAMES * 0.8
    wrote = re.search(r"wrote (\d+) side-by-side frames to edgecodec-demo.mp4", out)
    assert wrote and int(wrote.group(1)) == sent
    with VideoSource(tmp_path / "edgecodec-demo.mp4") as video:
        frames = list(video)
    assert len(frames) == int(wrote.group(1)) and frames[0].size == (352 + 4 + 352, 288)


def test_demo_stats_and_options(tmp_path: Path, capsys) -> None:
    out = tmp_path / "small.mp4"
    argv = ["demo", "--frames", "8", "--size", "128x96", "--rate-config", "fixed", "--out", str(out)]
    assert cli_main([*argv, "--stats", str(tmp_path / "demo")]) == 0
    sent = [json.loads(line) for line in (tmp_path / "demo.send.jsonl").read_text().splitlines()]
    received = [json.loads(line) for line in (tmp_path / "demo.receive.jsonl").read_text().splitlines()]
    assert [r["layer"] for r in sent if r["kind"] == "frame"] == [3] * 8
    assert received[-1]["kind"] == "summary" and received[-1]["received"] == 8
    with VideoSource(out) as video:
        assert [f.size for f in video] == [(128 + 4 + 128, 96)] * 8


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--video", "missing.mp4"], "not found"),
        (["demo", "--rate-config", "nope"], "unknown rate preset"),
        (["demo", "--size", "big"], "--size"),
        (["demo", "--out", "no/such/dir/out.mp4"], "does not exist"),
    ],
)
def test_demo_bad_input_is_one_line(argv: list[str], message: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err

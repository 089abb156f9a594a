"""Frame sources: synthetic, video files (OpenCV, PyAV fallback, raw I420), image folders, command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from edgecodec import capture, readers
from edgecodec.capture import (
    CameraSource,
    Frame,
    ImageFolderSource,
    SyntheticSource,
    VideoSource,
    add_source_arguments,
    parse_size,
    source_from_args,
)
from edgecodec.errors import ConfigError, SourceError

DATA = SHARED_DATA
VIDEO = DATA / "video"


def clip(name: str) -> Path:
    path = VIDEO / name
    if not path.is_file():
        pytest.skip(f"shared test clip {path} is absent (set EDGECODEC_DATA, see README 'Data')")
    return path


def check_frames(frames: list[Frame], size: tuple[int, int]) -> None:
    assert [f.index for f in frames] == list(range(len(frames)))
    for f in frames:
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (size[1], size[0], 3) and f.rgb.flags["C_CONTIGUOUS"]
        assert f.size == size
    stamps = [f.timestamp_us for f in frames]
    assert stamps == sorted(stamps)


# -- synthetic -----------------------------------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_moves() -> None:
    with SyntheticSource(size=(96, 64), frames=5) as a, SyntheticSource(size=(96, 64), frames=5) as b:
        fa, fb = list(a), list(b)
    check_frames(fa, (96, 64))
    assert len(fa) == 5
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(fa, fb, strict=True))
    assert not np.array_equal(fa[0].rgb, fa[1].rgb)


def test_closed_source_yields_nothing_and_clock_is_injectable() -> None:
    ticks = iter(range(1000, 2000, 10))
    source = SyntheticSource(size=(8, 8), clock_us=lambda: next(ticks))
    assert [source.read().timestamp_us for _ in range(3)] == [1000, 1010, 1020]
    source.close()
    assert source.read() is None and list(source) == []


def test_pacing_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(capture.time, "sleep", sleeps.append)  # no real waiting: check the schedule only
    list(SyntheticSource(size=(8, 8), frames=3, pace_fps=10))
    assert sleeps == [pytest.approx(0.1, abs=0.05), pytest.approx(0.2, abs=0.05)]


# -- video files ---------------------------------------------------------------------------------------------------
def test_video_h264_with_resize() -> None:
    with VideoSource(clip("foreman_cif_352x288_299f.264"), frames=4) as source:
        frames = list(source)
        assert source.native_fps == pytest.approx(25)
    check_frames(frames, (352, 288))
    with VideoSource(clip("foreman_cif_352x288_299f.264"), size=(176, 144), frames=2) as source:
        check_frames(list(source), (176, 144))


def test_video_loop_restarts() -> None:
    path = clip("static_videoconf_1280x720_19f.264")
    with VideoSource(path, loop=True, size=(160, 90), frames=22) as source:
        frames = list(source)
    check_frames(frames, (160, 90))
    assert len(frames) == 22
    assert np.array_equal(frames[19].rgb, frames[0].rgb)
    with VideoSource(path, size=(160, 90)) as source:
        assert len(list(source)) == 19  # without --loop it ends


def test_opencv_fallback_when_pyav_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    path = clip("static_street_690x388_example01.mp4")
    with VideoSource(path, frames=2) as source:
        assert source.backend == "pyav"
        reference = list(source)
    monkeypatch.setattr(readers.PyAVReader, "read", lambda self: None)
    with VideoSource(path, frames=2) as source:
        assert source.backend == "opencv"
        frames = list(source)
    check_frames(frames, (690, 388))
    diff = np.abs(frames[0].rgb.astype(int) - reference[0].rgb.astype(int)).mean()
    assert diff < 4  # same picture; the two libraries convert YUV to RGB slightly differently


def test_raw_yuv_needs_size() -> None:
    path = clip("CiscoVT2people_320x192_12fps_i420.yuv")
    with VideoSource(path, size=(320, 192)) as source:
        frames = list(source)
    check_frames(frames, (320, 192))
    assert len(frames) == 9
    with pytest.raises(SourceError, match="raw I420 video: give its frame size with --size"):
        VideoSource(path)
    with pytest.raises(SourceError, match="not a whole number of 352x288 I420 frames"):
        VideoSource(path, size=(352, 288))


def test_video_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="video file '.*missing.mp4' not found"):
        VideoSource(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot read video '.*junk.mp4'"):
        VideoSource(junk)


def test_camera_that_does_not_exist() -> None:
    with pytest.raises(SourceError, match="cannot open camera 99"):
        CameraSource(99)


# -- image folders -------------------------------------------------------------------------------------------------
def test_image_folder_order_size_and_loop(tmp_path: Path) -> None:
    for i, (w, h) in enumerate([(40, 30), (50, 20), (40, 30)]):
        bgr = np.full((h, w, 3), (10 * i, 100, 200), np.uint8)
        cv2.imwrite(str(tmp_path / f"img{i:02d}.png"), bgr)
    (tmp_path / "notes.txt").write_text("ignored")
    with ImageFolderSource(tmp_path, loop=True, frames=5) as source:
        frames = list(source)
    check_frames(frames, (40, 30))  # every frame takes the first image's size
    assert frames[0].rgb[0, 0].tolist() == [200, 100, 0]  # RGB, not BGR
    assert frames[1].rgb[0, 0].tolist() == [200, 100, 10]
    assert np.array_equal(frames[3].rgb, frames[0].rgb)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="image folder '.*nope' not found"):
        ImageFolderSource(tmp_path / "nope")
    with pytest.raises(SourceError, match="holds no images"):
        ImageFolderSource(tmp_path)
    with pytest.raises(SourceError, match="image folder '.*' is a file, not a directory"):
        ImageFolderSource(Path(__file__))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with ImageFolderSource(tmp_path) as source:  # an unreadable image is skipped, with a warning (test_media.py)
        assert source.read() is None


# -- command line --------------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="send", exit_on_error=True)
    add_source_arguments(p)
    return p


@pytest.mark.parametrize("text, size", [("640x480", (640, 480)), (" 8x2 ", (8, 2))])
def test_parse_size(text: str, size: tuple[int, int]) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["640", "640x", "x480", "640X480", "640x480x3", "-1x5"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--size: expected WxH, e.g. 640x480"):
        parse_size(text)


@pytest.mark.parametrize("text", ["0x0", "0x10", "10x0", "99999x1"])
def test_parse_size_names_a_side_out_of_range(text: str) -> None:
    """Issue 14: ``--size 0x0`` is well formed; the message says what is wrong with it."""
    with pytest.raises(ConfigError, match=r"--size: width and height must be 1\.\.16384 pixels"):
        parse_size(text)


def test_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    ns = parser().parse_args(["--synthetic", "--size", "64x48", "--frames", "3"])
    with source_from_args(ns) as source:
        check_frames(list(source), (64, 48))
    for bad, message in [
        (["--synthetic", "--size", "64by48"], "argument --size: expected WxH, e.g. 640x480"),
        (["--synthetic", "--camera", "0"], "not allowed with argument"),
        (["--size", "64x48"], "one of the arguments --camera --video --images --synthetic is required"),
        (["--synthetic", "--frames", "0"], "argument --frames: must be > 0"),
    ]:
        with pytest.raises(SystemExit):
            parser().parse_args(bad)
        assert message in capsys.readouterr().err


# -- sinks ---------------------------------------------------------------------------------------------------------
def test_recorder_round_trip(tmp_path: Path) -> None:
    from edgecodec.sinks import NullSink, VideoRecorder

    path = tmp_path / "out.mp4"
    with SyntheticSource(size=(96, 64), frames=8) as source, VideoRecorder(path, fps=10) as recorder:
        originals = [f.rgb for f in source]
        for rgb in originals:
            assert recorder.write(rgb)
        assert recorder.write(np.zeros((10, 10, 3), np.uint8))  # another size is resized, not an error
    with VideoSource(path) as source:
        frames = list(source)
    assert len(frames) == 9 and frames[0].size == (96, 64)
    assert np.abs(frames[3].rgb.astype(int) - originals[3].astype(int)).mean() < 12
    with NullSink() as null:
        null.write(originals[0])
    assert null.frames == 1


def test_sink_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecodec import sinks

    with pytest.raises(sinks.SinkError, match="folder '.*nowhere' does not exist"):
        sinks.VideoRecorder(tmp_path / "nowhere" / "x.mp4")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        sinks.NullSink().write(np.zeros((4, 4), np.uint8))
    monkeypatch.setattr(sinks.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(sinks.SinkError, match="no display"):
        sinks.DisplaySink()  # must refuse: OpenCV's Qt backend would abort the process

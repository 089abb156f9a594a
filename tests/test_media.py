"""Media in and out (issue 13), one test per failing case, each on an input made here (tests/media_inputs.py):
damaged packets, variable frame rate, lost frames in recordings, display rotation, TIFF orientation and unreadable
images, odd frame sizes, colour, and paths."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edgecodec import cli
from edgecodec.capture import ImageFolderSource, VideoSource
from edgecodec.codec import Codec
from edgecodec.config import load_rate_config
from edgecodec.container import ContainerReader
from edgecodec.data import read_rgb
from edgecodec.errors import MissingReferenceError
from edgecodec.rate import RateController
from edgecodec.readers import OpenCVReader, PyAVReader
from edgecodec.receiver import FrameReceiver, Outputs
from edgecodec.sender import FrameCoder
from edgecodec.sinks import VideoRecorder
from edgecodec.transport import Message, stream_number
from tests.media_inputs import PATCHES, damage, moving_frames, patches, presentation, set_rotation, write_clip

FPS = 30.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec("hqa5", backend="auto")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def read_all(reader: PyAVReader | OpenCVReader) -> list[tuple[np.ndarray, int | None]]:
    frames = []
    while (got := reader.read()) is not None:
        frames.append(got)
    reader.close()
    return frames


# -- 1. a damaged packet does not end the video --------------------------------------------------------------------
def test_damaged_packets_are_skipped_not_the_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = damage(write_clip(tmp_path / "damaged.mp4", moving_frames(40), [i / FPS for i in range(40)]))
    for reader in (PyAVReader(clip), OpenCVReader(clip)):  # both backends skip damage and go on
        assert len(read_all(reader)) >= 30, reader.backend
        assert reader.skipped > 0 and "skipped" in reader.damage()
    status, out, err = run_cli(capsys, "encode", clip, "-o", tmp_path / "d.ecz", "--layer", "5")
    frames = int(out.split(": ")[1].split(" frames")[0])
    assert status == 0 and frames >= 30, out
    assert "warning" in err and "skipped" in err and "damaged packet" in err, err


# -- 2. variable frame rate survives encode and decode -------------------------------------------------------------
def test_variable_frame_rate_keeps_presentation_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    times = [i / FPS for i in range(30)] + [1 + 4 + i / FPS for i in range(30)]  # 30 frames, a 4 s pause, 30 more
    clip = write_clip(tmp_path / "vfr.mp4", moving_frames(60), times)
    for reader in (PyAVReader(clip), OpenCVReader(clip)):
        pts = [p for _, p in read_all(reader)]
        assert np.allclose(np.array(pts) / 1e6, times, atol=1e-3), reader.backend
    ecz, mp4 = tmp_path / "vfr.ecz", tmp_path / "vfr_decoded.mp4"
    assert run_cli(capsys, "encode", clip, "-o", ecz, "--layer", "5")[0] == 0
    with ContainerReader(ecz) as reader:
        stamps = [p.timestamp_us / 1e6 for p in reader]
    assert np.allclose(stamps, times, atol=1e-3)  # packets carry the source's times, P-frames included
    assert run_cli(capsys, "decode", ecz, "-o", mp4)[0] == 0
    decoded, duration = presentation(mp4)
    assert len(decoded) == 60
    assert max(abs(a - b) for a, b in zip(decoded, times, strict=True)) < 1 / FPS
    assert decoded[30] == pytest.approx(5.0, abs=1 / FPS) and duration == pytest.approx(6.0, abs=1 / FPS)


def test_constant_rate_container_keeps_the_pause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """AVI holds no free times: frames go to the nearest slot of its constant rate, the previous frame is repeated
    over the pause, and a note says so."""
    times = [i / FPS for i in range(10)] + [2 + i / FPS + 0.004 for i in range(10)]
    with VideoRecorder(tmp_path / "vfr.avi", fps=FPS) as recorder:
        for rgb, t in zip(moving_frames(20), times, strict=True):
            recorder.write(rgb, round(t * 1e6))
    decoded, duration = presentation(tmp_path / "vfr.avi")
    assert len(decoded) == round((times[-1] + 1 / FPS) * FPS)  # every slot of the constant rate holds a frame
    assert decoded[round(times[10] * FPS)] == pytest.approx(times[10], abs=1 / FPS)
    assert duration == pytest.approx(times[-1] + 1 / FPS, abs=1 / FPS)
    assert "constant frame rate" in capsys.readouterr().err


# -- 3. lost frames do not compress time in recordings -------------------------------------------------------------
def test_recording_under_loss_lasts_as_long_as_the_stream(codec: Codec, tmp_path: Path) -> None:
    rate = tmp_path / "rate.toml"
    rate.write_text("fixed_layer = 4\nkeyframe_seconds = 0.4\n")
    config = load_rate_config(str(rate))
    coder = FrameCoder(codec, RateController(config.for_model(codec.model.name), codec.num_layers),
                       stream_id=stream_number("cam"))  # fmt: skip
    receiver, record = FrameReceiver(codec), tmp_path / "recorded.mp4"
    outputs = Outputs(display=False, record=str(record), fps=25.0, overlay=False)
    rng, fps, count, start_us = np.random.default_rng(3), 25.0, 75, 1_700_000_000_000_000
    lost = shown = 0
    for seq, rgb in enumerate(moving_frames(count, (64, 48))):
        now = seq / fps
        code = codec.encode(rgb, latents=coder.latents(now))
        made = coder.code(code, now, seq=seq, timestamp_us=start_us + round(now * 1e6))
        coder.sent(made, now)
        if 0 < seq < count - 1 and rng.random() < 0.1:  # 10% lost on the way (never the first or last)
            lost += 1
            continue
        try:
            decoded = receiver.decode(Message("cam", made.packet), receiver.timer.frame())
        except MissingReferenceError:
            continue
        shown += outputs.write(decoded)
    outputs.close()
    assert lost >= 5 and shown < count - lost  # frames were lost, and frames after them held
    times, duration = presentation(record)
    assert len(times) == shown
    assert duration == pytest.approx(count / fps, abs=1 / fps)  # the stream lasted count / fps seconds


# -- 4. display rotation is applied the same way by every reader ---------------------------------------------------
@pytest.mark.parametrize("encoder", ["libx264", "libx265", "libvpx-vp9", "libsvtav1"])
def test_rotation_is_the_same_whatever_reader(encoder: str, tmp_path: Path) -> None:
    if encoder not in av.codecs_available:
        pytest.skip(f"this PyAV has no {encoder} encoder")
    frames = moving_frames(3, (96, 64))
    clip = set_rotation(write_clip(tmp_path / "phone.mp4", frames, [i / FPS for i in range(3)], codec=encoder), 90)
    upright = np.rot90(frames[0], -1)  # the display matrix turns the picture a quarter clockwise
    with VideoSource(clip) as source:
        first = next(source)
    assert source.backend == "pyav" and first.size == (64, 96)
    assert np.abs(first.rgb.astype(int) - upright).mean() < 8
    opencv = OpenCVReader(clip)
    got = opencv.read()
    opencv.close()
    if got is not None:  # this OpenCV decodes H.264, HEVC and VP9 (not AV1): the same picture, the same way up
        assert got[0].shape == (96, 64, 3) and np.abs(got[0].astype(int) - first.rgb).mean() < 2


# -- 5. images: Pillow fallback with orientation, unreadable images skipped ----------------------------------------
def test_tiff_orientation_and_unreadable_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)  # landscape as stored, red in the top-left corner
    stored[:5, :10] = (255, 0, 0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, orientation in (("a.tif", 6), ("c.tif", 8)):
        image = Image.fromarray(stored)
        exif = image.getexif()
        exif[274] = orientation
        image.save(folder / name, exif=exif)
    (folder / "b.png").write_bytes(b"\x89PNG not really")
    assert cv2.imread(str(folder / "a.tif")) is None  # this OpenCV refuses these TIFFs
    np.testing.assert_array_equal(read_rgb(folder / "a.tif"), np.rot90(stored, -1))  # 6: turn clockwise
    np.testing.assert_array_equal(read_rgb(folder / "c.tif"), np.rot90(stored, 1))  # 8: counter-clockwise
    capsys.readouterr()
    with ImageFolderSource(folder) as source:
        frames = list(source)
    assert [f.size for f in frames] == [(20, 40), (20, 40)]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b.png" in err and "skipped" in err, err


# -- 6. odd sizes are kept exactly -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(7, 5), (1, 1), (853, 480)])
def test_odd_sizes_are_kept(size: tuple[int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    width, height = size
    rgb = cv2.resize(patches(), size, interpolation=cv2.INTER_NEAREST)
    if width < 100:  # through the codec: encode an image, decode -o .mp4
        cv2.imwrite(str(tmp_path / "in.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert run_cli(capsys, "encode", tmp_path / "in.png", "-o", tmp_path / "in.ecz", "--layer", "5")[0] == 0
        status, out, err = run_cli(capsys, "decode", tmp_path / "in.ecz", "-o", tmp_path / "out.mp4")
        assert status == 0 and f"{width}x{height}" in out, err
    else:  # the recorder alone (receive --record uses it too)
        with VideoRecorder(tmp_path / "out.mp4", fps=25) as recorder:
            recorder.write(rgb, 0)
            recorder.write(rgb, 40_000)
    with av.open(str(tmp_path / "out.mp4")) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == size
    assert not list(tmp_path.glob(".*part*"))


# -- 7. colour: one matrix and range, tagged, read back as written -------------------------------------------------
def test_colour_round_trips_through_mp4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "patches.png"), cv2.cvtColor(patches((256, 128)), cv2.COLOR_RGB2BGR))
    ecz = tmp_path / "patches.ecz"
    assert run_cli(capsys, "encode", tmp_path / "patches.png", "-o", ecz, "--layer", "1")[0] == 0
    assert run_cli(capsys, "decode", ecz, "-o", tmp_path / "png.png")[0] == 0
    assert run_cli(capsys, "decode", ecz, "-o", tmp_path / "mp4.mp4")[0] == 0
    png = read_rgb(tmp_path / "png.png").astype(int)
    with av.open(str(tmp_path / "mp4.mp4")) as container:
        stream = container.streams.video[0]
        tags = stream.codec_context
        assert (tags.colorspace, tags.color_primaries, tags.color_trc, tags.color_range) == (1, 1, 1, 1)  # BT.709, TV
        frame = next(container.decode(stream))
    mp4 = frame.to_ndarray(format="rgb24").astype(int)  # PyAV converts with the frame's tags
    for i in range(len(PATCHES)):
        y, x = divmod(i, 4)
        inner = np.s_[y * 64 + 8 : (y + 1) * 64 - 8, x * 64 + 8 : (x + 1) * 64 - 8]
        a, b = np.median(png[inner], axis=(0, 1)), np.median(mp4[inner], axis=(0, 1))
        assert np.abs(a - b).max() <= 3, (PATCHES[i], a, b)


# -- 8. paths: checked at start, "is a directory" is not "not found" -----------------------------------------------
def test_paths_are_checked_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, mp4_folder, ecz_folder = tmp_path / "somedir", tmp_path / "out.mp4", tmp_path / "out.ecz"
    for made in (folder, mp4_folder, ecz_folder):
        made.mkdir()
    (tmp_path / "x.ecz").write_bytes(b"")
    cases = [
        (["receive", "--record", folder], "is a directory"),
        (["receive", "--record", tmp_path / "out.txt"], "expected a"),
        (["receive", "--record", tmp_path / "no" / "out.mp4"], "does not exist"),
        (["send", "--video", folder], "is a directory"),
        (["send", "--video", tmp_path / "missing.mp4"], "not found"),
        (["decode", folder, "-o", tmp_path / "x.png"], "is a directory"),
        (["info", folder], "is a directory"),
        (["decode", tmp_path / "x.ecz", "-o", mp4_folder], "is a directory"),
        (["receive", "--record", mp4_folder], "is a directory"),
        (["encode", tmp_path / "x.ecz", "-o", ecz_folder, "--layer", "3"], "is a directory"),
        (["encode", folder / "missing.png", "-o", tmp_path / "o.ecz", "--layer", "3"], "not found"),
        (["encode", tmp_path / "x.ecz", "-o", folder, "--layer", "3"], "must be an .ecz file"),
    ]
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((["receive", "--record", locked / "out.mp4"], "not writable"))
    for argv, message in cases:
        status, _, err = run_cli(capsys, *argv)
        err = err.strip()
        assert status == 2 and message in err and err.count("\n") == 0, (argv, err)

"""Frame sources: camera, video file, image folder and a synthetic test pattern.

Every source is an iterator of :class:`Frame` (RGB, ``uint8``, ``H x W x 3``) and a context manager. Common options:
``size=(W, H)`` resizes every frame (for a raw ``.yuv`` file it is the frame size instead, which the file cannot
tell), ``frames=N`` stops after N frames, ``loop=True`` restarts a file at its end, and ``pace_fps`` sleeps so frames
come out at that rate, as a camera would deliver them. ``timestamp_us`` is the wall-clock capture time in microseconds
since the epoch (the clock can be replaced for tests); ``pts_us`` the presentation time a video file gives the frame
(:mod:`edgecodec.readers`). Anything that cannot be opened raises :class:`~edgecodec.errors.SourceError` naming the
camera, file or folder; damaged video data and unreadable images in a folder are skipped with one warning line.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecodec.cliutil import positive
from edgecodec.errors import ConfigError, SourceError
from edgecodec.paths import check_input_file
from edgecodec.readers import OpenCVReader as _OpenCVReader  # noqa: F401 - the old import paths still work
from edgecodec.readers import PyAVReader as _PyAVReader  # noqa: F401
from edgecodec.readers import VideoReader, open_video, read_image
from edgecodec.readers import YUVReader as _YUVReader
from edgecodec.readers import quiet_opencv as _quiet_opencv

Size = tuple[int, int]  # (width, height)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
MAX_SIDE = 16384
SAMPLE_CLIP = "foreman_352x288_75f.mp4"  # shipped in edgecodec/samples (BSD-2-Clause, see its README)


@dataclass(frozen=True)
class Frame:
    """One captured frame: RGB ``uint8`` array of shape ``(H, W, 3)``. ``timestamp_us`` is the capture time (wall
    clock, or the injected clock); ``pts_us`` the presentation time the file gives the frame, in microseconds from
    its start (None for cameras, image folders and raw video)."""

    index: int
    rgb: np.ndarray
    timestamp_us: int
    pts_us: int | None = None

    @property
    def size(self) -> Size:
        return self.rgb.shape[1], self.rgb.shape[0]


def wall_clock_us() -> int:
    """Microseconds since the Unix epoch."""
    return time.time_ns() // 1000


class FrameSource:
    """Base class: subclasses implement :meth:`_read` (an RGB array or None at the end) and optionally
    :meth:`_rewind` and :meth:`_close`."""

    name = "source"
    native_fps: float | None = None

    def __init__(
        self,
        *,
        size: Size | None = None,
        frames: int | None = None,
        loop: bool = False,
        pace_fps: float | None = None,
        clock_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        if frames is not None and frames < 1:
            raise ConfigError(f"--frames must be >= 1, got {frames}")
        if pace_fps is not None and not pace_fps > 0:
            raise ConfigError(f"--fps must be > 0, got {pace_fps}")
        self.size = size
        self.frames = frames
        self.loop = loop
        self.pace_fps = pace_fps
        self._clock_us = clock_us
        self._index = 0
        self._closed = False
        self._pace_start: float | None = None
        self._pace_index = 0

    @property
    def expected(self) -> int | None:
        """How many frames this source will give, where known (for progress bars): the ``frames`` limit, or fewer
        when the source holds fewer; None for an endless or unknown source."""
        return self.frames

    # -- subclass hooks ------------------------------------------------------------------------------------------
    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def _rewind(self) -> bool:
        return False

    def _close(self) -> None:
        pass

    def _pts_us(self) -> int | None:
        """Presentation time of the frame :meth:`_read` just returned, if the source has one."""
        return None

    # -- protocol ------------------------------------------------------------------------------------------------
    def read(self) -> Frame | None:
        """The next frame, or None at the end of the source."""
        if self._closed or (self.frames is not None and self._index >= self.frames):
            return None
        rgb = self._read()
        if rgb is None and self.loop and self._index > 0 and self._rewind():
            rgb = self._read()
        if rgb is None:
            return None
        if self.size is not None and (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = resize(rgb, self.size)
        self._pace()
        frame = Frame(self._index, np.ascontiguousarray(rgb, dtype=np.uint8), self._clock_us(), self._pts_us())
        self._index += 1
        return frame

    def _pace(self) -> None:
        if self.pace_fps is None:
            return
        now = time.perf_counter()
        if self._pace_start is None:
            self._pace_start, self._pace_index = now, self._index
        due = self._pace_start + (self._index - self._pace_index) / self.pace_fps
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:  # fell more than a second behind: restart the schedule instead of bursting
            self._pace_start, self._pace_index = now, self._index

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        frame = self.read()
        if frame is None:
            raise StopIteration
        return frame

    def close(self) -> None:
        """Release the device or file; further reads return None."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class CameraSource(FrameSource):
    """A camera through OpenCV; ``size`` and ``fps`` are requested from the driver, and ``size`` enforced."""

    def __init__(self, index: int, size: Size | None = None, fps: float | None = None, **kwargs: Any) -> None:
        super().__init__(size=size, **kwargs)
        self.name = f"camera {index}"
        with _quiet_opencv():
            self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open camera {index}")
        if size is not None:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps is not None:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        self.native_fps = self._cap.get(cv2.CAP_PROP_FPS) or fps

    def _read(self) -> np.ndarray | None:
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise SourceError(f"{self.name} stopped delivering frames")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _close(self) -> None:
        self._cap.release()


class VideoSource(FrameSource):
    """A video file through :mod:`edgecodec.readers`: PyAV first, OpenCV where PyAV cannot open it; raw ``.yuv`` is
    I420 of ``size``. Frames carry the file's presentation times (``pts_us``, continued across ``loop``), display
    rotation is applied, and damaged data is skipped and reported once on stderr (:attr:`damage`)."""

    def __init__(self, path: str | Path, loop: bool = False, size: Size | None = None, **kwargs: Any) -> None:
        self.path = Path(path)
        self._yuv = self.path.suffix.lower() == ".yuv"
        super().__init__(size=None if self._yuv else size, loop=loop, **kwargs)
        self.name = f"video {str(path)!r}"
        check_input_file(self.path, "video file")
        if self._yuv and size is None:
            raise SourceError(f"{self.path.name} is raw I420 video: give its frame size with --size WxH")
        self._yuv_size = size if self._yuv else None
        self._pts_offset = 0
        self._last_pts: int | None = None
        self._current_pts: int | None = None
        self.damage: str | None = None  # what the reader skipped, once it has reached the end
        self._reader, self._first = self._open()
        self.native_fps = self._reader.fps or None

    @property
    def backend(self) -> str:
        return self._reader.backend

    @property
    def expected(self) -> int | None:
        count = None if self.loop else getattr(self._reader, "count", 0) or None
        return min(c for c in (self.frames, count) if c is not None) if self.frames or count else None

    def _open(self) -> tuple[VideoReader, tuple[np.ndarray, int | None] | None]:
        if self._yuv_size is not None:
            try:
                return _YUVReader(self.path, self._yuv_size), None
            except OSError as exc:
                raise SourceError(f"cannot read video {str(self.path)!r}: {exc.strerror or exc}") from None
        return open_video(self.path)

    def _read(self) -> np.ndarray | None:
        if self._first is not None:
            got, self._first = self._first, None
        else:
            try:
                got = self._reader.read()
            except (ValueError, OSError) as exc:
                raise SourceError(f"error while decoding {str(self.path)!r}: {exc}") from exc
        if got is None:
            self._report()
            return None
        rgb, pts = got
        if pts is None and self.native_fps:
            pts = round(self._index * 1_000_000 / self.native_fps) - self._pts_offset
        self._current_pts = None if pts is None else pts + self._pts_offset
        if self._current_pts is not None:
            self._last_pts = self._current_pts
        return rgb

    def _pts_us(self) -> int | None:
        return self._current_pts

    def _report(self) -> None:
        damage = self._reader.damage()
        if damage and damage != self.damage:
            self.damage = damage
            print(f"edgecodec: warning: {self.name}: {damage}", file=sys.stderr)

    def _rewind(self) -> bool:
        self._reader.close()
        if self._last_pts is not None:  # the next lap goes on from one frame interval after the last frame
            self._pts_offset = self._last_pts + round(1_000_000 / (self.native_fps or 30.0))
        self._reader, self._first = self._open()
        return True

    def _close(self) -> None:
        if self._reader.skipped:
            self._report()
        self._reader.close()


class ImageFolderSource(FrameSource):
    """The images of a folder in name order; without ``size`` every frame takes the first image's size."""

    def __init__(self, directory: str | Path, loop: bool = False, size: Size | None = None, **kwargs: Any) -> None:
        super().__init__(size=size, loop=loop, **kwargs)
        self.directory = Path(directory)
        self.name = f"images {str(directory)!r}"
        if self.directory.is_file():
            raise SourceError(f"image folder {str(directory)!r} is a file, not a directory")
        if not self.directory.is_dir():
            raise SourceError(f"image folder {str(directory)!r} not found")
        self.paths = sorted(p for p in self.directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise SourceError(f"image folder {str(directory)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._next = 0
        self.unreadable: list[Path] = []  # images skipped, each reported once on stderr

    @property
    def expected(self) -> int | None:
        return self.frames if self.loop else min(len(self.paths), self.frames or len(self.paths))

    def _read(self) -> np.ndarray | None:
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            try:
                rgb = read_image(path)
            except SourceError as exc:
                if path not in self.unreadable:
                    self.unreadable.append(path)
                    print(f"edgecodec: warning: {exc}; skipped", file=sys.stderr)
                continue
            if self.size is None:
                self.size = (rgb.shape[1], rgb.shape[0])
            return rgb
        return None

    def _rewind(self) -> bool:
        self._next = 0
        return True


class SyntheticSource(FrameSource):
    """A deterministic moving test pattern: drifting colour gradients, rolling waves and a bouncing box."""

    def __init__(self, size: Size = (320, 240), frames: int | None = None, **kwargs: Any) -> None:
        super().__init__(frames=frames, **kwargs)
        width, height = _check_size(size)
        self.name = f"synthetic {width}x{height}"
        self.native_fps = 30.0
        self._shape = (height, width)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self._x, self._y = xx, yy
        self._t = 0

    def _read(self) -> np.ndarray | None:
        height, width = self._shape
        t, x, y = self._t, self._x, self._y
        self._t += 1
        rgb = np.empty((height, width, 3), np.float32)
        rgb[..., 0] = (x * (255.0 / max(width - 1, 1)) + 2 * t) % 256
        rgb[..., 1] = (y * (255.0 / max(height - 1, 1)) + t) % 256
        rgb[..., 2] = 128 + 100 * np.sin((x + y) / 13.0 + t / 6.0)
        box_w, box_h = max(1, width // 6), max(1, height // 5)
        x0, y0 = _bounce(5 * t, width - box_w), _bounce(3 * t, height - box_h)
        rgb[y0 : y0 + box_h, x0 : x0 + box_w] = (250, 250, 40)
        return np.clip(rgb, 0, 255).astype(np.uint8)


def sample_path() -> Path:
    """The clip shipped in ``edgecodec/samples``: 75 frames of foreman at 352x288."""
    from importlib import resources

    return Path(str(resources.files("edgecodec").joinpath("samples", SAMPLE_CLIP)))


def sample_frames() -> list[np.ndarray]:
    """Every frame of the shipped clip, RGB uint8 (H, W, 3)."""
    with VideoSource(sample_path()) as source:
        return [frame.rgb for frame in source]


def _bounce(position: int, span: int) -> int:
    if span <= 0:
        return 0
    position %= 2 * span
    return position if position <= span else 2 * span - position


def _check_size(size: Size) -> Size:
    width, height = size
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ConfigError(f"size {width}x{height} out of range 1..{MAX_SIDE}")
    return int(width), int(height)


# -- command line ------------------------------------------------------------------------------------------------
_SIZE_RE = re.compile(r"(\d{1,5})x(\d{1,5})")


def resize(rgb: np.ndarray, size: Size) -> np.ndarray:
    """``rgb`` resized to ``size`` (W, H): area averaging where a side shrinks by 2x or more (against aliasing),
    bilinear otherwise (5x cheaper: 0.8 against 4.4 ms of CPU from 960x540 to 640x480, a camera-rate cost)."""
    shrink = max(rgb.shape[1] / size[0], rgb.shape[0] / size[1])
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink >= 2 else cv2.INTER_LINEAR)


def parse_size(text: str) -> Size:
    """Parse ``WxH`` (e.g. ``640x480``) strictly; ConfigError otherwise."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"--size: expected WxH, e.g. 640x480, got {text!r}")
    if not all(1 <= int(v) <= MAX_SIDE for v in match.groups()):
        raise ConfigError(f"--size: width and height must be 1..{MAX_SIDE} pixels, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _size_arg(text: str) -> Size:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--size: ")) from None


def add_source_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add ``--camera N | --video FILE | --images DIR | --synthetic`` and ``--size --fps --loop --frames``."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--camera", type=int, metavar="N", help="camera index (OpenCV)")
    group.add_argument("--video", metavar="FILE", help="video file (mp4, raw .264, ...; raw .yuv I420 needs --size)")
    group.add_argument("--images", metavar="DIR", help="folder of images, in name order")
    group.add_argument("--synthetic", action="store_true", help="moving test pattern")
    parser.add_argument("--size", type=_size_arg, metavar="WxH", help="frame size (resize; the frame size of .yuv)")
    parser.add_argument("--fps", type=positive(float), help="camera rate; for files, pace frames at this rate")
    parser.add_argument("--loop", action="store_true", help="restart a video or image folder at its end")
    parser.add_argument("--frames", type=positive(int), metavar="N", help="stop after N frames")


def source_from_args(ns: argparse.Namespace) -> FrameSource:
    """Open the source chosen by the arguments of :func:`add_source_arguments`."""
    size, fps, frames = ns.size, ns.fps, ns.frames
    if ns.camera is not None:
        return CameraSource(ns.camera, size=size, fps=fps, frames=frames)
    if ns.video is not None:
        return VideoSource(ns.video, loop=ns.loop, size=size, frames=frames, pace_fps=fps)
    if ns.images is not None:
        return ImageFolderSource(ns.images, loop=ns.loop, size=size, frames=frames, pace_fps=fps)
    if ns.synthetic:
        return SyntheticSource(size=size or (320, 240), frames=frames, pace_fps=fps)
    raise ConfigError("no source: give --camera N, --video FILE, --images DIR or --synthetic")

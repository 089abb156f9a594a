"""Media readers behind one interface: video files (PyAV first, OpenCV where PyAV cannot open them, raw I420) and
image files (OpenCV first, Pillow as the fallback).

Every video reader behaves the same whichever library decodes:

* :meth:`read` returns ``(rgb, pts_us)``: an RGB ``uint8`` frame and its presentation time in microseconds from the
  start of the stream (None where the file has none), or None at the end of the file.
* Damaged data is skipped to the next frame that decodes; it is counted in ``skipped`` and described by
  :meth:`damage`, and never taken for the end of the file.
* Display rotation (an mp4 display matrix, e.g. a phone held upright) is applied, as OpenCV does by default
  (``CAP_PROP_ORIENTATION_AUTO``), so a clip comes out upright through either library.
* YUV is converted to RGB with the matrix and range the stream is tagged with (BT.601 when untagged), by swscale.

Images: :func:`read_image` tries OpenCV, then Pillow with the EXIF/TIFF orientation applied
(``ImageOps.exif_transpose``), so a TIFF with Orientation 6 that OpenCV refuses still comes out upright.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgecodec.errors import SourceError

MAX_BAD_READS = 256  # OpenCV: consecutive failed reads before the end of a damaged file is accepted as the end


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log while probing devices and files; failures are reported as SourceError instead."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


class VideoReader(Protocol):
    backend: str
    fps: float
    skipped: int

    def read(self) -> tuple[np.ndarray, int | None] | None: ...

    def damage(self) -> str | None: ...

    def close(self) -> None: ...


def rotate(rgb: np.ndarray, degrees_ccw: float) -> np.ndarray:
    """``rgb`` turned counter-clockwise by a multiple of 90 degrees (the display matrix's angle, rounded)."""
    turns = round(degrees_ccw / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class PyAVReader:
    """Packet by packet through PyAV: a packet that fails to decode is skipped and counted, and decoding goes on."""

    backend = "pyav"

    def __init__(self, path: Path) -> None:
        import av  # imported here: OpenCV alone still reads most files

        self._error = av.FFmpegError
        self.container = av.open(str(path))
        try:
            if not self.container.streams.video:
                raise ValueError("no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"
        except BaseException:
            self.container.close()
            raise
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 0)
        self.count = int(self.stream.frames or 0)  # from the container's index; 0 when it does not say
        self._packets = self.container.demux(self.stream)
        self._pending: deque[Any] = deque()
        self._start = self.stream.start_time
        self._last_pts: int | None = None
        self._eof = False
        self.packets = 0  # packets holding data
        self.frames = 0
        self.skipped = 0  # packets that failed to demux or decode
        self.errors: list[str] = []

    def _fail(self, exc: Exception) -> None:
        self.skipped += 1
        message = getattr(exc, "strerror", None) or str(exc)
        if message not in self.errors and len(self.errors) < 3:
            self.errors.append(message)

    def _fill(self) -> None:
        while not self._pending and not self._eof:
            try:
                packet = next(self._packets)  # the last one is an empty packet that flushes the decoder
            except StopIteration:
                self._eof = True
                return
            except self._error as exc:  # damaged container data: skip it, the demuxer resynchronises
                self._fail(exc)
                self._eof = self.skipped > MAX_BAD_READS and not self.frames
                continue
            self.packets += packet.size > 0
            try:
                with _quiet_av():
                    self._pending.extend(packet.decode())
            except self._error as exc:
                self._fail(exc)

    def read(self) -> tuple[np.ndarray, int | None] | None:
        self._fill()
        if not self._pending:
            return None
        frame = self._pending.popleft()
        self.frames += 1
        rgb = rotate(frame.to_ndarray(format="rgb24"), _rotation(frame))
        pts_us = None
        if frame.pts is not None and frame.time_base is not None:
            start = self._start if self._start is not None else frame.pts
            pts_us = round((frame.pts - start) * frame.time_base * 1_000_000)
        elif self._last_pts is not None and self.fps > 0:
            pts_us = self._last_pts + round(1_000_000 / self.fps)
        self._last_pts = pts_us
        return rgb, pts_us

    def damage(self) -> str | None:
        lost = max(0, self.packets - self.frames) if self._eof else 0
        if not (self.skipped or lost):
            return None
        why = f" ({'; '.join(self.errors)})" if self.errors else ""
        return f"skipped {self.skipped} damaged packet(s), {lost} frame(s) could not be decoded{why}"

    def close(self) -> None:
        self.container.close()


@contextmanager
def _quiet_av() -> Iterator[None]:
    """Keep FFmpeg's own log quiet while decoding: damage is counted and reported by the reader instead."""
    import av.logging

    level = av.logging.get_level()
    av.logging.set_level(av.logging.PANIC)
    try:
        yield
    finally:
        av.logging.set_level(level)


def _rotation(frame: Any) -> float:
    try:
        return float(frame.rotation or 0)
    except (AttributeError, ValueError, TypeError):
        return 0.0


class OpenCVReader:
    """OpenCV (FFmpeg backend), for files PyAV cannot open. A failed read before the frame count is reached is a
    damaged frame, skipped and counted, not the end of the file."""

    backend = "opencv"

    def __init__(self, path: Path) -> None:
        # OpenCV's own FFmpeg logs each damaged packet on stderr; this reader counts and reports them instead (the
        # setting is read when OpenCV first opens a file with FFmpeg; a value set by the user is kept)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        with quiet_opencv():
            self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        opened = self.cap.isOpened()
        if opened:
            self.cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # the default; said here so it cannot drift
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) if opened else 0.0
        self.count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if opened else 0
        self.skipped = 0
        self._index = 0

    def read(self) -> tuple[np.ndarray, int | None] | None:
        bad = 0
        while True:
            with quiet_opencv():
                ok, bgr = self.cap.read()
            if ok and bgr is not None:
                self._index += 1
                pts_ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
                pts_us = round(pts_ms * 1000) if pts_ms >= 0 and (pts_ms > 0 or self._index == 1) else None
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), pts_us
            position = int(self.cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)
            if bad >= MAX_BAD_READS or not self.count or max(position, self._index + bad) >= self.count:
                return None
            bad += 1
            self.skipped += 1

    def damage(self) -> str | None:
        return f"skipped {self.skipped} frame(s) that failed to decode" if self.skipped else None

    def close(self) -> None:
        self.cap.release()


class YUVReader:
    """Raw I420 frames of a known size; no timestamps (the file has none)."""

    backend = "raw"

    def __init__(self, path: Path, size: tuple[int, int]) -> None:
        width, height = size
        if width % 2 or height % 2:
            raise SourceError(f"{path.name}: I420 needs an even width and height, got {width}x{height}")
        self.frame_bytes = width * height * 3 // 2
        self.shape = (height * 3 // 2, width)
        length = path.stat().st_size
        if length == 0 or length % self.frame_bytes:
            raise SourceError(
                f"{path.name} ({length} bytes) is not a whole number of {width}x{height} I420 frames"
                f" ({self.frame_bytes} bytes each): check --size"
            )
        self.file = path.open("rb")
        self.fps = 0.0
        self.skipped = 0

    def read(self) -> tuple[np.ndarray, int | None] | None:
        data = self.file.read(self.frame_bytes)
        if len(data) < self.frame_bytes:
            return None
        return cv2.cvtColor(np.frombuffer(data, np.uint8).reshape(self.shape), cv2.COLOR_YUV2RGB_I420), None

    def damage(self) -> str | None:
        return None

    def close(self) -> None:
        self.file.close()


def open_video(path: Path) -> tuple[VideoReader, tuple[np.ndarray, int | None]]:
    """A reader for ``path`` and its first frame: PyAV, else OpenCV. SourceError when neither decodes a frame."""
    problem = "not a video PyAV or OpenCV can decode"
    try:
        reader: VideoReader = PyAVReader(path)
    except ImportError:
        problem = "not a video OpenCV can decode (and PyAV is not installed)"
    except Exception:  # noqa: BLE001 - av.FFmpegError, OSError, ValueError: let OpenCV try
        pass
    else:
        first = reader.read()
        if first is not None:
            return reader, first
        reader.close()
    reader = OpenCVReader(path)
    first = reader.read()
    if first is None:
        reader.close()
        raise SourceError(f"cannot read video {str(path)!r}: {problem}")
    return reader, first


# -- images ----------------------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB ``uint8`` (H, W, 3), upright: OpenCV first (it applies EXIF orientation itself), then
    Pillow with EXIF/TIFF orientation applied. SourceError naming the file if neither can read it."""
    path = Path(path)
    bgr = None
    try:
        with quiet_opencv():
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        pass
    if bgr is not None:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise SourceError(f"cannot read image {str(path)!r} (OpenCV cannot, and Pillow is not installed)") from None
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            return np.ascontiguousarray(np.asarray(upright.convert("RGB"), dtype=np.uint8))
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise SourceError(f"cannot read image {str(path)!r}: not an image OpenCV or Pillow can read") from None

"""Frame sinks: a display window, an mp4 recorder and a null sink. All take RGB ``uint8`` frames.

Sinks are context managers. :meth:`Sink.write` returns False when the sink asks the caller to stop (the display
window was closed or ``q`` / Esc was pressed). Composing frames is the caller's job; :func:`draw_label` and
:func:`side_by_side` help.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecodec.errors import SinkError

__all__ = [
    "DisplaySink", "NullSink", "Sink", "SinkError", "VideoRecorder", "display_available", "draw_label", "side_by_side",
]  # fmt: skip


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")
    return rgb


def draw_label(rgb: np.ndarray, text: str, corner: tuple[int, int] = (4, 4)) -> np.ndarray:
    """A copy of ``rgb`` with ``text`` in white on a dark box at ``corner`` (x, y of the top left)."""
    out = np.array(_check_rgb(rgb), order="C", copy=True)  # OpenCV draws only on C-contiguous arrays
    scale = max(0.35, min(out.shape[0], out.shape[1]) / 600)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = corner
    cv2.rectangle(out, (x, y), (x + w + 6, y + h + base + 6), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (x + 3, y + h + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    """``left | right`` on one canvas (``right`` resized to the height of ``left``), with a black gap."""
    left, right = _check_rgb(left), _check_rgb(right)
    if right.shape[0] != left.shape[0]:
        width = max(1, round(right.shape[1] * left.shape[0] / right.shape[0]))
        right = cv2.resize(right, (width, left.shape[0]), interpolation=cv2.INTER_AREA)
    spacer = np.zeros((left.shape[0], gap, 3), np.uint8)
    return np.concatenate([left, spacer, right], axis=1)


class Sink:
    """Base class of the sinks."""

    def write(self, rgb: np.ndarray) -> bool:
        """Consume one frame; False asks the caller to stop."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullSink(Sink):
    """Counts frames and drops them (headless runs, benchmarks)."""

    def __init__(self) -> None:
        self.frames = 0

    def write(self, rgb: np.ndarray) -> bool:
        _check_rgb(rgb)
        self.frames += 1
        return True


def display_available() -> bool:
    """Whether a window can be opened. OpenCV's Qt backend aborts the whole process without one, so ask first."""
    if not sys.platform.startswith("linux"):
        return True
    env = os.environ
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM"))


class DisplaySink(Sink):
    """An OpenCV window. ``q`` or Esc, or closing the window, makes :meth:`write` return False."""

    def __init__(self, title: str = "edgecodec", wait_ms: int = 1) -> None:
        if not display_available():
            raise SinkError("no display (DISPLAY is not set): use --headless or --record FILE")
        self.title = title
        self.wait_ms = max(1, wait_ms)
        self._open = False

    def write(self, rgb: np.ndarray) -> bool:
        bgr = cv2.cvtColor(_check_rgb(rgb), cv2.COLOR_RGB2BGR)
        try:
            if not self._open:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
                self._open = True
            cv2.imshow(self.title, bgr)
            key = cv2.waitKey(self.wait_ms) & 0xFF
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        except cv2.error as exc:
            raise SinkError(f"cannot open a display window ({exc.err or exc}); use --headless or --record") from None
        return key not in (ord("q"), 27) and visible >= 1

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


class VideoRecorder(Sink):
    """Writes an mp4 file: H.264 through PyAV when available, else MPEG-4 Part 2 through OpenCV.

    The frame size is fixed by the first frame; a frame of another size is resized to it.
    """

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        if not fps > 0:
            raise SinkError(f"recorder fps must be > 0, got {fps}")
        if not self.path.parent.is_dir():
            raise SinkError(f"cannot record to {str(path)!r}: folder {str(self.path.parent)!r} does not exist")
        self.fps = fps
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._writer: Any = None
        self._backend = ""

    def _open(self, width: int, height: int) -> tuple[int, int]:
        self.size = (width, height)
        try:
            import av

            if width >= 2 and height >= 2:
                self._writer = _PyAVWriter(av, self.path, self.fps, width, height)
                self._backend = "pyav"
                return self.size
        except ImportError:
            pass
        except (ValueError, OSError):  # av.FFmpegError is a ValueError: e.g. no H.264 encoder in this build
            pass
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        if not writer.isOpened():
            raise SinkError(f"cannot record to {str(self.path)!r}: no mp4 encoder available")
        self._writer = writer
        self._backend = "opencv"
        return self.size

    def write(self, rgb: np.ndarray) -> bool:
        _check_rgb(rgb)
        size = self._open(rgb.shape[1], rgb.shape[0]) if self._writer is None or self.size is None else self.size
        if (rgb.shape[1], rgb.shape[0]) != size:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        try:
            if self._backend == "pyav":
                self._writer.write(rgb)
            else:
                self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        except (ValueError, OSError) as exc:
            raise SinkError(f"cannot write {str(self.path)!r}: {exc}") from exc
        self.frames += 1
        return True

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                if self._backend == "pyav":
                    writer.close()
                else:
                    writer.release()
            except (ValueError, OSError) as exc:
                raise SinkError(f"cannot finish {str(self.path)!r}: {exc}") from exc


class _PyAVWriter:
    def __init__(self, av: Any, path: Path, fps: float, width: int, height: int) -> None:
        self._av = av
        self.container = av.open(str(path), mode="w")
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self.stream = self.container.add_stream("libx264", rate=rate)
            self.stream.width, self.stream.height = width - width % 2, height - height % 2
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = {"crf": "18", "preset": "veryfast"}
        except Exception:
            self.container.close()
            raise

    def write(self, rgb: np.ndarray) -> None:
        h, w = self.stream.height, self.stream.width
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()

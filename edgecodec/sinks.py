"""Frame sinks: a display window, an mp4 recorder and a null sink. All take RGB ``uint8`` frames.

Sinks are context managers. :meth:`Sink.write` returns False when the sink asks the caller to stop (the display
window was closed or ``q`` / Esc was pressed). Composing frames is the caller's job; :func:`draw_label` and
:func:`side_by_side` help.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecodec.errors import SinkError
from edgecodec.paths import check_output_file
from edgecodec.recorder import PyAVWriter

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

    def write(self, rgb: np.ndarray, timestamp_us: int | None = None) -> bool:
        """Consume one frame (``timestamp_us``: its time, for sinks that record it); False asks the caller to stop."""
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

    def write(self, rgb: np.ndarray, timestamp_us: int | None = None) -> bool:
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

    def write(self, rgb: np.ndarray, timestamp_us: int | None = None) -> bool:
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
    """Writes a video file (.mp4, .mkv, .mov, .avi): H.264 through PyAV (:mod:`edgecodec.recorder`: presentation
    times from the timestamps given to :meth:`write`, the exact frame size, BT.709 limited range, tagged), else
    MPEG-4 Part 2 through OpenCV at a constant rate.

    The frame size is fixed by the first frame; a frame of another size is resized to it. ``name`` is the path
    named in messages (the final name when ``path`` is a temporary file).
    """

    SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")

    def __init__(self, path: str | Path, fps: float = 30.0, *, name: str | Path | None = None) -> None:
        self.path = Path(path)
        self.name = str(name or path)
        if not fps > 0:
            raise SinkError(f"recorder fps must be > 0, got {fps}")
        check_output_file(self.path, self.SUFFIXES, "recording")
        self.fps = fps
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._writer: Any = None
        self._backend = ""
        self._next_us = 0  # the time of a frame written without a timestamp
        self._last_us: int | None = None

    def _open(self, width: int, height: int) -> tuple[int, int]:
        self.size = (width, height)
        problem = "PyAV is not installed"
        try:
            self._writer = PyAVWriter(self.path, self.fps, width, height, self.name)
            self._backend = "pyav"
            return self.size
        except ImportError:
            pass
        except (ValueError, OSError) as exc:  # av.FFmpegError is a ValueError: e.g. no H.264 encoder in this build
            problem = f"PyAV cannot write H.264 here ({exc})"
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        if not writer.isOpened():
            raise SinkError(f"cannot record {width}x{height} to {self.name!r}: {problem}, and OpenCV cannot either")
        print(f"note: {self.name}: {problem}: recording MPEG-4 at a constant {self.fps:g} fps with OpenCV "
              "(timestamps and colour tags are not kept)", file=sys.stderr)  # fmt: skip
        self._writer = writer
        self._backend = "opencv"
        return self.size

    def write(self, rgb: np.ndarray, timestamp_us: int | None = None) -> bool:
        """Write one frame at ``timestamp_us`` (any clock in microseconds: the first frame's is time 0); without
        one, or with one that does not move forward, the frame follows the previous one at ``fps``."""
        _check_rgb(rgb)
        size = self._open(rgb.shape[1], rgb.shape[0]) if self._writer is None or self.size is None else self.size
        if (rgb.shape[1], rgb.shape[0]) != size:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        if timestamp_us is None or (self._last_us is not None and timestamp_us <= self._last_us):
            timestamp_us = self._next_us  # no time, or one that does not move forward: follow at fps
        self._last_us, self._next_us = timestamp_us, timestamp_us + round(1_000_000 / self.fps)
        try:
            if self._backend == "pyav":
                self._writer.write(rgb, timestamp_us)
            else:
                self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        except (ValueError, OSError) as exc:
            raise SinkError(f"cannot write {self.name!r}: {exc}") from exc
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
                raise SinkError(f"cannot finish {self.name!r}: {exc}") from exc

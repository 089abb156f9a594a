"""The video writer behind :class:`edgecodec.sinks.VideoRecorder`: H.264 through PyAV, with real presentation times,
the exact frame size and tagged colour.

* **Timestamps.** Each frame is written at its own presentation time (its capture timestamp minus the first frame's)
  in a 1/90000 time base, so variable frame rates, pauses and lost frames keep their real timing; a frame's duration
  lasts until the next one (the last frame gets the previous interval). A timestamp that does not move forward is
  moved one tick after the previous frame. AVI cannot hold free timestamps: there the time base is 1/fps, each frame
  goes to the nearest free slot of that constant rate, and the previous frame is repeated over a gap (said once on
  stderr), so the timing is kept to the nearest frame.
* **Size.** Even sizes are coded as yuv420p. Odd sizes are kept exactly by coding yuv444p (H.264 High 4:4:4, which
  allows any size) instead of trimming a column or a row; one line on stderr says so.
* **Colour.** RGB is converted with the BT.709 matrix to limited ("TV", 16-235) range, and the stream is tagged
  BT.709 (matrix, primaries, transfer) and limited range, so players and :mod:`edgecodec.readers` convert it back
  with the same matrix.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

TIME_BASE = Fraction(1, 90000)
BT709 = 1  # AVCOL_SPC_BT709 = AVCOL_PRI_BT709 = AVCOL_TRC_BT709
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
CONSTANT_RATE_SUFFIXES = {".avi"}


class PyAVWriter:
    """H.264 into an mp4/mkv/mov/avi file; :meth:`write` takes RGB frames with their timestamps in microseconds."""

    def __init__(self, path: Path, fps: float, width: int, height: int, name: str | None = None) -> None:
        import av
        from av.video.reformatter import ColorRange, Colorspace

        self._av, self.name = av, name or str(path)
        self._convert = {"dst_colorspace": Colorspace.ITU709, "dst_color_range": ColorRange.MPEG,
                         "dst_color_trc": BT709, "dst_color_primaries": BT709}  # fmt: skip
        self.fps = fps
        self.constant_rate = path.suffix.lower() in CONSTANT_RATE_SUFFIXES
        rate = Fraction(fps).limit_denominator(1001)
        self.time_base = 1 / rate if self.constant_rate else TIME_BASE
        self.pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"
        self.container = av.open(str(path), mode="w")
        try:
            self.stream = self.container.add_stream("libx264", rate=rate)
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, self.pix_fmt
            self.stream.time_base = self.time_base
            context = self.stream.codec_context
            context.time_base = self.time_base
            context.colorspace = context.color_primaries = context.color_trc = BT709
            context.color_range = LIMITED_RANGE
            self.stream.options = {"crf": "18", "preset": "veryfast"}
            if self.constant_rate:  # AVI stores no presentation times: frames must come out in display order
                self.stream.options = {**self.stream.options, "bf": "0"}
        except Exception:
            self.container.close()
            raise
        if self.pix_fmt == "yuv444p":
            print(f"note: {self.name}: {width}x{height} has an odd side: written as H.264 4:4:4 (yuv444p) to keep "
                  "the exact size", file=sys.stderr)  # fmt: skip
        self._first_us: int | None = None
        self._last_ticks: int | None = None
        self._held: Any = None  # the frame written last, encoded once the next one tells its duration
        self._durations: dict[int, int] = {}
        self._last_duration: int | None = None
        self.retimed = 0
        self.filled = False

    def _ticks(self, timestamp_us: int) -> int:
        if self._first_us is None:
            self._first_us = timestamp_us
        ticks = round(Fraction(timestamp_us - self._first_us, 1_000_000) / self.time_base)
        if self._last_ticks is not None and ticks <= self._last_ticks:
            ticks = self._last_ticks + 1
            self.retimed += 1
            if self.retimed == 1 and self.constant_rate:
                print(f"note: {self.name}: AVI holds a constant frame rate: frames moved to free slots of "
                      f"{self.fps:g} fps", file=sys.stderr)  # fmt: skip
        if self.constant_rate and self._last_ticks is not None and ticks > self._last_ticks + 1 and not self.filled:
            self.filled = True
            print(f"note: {self.name}: AVI holds a constant frame rate ({self.fps:g} fps): the previous frame is "
                  "repeated over gaps", file=sys.stderr)  # fmt: skip
        self._last_ticks = ticks
        return ticks

    def _frame(self, rgb: np.ndarray, pts: int) -> Any:
        frame = self._av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame = frame.reformat(format=self.pix_fmt, **self._convert)
        frame.pts, frame.time_base = pts, self.time_base
        return frame

    def write(self, rgb: np.ndarray, timestamp_us: int) -> None:
        rgb = np.ascontiguousarray(rgb)
        frame = self._frame(rgb, self._ticks(timestamp_us))
        if self._held is not None:
            held, held_rgb = self._held
            if self.constant_rate:  # every slot holds a frame: the previous one is repeated over a gap
                self._encode(held, 1)
                for slot in range(held.pts + 1, frame.pts):
                    self._encode(self._frame(held_rgb, slot), 1)
            else:
                self._encode(held, frame.pts - held.pts)
        self._held = frame, rgb

    def _encode(self, frame: Any, duration: int | None) -> None:
        duration = max(1, duration or round(1 / (self.fps * self.time_base)))
        frame.duration = self._last_duration = duration
        self._durations[frame.pts] = duration
        self._mux(self.stream.encode(frame))

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            if not packet.duration and packet.pts in self._durations:
                packet.duration = self._durations[packet.pts]
            self._durations.pop(packet.pts, None)
            self.container.mux(packet)

    def close(self) -> None:
        try:
            if self._held is not None:
                (last, _), self._held = self._held, None
                self._encode(last, 1 if self.constant_rate else self._last_duration)
            self._mux(self.stream.encode())
        finally:
            self.container.close()

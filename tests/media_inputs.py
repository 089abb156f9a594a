"""Inputs for the media tests, made on the spot with numpy and PyAV: small clips (constant or variable rate), a clip
with garbage in its media data, a clip with a display matrix (a phone held upright), and colour patches."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np

PATCHES = [(233, 10, 30), (20, 202, 40), (30, 40, 220), (240, 240, 240), (16, 16, 16), (128, 128, 128),
           (250, 200, 20), (20, 180, 200)]  # fmt: skip


def moving_frames(count: int, size: tuple[int, int] = (96, 64), seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB frames of a bright box moving over a gradient, each frame different."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for t in range(count):
        rgb = np.stack(
            [(xx * 3 + t * 5) % 256, (yy * 4 + t * 3) % 256, np.full_like(xx, (seed * 40 + t * 7) % 256)], -1
        )
        x0 = (t * 4) % max(1, width - 16)
        rgb[8:24, x0 : x0 + 16] = (250, 250, 40)
        out.append(rgb.astype(np.uint8))
    return out


def write_clip(
    path: Path, frames: list[np.ndarray], times_s: list[float], gop: int = 10, codec: str = "libx264"
) -> Path:
    """An mp4 of ``frames`` shown at ``times_s`` (seconds; 1/90000 time base), a keyframe every ``gop`` frames; H.264
    unless ``codec`` names another encoder (libx265, libvpx-vp9, libsvtav1)."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 90000)
        stream.time_base = Fraction(1, 90000)
        if codec == "libx264":
            stream.options = {"g": str(gop), "keyint_min": str(gop), "bf": "0", "preset": "veryfast", "crf": "20"}
        else:
            stream.options = {"g": str(gop)}
        for rgb, t in zip(frames, times_s, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = round(t * 90000), Fraction(1, 90000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _box(data: bytes, name: bytes, start: int = 0) -> tuple[int, int]:
    """(offset, size) of the first box called ``name`` found by a byte search from ``start``."""
    at = data.index(name, start) - 4
    return at, struct.unpack(">I", data[at : at + 4])[0]


def damage(path: Path, garbage: int = 600, seed: int = 1) -> Path:
    """Overwrite ``garbage`` bytes in the middle of the mp4's media data (its ``mdat`` box) with random bytes."""
    data = bytearray(path.read_bytes())
    at, size = _box(bytes(data), b"mdat")
    middle = at + size // 2
    data[middle : middle + garbage] = np.random.default_rng(seed).integers(0, 256, garbage, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def set_rotation(path: Path, degrees_cw: int) -> Path:
    """Write a display matrix into the mp4's track header: show the picture turned ``degrees_cw`` clockwise
    (90 is a phone held upright; FFmpeg reports it as a rotation of -90)."""
    data = bytearray(path.read_bytes())
    at, _ = _box(bytes(data), b"tkhd")
    version = data[at + 8]
    matrix_at = at + 8 + 4 + (32 if version == 1 else 20) + 8 + 8
    one, w = 1 << 16, 1 << 30
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees_cw % 360]
    matrix = [cos * one, sin * one, 0, -sin * one, cos * one, 0, 0, 0, w]
    data[matrix_at : matrix_at + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))
    return path


def patches(size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """Flat patches of the colours in PATCHES, in a 4x2 grid."""
    width, height = size
    rgb = np.zeros((height, width, 3), np.uint8)
    pw, ph = width // 4, height // 2
    for i, colour in enumerate(PATCHES):
        y, x = divmod(i, 4)
        rgb[y * ph : (y + 1) * ph, x * pw : (x + 1) * pw] = colour
    return rgb


def presentation(path: Path) -> tuple[list[float], float]:
    """Every frame's presentation time in seconds (from the first) and the video's duration, read with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(f.pts, f.duration) for f in container.decode(stream)]
        tb = float(stream.time_base)
    start = frames[0][0]
    times = [(pts - start) * tb for pts, _ in frames]
    return times, times[-1] + frames[-1][1] * tb

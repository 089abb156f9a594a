"""The classical anchor of ``edgecodec profile`` (issue 16): x264 with ``preset=ultrafast`` and ``tune=zerolatency``
(libx264 through PyAV), timed on the same frames at the same size in the same run, encode and decode per frame.

Both sides are timed from RGB to RGB: x264's encode includes the RGB to YUV 4:2:0 conversion and its decode the
conversion back, as edgecodec's encode includes its preprocessing and its decode the postprocessing. The ratio is
edgecodec's codec time per frame (encode, entropy coding, entropy decoding, decode: the run's ``codec_ms``) over
x264's encode + decode. A camera source is not re-read: the anchor needs a file, a folder or ``--synthetic``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from edgecodec.capture import Size, source_from_args

FRAMES = 60  # frames timed (after the first, which opens the encoder)
PRESET, TUNE = "ultrafast", "zerolatency"


def x264_baseline(ns: argparse.Namespace, size: Size | None, run: dict[str, Any]) -> dict[str, Any] | None:
    """x264's encode and decode ms per frame on the source's first frames at the run's size, and the ratio of
    ``run["codec_ms"]`` to their sum; None for a camera or where PyAV has no libx264."""
    if getattr(ns, "camera", None) is not None:
        return None
    try:
        import av

        av.codec.Codec("libx264", "w")
    except Exception:  # noqa: BLE001 - PyAV without libx264: no anchor
        return None
    frames = _frames(ns, size)
    width, height = (frames[0].shape[1] // 2) * 2, (frames[0].shape[0] // 2) * 2
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.framerate = 25
    encoder.options = {"preset": PRESET, "tune": TUNE}
    decoder = av.CodecContext.create("h264", "r")
    encode_ms, decode_ms = [], []
    for i, rgb in enumerate(frames):
        t0 = time.perf_counter()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:height, :width]), format="rgb24")
        packets = encoder.encode(frame.reformat(format="yuv420p"))
        t1 = time.perf_counter()
        for packet in packets:
            for decoded in decoder.decode(packet):
                decoded.to_ndarray(format="rgb24")
        t2 = time.perf_counter()
        if i > 0:
            encode_ms.append((t1 - t0) * 1e3)
            decode_ms.append((t2 - t1) * 1e3)
    enc, dec = float(np.mean(encode_ms)), float(np.mean(decode_ms))
    return {"preset": PRESET, "tune": TUNE, "frames": len(encode_ms), "encode_ms": round(enc, 3),
            "decode_ms": round(dec, 3), "edgecodec_ms": run["codec_ms"],
            "ratio": round(run["codec_ms"] / (enc + dec), 2)}  # fmt: skip


def _frames(ns: argparse.Namespace, size: Size | None) -> list[np.ndarray]:
    unpaced = argparse.Namespace(**{**vars(ns), "size": size, "fps": None, "frames": FRAMES + 1})
    out = []
    with source_from_args(unpaced) as source:
        while (frame := source.read()) is not None:
            out.append(frame.rgb)
    return out

#!/usr/bin/env python3
"""The acceptance figures of issue 13 (media in and out), measured on inputs made on the spot.

    python tools/media_acceptance.py [--keep DIR]

1. a 40-frame H.264 mp4 with 600 garbage bytes in the middle of its media data: frames each reader recovers, what it
   reports, and what ``edgecodec encode`` makes of it;
2. a variable-rate clip (30 frames at 30 fps, a 4 s pause, 30 more): the worst gap between each frame's presentation
   time in the source and in ``decode -o .mp4``;
3. colour patches through ``decode -o .mp4`` read back with PyAV, against ``decode -o .png``: the worst patch;
4. ``receive``'s recorder under 10% packet loss (in-process: FrameCoder -> drops -> FrameReceiver -> Outputs): the
   recording's duration against the stream's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecodec import cli  # noqa: E402
from edgecodec.codec import Codec  # noqa: E402
from edgecodec.config import load_rate_config  # noqa: E402
from edgecodec.data import read_rgb  # noqa: E402
from edgecodec.errors import MissingReferenceError  # noqa: E402
from edgecodec.rate import RateController  # noqa: E402
from edgecodec.readers import OpenCVReader, PyAVReader  # noqa: E402
from edgecodec.receiver import FrameReceiver, Outputs  # noqa: E402
from edgecodec.sender import FrameCoder  # noqa: E402
from edgecodec.transport import Message, stream_number  # noqa: E402
from tests.media_inputs import PATCHES, damage, moving_frames, patches, presentation, write_clip  # noqa: E402

FPS = 30.0


def run(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, out.getvalue().strip(), err.getvalue().strip()


def damaged(tmp: Path) -> None:
    clip = damage(write_clip(tmp / "damaged.mp4", moving_frames(40), [i / FPS for i in range(40)]))
    for reader in (PyAVReader(clip), OpenCVReader(clip)):
        count = 0
        while reader.read() is not None:
            count += 1
        print(f"damaged mp4, {reader.backend} reader: {count} of 40 frames; {reader.damage()}")
        reader.close()
    status, out, err = run("encode", clip, "-o", tmp / "damaged.ecz", "--layer", "5")
    print(f"edgecodec encode damaged.mp4 (exit {status}): {out}\n  stderr: {err}")


def vfr(tmp: Path) -> None:
    times = [i / FPS for i in range(30)] + [5 + i / FPS for i in range(30)]
    clip = write_clip(tmp / "vfr.mp4", moving_frames(60), times)
    run("encode", clip, "-o", tmp / "vfr.ecz", "--layer", "5")
    run("decode", tmp / "vfr.ecz", "-o", tmp / "vfr_decoded.mp4")
    decoded, duration = presentation(tmp / "vfr_decoded.mp4")
    worst = max(abs(a - b) for a, b in zip(decoded, times, strict=True))
    print(
        f"VFR clip: {len(decoded)} frames; worst presentation-time error {worst * 1000:.2f} ms (one frame interval "
        f"{1000 / FPS:.1f} ms); frame 30 at {decoded[30]:.3f} s (source 5.000 s); duration {duration:.3f} s (6.000)"
    )


def colour(tmp: Path) -> None:
    import av

    cv2.imwrite(str(tmp / "patches.png"), cv2.cvtColor(patches((256, 128)), cv2.COLOR_RGB2BGR))
    run("encode", tmp / "patches.png", "-o", tmp / "patches.ecz", "--layer", "1")
    run("decode", tmp / "patches.ecz", "-o", tmp / "png.png")
    run("decode", tmp / "patches.ecz", "-o", tmp / "mp4.mp4")
    png = read_rgb(tmp / "png.png").astype(int)
    with av.open(str(tmp / "mp4.mp4")) as container:
        c = container.streams.video[0].codec_context
        tags = f"colorspace {c.colorspace}, primaries {c.color_primaries}, trc {c.color_trc}, range {c.color_range}"
        mp4 = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    worst = []
    for i in range(len(PATCHES)):
        y, x = divmod(i, 4)
        inner = np.s_[y * 64 + 8 : (y + 1) * 64 - 8, x * 64 + 8 : (x + 1) * 64 - 8]
        worst.append(np.abs(np.median(png[inner], axis=(0, 1)) - np.median(mp4[inner], axis=(0, 1))).max())
    print(
        f"colour patches, decode -o .mp4 read back with PyAV vs decode -o .png: worst patch {max(worst):.0f} levels "
        f"(per patch {[int(w) for w in worst]}); tags {tags}"
    )


def recording(tmp: Path, count: int = 250, drop: float = 0.1) -> None:
    codec = Codec("hqa5", backend="auto")
    (tmp / "rate.toml").write_text("fixed_layer = 4\nkeyframe_seconds = 0.4\n")
    config = load_rate_config(str(tmp / "rate.toml"))
    coder = FrameCoder(codec, RateController(config.for_model(codec.model.name), codec.num_layers),
                       stream_id=stream_number("cam"))  # fmt: skip
    receiver, fps, rng = FrameReceiver(codec), 25.0, np.random.default_rng(7)
    outputs = Outputs(display=False, record=str(tmp / "recorded.mp4"), fps=fps, overlay=False)
    lost = shown = 0
    for seq, rgb in enumerate(moving_frames(count, (64, 48))):
        now = seq / fps
        made = coder.code(codec.encode(rgb, latents=coder.latents(now)), now, seq=seq, timestamp_us=round(now * 1e6))
        coder.sent(made, now)
        if 0 < seq < count - 1 and rng.random() < drop:
            lost += 1
            continue
        try:
            shown += outputs.write(receiver.decode(Message("cam", made.packet), receiver.timer.frame()))
        except MissingReferenceError:
            pass
    outputs.close()
    _, duration = presentation(tmp / "recorded.mp4")
    print(
        f"recording under {lost / count:.0%} loss: {count} frames sent at {fps:g} fps ({count / fps:.3f} s), "
        f"{lost} lost, {shown} shown; recorded {duration:.3f} s (a constant {fps:g} fps would give "
        f"{shown / fps:.3f} s); error {abs(duration - count / fps) * 1000:.1f} ms, one frame {1000 / fps:.0f} ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, help="write the inputs and outputs here instead of a temporary folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for step in (damaged, vfr, colour, recording):
            step(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`edgecodec encode | decode | info`: images and videos to and from ``.ecz`` files.

``encode`` codes every frame of an image, a video or an image folder at one layer and writes a container
(:mod:`edgecodec.container`): a file header, then one packet per frame, exactly as the packets go on the wire.
``decode`` rebuilds the frames with the model the file names (looked up by fingerprint) and writes an image or a video,
chosen by the output suffix. ``info`` describes a file without decoding it.

Videos are coded with P-frames by default (:mod:`edgecodec.coding.gop`; ``--intra-only`` turns them off); decoding
runs through every packet in order, keeping the reference ids. Rates count whole packets (56-byte header + payload),
i.e. what a stream of this file would send; the 32-byte file
header is left out. Outputs are written to a hidden ``.NAME.part.SUFFIX`` file and renamed when complete, so a failure
never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecodec import bitstream, zoo
from edgecodec.capture import IMAGE_SUFFIXES, FrameSource, ImageFolderSource, VideoSource, parse_size
from edgecodec.cliutil import ArgumentParser, non_negative, positive, progress
from edgecodec.codec import Codec
from edgecodec.coding.gop import InterEncoder, InterSettings, ReferenceStore
from edgecodec.container import ContainerHeader, ContainerReader, ContainerWriter, fps_fraction
from edgecodec.errors import (
    BitstreamError,
    ConfigError,
    MissingReferenceError,
    SinkError,
    SourceError,
    TrailingDataError,
    TruncatedError,
    UnknownModelError,
)
from edgecodec.paths import check_input_file, check_output_file
from edgecodec.readers import read_image
from edgecodec.runtime import BACKEND_HELP
from edgecodec.sinks import VideoRecorder

ECZ_SUFFIX = ".ecz"
IMAGE_OUT_SUFFIXES = {".png", ".bmp", ".tif", ".tiff", ".ppm", ".jpg", ".jpeg", ".webp"}
VIDEO_OUT_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi"}
DEFAULT_VIDEO_FPS = 30.0
_FRAME_PATTERN = re.compile(r"%0?\d*d")


# ---- shared helpers ------------------------------------------------------------------------------------------------
@dataclass
class RateStats:
    """Sizes of the packets of a file, and the rates they make."""

    packet_bytes: list[int] = field(default_factory=list)
    payload_bytes: int = 0
    pixels: int = 0
    layers: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (w, h) -> frames
    kinds: Counter = field(default_factory=Counter)  # "I" / "P" -> frames
    kind_bytes: Counter = field(default_factory=Counter)  # "I" / "P" -> packet bytes

    def add(self, packet: bitstream.Packet) -> None:
        self.packet_bytes.append(packet.size)
        self.payload_bytes += len(packet.payload)
        self.pixels += packet.frame_w * packet.frame_h
        self.layers[packet.layer] += 1
        self.sizes[(packet.frame_w, packet.frame_h)] += 1
        kind = "P" if packet.is_inter else "I"
        self.kinds[kind] += 1
        self.kind_bytes[kind] += packet.size

    @property
    def frames(self) -> int:
        return len(self.packet_bytes)

    def bpp(self, payload_only: bool = False) -> float:
        total = self.payload_bytes if payload_only else sum(self.packet_bytes)
        return 8 * total / self.pixels if self.pixels else 0.0

    def kbps(self, fps: float | None) -> float | None:
        return 8 * sum(self.packet_bytes) / self.frames * fps / 1000 if fps and self.frames else None

    def size_text(self) -> str:
        return ", ".join(f"{w}x{h}" for w, h in sorted(self.sizes))


def _part_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.part{path.suffix}")


@contextmanager
def _atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that is renamed to it on success and removed on failure."""
    if not path.parent.is_dir():
        raise SinkError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    part = _part_path(path)
    try:
        yield part
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise SinkError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _progress(iterable: Any, total: int | None, desc: str) -> Any:
    """Progress on stderr: a bar on a terminal, else a line every few seconds (:func:`edgecodec.cliutil.progress`)."""
    return progress(iterable, total, f"edgecodec {desc}")


@functools.lru_cache(maxsize=2)
def _cached_codec(path: str, mtime_ns: int, size: int, backend: str, device: str) -> Codec:
    return Codec(path, backend=backend, device=device)


def open_codec(model: str | Path, backend: str = "auto", device: str = "cpu") -> Codec:
    """A codec for a model name or path. In-process callers (tests, notebooks) reuse the last models loaded, keyed by
    file, modification time and size, so calling the ``main_*`` functions repeatedly does not reload the weights."""
    path = zoo.resolve(model).resolve()
    stat = path.stat()
    return _cached_codec(str(path), stat.st_mtime_ns, stat.st_size, backend, device)


def _model_fingerprint(path: Path) -> str | None:
    """The fingerprint a model file claims in its metadata (cheap; :func:`zoo.load_model` verifies it)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return (f.metadata() or {}).get("fingerprint")
    except Exception:  # any unreadable file is simply not a candidate
        return None


def find_model(fingerprint: bytes, name: str = "") -> Path | None:
    """The model file in :func:`zoo.models_dirs` with this fingerprint (one named ``name`` first), or None."""
    candidates = [p for d in zoo.models_dirs() if d.is_dir() for p in sorted(d.glob("*.safetensors"))]
    candidates.sort(key=lambda p: p.stem != name)
    return next((p for p in candidates if _model_fingerprint(p) == fingerprint.hex()), None)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Prefix the file name to a format error raised while reading it."""
    try:
        yield
    except BitstreamError as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from None


def _open_reader(path: Path) -> ContainerReader:
    """A reader that takes a file cut off at its end up to its last complete packet (:func:`_warn_cut` says so)."""
    check_input_file(path, "input file")
    try:
        return ContainerReader(path, partial=True)
    except OSError as exc:
        raise SourceError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def _add_model_arguments(ap: argparse.ArgumentParser, default: str | None) -> None:
    help_ = "model name or .safetensors path" + (f" (default {default})" if default else " (default: the file's)")
    ap.add_argument("--model", default=default, metavar="NAME|PATH", help=help_)
    ap.add_argument("--backend", default="auto", help=BACKEND_HELP)
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")


# ---- encode --------------------------------------------------------------------------------------------------------
class _ImageSource(FrameSource):
    """One image file as a one-frame source."""

    def __init__(self, path: Path, size: tuple[int, int] | None = None) -> None:
        super().__init__(size=size, clock_us=lambda: 0)
        self.name = f"image {str(path)!r}"
        self._rgb: np.ndarray | None = read_image(path)

    def _read(self) -> np.ndarray | None:
        rgb, self._rgb = self._rgb, None
        return rgb


def open_input(path: Path, size: tuple[int, int] | None = None, frames: int | None = None) -> FrameSource:
    """An image file, an image folder or a video file (anything :class:`VideoSource` reads) as a frame source."""
    if path.is_dir():
        return ImageFolderSource(path, size=size, frames=frames, clock_us=lambda: 0)
    check_input_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _ImageSource(path, size)
    return VideoSource(path, size=size, frames=frames, clock_us=lambda: 0)


def _encode_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="edgecodec encode",
        description="Encode an image, image folder or video into an .ecz file: one packet per frame, all at one layer.",
    )
    ap.add_argument("input", help="image (png, jpg, ...), folder of images, or video (mp4, raw .264, .yuv with --size)")
    ap.add_argument("-o", "--output", required=True, help="output .ecz file")
    ap.add_argument("--layer", type=int, required=True, help="layer to send (1 = finest, highest rate)")
    _add_model_arguments(ap, zoo.DEFAULT_MODEL)
    ap.add_argument("--frames", type=int, metavar="N", help="encode at most N frames")
    ap.add_argument("--size", metavar="WxH", help="resize frames to WxH (for raw .yuv: its frame size)")
    ap.add_argument("--fps", type=float, help="frame rate to record (default: the video's own; none for images)")
    inter = InterSettings()
    ap.add_argument("--intra-only", action="store_true", help="code every frame as a keyframe (no P-frames)")
    ap.add_argument(
        "--keyframe-seconds",
        type=positive(float),
        default=inter.keyframe_seconds,
        metavar="S",
        help=f"longest time between keyframes, in seconds of video (default {inter.keyframe_seconds:g})",
    )
    ap.add_argument("--lambda", dest="lam", type=non_negative(float), default=inter.lam, metavar="L",
                    help="conditional replenishment at layer 1 (doubled per coarser layer): distortion a changed "
                    f"id must buy per bit (default {inter.lam:g}; 0 updates every id the encoder changes)")  # fmt: skip
    return ap


def main_encode(argv: Sequence[str] | None = None) -> int:
    """`edgecodec encode IN -o OUT.ecz --layer N`."""
    args = _encode_parser().parse_args(argv)
    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise SourceError(f"input {str(src)!r} not found")
    if dst.suffix.lower() != ECZ_SUFFIX:
        raise ConfigError(f"-o {args.output}: the output of encode must be an {ECZ_SUFFIX} file")
    check_output_file(dst, {ECZ_SUFFIX}, "-o")
    if args.frames is not None and args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    if args.fps is not None and not (math.isfinite(args.fps) and 0 < args.fps < 1e6):
        raise ConfigError(f"--fps must be a positive frame rate, got {args.fps}")
    size = parse_size(args.size) if args.size else None
    codec = open_codec(args.model, args.backend, args.device)
    codec.check_layer(args.layer)
    with open_input(src, size, args.frames) as source:
        is_video = not isinstance(source, _ImageSource)
        fps_num, fps_den = fps_fraction(args.fps if args.fps is not None else source.native_fps)
        header = ContainerHeader(codec.fingerprint, codec.model.name, 0 if is_video else 1, fps_num, fps_den)
        settings = InterSettings(not args.intra_only, args.keyframe_seconds, args.lam)
        retime = args.fps is not None  # --fps replaces the source's own times by index / fps
        stats = _encode_frames(codec, source, args.layer, header, dst, settings, progress=is_video, retime=retime)
    fps = header.fps
    rate = f", {stats.kbps(fps):.1f} kbps at {fps:.4g} fps" if fps else ""
    kinds = f" ({stats.kinds['I']} I, {stats.kinds['P']} P)" if stats.frames > 1 else ""
    print(
        f"{dst}: {stats.frames} frame{'s' * (stats.frames != 1)}{kinds} {stats.size_text()} at layer {args.layer}, "
        f"{dst.stat().st_size} bytes, {stats.bpp():.4f} bpp{rate}"
    )
    return 0


def _encode_frames(
    codec: Codec,
    source: FrameSource,
    layer: int,
    header: ContainerHeader,
    dst: Path,
    settings: InterSettings,
    progress: bool,
    retime: bool = False,
) -> RateStats:
    """Code every frame of ``source``. Each packet's timestamp is the frame's presentation time in the source
    (``Frame.pts_us``, so a variable frame rate and pauses survive), else, and with ``retime``, index / fps."""
    stats, last = RateStats(), None
    inter = InterEncoder(codec, settings)
    fps = header.fps or DEFAULT_VIDEO_FPS  # the clock of an image folder (no frame rate)
    frames = _progress(source, source.expected, "encode") if progress else source
    with _atomic_output(dst) as part, ContainerWriter(part, header) as writer:
        for frame in frames:
            height, width = frame.rgb.shape[:2]
            if max(height, width) > bitstream.MAX_FRAME_SIDE:
                raise SourceError(f"{source.name}: frame {width}x{height} exceeds {bitstream.MAX_FRAME_SIDE} pixels")
            if frame.pts_us is not None and not retime:
                timestamp_us = frame.pts_us
            elif header.fps_num:
                timestamp_us = frame.index * 1_000_000 * header.fps_den // header.fps_num
            else:
                timestamp_us = round(frame.index * 1_000_000 / fps)
            now = timestamp_us / 1e6
            code = codec.encode(frame.rgb, latents=inter.latents(now))
            coded = inter.code(code, layer, now, seq=frame.index, timestamp_us=timestamp_us)
            try:
                data = codec.packet_for(coded.ids.shape, layer, code.size, coded.payload, seq=frame.index,
                                        timestamp_us=timestamp_us, ref_seq=coded.ref_seq,
                                        timestamp_delta_us=coded.timestamp_delta_us)  # fmt: skip
            except ValueError as exc:  # e.g. an id grid beyond the packet limits
                raise SourceError(f"{source.name}: frame {frame.index} cannot be packed: {exc}") from None
            writer.write_encoded(data)
            inter.sent(coded, frame.index, now, timestamp_us)
            packet = bitstream.decode_packet(data)
            last = bitstream.resolve(packet, last) if packet.is_inter else packet
            stats.add(last)
        if not stats.frames:
            raise SourceError(f"{source.name} has no frames")
    return stats


# ---- decode --------------------------------------------------------------------------------------------------------
def codec_for_file(
    header: ContainerHeader, path: Path, model: str | None = None, backend: str = "auto", device: str = "cpu"
) -> Codec:
    """A codec for the model that made a file: ``model`` if given (it must match), else found by fingerprint."""
    made_by = f"{str(path)!r} was made by model {header.model_name!r} (fingerprint {header.fingerprint.hex()})"
    if model is not None:
        codec = open_codec(model, backend, device)
        if codec.fingerprint != header.fingerprint:
            raise UnknownModelError(
                f"{made_by}, but --model {model} is {codec.model.name!r} (fingerprint {codec.fingerprint.hex()})"
            )
        return codec
    found = find_model(header.fingerprint, header.model_name)
    if found is None:
        where = ", ".join(str(d) for d in zoo.models_dirs())
        raise UnknownModelError(f"{made_by}, which this machine does not hold (looked in {where}); give --model PATH")
    return open_codec(found, backend, device)


@dataclass
class FrameDecoder:
    """Decodes a file's packets in order, keeping the reference ids of P-frames. A P-frame whose reference is not
    held (a file cut before it, or frames dropped by a sender) cannot be shown: :meth:`ids` returns None, the frame
    counts as held, and :meth:`note` tells the user once."""

    codec: Codec
    references: ReferenceStore = field(default_factory=ReferenceStore)
    held: int = 0

    def ids(self, packet: bitstream.Packet) -> np.ndarray | None:
        """Id grid of the next packet (resolved by the container reader), checked against the model as a packet off
        the wire would be."""
        try:
            _, reference = self.references.resolve("file", packet)
        except MissingReferenceError:
            self.held += 1
            return None
        ids = self.codec.packet_ids(self.codec.check(packet), reference)
        self.references.update("file", packet, ids)
        return ids

    def rgb(self, packet: bitstream.Packet, ids: np.ndarray) -> np.ndarray:
        return self.codec.decode(ids, packet.layer, (packet.frame_h, packet.frame_w))

    def note(self) -> None:
        if self.held:
            print(f"note: {self.held} P-frame(s) name a reference the file does not hold; the frame before them is "
                  "repeated", file=sys.stderr)  # fmt: skip


def _write_image(path: Path, rgb: np.ndarray, name: Path) -> None:
    """Write ``rgb`` to ``path`` (a temporary file); errors name ``name``, the file asked for."""
    try:
        ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error as exc:
        raise SinkError(f"cannot write image {str(name)!r}: {exc.err or exc}") from None
    if not ok:
        raise SinkError(f"cannot write image {str(name)!r}")


def _decode_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="edgecodec decode",
        description="Decode an .ecz file into an image or a video."
        " The output suffix chooses: an image (png, ...) holds one frame (--frame K, default"
        " 0), an image name with %05d gets every frame, a video (mp4, mkv, mov, avi) gets"
        " every frame.",
    )
    ap.add_argument("input", help=".ecz file")
    ap.add_argument("-o", "--output", required=True, help="out.png, frames/%%05d.png or out.mp4")
    ap.add_argument("--frame", type=int, metavar="K", help="for a single-image output: the frame to write (from 0)")
    _add_model_arguments(ap, None)
    return ap


def main_decode(argv: Sequence[str] | None = None) -> int:
    """`edgecodec decode IN.ecz -o out.png|frames/%05d.png|out.mp4`."""
    args = _decode_parser().parse_args(argv)
    src, dst = Path(args.input), Path(args.output)
    suffix = dst.suffix.lower()
    pattern = bool(_FRAME_PATTERN.search(dst.name))
    if dst.is_dir():
        raise SinkError(f"-o {args.output} is a directory; give a file in it (e.g. {dst / 'frame_%05d.png'} or "
                        f"{dst / 'out.mp4'})")  # fmt: skip
    if suffix not in IMAGE_OUT_SUFFIXES | VIDEO_OUT_SUFFIXES or (pattern and suffix not in IMAGE_OUT_SUFFIXES):
        raise ConfigError(
            f"-o {args.output}: decode writes images ({', '.join(sorted(IMAGE_OUT_SUFFIXES))}) or "
            f"videos ({', '.join(sorted(VIDEO_OUT_SUFFIXES))})"
        )
    if pattern:
        try:
            dst.name % 0
        except (TypeError, ValueError):
            raise ConfigError(f"-o {args.output}: a frame pattern holds one %d (e.g. %05d) and no other %") from None
    if args.frame is not None and args.frame < 0:
        raise ConfigError(f"--frame must be >= 0, got {args.frame}")
    if args.frame is not None and (pattern or suffix in VIDEO_OUT_SUFFIXES):
        raise ConfigError("--frame K only applies to a single-image output")
    check_input_file(src, "input file")
    check_output_file(dst.with_name(dst.name % 0) if pattern else dst, IMAGE_OUT_SUFFIXES | VIDEO_OUT_SUFFIXES, "-o")
    with _naming(src), _open_reader(src) as reader:
        codec = codec_for_file(reader.header, src, args.model, args.backend, args.device)
        if suffix in VIDEO_OUT_SUFFIXES:
            stats = _decode_video(codec, reader, dst)
        elif pattern:
            stats = _decode_images(codec, reader, dst)
        else:
            stats = _decode_one_image(codec, reader, dst, args.frame)
        _warn_cut(reader, src)
    print(
        f"{dst}: {stats.frames} frame{'s' * (stats.frames != 1)} {stats.size_text()} decoded with model "
        f"{codec.model.name} ({codec.fingerprint.hex()})"
    )
    return 0


def _decode_video(codec: Codec, reader: ContainerReader, dst: Path) -> RateStats:
    stats, decoder, last = RateStats(), FrameDecoder(codec), None
    with _atomic_output(dst) as part:
        with VideoRecorder(part, fps=reader.header.fps or DEFAULT_VIDEO_FPS, name=dst) as recorder:
            for packet in _progress(reader, reader.header.num_frames, "decode"):
                ids = decoder.ids(packet)
                last = decoder.rgb(packet, ids) if ids is not None else last
                if last is not None:  # at the packet's presentation time (VideoRecorder: times that do not
                    recorder.write(last, packet.timestamp_us)  # move forward follow at the header's rate)
                stats.add(packet)
        if not stats.frames:
            _warn_cut(reader, dst)
            raise SourceError("the file holds no frames")
    decoder.note()
    return stats


def _decode_images(codec: Codec, reader: ContainerReader, dst: Path) -> RateStats:
    """Every frame to its own image, named by ``dst % index``; each image is complete once it exists."""
    stats, decoder, last = RateStats(), FrameDecoder(codec), None
    for index, packet in enumerate(_progress(reader, reader.header.num_frames, "decode")):
        ids = decoder.ids(packet)
        last = decoder.rgb(packet, ids) if ids is not None else last
        if last is not None:
            name = dst.with_name(dst.name % index)
            with _atomic_output(name) as part:
                _write_image(part, last, name)
        stats.add(packet)
    decoder.note()
    return stats


def _decode_one_image(codec: Codec, reader: ContainerReader, dst: Path, frame: int | None) -> RateStats:
    """Frame ``frame`` (default 0) to ``dst``. Every packet is still read and checked, so a damaged file fails; the
    ids of the frames before it are decoded too (P-frames need their references), the pixels of one frame only."""
    stats, decoder, wanted = RateStats(), FrameDecoder(codec), None
    for index, packet in enumerate(reader):
        ids = decoder.ids(packet)
        if index == (frame or 0):
            if ids is None:
                raise MissingReferenceError(f"frame {index} is a P-frame whose reference the file does not hold")
            wanted = packet, ids
        stats.add(packet)
    if not stats.frames:
        _warn_cut(reader, dst)
        raise SourceError("the file holds no frames")
    if wanted is None:
        raise ConfigError(f"--frame {frame}: the file holds frames 0..{stats.frames - 1}")
    with _atomic_output(dst) as part:
        _write_image(part, decoder.rgb(*wanted), dst)
    if frame is None and stats.frames > 1:
        print(
            f"note: the file holds {stats.frames} frames; wrote frame 0 only (use --frame K, an image name with "
            f"%05d, or an .mp4 output)",
            file=sys.stderr,
        )
    stats = RateStats()
    stats.add(wanted[0])
    return stats


def _warn_cut(reader: ContainerReader, path: Path) -> None:
    """One warning for a file cut off at its end or followed by junk; the error itself when not one frame of it is
    complete."""
    if reader.cut is None:
        return
    if not reader.packets:
        raise (TrailingDataError if reader.trailing else TruncatedError)(reader.cut)
    n = reader.packets
    what = f"ends in {reader.cut}" if reader.trailing else f"is cut off ({reader.cut})"
    print(f"edgecodec: warning: {path} {what}; its {n} complete frame{'s' * (n != 1)} {'are' if n != 1 else 'is'} "
          "used", file=sys.stderr)  # fmt: skip


# ---- info ----------------------------------------------------------------------------------------------------------
def file_info(path: str | Path) -> dict[str, Any]:
    """Everything ``edgecodec info`` reports about an ``.ecz`` file, as JSON-ready data. Reads every packet."""
    path = Path(path)
    stats, grids, stamps, versions = RateStats(), Counter(), [], Counter()
    with _naming(path), _open_reader(path) as reader:
        header = reader.header
        for packet in reader:
            stats.add(packet)
            grids[(packet.layer, packet.grid_w, packet.grid_h)] += 1
            stamps.append(packet.timestamp_us)
            versions[packet.version] += 1
        _warn_cut(reader, path)
    held = find_model(header.fingerprint, header.model_name)
    bits = [8 * b for b in stats.packet_bytes]
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "model": {
            "name": header.model_name,
            "fingerprint": header.fingerprint.hex(),
            "held": held is not None,
            "path": str(held) if held else None,
        },
        "frames": stats.frames,
        "packet_formats": {str(v): n for v, n in sorted(versions.items())},
        "fps": header.fps,
        "fps_fraction": [header.fps_num, header.fps_den] if header.fps_num else None,
        "timestamps_us": {"first": stamps[0], "last": stamps[-1]} if stamps else None,
        "frame_sizes": {f"{w}x{h}": n for (w, h), n in sorted(stats.sizes.items())},
        "layers": {str(layer): n for layer, n in sorted(stats.layers.items())},
        "grids": {f"layer {layer}: {w}x{h}": n for (layer, w, h), n in sorted(grids.items())},
        "frame_types": {
            kind: {
                "frames": stats.kinds[kind],
                "bytes": stats.kind_bytes[kind],
                "bits_per_frame": 8 * stats.kind_bytes[kind] / stats.kinds[kind] if stats.kinds[kind] else None,
            }
            for kind in ("I", "P")
        },  # fmt: skip
        "packet_bytes": sum(stats.packet_bytes),
        "payload_bytes": stats.payload_bytes,
        "bits_per_frame": {"mean": float(np.mean(bits)), "min": min(bits), "max": max(bits)} if bits else None,
        "bpp": stats.bpp(),
        "payload_bpp": stats.bpp(payload_only=True),
        "kbps": stats.kbps(header.fps),
    }


def _format_info(info: dict[str, Any]) -> str:
    model, bpf, sizes = info["model"], info["bits_per_frame"], info["frame_sizes"]
    held = f"held here ({model['path']})" if model["held"] else "NOT held on this machine: decode needs --model PATH"
    fps = f"{info['fps']:.4g} fps ({info['fps_fraction'][0]}/{info['fps_fraction'][1]})" if info["fps"] else "unknown"
    size = ", ".join(f"{s} x{n}" if len(sizes) > 1 else s for s, n in sizes.items())
    layers = ", ".join(f"{layer}: {n} frame{'s' * (n != 1)}" for layer, n in info["layers"].items())
    bits = f"mean {bpf['mean']:.1f}, min {bpf['min']}, max {bpf['max']} (packet header included)" if bpf else ""
    types = ", ".join(
        f"{kind}: {t['frames']} frames, {8 * t['bytes']} bits"
        + (f" ({t['bits_per_frame']:.0f}/frame)" if t["frames"] else "")
        for kind, t in info["frame_types"].items()
    )
    kbps = f"{info['kbps']:.1f} at {info['fps']:.4g} fps" if info["kbps"] is not None else "- (no frame rate)"
    formats = ", ".join(f"version {v}: {n} packet{'s' * (n != 1)}" for v, n in info["packet_formats"].items())
    total = f"{info['bytes']} bytes ({info['packet_bytes']} in packets, {info['payload_bytes']} of them payload)"
    rows = [
        ("file", f"{info['file']}, {total}"),
        ("model", f"{model['name']}, fingerprint {model['fingerprint']}, {held}"),
        ("frames", str(info["frames"])),
        ("format", f"{formats or '-'} (docs/bitstream.md)"),
        ("frame rate", fps),
        ("timestamps", _timestamps_text(info["timestamps_us"])),
        ("frame size", size or "-"),
        ("layers", layers or "-"),
        ("frame types", types),
        ("bits/frame", bits or "-"),
        ("bpp", f"{info['bpp']:.4f} (payload only {info['payload_bpp']:.4f})"),
        ("kbps", kbps),
    ]
    return "\n".join(f"{name:<11} {value}" for name, value in rows)


def _timestamps_text(stamps: dict[str, int] | None) -> str:
    if not stamps:
        return "-"
    first, last = stamps["first"], stamps["last"]
    return f"{first / 1e6:.6f} s to {last / 1e6:.6f} s (first to last frame: {(last - first) / 1e6:.3f} s)"


def main_info(argv: Sequence[str] | None = None) -> int:
    """`edgecodec info IN.ecz [--json]`."""
    ap = ArgumentParser(prog="edgecodec info", description="Describe an .ecz file (reads every packet).")
    ap.add_argument("input", help=".ecz file")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    info = file_info(args.input)
    print(json.dumps(info, indent=2) if args.json else _format_info(info))
    return 0

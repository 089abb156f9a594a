"""The ``.ecz`` file: a file header (model fingerprint and name, frame count, frame rate) then packets back to back.

The packets are exactly the bytes :mod:`edgecodec.bitstream` puts on the wire. See ``docs/bitstream.md`` for the layout.
Reading streams packet by packet, in chunks, so memory stays proportional to the bytes actually read.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO

from . import bitstream
from .bitstream import Packet
from .errors import (
    BadMagicError,
    BitstreamError,
    ChecksumError,
    TrailingDataError,
    TruncatedError,
    UnsupportedVersionError,
)

__all__ = [
    "CONTAINER_VERSION",
    "FILE_MAGIC",
    "ContainerHeader",
    "ContainerReader",
    "ContainerWriter",
    "container_bytes",
    "fps_fraction",
    "read_container",
    "write_container",
]

FILE_MAGIC = b"ECZF"
CONTAINER_VERSION = 1
MAX_NAME_BYTES = 255
# magic, version, flags, name length, reserved, fingerprint, number of frames, fps numerator, fps denominator, crc32
_FILE_HEADER = struct.Struct("<4sBBBB8sIIII")
FILE_HEADER_SIZE = _FILE_HEADER.size  # 32, followed by the model name
_CRC_OFFSET = FILE_HEADER_SIZE - 4
_CHUNK = 1 << 20
_U32 = (1 << 32) - 1

Source = str | os.PathLike | BinaryIO


@dataclass(frozen=True)
class ContainerHeader:
    """``num_frames``: packets in the file (0 = unknown); frame rate ``fps_num / fps_den`` (0: unknown)."""

    fingerprint: bytes
    model_name: str
    num_frames: int = 0
    fps_num: int = 0
    fps_den: int = 1

    @property
    def fps(self) -> float | None:
        return self.fps_num / self.fps_den if self.fps_num else None

    def to_bytes(self) -> bytes:
        name = self.model_name.encode("utf-8")
        if len(self.fingerprint) != bitstream.FINGERPRINT_SIZE:
            raise ValueError(f"fingerprint must be {bitstream.FINGERPRINT_SIZE} bytes, got {self.fingerprint!r}")
        if len(name) > MAX_NAME_BYTES:
            raise ValueError(f"model name is {len(name)} bytes in UTF-8, at most {MAX_NAME_BYTES}")
        for key, value, lo in (
            ("num_frames", self.num_frames, 0),
            ("fps_num", self.fps_num, 0),
            ("fps_den", self.fps_den, 1),
        ):
            if not lo <= value <= _U32:
                raise ValueError(f"{key} must be in {lo}..{_U32}, got {value}")
        fixed = _FILE_HEADER.pack(
            FILE_MAGIC,
            CONTAINER_VERSION,
            0,
            len(name),
            0,
            self.fingerprint,
            self.num_frames,
            self.fps_num,
            self.fps_den,
            0,
        )[:_CRC_OFFSET]
        return fixed + struct.pack("<I", zlib.crc32(name, zlib.crc32(fixed))) + name


def _read_exact(f: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes in bounded chunks, so a lying length costs no more memory than the bytes present."""
    parts, got = [], 0
    while got < n:
        part = f.read(min(n - got, _CHUNK))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def fps_fraction(fps: float | None) -> tuple[int, int]:
    """``(fps_num, fps_den)`` of a file header for a frame rate: the nearest fraction with a denominator up to 1001
    (25 -> 25/1, 29.97 -> 30000/1001), ``(0, 1)`` (unknown) for None, a non-positive or a non-finite rate."""
    if fps is None or not math.isfinite(fps) or fps <= 0:
        return 0, 1
    f = Fraction(fps).limit_denominator(1001)
    return (f.numerator, f.denominator) if 0 < f.numerator < 1 << 32 else (0, 1)


def _parse_header(f: BinaryIO) -> ContainerHeader:
    fixed = _read_exact(f, FILE_HEADER_SIZE)
    if not fixed:
        raise TruncatedError("empty .ecz file")
    if fixed[:4] != FILE_MAGIC[: len(fixed[:4])]:
        raise BadMagicError(f"not an .ecz file: magic {fixed[:4].hex()} != {FILE_MAGIC.hex()}")
    if len(fixed) > 4 and fixed[4] != CONTAINER_VERSION:
        raise UnsupportedVersionError(
            f".ecz version {fixed[4]} is not supported (this build reads {CONTAINER_VERSION})"
        )
    if len(fixed) < FILE_HEADER_SIZE:
        raise TruncatedError(f".ecz header truncated at {len(fixed)} of {FILE_HEADER_SIZE} bytes")
    _, _, flags, name_len, reserved, fingerprint, num_frames, fps_num, fps_den, crc = _FILE_HEADER.unpack(fixed)
    if flags or reserved:
        raise UnsupportedVersionError(f".ecz flags 0x{flags:02x}/reserved 0x{reserved:02x} undefined in version 1")
    name = _read_exact(f, name_len)
    if len(name) < name_len:
        raise TruncatedError(
            f".ecz file cut short: it ends {len(name)} bytes into its {name_len}-byte model name, before any frame"
            f" (it declares {num_frames or 'an unknown number of'} frames)"
        )
    actual = zlib.crc32(name, zlib.crc32(fixed[:_CRC_OFFSET]))
    if actual != crc:
        raise ChecksumError(f".ecz header CRC32 {actual:08x} does not match {crc:08x}")
    if fps_den == 0:
        raise BitstreamError(".ecz header has frame-rate denominator 0")
    try:
        model_name = name.decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError(".ecz model name is not valid UTF-8") from None
    return ContainerHeader(fingerprint, model_name, num_frames, fps_num, fps_den)


class ContainerReader:
    """Reads an ``.ecz`` file packet by packet: ``with ContainerReader(path) as r: r.header; for p in r: ...``.

    ``partial``: a file cut off at its end (a recording whose writer was killed, a copy stopped early), or followed
    by bytes that are not a packet, yields its complete packets and then stops, with why in :attr:`cut` and
    :attr:`trailing` (else it raises :class:`~edgecodec.errors.TruncatedError` or
    :class:`~edgecodec.errors.TrailingDataError`). Damage anywhere else still raises. :attr:`packets` counts the
    packets yielded."""

    def __init__(self, source: Source, *, partial: bool = False) -> None:
        self.partial = partial
        self.cut: str | None = None  # partial: why the file ended early
        self.trailing = False  # partial: the file ended in bytes that are not a packet (rather than cut off)
        self.packets = 0
        self._owned = not hasattr(source, "read")
        self._f: BinaryIO = open(source, "rb") if self._owned else source  # type: ignore[arg-type]
        try:
            self.header = _parse_header(self._f)
        except BaseException:
            self.close()
            raise
        self._known = {self.header.fingerprint}
        self._recent: dict[tuple[int, int, int], Packet] = {}  # headers of the last packets, for P-frames

    def __iter__(self) -> Iterator[Packet]:
        count = 0
        while True:
            try:
                data = self._next_packet(count)
            except (TruncatedError, TrailingDataError) as exc:
                if not self.partial:
                    raise
                self.cut, self.trailing = str(exc), isinstance(exc, TrailingDataError)
                return
            if data is None:
                return
            packet, _ = bitstream.read_packet(data, known_fingerprints=self._known)
            packet = self._resolve(packet, count)
            count += 1
            self.packets = count
            yield packet

    def _next_packet(self, count: int) -> bytes | None:
        """The bytes of packet ``count`` (None at the end); :class:`TruncatedError` where the file ends inside it."""
        head = _read_exact(self._f, bitstream.MIN_HEADER_SIZE)
        expected = self.header.num_frames
        if not head:
            if expected and count < expected:
                raise TruncatedError(f".ecz file ends after {count} of {expected} packets")
            return None
        if head[:4] != bitstream.MAGIC[: len(head[:4])]:
            raise TrailingDataError(f"bytes that are not a packet after its {count} packets")
        if expected and count == expected:
            raise TrailingDataError(f"more data than the {expected} packets its header declares")
        if len(head) < bitstream.MIN_HEADER_SIZE:
            raise TruncatedError(f".ecz packet {count} header truncated at {len(head)} bytes")
        head += _read_exact(self._f, bitstream.header_size(head) - len(head))
        if len(head) < bitstream.header_size(head):
            raise TruncatedError(f".ecz packet {count} header truncated at {len(head)} bytes")
        rest = bitstream.packet_length(head) - len(head)
        data = head + _read_exact(self._f, rest)
        if len(data) < len(head) + rest:
            raise TruncatedError(f".ecz packet {count} payload truncated: {len(data) - len(head)} of {rest} bytes")
        return data

    def _resolve(self, packet: Packet, index: int) -> Packet:
        """A P-frame completed from its reference's header, which an earlier packet of the file must hold."""
        key = (packet.session_id, packet.ref_seq, packet.layer)
        if packet.is_inter:
            reference = self._recent.get(key)
            if reference is None:
                raise BitstreamError(f".ecz packet {index} is a P-frame whose reference (frame {packet.ref_seq}) is "
                                     "not in the file before it")  # fmt: skip
            packet = bitstream.resolve(packet, reference)
        self._recent[(packet.session_id, packet.seq, packet.layer)] = bitstream.replace_payload(packet)
        while len(self._recent) > bitstream.MAX_REF_DELTA:
            self._recent.pop(next(iter(self._recent)))
        return packet

    def close(self) -> None:
        if self._owned:
            self._f.close()

    def __enter__(self) -> ContainerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_container(source: Source) -> tuple[ContainerHeader, list[Packet]]:
    """Read a whole ``.ecz`` file; any defect raises a :class:`BitstreamError` subclass."""
    with ContainerReader(source) as reader:
        return reader.header, list(reader)


class ContainerWriter:
    """Writes an ``.ecz`` file: ``with ContainerWriter(path, header) as w: w.write(packet)``.

    When it opened the file itself, ``close`` rewrites the header with the number of packets written.
    """

    def __init__(self, dest: Source, header: ContainerHeader) -> None:
        self.header = header
        self.count = 0
        header_bytes = header.to_bytes()  # validates before a file is created
        self._owned = not hasattr(dest, "write")
        self._f: BinaryIO = open(dest, "wb") if self._owned else dest  # type: ignore[arg-type]
        self._f.write(header_bytes)

    def write(self, packet: Packet) -> None:
        """Append a packet; it must carry the file's model fingerprint."""
        if packet.fingerprint != self.header.fingerprint:
            raise ValueError(f"packet fingerprint {packet.fingerprint.hex()} != file {self.header.fingerprint.hex()}")
        self._f.write(bitstream.encode_packet(packet))
        self.count += 1

    def write_encoded(self, data: bytes) -> None:
        """Append an already-encoded packet (e.g. as received), after checking it parses and names this model."""
        bitstream.decode_packet(data, known_fingerprints={self.header.fingerprint})
        self._f.write(data)
        self.count += 1

    def close(self) -> None:
        if not self._owned or self._f.closed:
            return
        if self.count != self.header.num_frames:
            self._f.seek(0)
            self._f.write(replace(self.header, num_frames=self.count).to_bytes())
        self._f.close()

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_container(dest: Source, header: ContainerHeader, packets: Iterable[Packet]) -> int:
    """Write a whole ``.ecz`` file; returns the number of packets written."""
    with ContainerWriter(dest, header) as writer:
        for packet in packets:
            writer.write(packet)
        return writer.count


def container_bytes(header: ContainerHeader, packets: Iterable[Packet]) -> bytes:
    """The bytes of an ``.ecz`` file with these packets (``num_frames`` set to their count)."""
    packets = list(packets)
    buf = io.BytesIO()
    write_container(buf, replace(header, num_frames=len(packets)), packets)
    return buf.getvalue()

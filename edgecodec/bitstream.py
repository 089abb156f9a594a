"""The packet format: one frame's coded ids behind a fixed 48-byte header. The only module that knows the layout.

See ``docs/bitstream.md`` for the byte-by-byte layout. Parsing checks every declared size against the limits below and
against the bytes actually present before anything is allocated; every failure is a :class:`BitstreamError` subclass.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection
from dataclasses import dataclass

from .errors import (
    BadMagicError,
    ChecksumError,
    LayerRangeError,
    SizeLimitError,
    TrailingDataError,
    TruncatedError,
    UnknownModelError,
    UnsupportedVersionError,
)

__all__ = [
    "FLAG_INTER",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "KNOWN_FLAGS",
    "MAGIC",
    "MAX_FRAME_SIDE",
    "MAX_GRID_IDS",
    "MAX_PAYLOAD_BYTES",
    "Packet",
    "decode_packet",
    "encode_packet",
    "packet_length",
    "read_packet",
]

MAGIC = b"ECPK"
FORMAT_VERSION = 1
FINGERPRINT_SIZE = 8

FLAG_INTER = 0x01
"""Bit 0: the ids are coded relative to an earlier frame (reserved for inter-frame coding)."""
KNOWN_FLAGS = FLAG_INTER
"""Version 1 readers refuse any other flag bit with :class:`UnsupportedVersionError`."""

MAX_FRAME_SIDE = 16384
MAX_GRID_IDS = 1 << 22
"""At most 4 Mi ids per grid (2048 x 2048): bounds the memory a decoder spends on one packet (16 MiB of int32)."""
MAX_PAYLOAD_BYTES = 64 << 20

# magic, version, flags, layer, reserved, fingerprint, stream id, sequence number, timestamp (us),
# frame height, frame width, grid height, grid width, payload length, crc32
_HEADER = struct.Struct("<4sBBBB8sIIQHHHHII")
HEADER_SIZE = _HEADER.size  # 48
_CRC_OFFSET = HEADER_SIZE - 4
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


@dataclass(frozen=True, kw_only=True)
class Packet:
    """One coded frame: the ids of grid ``grid_h x grid_w`` of layer ``layer`` (1-based) of model ``fingerprint``."""

    fingerprint: bytes
    layer: int
    seq: int
    timestamp_us: int
    frame_h: int
    frame_w: int
    grid_h: int
    grid_w: int
    payload: bytes
    stream_id: int = 0
    flags: int = 0

    @property
    def is_inter(self) -> bool:
        return bool(self.flags & FLAG_INTER)


def _limit_problem(frame_h: int, frame_w: int, grid_h: int, grid_w: int, payload_len: int) -> str | None:
    if not (1 <= frame_h <= MAX_FRAME_SIDE and 1 <= frame_w <= MAX_FRAME_SIDE):
        return f"frame size {frame_h}x{frame_w} outside 1..{MAX_FRAME_SIDE}"
    if not (1 <= grid_h <= frame_h and 1 <= grid_w <= frame_w):
        return f"id grid {grid_h}x{grid_w} does not fit frame {frame_h}x{frame_w}"
    if grid_h * grid_w > MAX_GRID_IDS:
        return f"id grid {grid_h}x{grid_w} has more than {MAX_GRID_IDS} ids"
    if payload_len > MAX_PAYLOAD_BYTES:
        return f"payload of {payload_len} bytes exceeds {MAX_PAYLOAD_BYTES}"
    return None


def encode_packet(p: Packet) -> bytes:
    """Serialise a packet: header then payload. Out-of-range fields raise ValueError."""
    if not isinstance(p.fingerprint, bytes) or len(p.fingerprint) != FINGERPRINT_SIZE:
        raise ValueError(f"fingerprint must be {FINGERPRINT_SIZE} bytes, got {p.fingerprint!r}")
    if not 1 <= p.layer <= 255:
        raise ValueError(f"layer must be in 1..255, got {p.layer}")
    if p.flags & ~KNOWN_FLAGS or p.flags < 0:
        raise ValueError(f"unknown flags 0x{p.flags:x}")
    for name, value, hi in (
        ("stream_id", p.stream_id, _U32),
        ("seq", p.seq, _U32),
        ("timestamp_us", p.timestamp_us, _U64),
    ):
        if not 0 <= value <= hi:
            raise ValueError(f"{name} must be in 0..{hi}, got {value}")
    problem = _limit_problem(p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload))
    if problem:
        raise ValueError(problem)
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, p.flags, p.layer, 0, p.fingerprint, p.stream_id, p.seq, p.timestamp_us,
        p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload), 0,
    )  # fmt: skip
    crc = zlib.crc32(p.payload, zlib.crc32(header[:_CRC_OFFSET]))
    return header[:_CRC_OFFSET] + struct.pack("<I", crc) + bytes(p.payload)


def _bytes_view(buf: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(buf)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _unpack_header(view: memoryview) -> tuple:
    """Validate and unpack a header from the start of ``view``; checks everything the header alone can tell."""
    head = bytes(view[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise BadMagicError(f"not an edgecodec packet: magic {head.hex()} != {MAGIC.hex()}")
    if len(view) <= len(MAGIC):
        raise TruncatedError(f"packet header truncated at {len(view)} of {HEADER_SIZE} bytes")
    if view[4] != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"packet format version {view[4]} is not supported (this build reads {FORMAT_VERSION})"
        )
    if len(view) < HEADER_SIZE:
        raise TruncatedError(f"packet header truncated at {len(view)} of {HEADER_SIZE} bytes")
    fields = _HEADER.unpack_from(view)
    flags, reserved = fields[2], fields[4]
    if flags & ~KNOWN_FLAGS or reserved:
        raise UnsupportedVersionError(f"packet flags 0x{flags:02x}/reserved 0x{reserved:02x} undefined in version 1")
    problem = _limit_problem(*fields[9:14])
    if problem:
        raise SizeLimitError(problem)
    return fields


def packet_length(header: bytes | bytearray | memoryview) -> int:
    """Total size (header + payload) of the packet whose header starts ``header``; validates the header first."""
    return HEADER_SIZE + _unpack_header(_bytes_view(header))[13]


def read_packet(
    buf: bytes | bytearray | memoryview,
    offset: int = 0,
    *,
    known_fingerprints: Collection[bytes] | None = None,
    num_layers: int | None = None,
) -> tuple[Packet, int]:
    """Parse the packet at ``offset``; returns it and the offset just past it (bytes may follow)."""
    view = _bytes_view(buf)
    if not 0 <= offset <= len(view):
        raise ValueError(f"offset {offset} outside buffer of {len(view)} bytes")
    view = view[offset:]
    fields = _unpack_header(view)
    _, _, flags, layer, _, fingerprint, stream_id, seq, timestamp_us, frame_h, frame_w, grid_h, grid_w, size, crc = (
        fields
    )
    end = HEADER_SIZE + size
    if len(view) < end:
        raise TruncatedError(f"packet payload truncated: {len(view) - HEADER_SIZE} of {size} bytes present")
    payload = view[HEADER_SIZE:end]
    actual = zlib.crc32(payload, zlib.crc32(view[:_CRC_OFFSET]))
    if actual != crc:
        raise ChecksumError(f"packet CRC32 {actual:08x} does not match header {crc:08x}")
    if known_fingerprints is not None and fingerprint not in known_fingerprints:
        held = ", ".join(sorted(f.hex() for f in known_fingerprints)[:8]) or "none"
        raise UnknownModelError(f"packet names unknown model fingerprint {fingerprint.hex()} (known: {held})")
    if layer == 0 or (num_layers is not None and layer > num_layers):
        raise LayerRangeError(f"packet names layer {layer}; the model has layers 1..{num_layers or '?'}")
    packet = Packet(
        fingerprint=fingerprint, layer=layer, seq=seq, timestamp_us=timestamp_us, frame_h=frame_h, frame_w=frame_w,
        grid_h=grid_h, grid_w=grid_w, payload=bytes(payload), stream_id=stream_id, flags=flags,
    )  # fmt: skip
    return packet, offset + end


def decode_packet(
    data: bytes | bytearray | memoryview,
    *,
    known_fingerprints: Collection[bytes] | None = None,
    num_layers: int | None = None,
) -> Packet:
    """Parse exactly one packet; bytes after it raise :class:`TrailingDataError`."""
    packet, end = read_packet(data, 0, known_fingerprints=known_fingerprints, num_layers=num_layers)
    extra = len(_bytes_view(data)) - end
    if extra:
        raise TrailingDataError(f"{extra} bytes follow the packet")
    return packet

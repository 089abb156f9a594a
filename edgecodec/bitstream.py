"""The packet format: one frame's coded ids behind a fixed header. The only module that knows the layout.

Format version 3 has two headers, told apart by the flags byte:

* a **keyframe** (I-frame, :data:`FLAG_KEYFRAME`) has a 52-byte header that describes the frame completely: model
  fingerprint, stream, sender session, sequence number, capture time, frame and grid size;
* a **P-frame** (:data:`FLAG_INTER`) has a 28-byte header: session, sequence number, how far back its reference is,
  capture time relative to the reference's. Everything else is its reference's: :func:`resolve` completes a parsed
  P-frame from its reference's packet. On a still scene the header is most of what a P-frame costs.

Version 3 differs from version 2 only in how a keyframe's ids are coded under a context prior: in bands of
:data:`INTRA_BAND_ROWS` rows, decoded side by side (issue 16). Version 2 packets (whole-grid context coding) and
version 1 packets (48-byte header, intra only) are still read. See ``docs/bitstream.md`` for the byte-by-byte layout.
Parsing checks every declared size against the limits below and against the bytes actually present before anything
is allocated; every failure is a :class:`BitstreamError` subclass.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection
from dataclasses import dataclass, replace

from .errors import (
    BadMagicError,
    BitstreamError,
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
    "FLAG_KEYFRAME",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "HEADER_SIZE_V1",
    "INTER_HEADER_SIZE",
    "INTRA_BAND_ROWS",
    "MAX_FRAME_SIDE",
    "MAX_GRID_IDS",
    "MAX_PAYLOAD_BYTES",
    "MAX_REF_DELTA",
    "MAGIC",
    "MIN_HEADER_SIZE",
    "READ_VERSIONS",
    "Packet",
    "decode_packet",
    "encode_packet",
    "header_size",
    "intra_band_rows",
    "packet_length",
    "read_packet",
    "replace_payload",
    "resolve",
]

MAGIC = b"ECPK"
FORMAT_VERSION = 3
"""The version written. Version 2 packets (intra grids coded whole) and version 1 packets (48-byte header, intra
frames only) are still read."""
READ_VERSIONS = (1, 2, 3)
INTRA_BAND_ROWS = 16
"""Version 3 codes a keyframe's id grid under a context prior in bands of this many rows (the last may be shorter),
row ``y`` of every band in one step, so the decoder makes 16 steps instead of one per row."""
FINGERPRINT_SIZE = 8

FLAG_INTER = 0x01
"""Bit 0: a P-frame: the ids are coded conditionally on those of frame ``ref_seq`` of the same session and layer."""
FLAG_KEYFRAME = 0x02
"""Bit 1: a refresh point: this frame, and every frame after it, decode without any earlier frame."""
KNOWN_FLAGS = FLAG_INTER | FLAG_KEYFRAME
"""A packet of version 2 or later has exactly one of these bits set; a reader refuses anything else."""

MAX_FRAME_SIDE = 16384
MAX_GRID_IDS = 1 << 22
"""At most 4 Mi ids per grid (2048 x 2048): bounds the memory a decoder spends on one packet (16 MiB of int32)."""
MAX_PAYLOAD_BYTES = 64 << 20
MIN_GRID_ROOM = 512
"""A frame smaller than the model's multiple is padded up to it, so its grid may exceed the frame: a grid side may be
up to ``max(frame side, 512)`` (models with a multiple up to 1024). The exact grid is checked by the codec."""
MAX_REF_DELTA = 255
"""A P-frame's reference is 1..255 frames back."""

# keyframe: magic, version, flags, layer, reserved, fingerprint, stream id, session id, sequence number,
# timestamp (us), frame height, frame width, grid height, grid width, payload length, crc32
_HEADER = struct.Struct("<4sBBBB8sIIIQHHHHII")
HEADER_SIZE = _HEADER.size  # 52
# P-frame: magic, version, flags, layer, reference delta, session id, sequence number, timestamp delta (us, signed),
# payload length, crc32
_INTER = struct.Struct("<4sBBBBIIiII")
INTER_HEADER_SIZE = _INTER.size  # 28
# version 1: magic, version, flags, layer, reserved, fingerprint, stream id, sequence number, timestamp (us),
# frame height, frame width, grid height, grid width, payload length, crc32
_HEADER_V1 = struct.Struct("<4sBBBB8sIIQHHHHII")
HEADER_SIZE_V1 = _HEADER_V1.size  # 48
MIN_HEADER_SIZE = INTER_HEADER_SIZE
"""Bytes enough to know any packet's header size (:func:`header_size`)."""
_PREFIX = 6  # magic, version, flags: what header_size needs
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_I32 = 1 << 31


@dataclass(frozen=True, kw_only=True)
class Packet:
    """One coded frame: the ids of grid ``grid_h x grid_w`` of layer ``layer`` (1-based) of model ``fingerprint``.

    ``flags`` is :data:`FLAG_KEYFRAME` (an I-frame) or :data:`FLAG_INTER` (a P-frame whose reference is frame
    ``ref_seq`` of the same stream, ``session_id`` and layer, captured ``timestamp_delta_us`` before it).
    ``session_id`` is drawn at random by every sender start. A P-frame read off the wire has ``resolved`` False:
    its fingerprint, stream, sizes and capture time are its reference's, filled in by :func:`resolve`; until then they
    are 0. ``version`` is the format the packet was read from (1 for old files).
    """

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
    flags: int = FLAG_KEYFRAME
    session_id: int = 0
    ref_seq: int = 0
    timestamp_delta_us: int = 0
    resolved: bool = True
    version: int = FORMAT_VERSION

    @property
    def is_inter(self) -> bool:
        return bool(self.flags & FLAG_INTER)

    @property
    def is_keyframe(self) -> bool:
        return bool(self.flags & FLAG_KEYFRAME)

    @property
    def header_size(self) -> int:
        if self.version == 1:
            return HEADER_SIZE_V1
        return INTER_HEADER_SIZE if self.is_inter else HEADER_SIZE

    @property
    def size(self) -> int:
        """Bytes on the wire: header and payload."""
        return self.header_size + len(self.payload)


def _limit_problem(frame_h: int, frame_w: int, grid_h: int, grid_w: int, payload_len: int) -> str | None:
    if not (1 <= frame_h <= MAX_FRAME_SIDE and 1 <= frame_w <= MAX_FRAME_SIDE):
        return f"frame size {frame_h}x{frame_w} outside 1..{MAX_FRAME_SIDE}"
    if not (1 <= grid_h <= max(frame_h, MIN_GRID_ROOM) and 1 <= grid_w <= max(frame_w, MIN_GRID_ROOM)):
        return f"id grid {grid_h}x{grid_w} does not fit frame {frame_h}x{frame_w}"
    if grid_h * grid_w > MAX_GRID_IDS:
        return f"id grid {grid_h}x{grid_w} has more than {MAX_GRID_IDS} ids"
    if payload_len > MAX_PAYLOAD_BYTES:
        return f"payload of {payload_len} bytes exceeds {MAX_PAYLOAD_BYTES}"
    return None


def _check_range(*fields: tuple[str, int, int, int]) -> None:
    for name, value, lo, hi in fields:
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")


def intra_band_rows(version: int) -> int | None:
    """The band height of keyframe payloads of format ``version`` (:data:`INTRA_BAND_ROWS` from version 3), or
    ``None``: the grid coded as one band (versions 1 and 2)."""
    return INTRA_BAND_ROWS if version >= 3 else None


def encode_packet(p: Packet) -> bytes:
    """Serialise a packet: header then payload. Out-of-range fields raise ValueError.

    Written in format version :data:`FORMAT_VERSION`, or in version 2 when ``p.version`` is 1 or 2: a payload coded
    for those versions stays readable as it was coded (a version 1 header is never written). A P-frame's header holds
    only what its reference does not tell: its fingerprint, stream and sizes are not written (:func:`resolve` takes
    them from the reference)."""
    if p.version not in READ_VERSIONS:
        raise ValueError(f"packet format version {p.version} cannot be written (versions 1..{FORMAT_VERSION})")
    version = max(p.version, 2)
    if p.flags not in (FLAG_INTER, FLAG_KEYFRAME):
        raise ValueError(f"flags 0x{p.flags:02x}: a packet is either a keyframe (0x02) or an inter frame (0x01)")
    if not 1 <= p.layer <= 255:
        raise ValueError(f"layer must be in 1..255, got {p.layer}")
    _check_range(("session_id", p.session_id, 0, _U32), ("seq", p.seq, 0, _U32))
    if len(p.payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(p.payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if p.is_inter:
        delta = (p.seq - p.ref_seq) % (1 << 32)
        _check_range(("ref_seq", p.ref_seq, 0, _U32), ("reference delta (seq - ref_seq)", delta, 1, MAX_REF_DELTA),
                     ("timestamp_delta_us", p.timestamp_delta_us, -_I32, _I32 - 1))  # fmt: skip
        header = _INTER.pack(MAGIC, version, p.flags, p.layer, delta, p.session_id, p.seq,
                             p.timestamp_delta_us, len(p.payload), 0)  # fmt: skip
    else:
        if p.ref_seq or p.timestamp_delta_us:
            raise ValueError("a keyframe has no reference: ref_seq and timestamp_delta_us must be 0")
        if not isinstance(p.fingerprint, bytes) or len(p.fingerprint) != FINGERPRINT_SIZE:
            raise ValueError(f"fingerprint must be {FINGERPRINT_SIZE} bytes, got {p.fingerprint!r}")
        _check_range(("stream_id", p.stream_id, 0, _U32), ("timestamp_us", p.timestamp_us, 0, _U64))
        problem = _limit_problem(p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload))
        if problem:
            raise ValueError(problem)
        header = _HEADER.pack(
            MAGIC, version, p.flags, p.layer, 0, p.fingerprint, p.stream_id, p.session_id, p.seq,
            p.timestamp_us, p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload), 0,
        )  # fmt: skip
    crc = zlib.crc32(p.payload, zlib.crc32(header[:-4]))
    return header[:-4] + struct.pack("<I", crc) + bytes(p.payload)


def _bytes_view(buf: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(buf)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def header_size(prefix: bytes | bytearray | memoryview) -> int:
    """Header size of the packet that starts ``prefix`` (at least 6 bytes): checks the magic, version and flags."""
    view = _bytes_view(prefix)
    head = bytes(view[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise BadMagicError(f"not an edgecodec packet: magic {head.hex()} != {MAGIC.hex()}")
    if len(view) <= len(MAGIC):
        raise TruncatedError(f"packet header truncated at {len(view)} bytes")
    if view[4] not in READ_VERSIONS:
        raise UnsupportedVersionError(
            f"packet format version {view[4]} is not supported (this build reads versions "
            f"{', '.join(map(str, READ_VERSIONS))})"
        )
    if len(view) < _PREFIX:
        raise TruncatedError(f"packet header truncated at {len(view)} bytes")
    flags = view[5]
    if view[4] == 1:
        if flags & ~FLAG_INTER:
            raise UnsupportedVersionError(f"packet flags 0x{flags:02x} undefined in version 1")
        if flags & FLAG_INTER:
            raise UnsupportedVersionError("a version 1 packet marked inter: inter frames need format version 2")
        return HEADER_SIZE_V1
    if flags == FLAG_INTER:
        return INTER_HEADER_SIZE
    if flags == FLAG_KEYFRAME:
        return HEADER_SIZE
    raise UnsupportedVersionError(
        f"packet flags 0x{flags:02x}: a version {view[4]} packet is either a keyframe (0x02) or an inter frame (0x01)"
    )


def _unpack_header(view: memoryview) -> dict:
    """Validate and unpack a header from the start of ``view``: everything the header alone can tell."""
    size = header_size(view)
    if len(view) < size:
        raise TruncatedError(f"packet header truncated at {len(view)} of {size} bytes")
    if size == INTER_HEADER_SIZE:
        _, version, flags, layer, delta, session, seq, ts_delta, length, crc = _INTER.unpack_from(view)
        if delta == 0:
            raise UnsupportedVersionError(f"inter frame {seq} names itself as its reference (delta 0)")
        if length > MAX_PAYLOAD_BYTES:
            raise SizeLimitError(f"payload of {length} bytes exceeds {MAX_PAYLOAD_BYTES}")
        return dict(version=version, flags=flags, layer=layer, session_id=session, seq=seq,
                    ref_seq=(seq - delta) % (1 << 32), timestamp_delta_us=ts_delta, payload_len=length, crc=crc,
                    fingerprint=bytes(FINGERPRINT_SIZE), stream_id=0, timestamp_us=0, frame_h=0, frame_w=0,
                    grid_h=0, grid_w=0, resolved=False)  # fmt: skip
    if size == HEADER_SIZE:
        (_, version, flags, layer, reserved, fingerprint, stream_id, session, seq, ts, frame_h, frame_w, grid_h, grid_w,
         length, crc) = _HEADER.unpack_from(view)  # fmt: skip
    else:
        (_, version, _, layer, reserved, fingerprint, stream_id, seq, ts, frame_h, frame_w, grid_h, grid_w, length,
         crc) = _HEADER_V1.unpack_from(view)  # fmt: skip
        flags, session = FLAG_KEYFRAME, 0
    if reserved:
        raise UnsupportedVersionError(f"packet reserved byte 0x{reserved:02x} is undefined in version {version}")
    problem = _limit_problem(frame_h, frame_w, grid_h, grid_w, length)
    if problem:
        raise SizeLimitError(problem)
    return dict(version=version, flags=flags, layer=layer, session_id=session, seq=seq, ref_seq=0,
                timestamp_delta_us=0, payload_len=length, crc=crc, fingerprint=fingerprint, stream_id=stream_id,
                timestamp_us=ts, frame_h=frame_h, frame_w=frame_w, grid_h=grid_h, grid_w=grid_w,
                resolved=True)  # fmt: skip


def packet_length(header: bytes | bytearray | memoryview) -> int:
    """Total size (header + payload) of the packet whose header starts ``header``; validates the header first."""
    view = _bytes_view(header)
    return header_size(view) + _unpack_header(view)["payload_len"]


def read_packet(
    buf: bytes | bytearray | memoryview,
    offset: int = 0,
    *,
    known_fingerprints: Collection[bytes] | None = None,
    num_layers: int | None = None,
) -> tuple[Packet, int]:
    """Parse the packet at ``offset``; returns it and the offset just past it (bytes may follow).

    A P-frame comes back unresolved (its fingerprint is checked when :func:`resolve` gives it its reference's)."""
    view = _bytes_view(buf)
    if not 0 <= offset <= len(view):
        raise ValueError(f"offset {offset} outside buffer of {len(view)} bytes")
    view = view[offset:]
    f = _unpack_header(view)
    head = header_size(view)
    end = head + f.pop("payload_len")
    if len(view) < end:
        raise TruncatedError(f"packet payload truncated: {len(view) - head} of {end - head} bytes present")
    payload = view[head:end]
    crc = f.pop("crc")
    actual = zlib.crc32(payload, zlib.crc32(view[: head - 4]))
    if actual != crc:
        raise ChecksumError(f"packet CRC32 {actual:08x} does not match header {crc:08x}")
    if f["resolved"] and known_fingerprints is not None and f["fingerprint"] not in known_fingerprints:
        held = ", ".join(sorted(k.hex() for k in known_fingerprints)[:8]) or "none"
        raise UnknownModelError(f"packet names unknown model fingerprint {f['fingerprint'].hex()} (known: {held})")
    if f["layer"] == 0 or (num_layers is not None and f["layer"] > num_layers):
        raise LayerRangeError(f"packet names layer {f['layer']}; the model has layers 1..{num_layers or '?'}")
    return Packet(payload=bytes(payload), **f), offset + end


def replace_payload(packet: Packet, payload: bytes = b"") -> Packet:
    """The same header with another payload (a reference store keeps headers, not payloads)."""
    return replace(packet, payload=payload)


def resolve(packet: Packet, reference: Packet) -> Packet:
    """A parsed P-frame completed from its reference's (resolved) packet: the fingerprint, stream, sizes, and the
    capture time ``reference.timestamp_us + timestamp_delta_us``. :class:`BitstreamError` when ``reference`` is not
    the frame ``packet`` names (session, sequence number, layer) or the capture time falls outside 0..2**64-1."""
    if not packet.is_inter or packet.resolved:
        return packet
    if not reference.resolved:
        raise ValueError("the reference must be resolved itself")
    named = (packet.session_id, packet.ref_seq, packet.layer)
    if named != (reference.session_id, reference.seq, reference.layer):
        raise BitstreamError(
            f"P-frame {packet.seq} names frame {packet.ref_seq} of session {packet.session_id:08x} at layer "
            f"{packet.layer}, not frame {reference.seq} of session {reference.session_id:08x} at layer "
            f"{reference.layer}"
        )
    timestamp = reference.timestamp_us + packet.timestamp_delta_us
    if not 0 <= timestamp <= _U64:
        raise BitstreamError(f"P-frame {packet.seq}: capture time {timestamp} us outside 0..2**64-1")
    return replace(packet, fingerprint=reference.fingerprint, stream_id=reference.stream_id, timestamp_us=timestamp,
                   frame_h=reference.frame_h, frame_w=reference.frame_w, grid_h=reference.grid_h,
                   grid_w=reference.grid_w, resolved=True)  # fmt: skip


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

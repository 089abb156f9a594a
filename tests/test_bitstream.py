import struct
import zlib
from dataclasses import replace

import pytest

from edgecodec import bitstream
from edgecodec.bitstream import (
    FLAG_INTER,
    HEADER_SIZE,
    MAX_FRAME_SIDE,
    MAX_GRID_IDS,
    MAX_PAYLOAD_BYTES,
    Packet,
    decode_packet,
    encode_packet,
    packet_length,
    read_packet,
)
from edgecodec.errors import (
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

FP = bytes.fromhex("0123456789abcdef")


def make_packet(**changes) -> Packet:
    p = Packet(
        fingerprint=FP, layer=2, seq=7, timestamp_us=1_700_000_000_123_456, frame_h=480, frame_w=640,
        grid_h=60, grid_w=80, payload=b"\x01\x02\x03\x04" * 5, stream_id=3,
    )  # fmt: skip
    return replace(p, **changes)


def reseal(data: bytes, offset: int, fmt: str, value) -> bytes:
    """Overwrite one header field and fix the CRC, to reach the checks behind the checksum."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    size = struct.unpack_from("<I", b, 40)[0]
    crc = zlib.crc32(bytes(b[HEADER_SIZE : HEADER_SIZE + size]), zlib.crc32(bytes(b[:44])))
    struct.pack_into("<I", b, 44, crc)
    return bytes(b)


def test_header_size():
    assert HEADER_SIZE == 48
    assert len(encode_packet(make_packet(payload=b""))) == 48


@pytest.mark.parametrize(
    "changes",
    [{}, {"payload": b""}, {"flags": FLAG_INTER}, {"layer": 255, "seq": 2**32 - 1, "timestamp_us": 2**64 - 1},
     {"frame_h": MAX_FRAME_SIDE, "frame_w": 1, "grid_h": 2048, "grid_w": 1}, {"stream_id": 2**32 - 1}],
)  # fmt: skip
def test_round_trip(changes):
    p = make_packet(**changes)
    data = encode_packet(p)
    assert decode_packet(data) == p
    assert decode_packet(memoryview(data), known_fingerprints={FP}, num_layers=255) == p
    assert decode_packet(bytearray(data)) == p
    assert packet_length(data[:HEADER_SIZE]) == len(data)
    assert decode_packet(data).is_inter == bool(p.flags & FLAG_INTER)


def test_read_packets_back_to_back():
    packets = [make_packet(seq=i, payload=bytes(range(i))) for i in range(5)]
    buf = b"".join(encode_packet(p) for p in packets)
    offset, out = 0, []
    while offset < len(buf):
        p, offset = read_packet(buf, offset)
        out.append(p)
    assert out == packets and offset == len(buf)


def test_golden_layout():
    data = encode_packet(make_packet(payload=b"xy"))
    assert data[:4] == b"ECPK" and data[4] == 1 and data[5] == 0 and data[6] == 2 and data[7] == 0
    assert data[8:16] == FP
    assert struct.unpack_from("<IIQHHHHI", data, 16) == (3, 7, 1_700_000_000_123_456, 480, 640, 60, 80, 2)
    assert struct.unpack_from("<I", data, 44)[0] == zlib.crc32(b"xy", zlib.crc32(data[:44]))
    assert data[48:] == b"xy"


def test_bad_magic():
    data = encode_packet(make_packet())
    with pytest.raises(BadMagicError):
        decode_packet(b"XCPK" + data[4:])
    with pytest.raises(BadMagicError):
        decode_packet(b"EX")


def test_unsupported_version_and_flags():
    data = encode_packet(make_packet())
    with pytest.raises(UnsupportedVersionError):
        decode_packet(data[:4] + b"\x02" + data[5:])
    with pytest.raises(UnsupportedVersionError):
        decode_packet(reseal(data, 5, "<B", 0x02))
    with pytest.raises(UnsupportedVersionError):
        decode_packet(reseal(data, 7, "<B", 1))


@pytest.mark.parametrize("cut", [0, 2, 4, 5, 30, 47, 48, 60, 67])
def test_truncated(cut):
    data = encode_packet(make_packet())
    assert len(data) == 68
    with pytest.raises(TruncatedError):
        decode_packet(data[:cut])


def test_payload_longer_than_buffer_is_truncated():
    data = reseal(encode_packet(make_packet()), 40, "<I", 1000)
    with pytest.raises(TruncatedError):
        decode_packet(data)


def test_checksum_covers_payload_and_header():
    data = encode_packet(make_packet())
    with pytest.raises(ChecksumError):
        decode_packet(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumError):
        decode_packet(data[:20] + bytes([data[20] ^ 0x10]) + data[21:])  # sequence number
    with pytest.raises(ChecksumError):
        decode_packet(data[:44] + b"\0\0\0\0" + data[48:])


def test_unknown_model_names_fingerprint():
    data = encode_packet(make_packet())
    with pytest.raises(UnknownModelError, match="0123456789abcdef"):
        decode_packet(data, known_fingerprints={b"\xff" * 8})
    with pytest.raises(UnknownModelError):
        decode_packet(data, known_fingerprints=set())


def test_layer_range():
    data = encode_packet(make_packet(layer=3))
    assert decode_packet(data, num_layers=3).layer == 3
    with pytest.raises(LayerRangeError):
        decode_packet(data, num_layers=2)
    with pytest.raises(LayerRangeError):
        decode_packet(reseal(data, 6, "<B", 0))


@pytest.mark.parametrize(
    ("offset", "fmt", "value"),
    [(32, "<H", 0), (32, "<H", MAX_FRAME_SIDE + 1), (34, "<H", 65535), (36, "<H", 481), (38, "<H", 0),
     (40, "<I", MAX_PAYLOAD_BYTES + 1), (40, "<I", 2**32 - 1)],
)  # fmt: skip
def test_size_limits(offset, fmt, value):
    data = reseal(encode_packet(make_packet()), offset, fmt, value)
    with pytest.raises(SizeLimitError):
        decode_packet(data)
    with pytest.raises(SizeLimitError):
        packet_length(data[:HEADER_SIZE])


def test_grid_id_limit():
    big = make_packet(frame_h=8192, frame_w=8192, grid_h=2048, grid_w=2048)
    data = encode_packet(big)
    assert 2048 * 2048 == MAX_GRID_IDS
    with pytest.raises(SizeLimitError):
        decode_packet(reseal(data, 36, "<H", 2049))


def test_trailing_data():
    data = encode_packet(make_packet())
    with pytest.raises(TrailingDataError):
        decode_packet(data + b"\0")
    p, end = read_packet(data + b"\0")
    assert end == len(data)


def test_every_error_is_a_bitstream_error():
    for cls in (BadMagicError, ChecksumError, LayerRangeError, SizeLimitError, TrailingDataError, TruncatedError):
        assert issubclass(cls, BitstreamError)


@pytest.mark.parametrize(
    "changes",
    [{"fingerprint": b"short"}, {"layer": 0}, {"layer": 256}, {"flags": 2}, {"seq": -1}, {"seq": 2**32},
     {"timestamp_us": 2**64}, {"grid_h": 481}, {"frame_w": 0}, {"stream_id": 2**32}],
)  # fmt: skip
def test_encode_rejects_bad_fields(changes):
    with pytest.raises(ValueError):
        encode_packet(make_packet(**changes))


def test_encode_rejects_huge_payload(monkeypatch):
    monkeypatch.setattr(bitstream, "MAX_PAYLOAD_BYTES", 10)
    with pytest.raises(ValueError):
        encode_packet(make_packet(payload=b"x" * 11))


def test_read_packet_offset_out_of_range():
    with pytest.raises(ValueError):
        read_packet(b"abc", 4)

import array
import struct
import zlib
from dataclasses import replace

import pytest

from edgecodec import bitstream
from edgecodec.bitstream import (
    FLAG_INTER,
    FLAG_KEYFRAME,
    FORMAT_VERSION,
    HEADER_SIZE,
    HEADER_SIZE_V1,
    INTER_HEADER_SIZE,
    KNOWN_FLAGS,
    MAX_FRAME_SIDE,
    MAX_GRID_IDS,
    MAX_PAYLOAD_BYTES,
    MAX_REF_DELTA,
    MIN_HEADER_SIZE,
    READ_VERSIONS,
    Packet,
    decode_packet,
    encode_packet,
    header_size,
    packet_length,
    read_packet,
    replace_payload,
    resolve,
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
U32 = 2**32 - 1
I32 = 2**31

# (byte offset, struct format) of the header fields, per header
KEY = {"flags": (5, "<B"), "layer": (6, "<B"), "reserved": (7, "<B"), "fingerprint": (8, "<8s"),
       "stream_id": (16, "<I"), "session_id": (20, "<I"), "seq": (24, "<I"), "timestamp_us": (28, "<Q"),
       "frame_h": (36, "<H"), "frame_w": (38, "<H"), "grid_h": (40, "<H"), "grid_w": (42, "<H"),
       "payload_len": (44, "<I"), "crc": (48, "<I")}  # fmt: skip
INTER = {"flags": (5, "<B"), "layer": (6, "<B"), "ref_delta": (7, "<B"), "session_id": (8, "<I"), "seq": (12, "<I"),
         "timestamp_delta_us": (16, "<i"), "payload_len": (20, "<I"), "crc": (24, "<I")}  # fmt: skip
V1 = {"flags": (5, "<B"), "layer": (6, "<B"), "reserved": (7, "<B"), "fingerprint": (8, "<8s"),
      "stream_id": (16, "<I"), "seq": (20, "<I"), "timestamp_us": (24, "<Q"), "frame_h": (32, "<H"),
      "frame_w": (34, "<H"), "grid_h": (36, "<H"), "grid_w": (38, "<H"), "payload_len": (40, "<I"),
      "crc": (44, "<I")}  # fmt: skip


def make_packet(**changes) -> Packet:
    """A keyframe."""
    p = Packet(
        fingerprint=FP, layer=2, seq=7, timestamp_us=1_700_000_000_123_456, frame_h=480, frame_w=640,
        grid_h=60, grid_w=80, payload=b"\x01\x02\x03\x04" * 5, stream_id=3, session_id=0xDEADBEEF,
    )  # fmt: skip
    return replace(p, **changes)


REFERENCE = make_packet(payload=b"")


def inter_packet(**changes) -> Packet:
    """A P-frame referencing REFERENCE (seq 7), resolved: REFERENCE's fingerprint, stream and sizes."""
    p = replace(REFERENCE, flags=FLAG_INTER, seq=8, ref_seq=7, timestamp_delta_us=40_000,
                timestamp_us=REFERENCE.timestamp_us + 40_000, payload=b"\x05\x06\x07\x08" * 5)  # fmt: skip
    return replace(p, **changes)


def unresolved(p: Packet) -> Packet:
    """What a P-frame reads as before :func:`resolve`: its reference's fields are zero."""
    return replace(p, fingerprint=bytes(8), stream_id=0, timestamp_us=0, frame_h=0, frame_w=0, grid_h=0, grid_w=0,
                   resolved=False)  # fmt: skip


def encode_v1(p: Packet, flags: int = 0, reserved: int = 0) -> bytes:
    """A version 1 packet, as the version 1 writer made it (48-byte header, no session id, no reference)."""
    header = struct.pack(
        "<4sBBBB8sIIQHHHHI", b"ECPK", 1, flags, p.layer, reserved, p.fingerprint, p.stream_id, p.seq, p.timestamp_us,
        p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload),
    )  # fmt: skip
    return header + struct.pack("<I", zlib.crc32(p.payload, zlib.crc32(header))) + p.payload


def as_read_from_v1(p: Packet) -> Packet:
    """What a version 1 packet with ``p``'s fields reads as: a keyframe of session 0, version 1."""
    return replace(p, flags=FLAG_KEYFRAME, session_id=0, ref_seq=0, version=1)


def layout(data: bytes) -> dict[str, tuple[int, str]]:
    return V1 if data[4] == 1 else INTER if data[5] == FLAG_INTER else KEY


def reseal(data: bytes, field: str, value) -> bytes:
    """Overwrite one header field and fix the CRC, to reach the checks behind the checksum. The layout is the one of
    ``data`` before the change (a changed flags byte changes the header size)."""
    fields = layout(data)
    b = bytearray(data)
    struct.pack_into(fields[field][1], b, fields[field][0], value)
    crc_at = fields["crc"][0]
    size = struct.unpack_from("<I", b, fields["payload_len"][0])[0]
    payload = bytes(b[crc_at + 4 : crc_at + 4 + size])
    struct.pack_into("<I", b, crc_at, zlib.crc32(payload, zlib.crc32(bytes(b[:crc_at]))))
    return bytes(b)


def test_header_sizes():
    assert (HEADER_SIZE, INTER_HEADER_SIZE, HEADER_SIZE_V1, MIN_HEADER_SIZE) == (52, 28, 48, 28)
    assert (FORMAT_VERSION, READ_VERSIONS, MAX_REF_DELTA) == (3, (1, 2, 3), 255)
    assert len(encode_packet(make_packet(payload=b""))) == 52
    assert len(encode_packet(inter_packet(payload=b""))) == 28
    assert len(encode_v1(make_packet(payload=b""))) == 48
    for p, head in ((make_packet(), 52), (inter_packet(), 28), (as_read_from_v1(make_packet()), 48)):
        assert (p.header_size, p.size) == (head, head + 20)


@pytest.mark.parametrize(
    "changes",
    [{}, {"payload": b""}, {"layer": 255, "seq": U32, "timestamp_us": 2**64 - 1},
     {"frame_h": MAX_FRAME_SIDE, "frame_w": 1, "grid_h": 2048, "grid_w": 1}, {"stream_id": U32},
     {"session_id": 0}, {"session_id": U32}, {"seq": 0, "timestamp_us": 0}],
)  # fmt: skip
def test_round_trip(changes):
    p = make_packet(**changes)
    data = encode_packet(p)
    assert decode_packet(data) == p
    assert decode_packet(memoryview(data), known_fingerprints={FP}, num_layers=255) == p
    assert decode_packet(bytearray(data)) == p
    assert packet_length(data[:HEADER_SIZE]) == len(data) == p.size
    assert header_size(data) == HEADER_SIZE
    out = decode_packet(data)
    assert out.version == 3 and out.resolved and out.is_keyframe and not out.is_inter
    assert (out.ref_seq, out.timestamp_delta_us) == (0, 0)


@pytest.mark.parametrize(
    "changes",
    [{}, {"payload": b""}, {"seq": 7 + MAX_REF_DELTA}, {"seq": 0, "ref_seq": U32, "reference": {"seq": U32}},
     {"seq": MAX_REF_DELTA - 1, "ref_seq": U32, "reference": {"seq": U32}}, {"timestamp_delta_us": 0},
     {"timestamp_delta_us": -1, "timestamp_us": REFERENCE.timestamp_us - 1}, {"timestamp_delta_us": I32 - 1},
     {"timestamp_delta_us": -I32}, {"session_id": 0, "reference": {"session_id": 0}},
     {"session_id": U32, "reference": {"session_id": U32}}, {"layer": 255, "reference": {"layer": 255}}],
)  # fmt: skip
def test_inter_round_trip(changes):
    """A P-frame's header holds what its reference does not tell; :func:`resolve` gives back the rest."""
    changes = dict(changes)
    ref = replace(REFERENCE, **changes.pop("reference", {}))
    p = inter_packet(**changes)
    p = replace(p, timestamp_us=ref.timestamp_us + p.timestamp_delta_us)
    data = encode_packet(p)
    assert len(data) == INTER_HEADER_SIZE + len(p.payload) == p.size
    assert header_size(data) == packet_length(data[:INTER_HEADER_SIZE]) - len(p.payload) == INTER_HEADER_SIZE
    out = decode_packet(data)
    assert out == unresolved(p)
    assert out.is_inter and not out.is_keyframe and not out.resolved and out.version == 3
    assert decode_packet(memoryview(data), num_layers=255) == decode_packet(bytearray(data)) == out
    assert resolve(out, ref) == p


def test_encoding_a_p_frame_ignores_its_references_fields():
    """Fingerprint, stream, sizes and capture time are not written: any values give the same bytes."""
    p = inter_packet()
    other = replace(p, fingerprint=b"\xff" * 8, stream_id=99, timestamp_us=5, frame_h=1, frame_w=1, grid_h=1,
                    grid_w=1)  # fmt: skip
    assert encode_packet(other) == encode_packet(p) == encode_packet(unresolved(p))


def test_packet_defaults_to_a_version_2_keyframe():
    p = Packet(fingerprint=FP, layer=1, seq=0, timestamp_us=0, frame_h=1, frame_w=1, grid_h=1, grid_w=1, payload=b"")
    assert (p.flags, p.session_id, p.ref_seq, p.stream_id, p.timestamp_delta_us) == (FLAG_KEYFRAME, 0, 0, 0, 0)
    assert p.resolved and p.version == 3 and p.is_keyframe and not p.is_inter
    assert decode_packet(encode_packet(p)) == p


def test_read_packets_back_to_back():
    packets = [make_packet(seq=i, payload=bytes(range(i))) for i in range(5)]
    packets += [inter_packet(seq=5 + i, ref_seq=4 + i, payload=bytes(4 * i)) for i in range(3)]
    buf = b"".join(encode_packet(p) for p in packets)
    offset, out = 0, []
    while offset < len(buf):
        p, offset = read_packet(buf, offset)
        out.append(p)
    assert out == packets[:5] + [unresolved(p) for p in packets[5:]] and offset == len(buf)


def test_read_mixed_versions_back_to_back():
    old = [make_packet(seq=i, payload=bytes([i]) * i) for i in range(3)]
    new = [make_packet(seq=3, payload=b"key"), inter_packet(seq=4, ref_seq=3, payload=b"p")]
    buf = encode_v1(old[0]) + encode_packet(new[0]) + encode_v1(old[1]) + encode_packet(new[1]) + encode_v1(old[2])
    offset, out = 0, []
    while offset < len(buf):
        p, offset = read_packet(buf, offset)
        out.append(p)
    expected = [as_read_from_v1(old[0]), new[0], as_read_from_v1(old[1]), unresolved(new[1]), as_read_from_v1(old[2])]
    assert out == expected and offset == len(buf)
    assert [p.version for p in out] == [1, 3, 1, 3, 1]


def fields_of(data: bytes) -> dict:
    return {name: struct.unpack_from(fmt, data, offset)[0] for name, (offset, fmt) in layout(data).items()}


def test_golden_layout():
    data = encode_packet(make_packet(payload=b"xy"))
    assert data[:5] == b"ECPK\x03" and data[52:] == b"xy"
    crc = zlib.crc32(b"xy", zlib.crc32(data[:48]))
    expected = {**vars(make_packet(payload=b"xy")), "reserved": 0, "payload_len": 2, "crc": crc}
    assert fields_of(data) == {name: expected[name] for name in KEY}
    assert data[5] == FLAG_KEYFRAME and data[8:16] == FP


def test_golden_layout_inter():
    p = inter_packet(seq=3, ref_seq=U32 - 1, timestamp_delta_us=-40_000, payload=b"xyz")  # 5 frames back, across 0
    data = encode_packet(p)
    assert data[:5] == b"ECPK\x03" and data[28:] == b"xyz"
    crc = zlib.crc32(b"xyz", zlib.crc32(data[:24]))
    assert fields_of(data) == {"flags": FLAG_INTER, "layer": 2, "ref_delta": 5, "session_id": 0xDEADBEEF, "seq": 3,
                               "timestamp_delta_us": -40_000, "payload_len": 3, "crc": crc}  # fmt: skip
    assert decode_packet(data).ref_seq == U32 - 1


def test_version_1_packets_still_parse():
    p = make_packet(session_id=0, payload=b"old!")
    data = encode_v1(p)
    assert data[4] == 1 and len(data) == 48 + 4
    out = decode_packet(data, known_fingerprints={FP}, num_layers=2)
    assert out == as_read_from_v1(p)
    assert out.is_keyframe and not out.is_inter and out.resolved and out.version == 1 and out.size == len(data)
    assert header_size(data) == header_size(data[:6]) == HEADER_SIZE_V1
    assert packet_length(data[:HEADER_SIZE_V1]) == len(data)
    assert read_packet(data + b"tail") == (out, len(data))
    assert fields_of(data)["seq"] == 7 and fields_of(data)["payload_len"] == 4


def test_version_1_packet_written_again_is_version_2():
    """A packet read from a version 1 file is written in the current format, fields unchanged."""
    old = decode_packet(encode_v1(make_packet(payload=b"abcd")))
    data = encode_packet(old)
    assert data[4] == 2 and len(data) == 52 + 4
    assert decode_packet(data) == replace(old, version=2)


def test_version_1_inter_bit_is_refused():
    data = encode_v1(make_packet(), flags=FLAG_INTER)
    for buf in (data, data[:HEADER_SIZE_V1], data[:6]):
        with pytest.raises(UnsupportedVersionError, match="version 2"):
            decode_packet(buf)
    with pytest.raises(UnsupportedVersionError):
        packet_length(data[:HEADER_SIZE_V1])
    with pytest.raises(UnsupportedVersionError):
        header_size(data[:6])


@pytest.mark.parametrize(("flags", "reserved"), [(0x02, 0), (0x03, 0), (0x04, 0), (0x80, 0), (0, 1), (0, 0xFF)])
def test_version_1_undefined_bits_are_refused(flags, reserved):
    with pytest.raises(UnsupportedVersionError):
        decode_packet(encode_v1(make_packet(), flags=flags, reserved=reserved))


@pytest.mark.parametrize("version", [0, 4, 9, 255])
def test_unsupported_version(version):
    for data in (encode_packet(make_packet()), encode_packet(inter_packet())):
        with pytest.raises(UnsupportedVersionError, match=f"version {version} "):
            decode_packet(data[:4] + bytes([version]) + data[5:])
        with pytest.raises(UnsupportedVersionError):
            header_size(data[:4] + bytes([version]))


@pytest.mark.parametrize("flags", [0x00, 0x03, 0x04, 0x06, 0x05, 0x08, 0x80, 0xFF, 0x41])
def test_flags_must_be_exactly_keyframe_or_inter(flags):
    """Flags 0, both bits, or any unknown bit: refused when read (behind a valid CRC, and from the first 6 bytes
    alone, since the flags choose the header) and when written."""
    for data in (encode_packet(make_packet()), encode_packet(inter_packet())):
        bad = reseal(data, "flags", flags)
        with pytest.raises(UnsupportedVersionError, match="flags"):
            decode_packet(bad)
        with pytest.raises(UnsupportedVersionError):
            header_size(bad[:6])
        with pytest.raises(UnsupportedVersionError):
            packet_length(bad)
    for p in (make_packet(), inter_packet()):
        with pytest.raises(ValueError, match="flags"):
            encode_packet(replace(p, flags=flags))


def test_a_keyframe_reads_without_a_reference():
    """A keyframe's header has no reference: it always reads with ref_seq 0 and no time delta."""
    out = decode_packet(encode_packet(make_packet()))
    assert (out.ref_seq, out.timestamp_delta_us, out.resolved) == (0, 0, True)


@pytest.mark.parametrize("changes", [{"ref_seq": 1}, {"ref_seq": U32}, {"timestamp_delta_us": 40}])
def test_keyframe_must_not_name_a_reference(changes):
    with pytest.raises(ValueError):
        encode_packet(make_packet(**changes))


@pytest.mark.parametrize("seq", [0, 7, U32])
def test_inter_frame_must_not_reference_itself(seq):
    data = reseal(encode_packet(inter_packet(seq=seq, ref_seq=(seq - 1) % 2**32)), "ref_delta", 0)
    with pytest.raises(UnsupportedVersionError, match="itself"):
        decode_packet(data)
    with pytest.raises(UnsupportedVersionError):
        packet_length(data[:INTER_HEADER_SIZE])
    with pytest.raises(ValueError, match="1..255"):
        encode_packet(inter_packet(seq=seq, ref_seq=seq))


@pytest.mark.parametrize(("seq", "ref_seq"), [(300, 44), (7, 8), (0, 1), (0, U32 - 255), (U32, 0)])
def test_inter_reference_at_most_255_frames_back(seq, ref_seq):
    with pytest.raises(ValueError, match="1..255"):
        encode_packet(inter_packet(seq=seq, ref_seq=ref_seq))


def test_every_reference_delta_reads_back():
    for delta in (1, 2, 128, 255):
        out = decode_packet(reseal(encode_packet(inter_packet(seq=1000, ref_seq=999)), "ref_delta", delta))
        assert out.ref_seq == 1000 - delta


def test_reserved_byte_is_refused():
    with pytest.raises(UnsupportedVersionError):
        decode_packet(reseal(encode_packet(make_packet()), "reserved", 1))


def test_bad_magic():
    for data in (encode_packet(make_packet()), encode_packet(inter_packet())):
        with pytest.raises(BadMagicError):
            decode_packet(b"XCPK" + data[4:])
        with pytest.raises(BadMagicError):
            decode_packet(b"ECZF" + data[4:])
    with pytest.raises(BadMagicError):
        decode_packet(b"EX")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [(b"ECPK\x01\x00", 48), (b"ECPK\x02\x02", 52), (b"ECPK\x02\x01", 28), (b"ECPK\x01\x00" + bytes(100), 48),
     (b"ECPK\x02\x01\xff\xff", 28), (b"", TruncatedError), (b"E", TruncatedError), (b"ECP", TruncatedError),
     (b"ECPK", TruncatedError), (b"ECPK\x01", TruncatedError), (b"ECPK\x02", TruncatedError),
     (b"X", BadMagicError), (b"ECPX\x02\x02", BadMagicError), (b"\0" * 60, BadMagicError),
     (b"ecpk\x02\x02", BadMagicError), (b"ECPK\x00", UnsupportedVersionError),
     (b"ECPK\x04\x02", UnsupportedVersionError),
     (b"ECPK\xff" + bytes(60), UnsupportedVersionError), (b"ECPK\x02\x00", UnsupportedVersionError),
     (b"ECPK\x02\x03", UnsupportedVersionError), (b"ECPK\x01\x01", UnsupportedVersionError),
     (b"ECPK\x01\x02", UnsupportedVersionError), (b"ECPK\x03\x02", 52), (b"ECPK\x03\x01", 28),
     (b"ECPK\x03\x03", UnsupportedVersionError)],
)  # fmt: skip
def test_header_size_of_short_and_garbage_input(prefix, expected):
    for buf in (prefix, bytearray(prefix), memoryview(prefix)):
        if isinstance(expected, int):
            assert header_size(buf) == expected
        else:
            with pytest.raises(expected):
                header_size(buf)


def test_header_size_of_a_non_byte_buffer():
    words = array.array("I", [int.from_bytes(b"ECPK", "little"), 0x0102])  # reads as bytes: ECPK 02 01 00 00
    assert header_size(memoryview(words)) == INTER_HEADER_SIZE


@pytest.mark.parametrize("cut", [0, 2, 4, 5, 6, 27, 28, 30, 47, 48, 51, 52, 60, 71])
def test_truncated(cut):
    data = encode_packet(make_packet())
    assert len(data) == 72
    with pytest.raises(TruncatedError):
        decode_packet(data[:cut])


@pytest.mark.parametrize("cut", [0, 4, 5, 6, 20, 27, 28, 40, 47])
def test_truncated_inter(cut):
    data = encode_packet(inter_packet())
    assert len(data) == 48
    with pytest.raises(TruncatedError):
        decode_packet(data[:cut])


@pytest.mark.parametrize("cut", [0, 4, 5, 6, 30, 47, 48, 60, 67])
def test_truncated_version_1(cut):
    data = encode_v1(make_packet())
    assert len(data) == 68
    with pytest.raises(TruncatedError):
        decode_packet(data[:cut])


def test_packet_length_needs_the_whole_header():
    data = encode_packet(make_packet())
    with pytest.raises(TruncatedError):
        packet_length(data[:MIN_HEADER_SIZE])  # enough for a P-frame or to know the size, not for a keyframe
    with pytest.raises(TruncatedError):
        packet_length(data[: HEADER_SIZE - 1])
    assert packet_length(data[:HEADER_SIZE]) == len(data)
    inter = encode_packet(inter_packet())
    with pytest.raises(TruncatedError):
        packet_length(inter[: INTER_HEADER_SIZE - 1])
    assert packet_length(inter[:INTER_HEADER_SIZE]) == len(inter)


@pytest.mark.parametrize("encode", [encode_packet, lambda p: encode_packet(inter_packet()), encode_v1])
def test_payload_longer_than_buffer_is_truncated(encode):
    with pytest.raises(TruncatedError):
        decode_packet(reseal(encode(make_packet()), "payload_len", 1000))


def test_checksum_covers_payload_and_header():
    for data in (encode_packet(make_packet()), encode_packet(inter_packet())):
        with pytest.raises(ChecksumError):
            decode_packet(data[:-1] + bytes([data[-1] ^ 1]))
        for name, (at, _) in layout(data).items():  # every field that the checks before the CRC let through
            if name in ("flags", "reserved", "ref_delta", "payload_len", "crc"):
                continue
            with pytest.raises(ChecksumError):
                decode_packet(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
        crc_at = layout(data)["crc"][0]
        with pytest.raises(ChecksumError):
            decode_packet(data[:crc_at] + b"\0\0\0\0" + data[crc_at + 4 :])
    data = encode_packet(inter_packet())
    with pytest.raises(ChecksumError):
        decode_packet(data[:7] + bytes([data[7] ^ 2]) + data[8:])  # the reference delta


def test_checksum_of_version_1_packets():
    data = encode_v1(make_packet())
    with pytest.raises(ChecksumError):
        decode_packet(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumError):
        decode_packet(data[:20] + bytes([data[20] ^ 0x10]) + data[21:])  # sequence number
    with pytest.raises(ChecksumError):
        decode_packet(data[:44] + b"\0\0\0\0" + data[48:])


def test_unknown_model_names_fingerprint():
    for data in (encode_packet(make_packet()), encode_v1(make_packet())):
        with pytest.raises(UnknownModelError, match="0123456789abcdef"):
            decode_packet(data, known_fingerprints={b"\xff" * 8})
        with pytest.raises(UnknownModelError):
            decode_packet(data, known_fingerprints=set())


def test_p_frame_fingerprint_is_its_references():
    """A P-frame names no model: it is checked once resolved (``Codec.check``), with its reference's fingerprint."""
    out = decode_packet(encode_packet(inter_packet()), known_fingerprints={b"\xff" * 8})
    assert not out.resolved and resolve(out, REFERENCE).fingerprint == FP


@pytest.mark.parametrize("encode", [encode_packet, lambda p: encode_packet(inter_packet(layer=p.layer)), encode_v1])
def test_layer_range(encode):
    data = encode(make_packet(layer=3))
    assert decode_packet(data, num_layers=3).layer == 3
    with pytest.raises(LayerRangeError):
        decode_packet(data, num_layers=2)
    with pytest.raises(LayerRangeError):
        decode_packet(reseal(data, "layer", 0))


SIZE_LIMITS = [("frame_h", 0), ("frame_h", MAX_FRAME_SIDE + 1), ("frame_w", 65535), ("grid_h", 513), ("grid_w", 0),
               ("payload_len", MAX_PAYLOAD_BYTES + 1), ("payload_len", U32)]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), SIZE_LIMITS)
@pytest.mark.parametrize("encode", [encode_packet, encode_v1])
def test_size_limits(field, value, encode):
    data = reseal(encode(make_packet()), field, value)
    with pytest.raises(SizeLimitError):
        decode_packet(data)
    with pytest.raises(SizeLimitError):
        packet_length(data[: header_size(data)])


@pytest.mark.parametrize("value", [MAX_PAYLOAD_BYTES + 1, U32])
def test_size_limit_inter(value):
    data = reseal(encode_packet(inter_packet()), "payload_len", value)
    with pytest.raises(SizeLimitError):
        decode_packet(data)
    with pytest.raises(SizeLimitError):
        packet_length(data[:INTER_HEADER_SIZE])


def test_grid_id_limit():
    big = make_packet(frame_h=8192, frame_w=8192, grid_h=2048, grid_w=2048)
    data = encode_packet(big)
    assert 2048 * 2048 == MAX_GRID_IDS
    assert decode_packet(data) == big
    with pytest.raises(SizeLimitError):
        decode_packet(reseal(data, "grid_h", 2049))
    with pytest.raises(ValueError):
        encode_packet(replace(big, grid_h=2049))


def test_trailing_data():
    for data in (encode_packet(make_packet()), encode_packet(inter_packet()), encode_v1(make_packet())):
        with pytest.raises(TrailingDataError):
            decode_packet(data + b"\0")
        p, end = read_packet(data + b"\0")
        assert end == len(data)


def test_every_error_is_a_bitstream_error():
    for cls in (BadMagicError, ChecksumError, LayerRangeError, SizeLimitError, TrailingDataError, TruncatedError,
                UnknownModelError, UnsupportedVersionError):  # fmt: skip
        assert issubclass(cls, BitstreamError)


def test_known_flags():
    assert (FLAG_INTER, FLAG_KEYFRAME, KNOWN_FLAGS) == (0x01, 0x02, 0x03)


@pytest.mark.parametrize(
    "changes",
    [{"fingerprint": b"short"}, {"fingerprint": "01234567"}, {"layer": 0}, {"layer": 256}, {"flags": 0},
     {"flags": 3}, {"flags": 4}, {"flags": 0x12}, {"flags": -1}, {"seq": -1}, {"seq": 2**32}, {"timestamp_us": -1},
     {"timestamp_us": 2**64}, {"grid_h": 513}, {"frame_w": 0}, {"stream_id": -1}, {"stream_id": 2**32},
     {"session_id": -1}, {"session_id": 2**32}],
)  # fmt: skip
def test_encode_rejects_bad_fields(changes):
    with pytest.raises(ValueError):
        encode_packet(make_packet(**changes))


@pytest.mark.parametrize(
    "changes",
    [{"layer": 0}, {"layer": 256}, {"seq": -1}, {"seq": 2**32}, {"ref_seq": -1}, {"ref_seq": 2**32},
     {"session_id": -1}, {"session_id": 2**32}, {"timestamp_delta_us": I32}, {"timestamp_delta_us": -I32 - 1}],
)  # fmt: skip
def test_encode_rejects_bad_inter_fields(changes):
    with pytest.raises(ValueError):
        encode_packet(inter_packet(**changes))


@pytest.mark.parametrize("packet", [make_packet, inter_packet])
def test_encode_rejects_huge_payload(monkeypatch, packet):
    monkeypatch.setattr(bitstream, "MAX_PAYLOAD_BYTES", 10)
    with pytest.raises(ValueError):
        encode_packet(packet(payload=b"x" * 11))


def test_read_packet_offset_out_of_range():
    with pytest.raises(ValueError):
        read_packet(b"abc", 4)
    with pytest.raises(ValueError):
        read_packet(b"abc", -1)
    with pytest.raises(TruncatedError):
        read_packet(b"abc", 3)


# ---- resolving P-frames ---------------------------------------------------------------------------------------------
def test_resolve_completes_a_p_frame_from_its_reference():
    p = inter_packet()
    out = resolve(decode_packet(encode_packet(p)), REFERENCE)
    assert out == p and out.resolved
    assert out.timestamp_us == REFERENCE.timestamp_us + 40_000
    second = inter_packet(seq=9, ref_seq=8, timestamp_us=p.timestamp_us + 40_000)  # a P-frame of a P-frame
    assert resolve(decode_packet(encode_packet(second)), out) == second


def test_resolve_passes_keyframes_and_resolved_packets_through():
    key, p = make_packet(), inter_packet()
    assert resolve(key, REFERENCE) is key and resolve(p, make_packet(seq=1)) is p


@pytest.mark.parametrize("changes", [{"seq": 6}, {"session_id": 1}, {"layer": 3}])
def test_resolve_refuses_another_reference(changes):
    parsed = decode_packet(encode_packet(inter_packet()))
    with pytest.raises(BitstreamError, match="names frame 7"):
        resolve(parsed, replace(REFERENCE, **changes))


def test_resolve_needs_a_resolved_reference():
    parsed = decode_packet(encode_packet(inter_packet()))
    with pytest.raises(ValueError):
        resolve(parsed, unresolved(replace(REFERENCE, flags=FLAG_INTER, seq=7, ref_seq=6)))


@pytest.mark.parametrize(("ref_time", "delta"), [(0, -1), (1000, -1001), (2**64 - 1, 1), (2**64 - 10, I32 - 1)])
def test_resolve_refuses_a_capture_time_out_of_range(ref_time, delta):
    parsed = decode_packet(encode_packet(inter_packet(timestamp_delta_us=delta)))
    with pytest.raises(BitstreamError, match="capture time"):
        resolve(parsed, replace(REFERENCE, timestamp_us=ref_time))
    assert resolve(parsed, replace(REFERENCE, timestamp_us=ref_time - delta)).timestamp_us == ref_time


def test_replace_payload():
    p = inter_packet()
    assert replace_payload(p) == replace(p, payload=b"") and replace_payload(p, b"ab").payload == b"ab"

import importlib.util
import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgecodec.bitstream import (
    FLAG_INTER,
    FLAG_KEYFRAME,
    HEADER_SIZE,
    HEADER_SIZE_V1,
    INTER_HEADER_SIZE,
    Packet,
    decode_packet,
    encode_packet,
    resolve,
)
from edgecodec.coding.inter import modes
from edgecodec.container import (
    FILE_HEADER_SIZE,
    ContainerHeader,
    ContainerReader,
    ContainerWriter,
    container_bytes,
    read_container,
    write_container,
)
from edgecodec.entropy import decode_ids, encode_ids
from edgecodec.errors import (
    BadMagicError,
    BitstreamError,
    ChecksumError,
    TrailingDataError,
    TruncatedError,
    UnknownModelError,
    UnsupportedVersionError,
)

FP = bytes.fromhex("00112233445566aa")


def load_golden():
    spec = importlib.util.spec_from_file_location("make_golden", Path(__file__).with_name("make_golden.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def packets(n: int = 3, fp: bytes = FP) -> list[Packet]:
    """Keyframes at even, P-frames (referencing the frame before) at odd sequence numbers; packet i has 4i bytes of
    payload. P-frames are given resolved (their reference's fingerprint and sizes), as the reader returns them."""
    return [
        Packet(
            fingerprint=fp,
            layer=1,
            seq=i,
            timestamp_us=10 * i,
            frame_h=32,
            frame_w=48,
            grid_h=4,
            grid_w=6,
            payload=bytes([i]) * (4 * i),
            flags=FLAG_INTER if i % 2 else FLAG_KEYFRAME,
            session_id=0x5E55,
            ref_seq=i - 1 if i % 2 else 0,
            timestamp_delta_us=10 if i % 2 else 0,
        )
        for i in range(n)
    ]


def encode_v1(p: Packet, flags: int = 0) -> bytes:
    """A version 1 packet, as the version 1 writer made it (48-byte header, no session id, no reference)."""
    header = struct.pack(
        "<4sBBBB8sIIQHHHHI", b"ECPK", 1, flags, p.layer, 0, p.fingerprint, p.stream_id, p.seq, p.timestamp_us,
        p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload),
    )  # fmt: skip
    return header + struct.pack("<I", zlib.crc32(p.payload, zlib.crc32(header))) + p.payload


def as_read_from_v1(p: Packet) -> Packet:
    return replace(p, flags=FLAG_KEYFRAME, session_id=0, ref_seq=0, timestamp_delta_us=0, version=1)


HEADER = ContainerHeader(FP, "hqa-tiny-é", fps_num=30000, fps_den=1001)


def test_round_trip_path(tmp_path):
    path = tmp_path / "a.ecz"
    assert write_container(path, HEADER, packets()) == 3
    header, out = read_container(path)
    assert header == replace(HEADER, num_frames=3)  # the writer records the count on close
    assert header.fps == pytest.approx(29.97, abs=1e-3)
    assert out == packets()
    header, out = read_container(str(path))
    assert out == packets()


def test_round_trip_file_objects():
    buf = io.BytesIO()
    write_container(buf, HEADER, packets(4))
    buf.seek(0)
    header, out = read_container(buf)
    assert header == HEADER and header.num_frames == 0 and out == packets(4)
    assert container_bytes(HEADER, packets(4))[FILE_HEADER_SIZE:] == buf.getvalue()[FILE_HEADER_SIZE:]


def test_streaming_writer_and_reader(tmp_path):
    path = tmp_path / "s.ecz"
    with ContainerWriter(path, ContainerHeader(FP, "m")) as w:
        for p in packets(2):
            w.write(p)
        w.write_encoded(encode_packet(packets(3)[2]))
        with pytest.raises(ValueError):
            w.write(packets(1, fp=b"\x01" * 8)[0])
        with pytest.raises(UnknownModelError):
            w.write_encoded(encode_packet(packets(1, fp=b"\x01" * 8)[0]))
    with ContainerReader(path) as r:
        assert r.header.num_frames == 3 and r.header.fps is None
        assert list(r) == packets(3)


def test_empty_container(tmp_path):
    path = tmp_path / "e.ecz"
    write_container(path, HEADER, [])
    assert read_container(path) == (HEADER, [])


def test_header_validation():
    for bad in (
        ContainerHeader(b"short", "m"),
        ContainerHeader(FP, "x" * 256),
        ContainerHeader(FP, "m", fps_den=0),
        ContainerHeader(FP, "m", num_frames=-1),
    ):
        with pytest.raises(ValueError):
            bad.to_bytes()


def test_trailing_garbage():
    data = container_bytes(HEADER, packets())
    for junk in (b"\0", b"garbage", b"\xff" * 100):
        with pytest.raises(TrailingDataError):
            read_container(io.BytesIO(data + junk))
    unknown_count = HEADER.to_bytes() + b"".join(encode_packet(p) for p in packets()) + b"junk"
    with pytest.raises(TrailingDataError):
        read_container(io.BytesIO(unknown_count))
    extra_packet = data + encode_packet(packets(4)[3])  # header says 3 packets
    with pytest.raises(TrailingDataError):
        read_container(io.BytesIO(extra_packet))


def test_truncated_last_packet():
    data = container_bytes(HEADER, packets())
    with pytest.raises(TruncatedError):
        read_container(io.BytesIO(data[:-1]))
    with pytest.raises(TruncatedError):
        read_container(io.BytesIO(data[: len(data) - 8 - HEADER_SIZE + 10]))
    for cut in (1, 5, 6, INTER_HEADER_SIZE - 1, INTER_HEADER_SIZE, INTER_HEADER_SIZE + 1, HEADER_SIZE - 1, HEADER_SIZE):
        # the last packet (a keyframe) cut short: before the 28 bytes the reader takes first, or after them
        with pytest.raises(TruncatedError):
            read_container(io.BytesIO(data[: len(data) - 8 - HEADER_SIZE + cut]))
    inter = container_bytes(HEADER, packets(4))  # the last packet is a P-frame with 12 bytes of payload
    for cut in (1, 5, 6, INTER_HEADER_SIZE - 1, INTER_HEADER_SIZE, INTER_HEADER_SIZE + 11):
        with pytest.raises(TruncatedError):
            read_container(io.BytesIO(inter[: len(inter) - 12 - INTER_HEADER_SIZE + cut]))
    # header says 3 packets but only 2 complete ones are present
    with pytest.raises(TruncatedError):
        read_container(io.BytesIO(data[: len(data) - 8 - HEADER_SIZE]))


def test_truncation_at_every_offset_raises_only_bitstream_errors():
    data = container_bytes(HEADER, packets())
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            read_container(io.BytesIO(data[:cut]))


def test_file_header_errors():
    data = container_bytes(HEADER, packets())
    with pytest.raises(BadMagicError):
        read_container(io.BytesIO(b"ECPK" + data[4:]))
    with pytest.raises(UnsupportedVersionError):
        read_container(io.BytesIO(data[:4] + b"\x09" + data[5:]))
    with pytest.raises(ChecksumError):
        read_container(io.BytesIO(data[:FILE_HEADER_SIZE] + b"H" + data[FILE_HEADER_SIZE + 1 :]))
    with pytest.raises(ChecksumError):
        read_container(io.BytesIO(data[:16] + struct.pack("<I", 2) + data[20:]))


def test_packet_with_other_fingerprint_is_refused():
    data = HEADER.to_bytes() + encode_packet(packets(1, fp=b"\x07" * 8)[0])
    with pytest.raises(UnknownModelError):
        read_container(io.BytesIO(data))


def test_inter_frames_round_trip():
    ps = packets(6)
    assert [p.is_inter for p in ps] == [False, True, False, True, False, True]
    data = container_bytes(HEADER, ps)
    assert len(data) == len(HEADER.to_bytes()) + 3 * HEADER_SIZE + 3 * INTER_HEADER_SIZE + sum(4 * i for i in range(6))
    header, out = read_container(io.BytesIO(data))
    assert out == ps and header.num_frames == 6 and all(p.resolved for p in out)
    assert [(p.flags, p.ref_seq, p.session_id, p.version) for p in out[:2]] == [
        (FLAG_KEYFRAME, 0, 0x5E55, 3),
        (FLAG_INTER, 0, 0x5E55, 3),
    ]


def test_p_frame_without_its_reference_in_the_file():
    """The reader resolves a P-frame from an earlier packet of the file; where none is its reference, the file is
    refused (BitstreamError)."""
    ps = packets(4)
    for order in ([ps[1]], [ps[0], ps[3]], [ps[1], ps[0]], [ps[0], replace(ps[1], session_id=7)]):
        with pytest.raises(BitstreamError, match="reference"):
            read_container(io.BytesIO(container_bytes(HEADER, order)))
    p_of_session_0 = replace(ps[1], session_id=0)  # may reference a version 1 keyframe (session 0)
    data = HEADER.to_bytes() + encode_v1(ps[0]) + encode_packet(p_of_session_0)
    _, out = read_container(io.BytesIO(data))
    assert out == [as_read_from_v1(ps[0]), p_of_session_0]


def v1_container(ps: list[Packet]) -> bytes:
    return replace(HEADER, num_frames=len(ps)).to_bytes() + b"".join(encode_v1(p) for p in ps)


def test_version_1_packets_are_read():
    """Files written before format version 2 hold 48-byte-header packets: they read as keyframes of session 0."""
    ps = packets(3)
    header, out = read_container(io.BytesIO(v1_container(ps)))
    assert header.num_frames == 3
    assert out == [as_read_from_v1(p) for p in ps]
    assert all(p.version == 1 and p.is_keyframe for p in out)


def test_mixed_packet_versions_in_one_file():
    ps = packets(6)
    encoded = [encode_v1(ps[0]), encode_packet(ps[4]), encode_packet(ps[5]), encode_v1(ps[2])]
    data = replace(HEADER, num_frames=4).to_bytes() + b"".join(encoded)
    _, out = read_container(io.BytesIO(data))
    assert out == [as_read_from_v1(ps[0]), ps[4], ps[5], as_read_from_v1(ps[2])]
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            read_container(io.BytesIO(data[:cut]))


def test_version_1_packets_through_the_writer():
    old = encode_v1(packets(1)[0])
    buf = io.BytesIO()
    with ContainerWriter(buf, HEADER) as w:
        w.write_encoded(old)  # as received: kept byte for byte
        w.write(decode_packet(old))  # as parsed: written in the current format
    data = buf.getvalue()
    assert data[FILE_HEADER_SIZE + len(HEADER.model_name.encode()) :] == old + encode_packet(decode_packet(old))
    _, out = read_container(io.BytesIO(data))
    assert [p.version for p in out] == [1, 2]
    assert out[1] == replace(out[0], version=2)


def test_packets_the_reader_refuses():
    good = encode_packet(packets(1)[0])
    with pytest.raises(UnsupportedVersionError):
        read_container(io.BytesIO(HEADER.to_bytes() + good[:4] + b"\x04" + good[5:]))
    with pytest.raises(UnsupportedVersionError):
        read_container(io.BytesIO(HEADER.to_bytes() + encode_v1(packets(1)[0], flags=FLAG_INTER)))
    with pytest.raises(UnsupportedVersionError):
        ContainerWriter(io.BytesIO(), HEADER).write_encoded(encode_v1(packets(1)[0], flags=FLAG_INTER))


# ---- golden files (tests/make_golden.py) ----------------------------------------------------------------------------
def golden_message(golden) -> str:
    return (
        "the golden bitstream changed: the packet or container format or the entropy coder no longer produce the same "
        "bytes. If that is on purpose, bump FORMAT_VERSION / CONTAINER_VERSION as the change needs and regenerate "
        f"with `{golden.REGENERATE}`"
    )


def test_golden_packet():
    golden = load_golden()
    expected = golden.PACKET_FILE.read_bytes()
    assert golden.golden_packet_bytes() == expected, golden_message(golden)
    assert expected[4] == 3
    p = decode_packet(expected, known_fingerprints={golden.FINGERPRINT}, num_layers=2)
    assert p.is_keyframe and p.session_id == golden.SESSION_ID and p.ref_seq == 0
    ids = decode_ids(p.payload, golden.golden_prior(), (p.grid_h, p.grid_w))
    np.testing.assert_array_equal(ids, golden.golden_grids()[0])


def test_golden_inter_packet_with_near_code_ranks():
    """Version 2 inter tables: NEW ids coded as ranks in the reference code's near list, or in full."""
    golden = load_golden()
    expected = golden.INTER_NEAR_PACKET_FILE.read_bytes()
    assert golden.golden_inter_near_packet_bytes() == expected, golden_message(golden)
    p = decode_packet(expected)
    ref, ids = golden.golden_reference(), golden.golden_inter_near_ids()
    out = decode_ids(p.payload, golden.golden_inter_near_prior(), ref.shape, ref)
    np.testing.assert_array_equal(out, ids)
    assert golden.golden_inter_near_prior().near.shape == (golden.NUM_IDS, 8)


def test_golden_inter_packet():
    golden = load_golden()
    expected = golden.INTER_PACKET_FILE.read_bytes()
    assert golden.golden_inter_packet_bytes() == expected, golden_message(golden)
    parsed = decode_packet(expected, known_fingerprints={golden.FINGERPRINT}, num_layers=2)
    assert parsed.is_inter and not parsed.is_keyframe and not parsed.resolved
    assert (parsed.seq, parsed.ref_seq, parsed.session_id) == (1, 0, golden.SESSION_ID)
    reference = decode_packet(golden.PACKET_FILE.read_bytes())
    p = resolve(parsed, reference)
    assert p == golden.golden_packets()[1]
    ref, ids = golden.golden_reference(), golden.golden_inter_ids()
    out = decode_ids(p.payload, golden.golden_inter_prior(), (p.grid_h, p.grid_w), ref)
    np.testing.assert_array_equal(out, ids)
    # the golden P-frame exercises every part of the payload: unchanged positions, the four copies, NEW ids,
    # unchanged tiles and partial tiles
    assert set(np.unique(modes(ids, ref)).tolist()) == {-1, 0, 1, 2, 3, 4}
    assert golden.golden_inter_prior().block == golden.INTER_BLOCK and 12 % golden.INTER_BLOCK
    b = golden.INTER_BLOCK
    changed_tiles = {(y // b, x // b) for y, x in zip(*np.nonzero(ids != ref), strict=True)}
    assert 0 < len(changed_tiles) < -(-12 // b) * -(-16 // b)


def test_golden_container():
    golden = load_golden()
    expected = golden.CONTAINER_FILE.read_bytes()
    assert golden.golden_container_bytes() == expected, golden_message(golden)
    header, out = read_container(golden.CONTAINER_FILE)
    assert header == replace(golden.golden_header(), num_frames=len(golden.golden_frames()))
    assert out == golden.golden_packets()
    assert [p.is_inter for p in out] == [False, True, True, False, False, True]
    assert len(out[2].payload) <= 4  # a static P-frame
    intra, inter = golden.golden_prior(), golden.golden_inter_prior()
    decoded: dict[int, np.ndarray] = {}
    for p, (ids, _) in zip(out, golden.golden_frames(), strict=True):
        shape = (p.grid_h, p.grid_w)
        if p.is_inter:
            decoded[p.seq] = decode_ids(p.payload, inter, shape, decoded[p.ref_seq])
        else:
            decoded[p.seq] = decode_ids(p.payload, intra, shape)
        np.testing.assert_array_equal(decoded[p.seq], ids)


V1_FROZEN = "the version 1 goldens are never regenerated: this build must read them exactly as they are"


def test_golden_v1_packet():
    """Decode only: the version 1 writer is gone, so the bytes cannot be made again, only read."""
    golden = load_golden()
    data = golden.V1_PACKET_FILE.read_bytes()
    assert data[4] == 1 and len(data) == HEADER_SIZE_V1 + 192, V1_FROZEN
    p = decode_packet(data, known_fingerprints={golden.FINGERPRINT}, num_layers=2)
    assert replace(p, payload=b"") == golden.golden_v1_packets()[0], V1_FROZEN
    ids = decode_ids(p.payload, golden.golden_prior(), (p.grid_h, p.grid_w))
    np.testing.assert_array_equal(ids, golden.golden_grids()[0], err_msg=V1_FROZEN)


def test_golden_v1_container():
    golden = load_golden()
    header, out = read_container(golden.V1_CONTAINER_FILE)
    assert header == golden.golden_v1_header(), V1_FROZEN
    assert [replace(p, payload=b"") for p in out] == golden.golden_v1_packets(), V1_FROZEN
    for p, grid in zip(out, golden.golden_grids(), strict=True):
        np.testing.assert_array_equal(decode_ids(p.payload, golden.golden_prior(), grid.shape), grid, V1_FROZEN)
    assert out[0].payload == decode_packet(golden.V1_PACKET_FILE.read_bytes()).payload


def test_golden_files_are_all_known():
    golden = load_golden()
    files = {golden.PACKET_FILE, golden.INTER_PACKET_FILE, golden.INTER_NEAR_PACKET_FILE, golden.CONTAINER_FILE,
             golden.CONTEXT_PACKET_FILE, golden.V1_PACKET_FILE, golden.V1_CONTAINER_FILE, golden.V2_PACKET_FILE,
             golden.V2_INTER_PACKET_FILE, golden.V2_INTER_NEAR_PACKET_FILE, golden.V2_CONTAINER_FILE}  # fmt: skip
    assert set(golden.EXPECTED.iterdir()) == files


def test_golden_context_packet_is_coded_in_bands():
    """Version 3: a keyframe under a context prior, its 40-row grid coded in bands of 16, 16 and 8 rows."""
    golden = load_golden()
    expected = golden.CONTEXT_PACKET_FILE.read_bytes()
    assert golden.golden_context_packet_bytes() == expected, golden_message(golden)
    p = decode_packet(expected, known_fingerprints={golden.FINGERPRINT}, num_layers=2)
    assert p.version == 3 and p.is_keyframe and (p.grid_h, p.grid_w) == golden.CONTEXT_SHAPE
    prior, ids = golden.golden_context_prior(), golden.golden_context_ids()
    assert prior.band_rows == 16
    np.testing.assert_array_equal(decode_ids(p.payload, prior, golden.CONTEXT_SHAPE), ids)
    assert encode_ids(ids, prior.with_band_rows(None)) != p.payload  # the bands matter to this grid


@pytest.mark.parametrize(
    "name, index", [("V2_PACKET_FILE", 0), ("V2_INTER_PACKET_FILE", 1), ("V2_INTER_NEAR_PACKET_FILE", None)]
)
def test_version_2_goldens_still_read_and_write(name, index):
    """The version 2 goldens are the version 3 packets marked version 2: read back as such, and written again byte
    for byte from them (a payload coded for version 2 stays version 2)."""
    golden = load_golden()
    old = getattr(golden, name).read_bytes()
    assert old[4] == 2
    fresh = golden.golden_inter_near_packet_bytes() if index is None else encode_packet(golden.golden_packets()[index])
    as_v2 = replace(decode_packet(fresh), version=2)
    assert decode_packet(old) == as_v2
    assert encode_packet(as_v2) == old


def test_version_2_golden_container_still_decodes():
    golden = load_golden()
    header, out = read_container(golden.V2_CONTAINER_FILE)
    assert header == replace(golden.golden_header(), num_frames=len(golden.golden_frames()))
    assert out == [replace(p, version=2) for p in golden.golden_packets()]
    intra, inter = golden.golden_prior(), golden.golden_inter_prior()
    decoded: dict[int, np.ndarray] = {}
    for p, (ids, _) in zip(out, golden.golden_frames(), strict=True):
        shape = (p.grid_h, p.grid_w)
        ref = decoded.get(p.ref_seq) if p.is_inter else None
        decoded[p.seq] = decode_ids(p.payload, inter if p.is_inter else intra, shape, ref)
        np.testing.assert_array_equal(decoded[p.seq], ids)


def test_a_file_cut_inside_its_model_name_says_so():
    """A file cut right after its 32-byte header (or inside the model name) names what is missing."""
    data = container_bytes(HEADER, packets(2))
    for cut in (FILE_HEADER_SIZE, FILE_HEADER_SIZE + 1):
        with pytest.raises(TruncatedError, match=r"cut short: it ends \d+ bytes into its \d+-byte model name, before"):
            read_container(io.BytesIO(data[:cut]))

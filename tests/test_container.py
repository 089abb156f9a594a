import importlib.util
import io
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgecodec.bitstream import Packet, decode_packet, encode_packet
from edgecodec.container import (
    FILE_HEADER_SIZE,
    ContainerHeader,
    ContainerReader,
    ContainerWriter,
    container_bytes,
    read_container,
    write_container,
)
from edgecodec.entropy import decode_ids
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
        )
        for i in range(n)
    ]


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
        read_container(io.BytesIO(data[: len(data) - 8 - 48 + 10]))
    # header says 3 packets but only 2 complete ones are present
    with pytest.raises(TruncatedError):
        read_container(io.BytesIO(data[: len(data) - 8 - 48]))


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


def test_golden_container():
    golden = load_golden()
    expected = golden.CONTAINER_FILE.read_bytes()
    assert golden.golden_container_bytes() == expected, (
        f"format changed: bump FORMAT_VERSION / CONTAINER_VERSION and regenerate with `{golden.REGENERATE}`"
    )
    header, out = read_container(golden.CONTAINER_FILE)
    assert header == replace(golden.golden_header(), num_frames=3)
    assert out == golden.golden_packets()


def test_golden_packet():
    golden = load_golden()
    expected = golden.PACKET_FILE.read_bytes()
    assert golden.golden_packet_bytes() == expected, (
        f"format changed: bump FORMAT_VERSION and regenerate with `{golden.REGENERATE}`"
    )
    p = decode_packet(expected, known_fingerprints={golden.FINGERPRINT}, num_layers=2)
    ids = decode_ids(p.payload, golden.golden_prior(), (p.grid_h, p.grid_w))
    rng = np.random.default_rng(0)
    freqs = golden.golden_prior().freqs
    np.testing.assert_array_equal(ids, rng.choice(256, size=(12, 16), p=freqs / freqs.sum()))

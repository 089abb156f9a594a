"""Hostile input: only BitstreamError subclasses may come out, nothing may hang or allocate out of proportion."""

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecodec.bitstream import HEADER_SIZE, MAX_PAYLOAD_BYTES, Packet, decode_packet, encode_packet, read_packet
from edgecodec.container import ContainerHeader, container_bytes, read_container
from edgecodec.entropy import ContextPrior, StaticPrior, decode_ids, encode_ids, smooth_counts
from edgecodec.errors import BitstreamError, TruncatedError
from edgecodec.priors import PriorCounter

FP = b"fuzzfuzz"
PRIOR = StaticPrior(smooth_counts(np.arange(64, 0, -1, dtype=np.int64) ** 2))


def context_prior(period: int) -> ContextPrior:
    """A context prior counted on blocky grids, so that copies are likely and NEW ids skewed."""
    counter = PriorCounter(64, period)
    rng = np.random.default_rng(period)
    for _ in range(4):
        counter.add(np.kron(rng.integers(0, 64, size=(6, 8)), np.ones((3, 2), np.int64)))
    return ContextPrior.from_tensors(counter.unigram, counter.tensors())


CONTEXT_PRIORS = [context_prior(1), context_prior(2)]
CONTEXT_PAYLOADS = [encode_ids(np.kron(np.arange(6).reshape(2, 3), np.ones((3, 3), np.int64))[:5, :7], p)
                    for p in CONTEXT_PRIORS]
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def valid_packet(seq: int = 0) -> bytes:
    ids = np.random.default_rng(seq).integers(0, 64, size=(5, 7))
    return encode_packet(
        Packet(
            fingerprint=FP,
            layer=1,
            seq=seq,
            timestamp_us=seq,
            frame_h=20,
            frame_w=28,
            grid_h=5,
            grid_w=7,
            payload=encode_ids(ids, PRIOR),
        )
    )


PACKET = valid_packet()
CONTAINER = container_bytes(ContainerHeader(FP, "fuzz", fps_num=25), [decode_packet(valid_packet(i)) for i in range(3)])


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, bit in flips:
        b[pos % len(b)] ^= 1 << bit
    return bytes(b[:cut] if cut is not None else b)


mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=4),
    st.none() | st.integers(0, 10_000),
)


def only_bitstream_errors(fn, *args) -> None:
    try:
        fn(*args)
    except BitstreamError:
        pass


def parse_and_decode(data: bytes) -> None:
    p = decode_packet(data, known_fingerprints={FP}, num_layers=1)
    decode_ids(p.payload, PRIOR, (p.grid_h, p.grid_w))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    only_bitstream_errors(decode_packet, data)
    only_bitstream_errors(decode_packet, PACKET[:4] + data)
    only_bitstream_errors(read_container, io.BytesIO(data))
    only_bitstream_errors(read_container, io.BytesIO(CONTAINER[:8] + data))
    only_bitstream_errors(decode_ids, data, PRIOR, (5, 7))
    for prior in CONTEXT_PRIORS:
        only_bitstream_errors(decode_ids, data, prior, (5, 7))
        only_bitstream_errors(decode_ids, data, prior, (1, 3))


@FUZZ
@given(mutations)
def test_mutated_packet(mutation):
    only_bitstream_errors(parse_and_decode, mutate(PACKET, *mutation))


@FUZZ
@given(st.lists(st.tuples(st.integers(5, 43), st.integers(0, 7)), min_size=1, max_size=3))
def test_mutated_header_with_valid_crc(flips):
    """Flip header bits and fix the CRC, to reach the checks that sit behind the checksum."""
    b = bytearray(mutate(PACKET, flips, None))
    size = min(struct.unpack_from("<I", b, 40)[0], len(b) - HEADER_SIZE)
    struct.pack_into("<I", b, 44, zlib.crc32(bytes(b[HEADER_SIZE : HEADER_SIZE + size]), zlib.crc32(bytes(b[:44]))))
    only_bitstream_errors(parse_and_decode, bytes(b))


@FUZZ
@given(mutations)
def test_mutated_container(mutation):
    only_bitstream_errors(read_container, io.BytesIO(mutate(CONTAINER, *mutation)))


@FUZZ
@given(mutations)
def test_mutated_id_payload(mutation):
    payload = decode_packet(PACKET).payload
    only_bitstream_errors(decode_ids, mutate(payload, *mutation), PRIOR, (5, 7))
    for prior, payload in zip(CONTEXT_PRIORS, CONTEXT_PAYLOADS, strict=True):
        only_bitstream_errors(decode_ids, mutate(payload, *mutation), prior, (5, 7))


@FUZZ
@given(st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4]), st.integers(1, 40), st.integers(1, 40))
def test_context_prior_decodes_random_words_of_any_grid(data, h, w):
    """Random whole words for any grid shape: a grid of valid ids or a BitstreamError, nothing else."""
    for prior in CONTEXT_PRIORS:
        try:
            out = decode_ids(data, prior, (h, w))
        except BitstreamError:
            continue
        assert out.shape == (h, w) and out.min() >= 0 and out.max() < 64


@FUZZ
@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE + 64))
def test_random_bytes_behind_magic_and_version(data):
    only_bitstream_errors(read_packet, b"ECPK\x01" + data[5:])


def huge_claim(length: int) -> bytes:
    """A valid header (CRC and all) whose payload length claims ``length`` bytes, with none behind it."""
    b = bytearray(PACKET[:HEADER_SIZE])
    struct.pack_into("<I", b, 40, length)
    struct.pack_into("<I", b, 44, zlib.crc32(bytes(b[:44])))
    return bytes(b)


@pytest.mark.parametrize("length", [MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1, 2**32 - 1])
def test_huge_payload_claim_is_refused_without_allocating(length):
    header = huge_claim(length)
    container = CONTAINER[: len(CONTAINER) - len(PACKET) * 3] + header
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError):
            decode_packet(header)
        with pytest.raises(BitstreamError):
            read_container(io.BytesIO(container))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"peak allocation {peak} bytes for a {len(header)}-byte input"


def test_huge_claim_in_container_file_is_truncated(tmp_path):
    path = tmp_path / "huge.ecz"
    path.write_bytes(CONTAINER[: len(CONTAINER) - len(PACKET) * 3] + huge_claim(MAX_PAYLOAD_BYTES) + b"\0" * 1000)
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedError):
            read_container(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # one read chunk at most, never the claimed 64 MiB

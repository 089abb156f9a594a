"""Hostile input: only BitstreamError subclasses may come out, nothing may hang or allocate out of proportion.

Covers packets of both format versions, ``.ecz`` files, and the payloads of every prior: static, context and the
inter prior of P-frames (corrupt payloads, payloads behind a valid CRC, wrong references, wrong grid shapes).

CI runs :data:`CI_EXAMPLES` hypothesis examples in all, split in :data:`EXAMPLES` (about 15 s on two cores);
``EDGECODEC_FUZZ_SCALE=10 python -m pytest tests/test_fuzz_bitstream.py`` runs ten times as many.
"""

import io
import os
import struct
import tracemalloc
import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecodec.bitstream import (
    FLAG_INTER,
    HEADER_SIZE,
    HEADER_SIZE_V1,
    INTER_HEADER_SIZE,
    MAX_PAYLOAD_BYTES,
    Packet,
    decode_packet,
    encode_packet,
    read_packet,
    resolve,
)
from edgecodec.coding.inter import InterCounter, InterPrior
from edgecodec.container import ContainerHeader, container_bytes, read_container
from edgecodec.entropy import ContextPrior, StaticPrior, decode_ids, encode_ids, smooth_counts
from edgecodec.errors import BitstreamError, TruncatedError
from edgecodec.priors import PriorCounter

K = 64
FP = b"fuzzfuzz"
PRIOR = StaticPrior(smooth_counts(np.arange(K, 0, -1, dtype=np.int64) ** 2))

CI_EXAMPLES = 10_000
"""Hypothesis examples per CI run, all the tests below together."""
EXAMPLES = {
    "test_random_bytes": 1200,
    "test_mutated_packet": 1500,
    "test_mutated_header_with_valid_crc": 1000,
    "test_mutated_version_1_header_with_valid_crc": 500,
    "test_mutated_container": 1000,
    "test_mutated_id_payload": 1200,
    "test_inter_payload_with_valid_crc": 1000,
    "test_random_words_of_any_grid": 800,
    "test_inter_frame_against_a_wrong_reference": 800,
    "test_inter_frame_of_a_wrong_shape": 600,
    "test_random_bytes_behind_magic_and_version": 400,
}
SCALE = float(os.environ.get("EDGECODEC_FUZZ_SCALE", "1"))


def fuzz(name: str) -> settings:
    """The settings of one fuzz test: its share of the examples, and a deadline that catches a hang."""
    return settings(
        max_examples=max(1, round(EXAMPLES[name] * SCALE)),
        deadline=2000,
        suppress_health_check=[HealthCheck.too_slow],
    )


def context_prior(period: int) -> ContextPrior:
    """A context prior counted on blocky grids, so that copies are likely and NEW ids skewed."""
    counter = PriorCounter(K, period)
    rng = np.random.default_rng(period)
    for _ in range(4):
        counter.add(np.kron(rng.integers(0, K, size=(6, 8)), np.ones((3, 2), np.int64)))
    return ContextPrior.from_tensors(counter.unigram, counter.tensors())


def blocky(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Ids in 2 x 2 blocks, cropped to ``shape``: neighbours are often equal, as in real grids."""
    h, w = shape
    return np.kron(rng.integers(0, K, size=(-(-h // 2), -(-w // 2))), np.ones((2, 2), np.int64))[:h, :w]


def p_frame(rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """Ids of a P-frame against ``ref``: some positions copy their left or upper reference neighbour, some are new."""
    ids = ref.copy()
    left, up, new = (rng.random(ref.shape) < q for q in (0.15, 0.15, 0.1))
    ids[:, 1:][left[:, 1:]] = ref[:, :-1][left[:, 1:]]
    ids[1:, :][up[1:, :]] = ref[:-1, :][up[1:, :]]
    ids[new] = rng.integers(0, K, size=int(new.sum()))
    return ids


def inter_prior() -> InterPrior:
    """An inter prior counted over 16 pairs of 5 x 7 grids, with 3 x 3 tiles (they do not divide the grid)."""
    counter = InterCounter(K, block=3)
    rng = np.random.default_rng(7)
    for _ in range(16):
        ref = blocky(rng, (5, 7))
        counter.add(p_frame(rng, ref), ref)
    return InterPrior.from_tensors(counter.tensors())


CONTEXT_PRIORS = [context_prior(1), context_prior(2)]
# format version 3 codes keyframes in bands, decoded side by side: bands of 2 rows (a 5-row grid has three, the last
# of one row) and of 16 (most fuzzed grids have one or two)
CONTEXT_PRIORS += [p.with_band_rows(rows) for p in CONTEXT_PRIORS for rows in (2, 16)]
CONTEXT_PAYLOADS = [encode_ids(np.kron(np.arange(6).reshape(2, 3), np.ones((3, 3), np.int64))[:5, :7], p)
                    for p in CONTEXT_PRIORS]  # fmt: skip
INTER_PRIOR = inter_prior()
_rng = np.random.default_rng(1)
REF = blocky(_rng, (5, 7))
INTER_IDS = p_frame(_rng, REF)
INTER_PAYLOAD = encode_ids(INTER_IDS, INTER_PRIOR, REF)


def packet(seq: int = 0, *, ref_seq: int | None = None) -> Packet:
    """A valid keyframe (random ids under PRIOR), or with ``ref_seq`` the P-frame INTER_IDS against REF."""
    if ref_seq is None:
        payload, extra = encode_ids(np.random.default_rng(seq).integers(0, K, size=(5, 7)), PRIOR), {}
    else:
        payload, extra = INTER_PAYLOAD, {"flags": FLAG_INTER, "ref_seq": ref_seq, "timestamp_delta_us": seq - ref_seq}
    return Packet(fingerprint=FP, layer=1, seq=seq, timestamp_us=seq, frame_h=20, frame_w=28, grid_h=5, grid_w=7,
                  payload=payload, session_id=0xF022, **extra)  # fmt: skip


def encode_v1(p: Packet) -> bytes:
    """The packet as the version 1 writer made it (48-byte header)."""
    header = struct.pack(
        "<4sBBBB8sIIQHHHHI", b"ECPK", 1, 0, p.layer, 0, p.fingerprint, p.stream_id, p.seq, p.timestamp_us,
        p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload),
    )  # fmt: skip
    return header + struct.pack("<I", zlib.crc32(p.payload, zlib.crc32(header))) + p.payload


PACKET = encode_packet(packet())
KEY = decode_packet(PACKET)  # the reference of PACKET_INTER
PACKET_INTER = encode_packet(packet(1, ref_seq=0))
PACKET_V1 = encode_v1(packet())
PACKETS = [PACKET, PACKET_INTER, PACKET_V1]
CONTAINER_PACKETS = [packet(0), packet(1, ref_seq=0), packet(2), packet(3, ref_seq=2)]
CONTAINER_HEADER = ContainerHeader(FP, "fuzz", fps_num=25)
CONTAINER = container_bytes(CONTAINER_HEADER, CONTAINER_PACKETS)
CONTAINER_MIXED = replace(CONTAINER_HEADER, num_frames=3).to_bytes() + PACKET_V1 + PACKET + PACKET_INTER


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, bit in flips:
        b[pos % len(b)] ^= 1 << bit
    return bytes(b[:cut] if cut is not None else b)


def header_of(b: bytes | bytearray) -> int:
    """The header size the parser will see: 48 for version 1, 28 for a P-frame, else 52. In all three the payload
    length and the CRC are the last 8 bytes of the header."""
    return HEADER_SIZE_V1 if b[4] == 1 else INTER_HEADER_SIZE if b[5] == FLAG_INTER else HEADER_SIZE


def reseal(b: bytearray) -> bytes:
    """Fix the CRC of a (mutated) packet of any header, so that the checks behind the checksum are reached."""
    head = header_of(b)
    if len(b) < head:
        return bytes(b)
    size = min(struct.unpack_from("<I", b, head - 8)[0], len(b) - head)
    struct.pack_into("<I", b, head - 4, zlib.crc32(bytes(b[head : head + size]), zlib.crc32(bytes(b[: head - 4]))))
    return bytes(b)


mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), max_size=4),
    st.none() | st.integers(0, 10_000),
)


def only_bitstream_errors(fn, *args) -> None:
    try:
        fn(*args)
    except BitstreamError:
        pass


def check_grid(out: np.ndarray, shape: tuple[int, int]) -> None:
    assert out.shape == shape and out.dtype == np.int32 and out.min() >= 0 and out.max() < K


def decode_checked(payload: bytes, prior, shape: tuple[int, int], previous: np.ndarray | None = None) -> None:
    """Decode; a BitstreamError, or else a grid of the shape asked with ids in [0, K)."""
    try:
        out = decode_ids(payload, prior, shape, previous)
    except BitstreamError:
        return
    check_grid(out, shape)


def parse_and_decode(data: bytes) -> None:
    """What a receiver does: parse, then decode a keyframe alone, or resolve a P-frame from the reference it holds
    (KEY, whose ids are REF) and decode it against REF. ``resolve`` refuses a P-frame that names another reference
    (BitstreamError); the receiver's ReferenceStore raises MissingReferenceError for it before that."""
    p = decode_packet(data, known_fingerprints={FP}, num_layers=1)
    if not p.is_inter:
        decode_checked(p.payload, PRIOR, (p.grid_h, p.grid_w))
        return
    p = resolve(p, KEY)
    assert (p.grid_h, p.grid_w) == REF.shape and p.fingerprint == FP
    decode_checked(p.payload, INTER_PRIOR, (p.grid_h, p.grid_w), REF)


def test_fixtures_are_valid():
    assert decode_packet(PACKET_INTER).is_inter and decode_packet(PACKET_V1).version == 1
    assert [header_of(p) for p in PACKETS] == [HEADER_SIZE, INTER_HEADER_SIZE, HEADER_SIZE_V1]
    parse_and_decode(PACKET_INTER)
    np.testing.assert_array_equal(decode_ids(INTER_PAYLOAD, INTER_PRIOR, REF.shape, REF), INTER_IDS)
    assert (INTER_IDS != REF).any() and (INTER_IDS == REF).any()
    assert [(p.version, p.is_inter) for p in read_container(io.BytesIO(CONTAINER_MIXED))[1]] == [
        (1, False),
        (3, False),
        (3, True),
    ]
    assert read_container(io.BytesIO(CONTAINER))[1] == CONTAINER_PACKETS


@fuzz("test_random_bytes")
@given(st.binary(max_size=300))
def test_random_bytes(data):
    only_bitstream_errors(decode_packet, data)
    only_bitstream_errors(decode_packet, PACKET[:4] + data)
    only_bitstream_errors(decode_packet, PACKET[:5] + data)
    only_bitstream_errors(decode_packet, PACKET_V1[:5] + data)
    only_bitstream_errors(read_container, io.BytesIO(data))
    only_bitstream_errors(read_container, io.BytesIO(CONTAINER[:8] + data))
    decode_checked(data, PRIOR, (5, 7))
    for prior in CONTEXT_PRIORS:
        decode_checked(data, prior, (5, 7))
        decode_checked(data, prior, (1, 3))
    decode_checked(data, INTER_PRIOR, (5, 7), REF)
    decode_checked(data, INTER_PRIOR, (1, 3), REF[:1, :3])


@fuzz("test_mutated_packet")
@given(mutations)
def test_mutated_packet(mutation):
    for data in PACKETS:
        only_bitstream_errors(parse_and_decode, mutate(data, *mutation))


def header_flips(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    """Flip bits of the header fields between the magic and the CRC (``pos`` taken modulo that span), fix the CRC."""
    span = header_of(data) - 4 - 5
    return reseal(bytearray(mutate(data, [(5 + pos % span, bit) for pos, bit in flips], None)))


header_mutations = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=3)


@fuzz("test_mutated_header_with_valid_crc")
@given(header_mutations)
def test_mutated_header_with_valid_crc(flips):
    """Flip version 2 header bits (flags, reference delta, sizes, ...) and fix the CRC, to reach the checks behind
    it: a keyframe's and a P-frame's."""
    for data in (PACKET, PACKET_INTER):
        only_bitstream_errors(parse_and_decode, header_flips(data, flips))


@fuzz("test_mutated_version_1_header_with_valid_crc")
@given(header_mutations)
def test_mutated_version_1_header_with_valid_crc(flips):
    only_bitstream_errors(parse_and_decode, header_flips(PACKET_V1, flips))


@fuzz("test_mutated_container")
@given(mutations)
def test_mutated_container(mutation):
    only_bitstream_errors(read_container, io.BytesIO(mutate(CONTAINER, *mutation)))
    only_bitstream_errors(read_container, io.BytesIO(mutate(CONTAINER_MIXED, *mutation)))


@fuzz("test_mutated_id_payload")
@given(mutations)
def test_mutated_id_payload(mutation):
    decode_checked(mutate(decode_packet(PACKET).payload, *mutation), PRIOR, (5, 7))
    for prior, payload in zip(CONTEXT_PRIORS, CONTEXT_PAYLOADS, strict=True):
        decode_checked(mutate(payload, *mutation), prior, (5, 7))
    decode_checked(mutate(INTER_PAYLOAD, *mutation), INTER_PRIOR, (5, 7), REF)


@fuzz("test_inter_payload_with_valid_crc")
@given(mutations)
def test_inter_payload_with_valid_crc(mutation):
    """A corrupted P-frame payload in a packet whose CRC is right (corrupted before it was sealed): the packet
    parses, and decoding it against its reference gives a BitstreamError or a grid of valid ids."""
    p = decode_packet(PACKET_INTER)
    corrupt = replace(p, payload=mutate(p.payload, *mutation))
    out = decode_packet(encode_packet(corrupt))
    assert out == corrupt and out.is_inter
    out = resolve(out, KEY)
    decode_checked(out.payload, INTER_PRIOR, (out.grid_h, out.grid_w), REF)


@fuzz("test_random_words_of_any_grid")
@given(st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4]), st.integers(1, 40), st.integers(1, 40),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_random_words_of_any_grid(data, h, w, seed):
    """Random whole words for any grid shape (and any reference of that shape): valid ids or a BitstreamError."""
    for prior in CONTEXT_PRIORS:
        decode_checked(data, prior, (h, w))
    ref = np.random.default_rng(seed).integers(0, K, size=(h, w))
    decode_checked(data, INTER_PRIOR, (h, w), ref)
    decode_checked(data, INTER_PRIOR, (h, w), np.zeros((h, w), np.int64))  # a flat reference: nothing to copy


@fuzz("test_inter_frame_against_a_wrong_reference")
@given(st.lists(st.integers(0, K - 1), min_size=35, max_size=35), st.lists(st.integers(0, 34), max_size=6))
def test_inter_frame_against_a_wrong_reference(ids, keep):
    """A valid P-frame decoded against another reference of the right shape (the receiver lost track): a
    BitstreamError or some grid of valid ids, never a crash."""
    ref = np.array(ids, np.int64).reshape(REF.shape)
    ref.reshape(-1)[keep] = REF.reshape(-1)[keep]  # sometimes close to the right one
    decode_checked(INTER_PAYLOAD, INTER_PRIOR, REF.shape, ref)


@fuzz("test_inter_frame_of_a_wrong_shape")
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_inter_frame_of_a_wrong_shape(h, w, seed):
    """A valid P-frame decoded as a grid of another shape, against a reference of that shape."""
    ref = blocky(np.random.default_rng(seed), (h, w))
    decode_checked(INTER_PAYLOAD, INTER_PRIOR, (h, w), ref)
    big = np.zeros((h + 5, w + 7), np.int64)
    big[:5, :7] = REF  # the right reference inside a larger grid
    decode_checked(INTER_PAYLOAD, INTER_PRIOR, big.shape, big)


def test_inter_frame_without_its_reference_is_a_caller_error():
    """The entropy layer cannot decode a P-frame without its reference, or against one of another shape than the
    packet's grid: ValueError from the inter prior (InterPrior._reference), not a BitstreamError. The receiver never
    gets there: ``Codec.packet_ids`` raises MissingReferenceError first, for a missing reference and for one of
    another shape alike."""
    with pytest.raises(ValueError, match="previous is required"):
        decode_ids(INTER_PAYLOAD, INTER_PRIOR, REF.shape)
    with pytest.raises(ValueError, match="previous is required"):
        encode_ids(INTER_IDS, INTER_PRIOR)
    with pytest.raises(ValueError, match="does not match"):
        decode_ids(INTER_PAYLOAD, INTER_PRIOR, REF.shape, REF[:, :6])
    with pytest.raises(ValueError, match="does not match"):
        decode_ids(INTER_PAYLOAD, INTER_PRIOR, (7, 5), REF)


@fuzz("test_random_bytes_behind_magic_and_version")
@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE + 64))
def test_random_bytes_behind_magic_and_version(data):
    only_bitstream_errors(read_packet, b"ECPK\x01" + data[5:])
    only_bitstream_errors(read_packet, b"ECPK\x01\x00" + data[6:])
    only_bitstream_errors(read_packet, b"ECPK\x02" + data[5:])
    only_bitstream_errors(read_packet, b"ECPK\x02\x01" + data[6:])
    only_bitstream_errors(read_packet, b"ECPK\x02\x02" + data[6:])


def test_fuzz_budget():
    """Every fuzz test runs its share of the CI budget, and the shares add up to CI_EXAMPLES."""
    assert sum(EXAMPLES.values()) == CI_EXAMPLES
    fuzzed = {name: fn for name, fn in globals().items() if name.startswith("test_") and hasattr(fn, "hypothesis")}
    assert set(fuzzed) == set(EXAMPLES)
    for name, fn in fuzzed.items():
        used = getattr(fn, "_hypothesis_internal_use_settings", None)  # hypothesis internals: checked where present
        assert used is None or used.max_examples == max(1, round(EXAMPLES[name] * SCALE)), name


def huge_claim(length: int, data: bytes = PACKET) -> bytes:
    """A valid header (CRC and all) whose payload length claims ``length`` bytes, with none behind it."""
    head = header_of(data)
    b = bytearray(data[:head])
    struct.pack_into("<I", b, head - 8, length)
    struct.pack_into("<I", b, head - 4, zlib.crc32(bytes(b[: head - 4])))
    return bytes(b)


@pytest.mark.parametrize("data", [PACKET, PACKET_INTER, PACKET_V1], ids=["key", "inter", "v1"])
@pytest.mark.parametrize("length", [MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1, 2**32 - 1])
def test_huge_payload_claim_is_refused_without_allocating(length, data):
    header = huge_claim(length, data)
    container = CONTAINER_HEADER.to_bytes() + header
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


@pytest.mark.parametrize("data", [PACKET, PACKET_V1], ids=["v2", "v1"])
def test_huge_claim_in_container_file_is_truncated(tmp_path, data):
    path = tmp_path / "huge.ecz"
    path.write_bytes(CONTAINER_HEADER.to_bytes() + huge_claim(MAX_PAYLOAD_BYTES, data) + b"\0" * 1000)
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedError):
            read_container(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # one read chunk at most, never the claimed 64 MiB

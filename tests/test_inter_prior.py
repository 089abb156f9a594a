"""The inter prior of P-frames (edgecodec/coding/inter.py): round trips, cost, tables, counts and corrupt payloads."""

import zlib

import numpy as np
import pytest

from edgecodec.coding import inter
from edgecodec.coding.inter import (
    INTER_OFFSETS,
    InterCounter,
    InterPrior,
    count_segments,
    inter_tables,
    mode_contexts,
    modes,
    read_count,
)
from edgecodec.entropy import decode_ids, encode_ids
from edgecodec.errors import BitstreamError
from edgecodec.priors import Segment, SequentialPrior, Tables, ideal_bits

K = 64
SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (5, 7), (12, 16), (13, 17)]


def blocky(rng: np.random.Generator, shape: tuple[int, int], side: int = 2) -> np.ndarray:
    h, w = shape
    return np.kron(rng.integers(0, K, size=(-(-h // side), -(-w // side))), np.ones((side, side), np.int64))[:h, :w]


def counted_prior(block: int = 4, seed: int = 0) -> InterPrior:
    """Tables counted on blocky reference grids with moved windows, flicker and new ids."""
    counter = InterCounter(K, block)
    rng = np.random.default_rng(seed)
    for _ in range(24):
        ref = blocky(rng, (12, 16))
        counter.add(structured(rng, ref, str(rng.choice(["shifted", "flicker", "random"]))), ref)
    return InterPrior.from_tensors(counter.tensors())


def structured(rng: np.random.Generator, ref: np.ndarray, kind: str) -> np.ndarray:
    """A P-frame of ``kind`` against ``ref``: static, shifted (a window moved one step), flicker (ids on edges
    switch to a neighbour's), random (some new ids), all_new (every id new and different)."""
    h, w = ref.shape
    ids = ref.copy()
    if kind == "shifted":
        dy, dx = INTER_OFFSETS[int(rng.integers(4))]
        moved = np.roll(ref, (-dy, -dx), axis=(0, 1))  # moved[y, x] = ref[y + dy, x + dx]
        y0, x0 = int(rng.integers(h)), int(rng.integers(w))
        ids[y0 : y0 + 6, x0 : x0 + 6] = moved[y0 : y0 + 6, x0 : x0 + 6]
    elif kind == "flicker":
        edge = mode_contexts(ref) > 0
        switch = edge & (rng.random(ref.shape) < 0.3)
        ids[:, 1:][switch[:, 1:]] = ref[:, :-1][switch[:, 1:]]
    elif kind == "random":
        new = rng.random(ref.shape) < 0.2
        ids[new] = rng.integers(0, K, size=int(new.sum()))
    elif kind == "all_new":
        ids = (ref + 1 + rng.integers(0, K - 1, size=ref.shape)) % K
    return ids


PRIORS = {block: counted_prior(block) for block in (1, 3, 4, 5, 64)}


def round_trip(ids: np.ndarray, ref: np.ndarray, prior: InterPrior) -> bytes:
    payload = encode_ids(ids, prior, ref)
    out = decode_ids(payload, prior, ids.shape, ref)
    np.testing.assert_array_equal(out, ids)
    assert out.dtype == np.int32
    return payload


def assert_size_near_ideal(payload: bytes, ids: np.ndarray, ref: np.ndarray, prior: InterPrior) -> None:
    """The payload is whole 32-bit words, at most the ANS overhead (the final state, 64 bits) over the ideal code
    length. It may be shorter: constriction's coder starts from an empty state, on which the first symbols pushed
    (the last decoded) cost nothing while they are symbol 0 of their table (e.g. trailing copies from the left)."""
    ideal = ideal_bits(ids, prior, ref)
    assert len(payload) % 4 == 0
    assert 8 * len(payload) <= ideal * 1.002 + 64, (len(payload), ideal)


def test_is_a_sequential_prior():
    prior = PRIORS[4]
    assert isinstance(prior, SequentialPrior) and prior.num_ids == K and prior.block == 4
    assert repr(prior) == "InterPrior(num_ids=64, block=4)"
    assert prior.mode_tables.freqs.shape == (16, 5) and prior.new_table.freqs.shape == (1, K)
    np.testing.assert_array_equal(prior.new_bits, -np.log2(prior.new_table.probabilities[0]))


@pytest.mark.parametrize("block", sorted(PRIORS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["static", "shifted", "flicker", "random", "all_new"])
def test_round_trip(shape, block, kind):
    rng = np.random.default_rng(zlib.crc32(repr((shape, block, kind)).encode()))
    prior = PRIORS[block]
    for ref in (blocky(rng, shape), rng.integers(0, K, size=shape)):
        ids = structured(rng, ref, kind)
        payload = round_trip(ids, ref, prior)
        assert_size_near_ideal(payload, ids, ref, prior)


@pytest.mark.parametrize("seed", range(8))
def test_round_trip_random_grids(seed):
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
    prior = PRIORS[int(rng.choice(sorted(PRIORS)))]
    ref = rng.integers(0, K, size=shape)
    ids = np.where(rng.random(shape) < rng.random(), rng.integers(0, K, size=shape), ref)
    assert_size_near_ideal(round_trip(ids, ref, prior), ids, ref, prior)


def test_round_trip_at_layer_1_size():
    """A 640 x 480 frame at layer 1: a 240 x 320 grid, a moving window and some new ids."""
    rng = np.random.default_rng(5)
    ref = blocky(rng, (240, 320), side=4)
    ids = ref.copy()
    ids[100:140, 50:120] = ref[100:140, 51:121]
    new = rng.random(ref.shape) < 0.01
    ids[new] = rng.integers(0, K, size=int(new.sum()))
    payload = round_trip(ids, ref, PRIORS[4])
    assert_size_near_ideal(payload, ids, ref, PRIORS[4])
    assert len(payload) < len(encode_ids(ids, PRIORS[4], rng.integers(0, K, size=ref.shape)))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (12, 16), (60, 80), (240, 320)])
def test_static_frame_costs_only_a_few_bytes(shape):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, K, size=shape)
    for prior in PRIORS.values():
        payload = round_trip(ref, ref, prior)
        assert len(payload) <= 4  # the count of changed tiles: 0, about log2(bits of the tile count) bits
        assert ideal_bits(ref, prior, ref) <= np.log2(24)


def test_cost_grows_with_the_change():
    rng = np.random.default_rng(1)
    ref = blocky(rng, (30, 40))
    one = ref.copy()
    one[3, 4] = (ref[3, 4] + 1) % K
    many = structured(rng, ref, "random")
    sizes = [len(round_trip(ids, ref, PRIORS[4])) for ids in (ref, one, many)]
    assert sizes[0] < sizes[1] < sizes[2]


# ---- what the payload codes ---------------------------------------------------------------------------------------
def test_modes_and_contexts_of_a_small_grid():
    ref = np.array([[1, 1, 2], [3, 4, 2]])
    ctx = mode_contexts(ref)
    # bit 0 left, bit 1 up, bit 2 right, bit 3 down: set where that neighbour exists and holds another id
    np.testing.assert_array_equal(ctx, [[0 | 0 | 0 | 8, 0 | 0 | 4 | 8, 1 | 0 | 0 | 0], [0 | 2 | 4, 1 | 2 | 4, 1]])
    ids = np.array([[1, 2, 1], [9, 3, 3]])
    # (0,0) same; (0,1) right -> 2; (0,2) left -> 1; (1,0) NEW; (1,1) left -> 3; (1,2) NEW (3 is not a neighbour)
    np.testing.assert_array_equal(modes(ids, ref), [[-1, 2, 0], [4, 0, 4]])
    ids2 = np.array([[3, 1, 2], [3, 1, 2]])
    # (0,0) down -> 3; (1,1): up holds 1, the first copyable offset with that id
    np.testing.assert_array_equal(modes(ids2, ref), [[3, -1, -1], [-1, 1, -1]])
    np.testing.assert_array_equal(inter.texture_classes(ctx), [[1, 1, 1], [1, 2, 1]])


def test_a_neighbour_with_the_same_id_cannot_be_copied():
    """A copy from a neighbour equal to the reference would be no change: such offsets are not in the context."""
    ref = np.array([[5, 5, 7]])
    assert mode_contexts(ref).tolist() == [[0, 4, 1]]
    assert modes(np.array([[7, 7, 5]]), ref).tolist() == [[4, 2, 0]]


def test_segment_order():
    """Tiles, the positions of texture classes 0, 1, 2 (each its count, then its flags), modes, NEW ids."""
    prior = PRIORS[4]
    ref = np.zeros((4, 8), np.int64)
    ref[:, 4:] = 1  # a vertical edge between columns 3 and 4: class 1 there, class 0 elsewhere
    ids = ref.copy()
    ids[0, 3] = 1  # copy from the right, on the edge
    ids[2, 6] = 9  # NEW, in the flat part of the second tile
    segs = list(prior.segments(ids, ref))
    flat = [np.atleast_1d(s.symbols).tolist() for s in segs]
    # tiles: 2 of 2 changed (count 2: bit length 2, then the bit 0 below the leading one; no flags); class 0 (24
    # positions, row-major): 1 changed (bit length 1), then the 24 flags; class 1 (columns 3 and 4): 1 of 8, then
    # its flags; class 2: no position (no symbol at all); the modes (copy from the right, NEW); the NEW id
    assert flat == [[2], [0], [1], [0] * 16 + [1] + [0] * 7, [1], [1] + [0] * 7, [2, 4], [9]]
    assert segs[-2].tables is prior.mode_tables and segs[-1].tables is prior.new_table
    np.testing.assert_array_equal(segs[-2].contexts, [mode_contexts(ref)[0, 3], mode_contexts(ref)[2, 6]])


# ---- counts -------------------------------------------------------------------------------------------------------
class CountPrior:
    """A SequentialPrior coding one integer 0..limit (a 1 x 1 grid) with count_segments / read_count."""

    def __init__(self, limit: int, code: int | None = None) -> None:
        self.limit, self.num_ids, self.code = limit, max(limit, 0) + 1, code

    def segments(self, ids, previous=None):
        return count_segments(int(ids[0, 0]) if self.code is None else self.code, self.limit)

    def decode(self, shape, read, previous=None):
        return np.array([[read_count(read, self.limit, "things")]])


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 4, 7, 8, 100, 1023, 1024, 1 << 22])
def test_count_round_trip(limit):
    for n in sorted({0, 1, 2, 3, limit // 2, limit - 1, limit} & set(range(limit + 1))):
        prior = CountPrior(limit)
        payload = encode_ids(np.array([[n]]), prior)
        assert decode_ids(payload, prior, (1, 1))[0, 0] == n
        segs = count_segments(n, limit)
        bits = sum(float(-np.log2(s.tables.probabilities[s.contexts, s.symbols]).sum()) for s in segs)
        expected = 0.0 if limit == 0 else np.log2(limit.bit_length() + 1) + max(n.bit_length() - 1, 0)
        assert bits == pytest.approx(expected), (n, limit)


def test_count_segments_layout():
    assert count_segments(0, 0) == []
    (length,) = count_segments(0, 1000)
    assert length.symbols.tolist() == [0] and length.tables.num_symbols == 11
    length, bits = count_segments(13, 1000)  # 0b1101: bit length 4, then the bits below the leading one
    assert length.symbols.tolist() == [4] and bits.symbols.tolist() == [1, 0, 1] and bits.tables.num_symbols == 2
    assert len(count_segments(1, 1000)) == 1


@pytest.mark.parametrize(("limit", "n"), [(5, 6), (5, 7), (1000, 1023), (2, 3)])
def test_count_above_its_limit_is_corrupt(limit, n):
    payload = encode_ids(np.array([[0]]), CountPrior(limit, code=n))  # codes n, which count_segments allows
    with pytest.raises(BitstreamError, match="things"):
        decode_ids(payload, CountPrior(limit), (1, 1))


# ---- corrupt payloads ---------------------------------------------------------------------------------------------
class Forged:
    """A SequentialPrior that writes the given segments, to forge payloads the encoder never makes."""

    num_ids = K

    def __init__(self, segments: list[Segment]) -> None:
        self._segments = segments

    def segments(self, ids, previous=None):
        return self._segments

    def decode(self, shape, read, previous=None):  # pragma: no cover - only encodes
        raise AssertionError


def forge(*segments: Segment) -> bytes:
    return encode_ids(np.zeros((1, 1), np.int64), Forged(list(segments)))


def flags(values: list[int]) -> list[Segment]:
    """A boolean vector as the prior codes it: its count, then (unless all equal) the flags."""
    n, total = sum(values), len(values)
    out = count_segments(n, total)
    if 0 < n < total:
        out.append(Segment(inter._flag_table(n, total), 0, np.array(values, np.int64)))
    return out


REF_CORRUPT = np.array([[1, 1, 2, 2, 3, 3, 4, 4]] * 2)  # 2 x 8; with block 4: two tiles


def decode_forged(*segments: Segment, prior: InterPrior = PRIORS[4]) -> np.ndarray:
    return decode_ids(forge(*segments), prior, REF_CORRUPT.shape, REF_CORRUPT)


def test_forged_valid_payload_decodes():
    """The forging reproduces the encoder: a change at (0, 1) to 2 (a copy from the right)."""
    ids = REF_CORRUPT.copy()
    ids[0, 1] = 2
    ctx = mode_contexts(REF_CORRUPT)
    cls = inter.texture_classes(ctx).ravel()
    first_tile = (np.arange(16) % 8) < 4
    pos = [int(i == 1) for i in range(16) if first_tile[i] and cls[i] == 1]  # (0, 1) is on an edge: class 1
    segs = [*flags([1, 0]), *flags([0] * int((first_tile & (cls == 0)).sum())), *flags(pos)]
    segs += flags([0] * int((first_tile & (cls == 2)).sum()))
    segs.append(Segment(PRIORS[4].mode_tables, np.array([ctx[0, 1]], np.int64), np.array([2])))
    assert forge(*segs) == encode_ids(ids, PRIORS[4], REF_CORRUPT)
    np.testing.assert_array_equal(decode_forged(*segs), ids)


def test_more_changed_tiles_than_tiles():
    with pytest.raises(BitstreamError, match="changed tiles of at most"):
        decode_forged(*count_segments(3, 2))


def test_flags_that_do_not_add_up_to_their_count():
    segs = count_segments(1, 2) + [Segment(inter._flag_table(1, 2), 0, np.array([1, 1]))]
    with pytest.raises(BitstreamError, match="do not add up"):
        decode_forged(*segs)


def test_changed_tile_without_a_changed_id():
    # first tile changed, but none of its positions (classes 0, 1, 2 all unchanged)
    cls = inter.texture_classes(mode_contexts(REF_CORRUPT)).ravel()
    first_tile = (np.arange(16) % 8) < 4
    segs = flags([1, 0])
    for c in range(3):
        segs += flags([0] * int((first_tile & (cls == c)).sum()))
    with pytest.raises(BitstreamError, match="holds no changed id"):
        decode_forged(*segs)


def changed_at_0_1(mode: int, new: list[int] | None = None) -> list[Segment]:
    """Segments changing position (0, 1) of REF_CORRUPT, coded with ``mode`` (and ``new`` ids). There the reference
    holds 1; left (1) and below (1) hold the same id, up is outside the grid: only the right (2) can be copied."""
    ctx = mode_contexts(REF_CORRUPT)
    assert ctx[0, 1] == 4
    cls = inter.texture_classes(ctx).ravel()
    first_tile = (np.arange(16) % 8) < 4
    segs = flags([1, 0])
    for c in range(3):
        segs += flags([int(i == 1) for i in range(16) if first_tile[i] and cls[i] == c])
    segs.append(Segment(PRIORS[4].mode_tables, np.array([ctx[0, 1]], np.int64), np.array([mode])))
    if new is not None:
        segs.append(Segment(PRIORS[4].new_table, 0, np.array(new)))
    return segs


def test_forged_changes_decode():
    assert decode_forged(*changed_at_0_1(2))[0, :3].tolist() == [1, 2, 2]  # the copy from the right
    assert decode_forged(*changed_at_0_1(4, [9]))[0, :3].tolist() == [1, 9, 2]  # a NEW id


@pytest.mark.parametrize("mode", [0, 1, 3])  # left and below hold the same id as the reference; up is outside
def test_copy_from_a_neighbour_that_cannot_be_copied(mode):
    with pytest.raises(BitstreamError, match="cannot be copied"):
        decode_forged(*changed_at_0_1(mode))


@pytest.mark.parametrize("new", [1, 2])  # the reference id itself; the id of the right, which is a copy (mode 2)
def test_new_id_the_encoder_cannot_produce(new):
    with pytest.raises(BitstreamError, match="cannot produce"):
        decode_forged(*changed_at_0_1(4, [new]))


def test_truncated_and_extended_payloads():
    rng = np.random.default_rng(3)
    ref = blocky(rng, (12, 16))
    ids = structured(rng, ref, "random")
    payload = encode_ids(ids, PRIORS[4], ref)
    assert len(payload) >= 8
    for bad in (payload[:-4], payload[:-1], payload + b"\1\0\0\0", b"\0" * len(payload), payload[:4]):
        try:
            out = decode_ids(bad, PRIORS[4], ids.shape, ref)
        except BitstreamError:
            continue
        assert out.shape == ids.shape and out.min() >= 0 and out.max() < K


def test_random_payloads_raise_or_decode_valid_ids():
    rng = np.random.default_rng(4)
    ref = blocky(rng, (6, 9))
    raised = 0
    for n in range(1, 200):
        data = rng.integers(0, 2**32, size=n % 12 + 1, dtype=np.uint64).astype("<u4").tobytes()
        try:
            out = decode_ids(data, PRIORS[3], ref.shape, ref)
        except BitstreamError:
            raised += 1
        else:
            assert out.shape == ref.shape and out.min() >= 0 and out.max() < K
    assert raised > 150


# ---- the reference -------------------------------------------------------------------------------------------------
def test_reference_is_required():
    ref = np.zeros((3, 4), np.int64)
    with pytest.raises(ValueError, match="previous is required"):
        encode_ids(ref, PRIORS[4])
    with pytest.raises(ValueError, match="previous is required"):
        decode_ids(b"", PRIORS[4], (3, 4))
    with pytest.raises(ValueError, match="previous is required"):
        ideal_bits(ref, PRIORS[4])
    with pytest.raises(ValueError, match="does not match"):
        encode_ids(ref, PRIORS[4], ref.T)
    with pytest.raises(ValueError, match="does not match"):
        decode_ids(b"", PRIORS[4], (3, 4), ref[:2])


def test_reference_of_any_integer_dtype():
    rng = np.random.default_rng(6)
    ref = blocky(rng, (7, 9))
    ids = structured(rng, ref, "random")
    payload = encode_ids(ids, PRIORS[4], ref)
    for dtype in (np.int32, np.uint16, np.int64):
        assert encode_ids(ids.astype(dtype), PRIORS[4], ref.astype(dtype)) == payload
        np.testing.assert_array_equal(decode_ids(payload, PRIORS[4], ids.shape, ref.astype(dtype)), ids)


# ---- tables --------------------------------------------------------------------------------------------------------
def test_counter_counts_what_the_prior_codes():
    rng = np.random.default_rng(8)
    counter = InterCounter(K, block=5)
    total_changed = total_new = 0
    for _ in range(6):
        ref = blocky(rng, (9, 11))
        ids = structured(rng, ref, "random")
        counter.add(ids, ref)
        m = modes(ids, ref)
        total_changed += int((m >= 0).sum())
        total_new += int((m == 4).sum())
    assert (counter.frames, counter.positions, counter.changed) == (6, 6 * 99, total_changed)
    assert counter.mode.sum() == total_changed and counter.new.sum() == total_new
    t = counter.tensors()
    assert set(t) == {"inter_mode", "inter_new", "inter_param"}
    assert t["inter_mode"].shape == (16, 5) and t["inter_new"].shape == (K,) and t["inter_param"].tolist() == [1, 5]
    assert InterPrior.from_tensors(t).block == 5
    t["inter_mode"][0, 0] += 1  # a copy: the counter is not changed
    assert counter.mode[0, 0] == t["inter_mode"][0, 0] - 1


@pytest.mark.parametrize(
    ("ids", "ref"),
    [(np.zeros((2, 3)), np.zeros((3, 2))), (np.zeros(6), np.zeros(6)), (np.zeros((0, 3)), np.zeros((0, 3))),
     (np.full((2, 2), K), np.zeros((2, 2))), (np.zeros((2, 2)), np.full((2, 2), -1))],
)  # fmt: skip
def test_counter_validation(ids, ref):
    with pytest.raises(ValueError):
        InterCounter(K).add(ids.astype(np.int64), ref.astype(np.int64))


def good_tensors() -> dict[str, np.ndarray]:
    return {"inter_mode": np.ones((16, 5), np.int64), "inter_new": np.ones(K, np.int64),
            "inter_param": np.array([1, 4], np.int64)}  # fmt: skip


def test_from_tensors():
    prior = InterPrior.from_tensors(good_tensors())
    assert (prior.num_ids, prior.block) == (K, 4)
    assert InterPrior.from_tensors({**good_tensors(), "inter_param": np.array([1, 64])}).block == 64
    assert InterPrior.from_tensors({**good_tensors(), "inter_mode": np.zeros((16, 5), np.uint8)}).num_ids == K


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"inter_mode": None}, "missing: inter_mode"), ({"inter_param": None}, "missing: inter_param"),
     ({"inter_new": None, "inter_param": None}, "missing: inter_new, inter_param"),
     ({"inter_param": np.array([2, 4])}, "unknown inter prior parameters"),
     ({"inter_param": np.array([1, 4, 0])}, "unknown inter prior parameters"),
     ({"inter_param": np.array([[1, 4]])}, "unknown inter prior parameters"),
     ({"inter_param": np.array([1, 0])}, "block"), ({"inter_param": np.array([1, 65])}, "block"),
     ({"inter_param": np.array([1, -1])}, "block"),
     ({"inter_mode": np.full((16, 5), -1)}, "non-negative"), ({"inter_new": -np.ones(K, np.int64)}, "non-negative"),
     ({"inter_mode": np.ones((16, 5)) * 0.5}, "integers"), ({"inter_new": np.ones(K, bool)}, "integers"),
     ({"inter_mode": np.ones((16, 4), np.int64)}, "shape"), ({"inter_mode": np.ones((15, 5), np.int64)}, "shape"),
     ({"inter_mode": np.ones(80, np.int64)}, "shape"), ({"inter_new": np.ones(1, np.int64)}, "shape"),
     ({"inter_new": np.ones((2, K), np.int64)}, "shape"), ({"inter_new": np.ones(1 << 17, np.int64)}, "ids")],
)  # fmt: skip
def test_from_tensors_validation(changes, match):
    tensors = good_tensors()
    for name, value in changes.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    with pytest.raises(ValueError, match=match):
        InterPrior.from_tensors(tensors)


def test_tables_are_split_from_the_intra_tables():
    tables = {"mode": np.ones(3), "new": np.ones(2), "param": np.ones(3), **good_tensors()}
    intra, inter_t = inter_tables(tables)
    assert set(intra) == {"mode", "new", "param"} and set(inter_t) == set(good_tensors())
    assert inter_tables(tables)[1] and not inter_tables(intra)[1]


def test_tables_are_deterministic():
    """The same counts give bit-identical integer tables and probabilities (both ends build them)."""
    a, b = counted_prior(4, seed=9), counted_prior(4, seed=9)
    assert np.array_equal(a.mode_tables.freqs, b.mode_tables.freqs)
    assert np.array_equal(a.new_table.probabilities, b.new_table.probabilities)
    assert a.mode_tables.freqs.sum(1).tolist() == [1 << 16] * 16 and int(a.new_table.freqs.sum()) == 1 << 16
    assert isinstance(a.mode_tables, Tables)


# ---- version 2: NEW ids as ranks in the reference code's near list ---------------------------------------------------
def _near_prior(k: int = 64, m: int = 6, seed: int = 5):
    from edgecodec.coding.inter import near_codes

    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(k, 4))
    near = near_codes(codes / np.linalg.norm(codes, axis=1, keepdims=True), m)
    counter = InterCounter(k, 4, near)
    for _ in range(4):
        ref = rng.integers(0, k, (12, 14))
        ids = ref.copy()
        sel = rng.random(ref.shape) < 0.2
        ids[sel] = near[ref[sel], rng.integers(0, m, int(sel.sum()))]
        far = rng.random(ref.shape) < 0.05
        ids[far] = rng.integers(0, k, int(far.sum()))
        counter.add(ids, ref)
    return InterPrior.from_tensors(counter.tensors()), near, rng


def test_near_codes_are_the_most_similar_other_codes() -> None:
    from edgecodec.coding.inter import near_codes

    codes = np.eye(4)[[0, 0, 1, 2]] + np.array([[0, 0, 0, 0], [0.1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    near = near_codes(codes, 2)
    assert near.shape == (4, 2) and near[0, 0] == 1 and near[1, 0] == 0
    assert near[2].tolist() == [0, 1] and not (near == np.arange(4)[:, None]).any()  # ties go to the lower id


def test_rank_coded_new_ids_round_trip_and_cost_less() -> None:
    prior, near, rng = _near_prior()
    assert prior.near is not None and repr(prior).endswith("near=6)")
    ref = rng.integers(0, 64, (20, 24))
    ids = ref.copy()
    sel = rng.random(ref.shape) < 0.15
    ids[sel] = near[ref[sel], rng.integers(0, 6, int(sel.sum()))]
    ids[3, 4] = (ref[3, 4] + 7) % 64 if (ref[3, 4] + 7) % 64 not in near[ref[3, 4]] else ids[3, 4]
    payload = encode_ids(ids, prior, ref)
    np.testing.assert_array_equal(decode_ids(payload, prior, ids.shape, ref), ids)
    tensors = {k: v for k, v in InterCounter(64, 4).tensors().items()}
    v1 = InterPrior.from_tensors({**tensors, "inter_mode": prior_tensors(prior)["inter_mode"]})
    assert len(payload) < len(encode_ids(ids, v1, ref))
    bits = prior.switch_bits(ref[sel], ids[sel])
    assert np.all(bits <= prior.rank_bits.max() + 1e-9)


def prior_tensors(prior: InterPrior) -> dict:
    counter = InterCounter(prior.num_ids, prior.block)
    return {**counter.tensors(), "inter_mode": np.ones((16, 5), np.int64)}


def test_a_full_id_that_its_rank_would_name_is_refused() -> None:
    """Forged payload: an id coded in full although it is in the near list."""
    prior, near, rng = _near_prior()
    ref = np.zeros((4, 4), np.int64)
    ids = ref.copy()
    ids[1, 1] = near[0, 0]
    forged = InterPrior(
        np.ones((16, 5), np.int64), np.ones(64, np.int64), 4, near, np.ones(near.shape[1] + 1, np.int64)
    )
    segments = list(forged.segments(ids, ref))
    rank = segments[-1]
    assert rank.tables is forged.rank_table and rank.symbols.tolist() == [0]
    doctored = segments[:-1] + [
        Segment(forged.rank_table, 0, np.array([near.shape[1]])),
        Segment(forged.new_table, 0, np.array([near[0, 0]])),
    ]

    class Doctored:  # codes the doctored segments through the real coder
        num_ids = 64

        def segments(self, ids: np.ndarray, previous: np.ndarray | None = None) -> list[Segment]:
            return doctored

        def decode(self, shape, read, previous=None):  # noqa: ANN001, ANN201 - never called
            raise NotImplementedError

    payload = encode_ids(ids, Doctored(), ref)
    with pytest.raises(BitstreamError, match="rank would have named"):
        decode_ids(payload, forged, ids.shape, ref)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inter_near": np.zeros((64, 6), np.int64)}, "other codes' ids|repeats"),
        ({"inter_near": np.tile(np.arange(1, 7), (64, 1))}, "other codes' ids"),
        ({"inter_rank": np.ones(3, np.int64)}, "rank counts"),
        ({"inter_param": np.array([2, 4, 5])}, "columns"),
        ({"inter_param": np.array([3, 4, 6])}, "version 1 or 2"),
    ],
)
def test_version_2_tables_are_validated(change: dict, message: str) -> None:
    prior, near, _ = _near_prior()
    counter = InterCounter(64, 4, near)
    tensors = {**counter.tensors(), **change}
    with pytest.raises(ValueError, match=message):
        InterPrior.from_tensors(tensors)

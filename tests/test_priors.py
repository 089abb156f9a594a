"""The context prior (modes + NEW ids): statistics, integer tables, row-wise coding, model files and the codec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgecodec import priors
from edgecodec.entropy import (
    ContextPrior,
    SequentialPrior,
    StaticPrior,
    cross_entropy_bits,
    decode_ids,
    encode_ids,
    ideal_bits,
    make_prior,
    smooth_counts,
)
from edgecodec.errors import BitstreamError, ModelError
from edgecodec.priors import PriorCounter, Segment, Tables, compute_modes, mode_contexts, smooth_rows

LAYER_K = [256, 512, 2048, 1024, 1024]  # hqa5's codebook sizes
SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (5, 3), (24, 32)]


def reference_smooth(counts: np.ndarray, total_bits: int = 16) -> np.ndarray:
    """The original one-table smoothing, kept verbatim: StaticPrior's tables (and golden bytes) depend on it."""
    counts = counts.astype(np.int64)
    k, total = counts.size, 1 << total_bits
    budget = total - k
    count_sum = int(counts.sum())
    excess = count_sum.bit_length() - 39
    if excess > 0:
        counts = counts >> excess
        count_sum = int(counts.sum())
    if count_sum == 0:
        counts, count_sum = np.ones(k, dtype=np.int64), k
    scaled = counts * budget
    share, remainder = scaled // count_sum, scaled % count_sum
    leftover = budget - int(share.sum())
    if leftover:
        order = np.lexsort((np.arange(k), -remainder))
        share[order[:leftover]] += 1
    return (share + 1).astype(np.uint32)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.int64,
        st.tuples(st.integers(1, 5), st.integers(1, 40)),
        elements=st.one_of(st.integers(0, 50), st.integers(0, 2**62 // 64)),
    ),
    st.integers(6, 24),
)
def test_smooth_rows_matches_the_reference_row_by_row(counts, bits):
    out = smooth_rows(counts, bits)
    for row, got in zip(counts, out, strict=True):
        np.testing.assert_array_equal(got, reference_smooth(row, bits))
        np.testing.assert_array_equal(smooth_counts(row, bits), got)


def test_modes_pick_the_first_matching_offset():
    ids = np.array([[1, 1, 2], [1, 2, 2], [3, 1, 1]])
    # offsets (period 1): left, up, up-left, up-right; 4 = NEW
    np.testing.assert_array_equal(compute_modes(ids, 1), [[4, 0, 4], [1, 3, 0], [4, 2, 0]])
    # period 2: (0,-2), (-2,0), (0,-1), (-1,0), (-1,-1), (-1,1); 6 = NEW
    np.testing.assert_array_equal(compute_modes(ids, 2), [[6, 2, 6], [3, 5, 2], [6, 1, 2]])


@pytest.mark.parametrize("period", [1, 2])
def test_row_contexts_equal_whole_grid_contexts(period):
    rng = np.random.default_rng(period)
    ids = rng.integers(0, 3, size=(7, 6))
    modes = compute_modes(ids, period)
    whole = mode_contexts(ids, modes, period, 0, 7)
    assert whole.min() >= 0 and whole.max() < priors.num_contexts(period)
    for y in range(7):
        hidden_ids, hidden_modes = ids.copy(), modes.copy()
        hidden_ids[y:], hidden_modes[y:] = 99, 99  # rows not yet decoded must not matter
        np.testing.assert_array_equal(mode_contexts(hidden_ids, hidden_modes, period, y, y + 1)[0], whole[y])


def structured_grid(shape: tuple[int, int], k: int, seed: int) -> np.ndarray:
    """Flat regions with edges and a textured patch: the mix real id grids have."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    grid = (rng.integers(0, k, size=4)[(y * 3 // max(h, 1) + x * 2 // max(w, 1)) % 4]).astype(np.int64)
    patch = rng.random((h, w)) < 0.3
    grid[patch] = rng.integers(0, k, size=int(patch.sum()))
    return grid


def trained_prior(k: int, period: int, seed: int = 0) -> ContextPrior:
    counter = PriorCounter(k, period)
    for i in range(3):
        counter.add(structured_grid((40, 56), k, seed + i))
    return ContextPrior.from_tensors(counter.unigram, counter.tensors())


@pytest.mark.parametrize("layer", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_random_and_structured(layer, shape):
    k, period = LAYER_K[layer - 1], 2 if layer == 1 else 1
    prior = trained_prior(k, period, seed=layer)
    rng = np.random.default_rng(layer * 100 + shape[0])
    grids = [
        rng.integers(0, k, size=shape),
        structured_grid(shape, k, 7),
        np.full(shape, k - 1),
        np.zeros(shape, np.int64),
    ]
    for ids in grids:
        payload = encode_ids(ids, prior)
        assert len(payload) % 4 == 0
        out = decode_ids(payload, prior, shape)
        assert out.dtype == np.int32 and out.shape == shape
        np.testing.assert_array_equal(out, ids)
        assert 8 * len(payload) <= 1.01 * ideal_bits(ids, prior) + 64


@pytest.mark.parametrize("period", [1, 2])
def test_payload_close_to_ideal_bits(period):
    prior = trained_prior(512, period)
    ids = structured_grid((96, 128), 512, 11)
    bits, ideal = 8 * len(encode_ids(ids, prior)), ideal_bits(ids, prior)
    assert bits <= 1.01 * ideal + 64, (bits, ideal)
    # structure pays: far below the order-0 cross-entropy of the same ids
    assert ideal < 0.7 * cross_entropy_bits(ids, prior.freqs)


def test_ideal_bits_of_a_static_prior_is_its_cross_entropy():
    freqs = smooth_counts(np.arange(1, 65, dtype=np.int64))
    ids = np.random.default_rng(0).integers(0, 64, size=(5, 6))
    assert ideal_bits(ids, StaticPrior(freqs)) == pytest.approx(cross_entropy_bits(ids, freqs), rel=1e-12)
    with pytest.raises(ValueError):
        ideal_bits(np.array([[64]]), StaticPrior(freqs))


def test_impossible_modes_are_corrupt_payloads():
    prior = trained_prior(256, 1)

    def read_modes(mode: int):
        def read(tables: Tables, contexts, count: int) -> np.ndarray:
            return np.full(count, mode if tables is prior.mode_tables else 0, np.int32)

        return read

    for mode in range(4):  # row 0 can copy from nowhere
        with pytest.raises(BitstreamError):
            prior.decode((3, 4), read_modes(mode))
    np.testing.assert_array_equal(prior.decode((3, 4), read_modes(4)), np.zeros((3, 4)))


def test_decode_garbage_raises_bitstream_error_only(garbage_decodes) -> None:  # noqa: ANN001
    assert garbage_decodes(trained_prior(1024, 1), 1024) > 40


def test_counter_tables_and_prior_checks():
    counter = PriorCounter(64, 2)
    grid = structured_grid((10, 12), 64, 0)
    counter.add(grid)
    t = counter.tensors()
    assert int(counter.unigram.sum()) == grid.size == int(t["mode"].sum())
    assert int(t["new"].sum()) == int((compute_modes(grid, 2) == 6).sum())
    assert t["param"].tolist() == [1, 2, priors.DEFAULT_NEW_WEIGHT]
    assert isinstance(make_prior(counter.unigram, t), ContextPrior)
    assert isinstance(make_prior(counter.unigram, {}), StaticPrior)
    with pytest.raises(ValueError):
        counter.add(np.array([[64]]))
    bad = [
        {**t, "param": np.array([2, 2, 64])},
        {**t, "mode": t["mode"][:-1]},
        {**t, "new": t["new"][:1]},
        {k: v for k, v in t.items() if k != "new"},
        {**t, "mode": -t["mode"]},
    ]
    for tables in bad:
        with pytest.raises(ValueError):
            ContextPrior.from_tensors(counter.unigram, tables)
    with pytest.raises(ValueError):
        ContextPrior.from_tensors(counter.unigram[:10], t)


class SameAsPrevious:
    """A toy inter-frame sequential prior: per row, a flag 'same as the previous frame', then the ids if not."""

    num_ids = 16

    def __init__(self) -> None:
        self.flag = Tables(np.array([[1, 1], [1, 15]], np.uint32))  # table 1 once a previous frame exists
        self.ids = Tables(np.ones(16, np.uint32))

    def segments(self, ids, previous=None):
        for y, row in enumerate(ids):
            same = previous is not None and np.array_equal(row, previous[y])
            yield Segment(self.flag, int(previous is not None), np.array([0 if not same else 1]))
            if not same:
                yield Segment(self.ids, 0, row)

    def decode(self, shape, read, previous=None):
        out = np.zeros(shape, np.int64)
        for y in range(shape[0]):
            if read(self.flag, int(previous is not None), 1)[0]:
                if previous is None:
                    raise BitstreamError("copy from a previous frame that is not there")
                out[y] = previous[y]
            else:
                out[y] = read(self.ids, 0, shape[1])
        return out


def test_a_sequential_prior_can_code_from_the_previous_frame():
    prior = SameAsPrevious()
    assert isinstance(prior, SequentialPrior)
    rng = np.random.default_rng(1)
    previous = rng.integers(0, 16, size=(6, 5))
    ids = previous.copy()
    ids[2] = rng.integers(0, 16, size=5)
    payload = encode_ids(ids, prior, previous)
    np.testing.assert_array_equal(decode_ids(payload, prior, ids.shape, previous), ids)
    assert len(payload) < len(encode_ids(ids, prior))
    assert ideal_bits(ids, prior, previous) < 8 * len(payload) <= ideal_bits(ids, prior, previous) + 64


# ---- model files and the codec ---------------------------------------------------------------------------------
def test_model_files_store_prior_tables_under_the_fingerprint(tmp_path: Path):
    from edgecodec.nn import HQAStack, tiny_config
    from edgecodec.zoo import load_model, save_model

    torch.manual_seed(0)
    net = HQAStack(tiny_config())
    counters = [PriorCounter(c.codebook_size, 2 if c.space_to_depth else 1) for c in net.config.layers]
    for c in counters:
        c.add(structured_grid((8, 8), c.num_ids, 0))
    unigram = [c.unigram for c in counters]
    tables = [c.tensors() for c in counters]
    m = save_model(net, tmp_path / "m", priors=unigram, prior_tables=tables)
    again = load_model(tmp_path / "m.safetensors")
    assert len(again.prior_tables) == net.num_layers
    for got, want in zip(again.prior_tables, tables, strict=True):
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    plain = save_model(net, tmp_path / "plain", priors=unigram)
    assert plain.prior_tables == [] and plain.fingerprint != m.fingerprint
    tables[0]["new"][0, 0] += 1
    assert save_model(net, tmp_path / "m2", priors=unigram, prior_tables=tables).fingerprint != m.fingerprint
    with pytest.raises(ValueError):
        save_model(net, tmp_path / "bad", priors=unigram, prior_tables=[{"x": np.ones(2)}])


def test_codec_uses_the_context_prior_of_a_model_with_tables(tmp_path: Path):
    from edgecodec.codec import Codec
    from edgecodec.nn import HQAStack, tiny_config
    from edgecodec.zoo import save_model

    torch.manual_seed(0)
    net = HQAStack(tiny_config())
    unigram = [np.ones(c.codebook_size, np.int64) for c in net.config.layers]
    counters = [PriorCounter(c.codebook_size, 1) for c in net.config.layers]
    with_tables = save_model(net, tmp_path / "t", priors=unigram, prior_tables=[c.tensors() for c in counters])
    assert all(isinstance(p, ContextPrior) for p in Codec(with_tables).priors)
    assert all(isinstance(p, StaticPrior) for p in Codec(save_model(net, tmp_path / "s", priors=unigram)).priors)
    broken = [c.tensors() for c in counters]
    broken[0]["param"] = np.array([9, 1, 64])
    with pytest.raises(ModelError):
        Codec(save_model(net, tmp_path / "b", priors=unigram, prior_tables=broken))


def test_real_model_ids_round_trip():
    """hqa5's own ids (a small synthetic image) through its stored priors, packet and all."""
    from edgecodec.capture import SyntheticSource
    from edgecodec.codec import Codec

    codec = Codec("hqa5")
    assert all(isinstance(p, ContextPrior) for p in codec.priors), "hqa5 should ship context priors"
    rgb = SyntheticSource((96, 80)).read().rgb
    code = codec.encode(rgb)
    for layer in range(1, codec.num_layers + 1):
        ids = code.ids[layer - 1]
        payload = codec.code_ids(ids, layer)
        assert 8 * len(payload) <= 1.01 * ideal_bits(ids, codec.priors[layer - 1]) + 64
        p, frame = codec.decode_packet(codec.packet(code, layer, payload=payload))
        np.testing.assert_array_equal(codec.packet_ids(p), ids)
        assert frame.shape == rgb.shape

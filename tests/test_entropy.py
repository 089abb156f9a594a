import numpy as np
import pytest

from edgecodec.entropy import (
    IdPrior,
    PriorTables,
    StaticPrior,
    cross_entropy_bits,
    decode_ids,
    encode_ids,
    smooth_counts,
)
from edgecodec.errors import BitstreamError


def skewed_table(k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return smooth_counts(rng.zipf(1.4, size=k).astype(np.int64))


def test_smooth_counts_sums_to_total_and_is_positive():
    counts = np.array([0, 5, 0, 1000, 3], dtype=np.int64)
    for bits in (8, 16, 24):
        f = smooth_counts(counts, bits)
        assert f.dtype == np.uint32
        assert int(f.sum()) == 1 << bits
        assert f.min() >= 1
        assert f.argmax() == 3


def test_smooth_counts_edge_cases():
    np.testing.assert_array_equal(smooth_counts(np.zeros(3, np.int64), 4), [6, 5, 5])
    np.testing.assert_array_equal(smooth_counts(np.array([2**62, 1, 0]), 16), [65534, 1, 1])
    assert int(smooth_counts(np.array([2**62, 2**62]), 16).sum()) == 65536
    np.testing.assert_array_equal(smooth_counts(np.array([7, 7, 7, 7]), 2), [1, 1, 1, 1])
    for bad in (np.array([-1, 2]), np.array([1.5]), np.zeros(0, np.int64), np.zeros((2, 2), np.int64)):
        with pytest.raises(ValueError):
            smooth_counts(bad)
    with pytest.raises(ValueError):
        smooth_counts(np.ones(5, np.int64), 2)


@pytest.mark.parametrize("k", [256, 1024, 4096])
@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (5, 3), (32, 48)])
def test_round_trip(k, shape):
    rng = np.random.default_rng(k + shape[0])
    freqs = skewed_table(k)
    prior = StaticPrior(freqs)
    ids = rng.choice(k, size=shape, p=freqs / freqs.sum())
    payload = encode_ids(ids, prior)
    assert isinstance(payload, bytes) and len(payload) % 4 == 0
    out = decode_ids(payload, prior, shape)
    assert out.dtype == np.int32 and out.shape == shape
    np.testing.assert_array_equal(out, ids)
    np.testing.assert_array_equal(decode_ids(memoryview(payload), prior, shape), ids)


def test_uniform_ids_including_extremes():
    k = 1024
    prior = StaticPrior(np.ones(k, np.uint32))
    ids = np.array([[0, k - 1], [k - 1, 0]], dtype=np.int64)
    np.testing.assert_array_equal(decode_ids(encode_ids(ids, prior), prior, (2, 2)), ids)


@pytest.mark.parametrize("k", [256, 4096])
def test_size_close_to_cross_entropy(k):
    rng = np.random.default_rng(1)
    freqs = skewed_table(k, seed=2)
    ids = rng.choice(k, size=(48, 64), p=freqs / freqs.sum())
    xent = cross_entropy_bits(ids, freqs)
    bits = 8 * len(encode_ids(ids, StaticPrior(freqs)))
    # ANS flushes its 64-bit state at the end, so a few dozen bits of overhead per grid are inherent.
    assert bits <= xent + 64 + 0.01 * xent, (bits, xent)


def test_cross_entropy_bits_value():
    freqs = np.array([1, 1, 2], np.uint32)
    assert cross_entropy_bits(np.array([0, 2, 2]), freqs) == pytest.approx(2 + 1 + 1)


def test_encode_rejects_bad_ids():
    prior = StaticPrior(np.ones(16, np.uint32))
    for bad in (np.array([[16]]), np.array([[-1]]), np.array([[0.0]]), np.zeros((2, 2, 2), np.int64)):
        with pytest.raises(ValueError):
            encode_ids(bad, prior)
    with pytest.raises(ValueError):
        encode_ids(np.zeros((0, 3), np.int64), prior)


def test_static_prior_rejects_bad_tables():
    for bad in (np.array([1, 0, 2]), np.array([1.0, 2.0]), np.ones((2, 2), np.uint32), np.zeros(0, np.uint32)):
        with pytest.raises(ValueError):
            StaticPrior(bad)


def test_decode_garbage_raises_bitstream_error_only(garbage_decodes) -> None:  # noqa: ANN001
    assert garbage_decodes(StaticPrior(skewed_table(256)), 256) > 50


def test_decode_detects_leftover_words():
    prior = StaticPrior(skewed_table(256))
    ids = np.random.default_rng(4).integers(0, 256, size=(8, 8))
    payload = encode_ids(ids, prior)
    with pytest.raises(BitstreamError):
        decode_ids(payload, prior, (2, 2))


class ParityPrior:
    """A two-context prior: even columns favour low ids, odd columns high ids (stands in for a context model)."""

    num_ids = 64

    def tables(self, shape, previous=None):
        low = smooth_counts(np.arange(64, 0, -1) ** 3)
        contexts = np.broadcast_to(np.arange(shape[1]) % 2, shape)
        if previous is not None:  # inter-frame: swap contexts where the previous frame had a high id
            contexts = contexts ^ (previous >= 32)
        return PriorTables(np.stack([low, low[::-1]]), contexts.astype(np.int64))


def test_context_prior_round_trip_and_previous():
    prior = ParityPrior()
    assert isinstance(prior, IdPrior)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 64, size=(6, 7))
    previous = rng.integers(0, 64, size=(6, 7))
    np.testing.assert_array_equal(decode_ids(encode_ids(ids, prior), prior, (6, 7)), ids)
    payload = encode_ids(ids, prior, previous)
    np.testing.assert_array_equal(decode_ids(payload, prior, (6, 7), previous), ids)


def test_payload_is_deterministic_golden_words():
    freqs = np.array([1, 2, 3, 10], np.uint32)
    payload = encode_ids(np.array([[0, 3, 2], [3, 3, 1]]), StaticPrior(freqs))
    assert payload == encode_ids(np.array([[0, 3, 2], [3, 3, 1]]), StaticPrior(freqs.copy()))
    assert len(payload) == 4


def test_context_prior_goes_through_the_same_calls():
    """encode_ids/decode_ids take a ContextPrior (a SequentialPrior) like a StaticPrior, with the same checks."""
    from edgecodec.entropy import ContextPrior, SequentialPrior, ideal_bits
    from edgecodec.priors import PriorCounter

    counter = PriorCounter(64, 1)
    ids = np.kron(np.random.default_rng(6).integers(0, 64, size=(4, 5)), np.ones((3, 3), np.int64))
    counter.add(ids)
    prior = ContextPrior.from_tensors(counter.unigram, counter.tensors())
    assert isinstance(prior, SequentialPrior) and not isinstance(prior, IdPrior)
    payload = encode_ids(ids, prior)
    np.testing.assert_array_equal(decode_ids(payload, prior, ids.shape), ids)
    assert 8 * len(payload) <= 1.01 * ideal_bits(ids, prior) + 64
    assert len(payload) < len(encode_ids(ids, StaticPrior(smooth_counts(counter.unigram))))
    for bad in (np.array([[64]]), np.array([[-1]]), np.array([[0.0]]), np.zeros((2, 2, 2), np.int64)):
        with pytest.raises(ValueError):
            encode_ids(bad, prior)
    with pytest.raises(BitstreamError):
        decode_ids(payload, prior, (2, 2))  # words left over

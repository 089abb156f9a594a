"""Entropy coding of codebook-id grids. The only module that imports constriction.

Probabilities come from integer frequency tables only (``uint32``, every entry >= 1). A table is turned into the float64
probabilities constriction wants by ``freqs / freqs.sum()``: an IEEE division, correctly rounded and identical on every
machine, so a GPU sender and a CPU receiver build bit-identical models. Network outputs never reach this module.

A grid is coded with constriction's ANS coder (a stack). A prior maps each grid position to one of ``C`` contexts, each
with its own table; the ids of one context are coded in one call, so the Python loop runs over contexts, never symbols.
The payload is the compressed ``uint32`` words as little-endian bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import constriction
import numpy as np

from .errors import BitstreamError

__all__ = [
    "DEFAULT_TOTAL_BITS",
    "MAX_TOTAL_BITS",
    "IdPrior",
    "PriorTables",
    "StaticPrior",
    "cross_entropy_bits",
    "decode_ids",
    "encode_ids",
    "smooth_counts",
]

DEFAULT_TOTAL_BITS = 16
"""Tables from :func:`smooth_counts` sum to ``2**DEFAULT_TOTAL_BITS`` unless told otherwise."""
MAX_TOTAL_BITS = 24
"""constriction quantises to 24 bits, so finer tables buy nothing."""
_MAX_COUNT_BITS = 39  # counts are shifted below 2**39 so that count * budget (< 2**24) fits in int64


def smooth_counts(counts: np.ndarray, total_bits: int = DEFAULT_TOTAL_BITS) -> np.ndarray:
    """Turn raw id counts (length K) into a ``uint32`` table summing to ``2**total_bits``, every entry >= 1.

    Each id gets 1, and the remaining ``2**total_bits - K`` is shared in proportion to the counts (floor, then the
    leftover units go to the largest remainders, ties to the lowest id). Integer arithmetic only, so deterministic.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty 1-d array, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"counts must be integers, got dtype {counts.dtype}")
    if not 1 <= total_bits <= MAX_TOTAL_BITS:
        raise ValueError(f"total_bits must be in [1, {MAX_TOTAL_BITS}], got {total_bits}")
    counts = counts.astype(np.int64)
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    k = counts.size
    total = 1 << total_bits
    if k > total:
        raise ValueError(f"{k} ids do not fit in a table summing to 2**{total_bits}")
    budget = total - k
    count_sum = int(counts.sum())
    excess = count_sum.bit_length() - _MAX_COUNT_BITS
    if excess > 0:
        counts = counts >> excess
        count_sum = int(counts.sum())
    if count_sum == 0:
        counts = np.ones(k, dtype=np.int64)
        count_sum = k
    scaled = counts * budget
    share, remainder = scaled // count_sum, scaled % count_sum
    leftover = budget - int(share.sum())
    if leftover:
        order = np.lexsort((np.arange(k), -remainder))  # largest remainder first, then lowest id
        share[order[:leftover]] += 1
    return (share + 1).astype(np.uint32)


def _check_table(freqs: np.ndarray) -> np.ndarray:
    freqs = np.asarray(freqs)
    if freqs.ndim not in (1, 2) or freqs.shape[-1] == 0 or freqs.size == 0:
        raise ValueError(f"frequency tables must have shape (K,) or (C, K), got {freqs.shape}")
    if freqs.shape[-1] > 1 << MAX_TOTAL_BITS:
        raise ValueError(f"at most 2**{MAX_TOTAL_BITS} ids per table, got {freqs.shape[-1]}")
    if not np.issubdtype(freqs.dtype, np.integer):
        raise ValueError(f"frequency tables must be integers, got dtype {freqs.dtype}")
    if (freqs < 1).any() or (freqs > np.iinfo(np.uint32).max).any():
        raise ValueError("every frequency must be in [1, 2**32 - 1]")
    return freqs.astype(np.uint32)


def _probabilities(freqs: np.ndarray) -> np.ndarray:
    """float64 probabilities from one integer table: one correctly rounded division per entry."""
    f = freqs.astype(np.float64)
    return f / float(int(freqs.astype(np.uint64).sum()))


@dataclass(frozen=True)
class PriorTables:
    """What a prior hands the coder for one grid.

    ``freqs``: ``(C, K)`` uint32 tables, entries >= 1. ``contexts``: ``(h, w)`` indices into ``freqs``, or ``None`` when
    ``C == 1`` and every position uses table 0.
    """

    freqs: np.ndarray
    contexts: np.ndarray | None = None


@runtime_checkable
class IdPrior(Protocol):
    """Gives the integer tables used to code one id grid.

    The tables may depend only on what the receiver holds bit-exactly before decoding the grid: the grid shape, the
    integer tables shipped with the model, and ``previous`` (the id grid of an earlier frame, for inter-frame coding).
    """

    num_ids: int

    def tables(self, shape: tuple[int, int], previous: np.ndarray | None = None) -> PriorTables: ...


class StaticPrior:
    """One fixed table for every position; ignores ``previous``."""

    def __init__(self, freqs: np.ndarray) -> None:
        freqs = _check_table(freqs)
        if freqs.ndim != 1:
            raise ValueError(f"StaticPrior takes one table of shape (K,), got {freqs.shape}")
        self.freqs = freqs
        self.freqs.flags.writeable = False
        self.num_ids = int(freqs.size)
        self._tables = PriorTables(freqs[None, :])

    def tables(self, shape: tuple[int, int], previous: np.ndarray | None = None) -> PriorTables:
        return self._tables

    def __repr__(self) -> str:
        return f"StaticPrior(num_ids={self.num_ids}, total={int(self.freqs.astype(np.uint64).sum())})"


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or any(int(s) < 1 for s in shape):
        raise ValueError(f"grid shape must be two positive ints, got {shape}")
    return int(shape[0]), int(shape[1])


def _resolve(
    prior: IdPrior, shape: tuple[int, int], previous: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    t = prior.tables(shape, previous)
    freqs = _check_table(t.freqs)
    if freqs.ndim == 1:
        freqs = freqs[None, :]
    if freqs.shape[1] != prior.num_ids:
        raise ValueError(f"prior tables have {freqs.shape[1]} ids, prior says {prior.num_ids}")
    contexts = t.contexts
    if contexts is not None:
        contexts = np.asarray(contexts)
        if contexts.shape != shape or not np.issubdtype(contexts.dtype, np.integer):
            raise ValueError(f"contexts must be an integer array of shape {shape}")
        if contexts.min() < 0 or contexts.max() >= freqs.shape[0]:
            raise ValueError(f"contexts must lie in [0, {freqs.shape[0]})")
        contexts = contexts.reshape(-1)
    elif freqs.shape[0] != 1:
        raise ValueError("a prior with several tables must give contexts")
    return freqs, contexts


def _model(table: np.ndarray) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(_probabilities(table), perfect=False)


def encode_ids(ids: np.ndarray, prior: IdPrior, previous: np.ndarray | None = None) -> bytes:
    """Code an ``(h, w)`` integer id grid; returns the compressed words as little-endian bytes."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 2-d integer array, got shape {ids.shape} dtype {ids.dtype}")
    shape = _check_shape(ids.shape)
    if ids.min() < 0 or ids.max() >= prior.num_ids:
        raise ValueError(f"ids must lie in [0, {prior.num_ids}), got [{ids.min()}, {ids.max()}]")
    freqs, contexts = _resolve(prior, shape, previous)
    flat = ids.reshape(-1).astype(np.int32)
    coder = constriction.stream.stack.AnsCoder()
    # A stack: push the contexts last-to-first so the decoder pops context 0 first.
    for c in reversed(range(freqs.shape[0])):
        symbols = flat if contexts is None else flat[contexts == c]
        if symbols.size:
            coder.encode_reverse(symbols, _model(freqs[c]))
    return coder.get_compressed().astype("<u4").tobytes()


def decode_ids(
    payload: bytes | memoryview, prior: IdPrior, shape: tuple[int, int], previous: np.ndarray | None = None
) -> np.ndarray:
    """Inverse of :func:`encode_ids`; returns an ``(h, w)`` int32 grid. Corrupt payloads raise :class:`BitstreamError`.

    Decoding work and the output are proportional to ``h * w``; the caller bounds the shape (see ``bitstream``).
    """
    shape = _check_shape(shape)
    if len(payload) % 4:
        raise BitstreamError(f"id payload of {len(payload)} bytes is not a whole number of 32-bit words")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
    except ValueError as e:
        raise BitstreamError(f"corrupt id payload: {e}") from None
    freqs, contexts = _resolve(prior, shape, previous)
    out = np.empty(shape[0] * shape[1], dtype=np.int32)
    for c in range(freqs.shape[0]):
        n = out.size if contexts is None else int(np.count_nonzero(contexts == c))
        if not n:
            continue
        decoded = coder.decode(_model(freqs[c]), n)
        if contexts is None:
            out[:] = decoded
        else:
            out[contexts == c] = decoded
    if not coder.is_empty():
        raise BitstreamError(f"corrupt id payload: {coder.num_words()} words left after decoding {out.size} ids")
    return out.reshape(shape)


def cross_entropy_bits(ids: np.ndarray, freqs: np.ndarray) -> float:
    """Ideal code length in bits of ``ids`` under one integer table (what an ideal coder would spend)."""
    freqs = _check_table(freqs)
    if freqs.ndim != 1:
        raise ValueError("cross_entropy_bits takes one table of shape (K,)")
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= freqs.size):
        raise ValueError(f"ids must lie in [0, {freqs.size})")
    total = float(int(freqs.astype(np.uint64).sum()))
    return float(-np.log2(freqs[ids].astype(np.float64) / total).sum())

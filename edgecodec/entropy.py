"""Entropy coding of codebook-id grids. The only module that imports constriction.

Probabilities come from integer frequency tables only (``uint32``, every entry >= 1; see :mod:`edgecodec.priors`).
A table is turned into the float64 probabilities constriction wants by ``freqs / freqs.sum()``: an IEEE division,
correctly rounded and identical on every machine, so a GPU sender and a CPU receiver build bit-identical models.
Network outputs never reach this module.

A grid is coded with constriction's ANS coder (a stack); the payload is the compressed ``uint32`` words as
little-endian bytes. Two kinds of prior:

* :class:`~edgecodec.priors.IdPrior` (e.g. :class:`StaticPrior`): each position has one of ``C`` tables, known before
  decoding; the ids of one context are coded in one call, so the Python loop runs over contexts, never symbols.
* :class:`~edgecodec.priors.SequentialPrior` (e.g. :class:`ContextPrior`): the prior lists segments of symbols with
  their tables in decode order; each segment is one constriction call (a concrete model when the whole segment uses one
  table, else a model family with one probability row per symbol). A prior that has a ``runs(ids, previous)`` method
  (ContextPrior) hands the encoder the same symbols as :data:`~edgecodec.priors.Run` s instead, with their
  probabilities already looked up for the whole grid, so that the encoder's loop does nothing but the calls.
  ContextPrior makes a few segments per step (a row of every band), and decodes a step with as many calls.
"""

from __future__ import annotations

from collections.abc import Iterator

import constriction
import numpy as np

from .errors import BitstreamError
from .priors import (
    DEFAULT_TOTAL_BITS,
    MAX_TOTAL_BITS,
    ContextPrior,
    IdPrior,
    PriorTables,
    Run,
    Segment,
    SequentialPrior,
    StaticPrior,
    Tables,
    check_table,
    ideal_bits,
    make_prior,
    smooth_counts,
)

__all__ = [
    "DEFAULT_TOTAL_BITS",
    "MAX_TOTAL_BITS",
    "ContextPrior",
    "IdPrior",
    "PriorTables",
    "SequentialPrior",
    "StaticPrior",
    "cross_entropy_bits",
    "decode_ids",
    "encode_ids",
    "ideal_bits",
    "make_prior",
    "smooth_counts",
]

_check_table = check_table


def _probabilities(freqs: np.ndarray) -> np.ndarray:
    """float64 probabilities from one integer table: one correctly rounded division per entry."""
    f = freqs.astype(np.float64)
    return f / float(int(freqs.astype(np.uint64).sum()))


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


_FAMILY = constriction.stream.model.Categorical(perfect=False)  # probabilities given per symbol


def _check_ids(ids: np.ndarray, num_ids: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 2-d integer array, got shape {ids.shape} dtype {ids.dtype}")
    _check_shape(ids.shape)
    if ids.min() < 0 or ids.max() >= num_ids:
        raise ValueError(f"ids must lie in [0, {num_ids}), got [{ids.min()}, {ids.max()}]")
    return ids


def encode_ids(ids: np.ndarray, prior: IdPrior | SequentialPrior, previous: np.ndarray | None = None) -> bytes:
    """Code an ``(h, w)`` integer id grid; returns the compressed words as little-endian bytes."""
    ids = _check_ids(ids, prior.num_ids)
    coder = constriction.stream.stack.AnsCoder()
    if isinstance(prior, SequentialPrior):
        runs = getattr(prior, "runs", None)
        _push(coder, runs(ids, previous) if runs is not None else _segment_runs(prior.segments(ids, previous)))
        return coder.get_compressed().astype("<u4").tobytes()
    freqs, contexts = _resolve(prior, ids.shape, previous)
    flat = ids.reshape(-1).astype(np.int32)
    # A stack: push the contexts last-to-first so the decoder pops context 0 first.
    for c in reversed(range(freqs.shape[0])):
        symbols = flat if contexts is None else flat[contexts == c]
        if symbols.size:
            coder.encode_reverse(symbols, _model(freqs[c]))
    return coder.get_compressed().astype("<u4").tobytes()


def _segment_runs(segments: Iterator[Segment]) -> list[Run]:
    """The :data:`~edgecodec.priors.Run` s of a prior's segments, empty ones left out."""
    out = []
    for seg in segments:
        symbols = np.asarray(seg.symbols, dtype=np.int32)
        if symbols.size:
            probabilities = seg.tables.probabilities
            if isinstance(seg.contexts, (int, np.integer)):
                out.append((probabilities[seg.contexts], symbols))
            else:
                out.append((probabilities.take(np.asarray(seg.contexts), axis=0), symbols))
    return out


def _push(coder: constriction.stream.stack.AnsCoder, runs: list[Run]) -> None:
    """Encode ``runs`` so that the decoder pops them in order: a stack, so last to first."""
    for probabilities, symbols in reversed(runs):
        if probabilities.ndim == 1:
            coder.encode_reverse(symbols, constriction.stream.model.Categorical(probabilities, perfect=False))
        else:
            coder.encode_reverse(symbols, _FAMILY, probabilities)


def _reader(coder: constriction.stream.stack.AnsCoder):
    """The ``read(tables, contexts, count)`` callback a :class:`SequentialPrior` decodes through."""

    def read(tables: Tables, contexts: np.ndarray | int, count: int) -> np.ndarray:
        if count == 0:
            return np.empty(0, np.int32)
        try:
            if isinstance(contexts, (int, np.integer)):
                model = constriction.stream.model.Categorical(tables.probabilities[contexts], perfect=False)
                return coder.decode(model, count)
            return coder.decode(_FAMILY, tables.probabilities.take(contexts, axis=0))
        except (ValueError, RuntimeError) as e:  # constriction refuses a state it cannot have produced
            raise BitstreamError(f"corrupt id payload: {e}") from None

    return read


def decode_ids(
    payload: bytes | memoryview,
    prior: IdPrior | SequentialPrior,
    shape: tuple[int, int],
    previous: np.ndarray | None = None,
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
    if isinstance(prior, SequentialPrior):
        out = np.asarray(prior.decode(shape, _reader(coder), previous)).astype(np.int32)
        if out.shape != shape:
            raise ValueError(f"{prior!r} decoded a grid of shape {out.shape}, not {shape}")
    else:
        out = _decode_tables(coder, prior, shape, previous)
    if not coder.is_empty():
        raise BitstreamError(f"corrupt id payload: {coder.num_words()} words left after decoding {out.size} ids")
    return out


def _decode_tables(
    coder: constriction.stream.stack.AnsCoder, prior: IdPrior, shape: tuple[int, int], previous: np.ndarray | None
) -> np.ndarray:
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
    return out.reshape(shape)


def cross_entropy_bits(ids: np.ndarray, freqs: np.ndarray) -> float:
    """Ideal code length in bits of ``ids`` under one integer table (what an ideal coder would spend).

    Order-0 only; :func:`ideal_bits` gives the ideal length under any prior, context priors included."""
    freqs = _check_table(freqs)
    if freqs.ndim != 1:
        raise ValueError("cross_entropy_bits takes one table of shape (K,)")
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= freqs.size):
        raise ValueError(f"ids must lie in [0, {freqs.size})")
    total = float(int(freqs.astype(np.uint64).sum()))
    return float(-np.log2(freqs[ids].astype(np.float64) / total).sum())

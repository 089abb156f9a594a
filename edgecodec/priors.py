"""Integer priors of codebook-id grids: their statistics, their tables, and the interfaces the coder drives.

numpy only: training counts statistics here on machines without constriction, and :mod:`edgecodec.entropy` (the only
module that imports constriction) does the coding. Every table is an integer array; a coder turns a table into floats
only by ``freqs / freqs.sum()`` (see :class:`Tables`), so every machine builds bit-identical probabilities.

Two kinds of prior:

* :class:`IdPrior` (``tables(shape, previous)``): every table and context is known before the grid is decoded.
  :class:`StaticPrior` (one unigram table) is one.
* :class:`SequentialPrior` (``segments(ids)`` / ``decode(shape, read)``): the tables of a symbol may depend on symbols
  decoded before it. The prior lists the symbol *segments* in decode order, each with its integer tables and a table
  index per symbol; the coder encodes them, and on the way back the prior drives decoding through a ``read`` callback,
  one segment at a time. :class:`ContextPrior` is one; an inter-frame or learned model can be another. A prior may
  also give ``runs(ids, previous)``: the same symbols with their probabilities looked up (:data:`Run`), which the
  encoder then takes instead of the segments.

:class:`ContextPrior` codes each id as a *mode*: a copy of a causal neighbour at a fixed offset (the first offset in
priority order whose id is equal), or NEW (:mod:`edgecodec.modes`). A grid is cut into bands of ``band_rows`` rows
(format version 3; one band in version 2), each coded like a grid of its own, and coded step by step, step ``y``
holding row ``y`` of every band: the step's modes (one table per context, the context taken from the rows above in
the band), then its NEW ids (one table per position class, plus the counts of the NEW ids already coded in this grid),
then the copies are resolved with numpy. See ``docs/bitstream.md``. The encoder knows every table beforehand and
computes them for the whole grid at once; the decoder must go step by step (a row's contexts depend on the ids above
it), with a handful of numpy calls per step: 16 steps for any grid in version 3, one per row in version 2.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np

from edgecodec.modes import RowDecoder, compact, compute_modes, mode_contexts, num_contexts, offsets

__all__ = [
    "DEFAULT_TOTAL_BITS",
    "MAX_TOTAL_BITS",
    "ContextPrior",
    "IdPrior",
    "PriorCounter",
    "PriorTables",
    "Run",
    "Segment",
    "SequentialPrior",
    "StaticPrior",
    "SymbolReader",
    "Tables",
    "check_table",
    "compute_modes",
    "ideal_bits",
    "make_prior",
    "mode_contexts",
    "offsets",
    "smooth_counts",
    "smooth_rows",
]

DEFAULT_TOTAL_BITS = 16
"""Tables from :func:`smooth_counts` sum to ``2**DEFAULT_TOTAL_BITS`` unless told otherwise."""
MAX_TOTAL_BITS = 24
"""constriction quantises to 24 bits, so finer tables buy nothing."""
_MAX_COUNT_BITS = 39  # counts are shifted below 2**39 so that count * budget (< 2**24) fits in int64


# ---- integer smoothing ----------------------------------------------------------------------------------------
def smooth_counts(counts: np.ndarray, total_bits: int = DEFAULT_TOTAL_BITS) -> np.ndarray:
    """Turn raw id counts (length K) into a ``uint32`` table summing to ``2**total_bits``, every entry >= 1.

    Each id gets 1, and the remaining ``2**total_bits - K`` is shared in proportion to the counts (floor, then the
    leftover units go to the largest remainders, ties to the lowest id). Integer arithmetic only, so deterministic.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty 1-d array, got shape {counts.shape}")
    return smooth_rows(counts[None, :], total_bits)[0]


def smooth_rows(counts: np.ndarray, total_bits: int = DEFAULT_TOTAL_BITS) -> np.ndarray:
    """:func:`smooth_counts` applied to every row of a ``(C, K)`` count array at once (same result row by row)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty 2-d array, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"counts must be integers, got dtype {counts.dtype}")
    if not 1 <= total_bits <= MAX_TOTAL_BITS:
        raise ValueError(f"total_bits must be in [1, {MAX_TOTAL_BITS}], got {total_bits}")
    counts = counts.astype(np.int64)
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    k = counts.shape[1]
    total = 1 << total_bits
    if k > total:
        raise ValueError(f"{k} ids do not fit in a table summing to 2**{total_bits}")
    budget = total - k
    excess = np.array([max(int(s).bit_length() - _MAX_COUNT_BITS, 0) for s in counts.sum(1)], np.int64)
    counts = counts >> excess[:, None]
    sums = counts.sum(1)
    counts[sums == 0] = 1
    sums = counts.sum(1)[:, None]
    scaled = counts * budget
    share, remainder = scaled // sums, scaled % sums
    leftover = budget - share.sum(1)
    ids = np.broadcast_to(np.arange(k), counts.shape)
    order = np.lexsort((ids, -remainder), axis=1)  # largest remainder first, then lowest id
    np.put_along_axis(share, order, np.take_along_axis(share, order, 1) + (ids < leftover[:, None]), axis=1)
    return (share + 1).astype(np.uint32)


def check_table(freqs: np.ndarray) -> np.ndarray:
    """A ``(K,)`` or ``(C, K)`` integer table with every entry in ``[1, 2**32 - 1]``, as ``uint32``; else ValueError."""
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


# ---- priors whose tables are known before decoding ------------------------------------------------------------
@dataclass(frozen=True)
class PriorTables:
    """What an :class:`IdPrior` hands the coder for one grid.

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
        freqs = check_table(freqs)
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


# ---- priors whose tables depend on what was decoded before -----------------------------------------------------
class Tables:
    """``(C, A)`` integer frequency tables (entries in ``[1, 2**32 - 1]``) and their float64 probabilities.

    ``probabilities`` is ``freqs / freqs.sum(-1)``: one correctly rounded IEEE division per entry, identical on every
    machine. It is computed once per object.
    """

    def __init__(self, freqs: np.ndarray) -> None:
        freqs = check_table(freqs)
        self.freqs = freqs if freqs.ndim == 2 else freqs[None, :]
        self.freqs.flags.writeable = False

    @classmethod
    def _unchecked(cls, freqs: np.ndarray) -> Tables:
        """A table this module built itself and knows to be valid: skips the O(K) checks (row-wise coding)."""
        t = cls.__new__(cls)
        t.freqs = freqs[None, :]
        return t

    @classmethod
    def _exact(cls, freqs: np.ndarray, probabilities: np.ndarray) -> Tables:
        """One ``(K,)`` table of valid integer ``freqs`` whose caller already computed ``probabilities`` as
        ``freqs / freqs.sum()`` (the same division :attr:`probabilities` makes): row-wise decoding skips both."""
        t = cls.__new__(cls)
        t.freqs = freqs[None, :]
        t.__dict__["probabilities"] = probabilities[None, :]
        return t

    @property
    def num_symbols(self) -> int:
        return int(self.freqs.shape[1])

    @cached_property
    def probabilities(self) -> np.ndarray:
        f = self.freqs.astype(np.float64)
        p = f / self.freqs.astype(np.uint64).sum(1, keepdims=True).astype(np.float64)
        p.flags.writeable = False
        return p


@dataclass(frozen=True)
class Segment:
    """Symbols coded together: ``symbols[i]`` with table ``contexts[i]`` of ``tables`` (``contexts`` may be one int)."""

    tables: Tables
    contexts: np.ndarray | int
    symbols: np.ndarray


Run = tuple[np.ndarray, np.ndarray]
"""``(probabilities, symbols)``: ``symbols`` (``(n,)`` int32) coded with float64 ``probabilities`` that are an integer
table's ``freqs / freqs.sum()``: one ``(A,)`` table for all of them, or ``(n, A)``, one row per symbol (C-contiguous).
What a prior with a ``runs(ids, previous)`` method gives the coder instead of :class:`Segment` s: same symbols and
probabilities, in decode order, with the tables already looked up (see :meth:`ContextPrior.runs`)."""

SymbolReader = Callable[[Tables, "np.ndarray | int", int], np.ndarray]
"""``read(tables, contexts, count)``: the next ``count`` symbols, symbol ``i`` decoded with table ``contexts[i]``
(or table ``contexts`` for all when it is an int). Given by the coder to :meth:`SequentialPrior.decode`."""


@runtime_checkable
class SequentialPrior(Protocol):
    """A prior whose tables may depend on the symbols decoded before (in the same grid, or ``previous``).

    ``segments(ids)`` lists every symbol of the grid with its tables, in decode order. ``decode(shape, read)`` must ask
    ``read`` for exactly those segments in the same order and return the grid; it raises
    :class:`~edgecodec.errors.BitstreamError` for symbols the encoder can never produce.
    """

    num_ids: int

    def segments(self, ids: np.ndarray, previous: np.ndarray | None = None) -> Iterator[Segment]: ...

    def decode(self, shape: tuple[int, int], read: SymbolReader, previous: np.ndarray | None = None) -> np.ndarray: ...


# ---- the mode context model ------------------------------------------------------------------------------------
_ALPHA = 4  # pseudo-counts of the overall mode distribution added to each context's counts
_PARAM_VERSION = 1
DEFAULT_NEW_WEIGHT = 64  # NEW table = base (sums to 2**16) + 64 x counts so far: the base weighs as 1024 ids


class PriorCounter:
    """Counts every statistic of one layer's priors over id grids: unigram ids, modes per context, NEW ids per class.

    ``tensors()`` gives the integer tables a model file stores (``mode``, ``new``, ``param``) for
    :meth:`ContextPrior.from_tensors`; ``unigram`` is the count table of :class:`StaticPrior`.
    """

    def __init__(self, num_ids: int, period: int, new_weight: int = DEFAULT_NEW_WEIGHT) -> None:
        self.num_ids, self.period, self.new_weight = int(num_ids), int(period), int(new_weight)
        n = len(offsets(period))
        self.unigram = np.zeros(num_ids, np.int64)
        self.mode = np.zeros((num_contexts(period), n + 1), np.int64)
        self.new = np.zeros((period * period, num_ids), np.int64)

    def add(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids).astype(np.int64)
        if ids.ndim != 2 or ids.size == 0 or ids.min() < 0 or ids.max() >= self.num_ids:
            raise ValueError(f"ids must be a non-empty 2-d grid of values in [0, {self.num_ids})")
        ids = compact(ids)
        modes = compute_modes(ids, self.period)
        ctx = mode_contexts(ids, modes, self.period, 0, ids.shape[0])
        m = self.mode.shape[1]
        self.unigram += np.bincount(ids.ravel(), minlength=self.num_ids)
        self.mode += np.bincount((ctx * m + modes).ravel(), minlength=self.mode.size).reshape(self.mode.shape)
        new = modes == m - 1
        y, x = np.nonzero(new)
        cls = (y % self.period) * self.period + x % self.period
        self.new += np.bincount(cls * self.num_ids + ids[new], minlength=self.new.size).reshape(self.new.shape)

    def tensors(self) -> dict[str, np.ndarray]:
        param = np.array([_PARAM_VERSION, self.period, self.new_weight], np.int64)
        return {"mode": self.mode.copy(), "new": self.new.copy(), "param": param}


class ContextPrior:
    """Mode + NEW coding of id grids from integer count tables (see the module docstring); ignores ``previous``.

    ``mode_counts``: ``(num_contexts(period), n + 1)``; ``new_counts``: ``(period**2, K)``. Both are smoothed here
    with integer arithmetic. ``freqs`` is the order-0 table of the same model, kept for order-0 measures only.
    """

    def __init__(
        self,
        mode_counts: np.ndarray,
        new_counts: np.ndarray,
        period: int,
        new_weight: int = DEFAULT_NEW_WEIGHT,
        unigram: np.ndarray | None = None,
    ) -> None:
        self.period = int(period)
        self.band_rows: int | None = None
        """Grids are coded in bands of this many rows (format version 3); ``None``: as one band (version 2)."""
        self.offsets = offsets(self.period)
        n = len(self.offsets)
        mode_counts, new_counts = np.asarray(mode_counts), np.asarray(new_counts)
        if mode_counts.shape != (num_contexts(period), n + 1):
            raise ValueError(f"mode counts must have shape {(num_contexts(period), n + 1)}, got {mode_counts.shape}")
        if new_counts.ndim != 2 or new_counts.shape[0] != period * period or new_counts.shape[1] < 1:
            raise ValueError(f"NEW counts must have shape ({period * period}, K), got {new_counts.shape}")
        if not 0 <= new_weight <= 1 << 8:
            raise ValueError(f"NEW weight must be in [0, 256], got {new_weight}")
        self.num_ids = int(new_counts.shape[1])
        self.new_weight = int(new_weight)
        parent = smooth_counts(mode_counts.sum(0))
        blended = mode_counts.astype(np.int64) * (1 << DEFAULT_TOTAL_BITS) + _ALPHA * parent.astype(np.int64)
        self.mode_tables = Tables(smooth_rows(blended))
        self.new_base = smooth_rows(new_counts).astype(np.int64)
        self.freqs = smooth_counts(unigram if unigram is not None else new_counts.sum(0))
        self.freqs.flags.writeable = False

    @classmethod
    def from_tensors(cls, unigram: np.ndarray, tensors: Mapping[str, np.ndarray]) -> ContextPrior:
        """From a model file's tables (``mode``, ``new``, ``param``); ValueError when they do not fit together."""
        missing = {"mode", "new", "param"} - set(tensors)
        if missing:
            raise ValueError(f"context prior tables missing: {', '.join(sorted(missing))}")
        param = np.asarray(tensors["param"])
        if param.shape != (3,) or int(param[0]) != _PARAM_VERSION:
            raise ValueError(f"unknown context prior parameters {param.tolist()} (expected version {_PARAM_VERSION})")
        for name in ("mode", "new"):
            t = np.asarray(tensors[name])
            if not np.issubdtype(t.dtype, np.integer) or (t < 0).any():
                raise ValueError(f"context prior table {name!r} must hold non-negative integers")
        prior = cls(tensors["mode"], tensors["new"], int(param[1]), int(param[2]), unigram)
        if np.asarray(unigram).shape != (prior.num_ids,):
            raise ValueError(f"unigram table has shape {np.asarray(unigram).shape}, NEW tables {prior.num_ids} ids")
        return prior

    def __repr__(self) -> str:
        return (f"ContextPrior(num_ids={self.num_ids}, period={self.period}, new_weight={self.new_weight}, "
                f"band_rows={self.band_rows})")  # fmt: skip

    def with_band_rows(self, band_rows: int | None) -> ContextPrior:
        """This prior coding grids in bands of ``band_rows`` rows (an even number; ``None``: the whole grid as one
        band, format version 2), sharing its tables."""
        if band_rows is not None and (band_rows < 2 or band_rows % 2):
            raise ValueError(f"band rows must be an even number >= 2, got {band_rows}")
        other = copy.copy(self)
        other.band_rows = band_rows
        return other

    def _bands(self, h: int) -> tuple[int, int, int]:
        """``(rows, bands, last)``: the band height, the number of bands and the height of the last band of a grid of
        ``h`` rows."""
        rows = h if self.band_rows is None else min(self.band_rows, h)
        bands = -(-h // rows)
        return rows, bands, h - (bands - 1) * rows

    def _plan(self, ids: np.ndarray) -> _Plan:
        """Everything the encoder codes, computed for whole bands at once (see :class:`_Plan`)."""
        ids = compact(ids)
        h, w = ids.shape
        p = self.period
        rows, bands, last = self._bands(h)
        modes = np.full((bands * rows, w), len(self.offsets), np.int32)  # the last band padded with NEW modes
        contexts = np.zeros((bands * rows, w), np.int64)
        for y0 in range(0, h, rows):
            band = ids[y0 : y0 + rows]
            band_modes, y1 = compute_modes(band, p), y0 + band.shape[0]
            modes[y0:y1] = band_modes
            contexts[y0:y1] = mode_contexts(band, band_modes, p, 0, band.shape[0])
        grid = np.zeros((bands * rows, w), ids.dtype)
        grid[:h] = ids
        # step-major: step y holds row y of every band, band by band
        modes, contexts, grid = (a.reshape(bands, rows, w).swapaxes(0, 1) for a in (modes, contexts, grid))
        new = modes == len(self.offsets)
        new[last:, -1] = False  # the padding
        # a step's NEW ids go class by class (columns x % p == j), then band by band, left to right
        new_j = [new[:, :, j::p].reshape(rows, -1) for j in range(p)]
        grid_j = [grid[:, :, j::p].reshape(rows, -1) for j in range(p)]
        counts = np.stack([np.count_nonzero(a, axis=1) for a in new_j], 1)  # (rows, p)
        symbols = np.concatenate(grid_j, 1)[np.concatenate(new_j, 1)].astype(np.int32)  # (step, class, band, x)
        bounds = np.concatenate(([0], np.cumsum(counts.ravel())))
        freqs, totals = self._new_freqs(symbols, counts)
        return _Plan(np.ascontiguousarray(modes), np.ascontiguousarray(contexts), last, symbols, bounds.tolist(),
                     freqs, totals)  # fmt: skip

    def _new_freqs(self, symbols: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The NEW tables of each step and class: ``(s, p, K)`` int64 ``freqs`` (base + weight x that class's NEW ids
        in the steps before: ``y - p``, ``y - 2p``, ...) and their ``(s, p)`` int64 sums. ``symbols``: the NEW ids in
        decode order; ``counts``: ``(s, p)`` of them per step (a row of every band) and class."""
        h, p, k = counts.shape[0], self.period, self.num_ids
        q = -(-h // p)  # row y is (y // p, y % p) below: the rows of one class follow each other along axis 0
        group = np.repeat(np.arange(h * p), counts.ravel())
        added = np.bincount(group * k + symbols, minlength=q * p * p * k).reshape(q, p * p * k)
        added *= self.new_weight
        freqs = np.empty_like(added)
        freqs[0] = self.new_base.reshape(-1)
        for i in range(1, q):  # a running sum, row by row (np.cumsum along axis 0 is ~10x slower)
            np.add(freqs[i - 1], added[i - 1], out=freqs[i])
        padded = np.zeros((q * p, p), np.int64)
        padded[:h] = counts
        padded = padded.reshape(q, p * p)
        before = np.cumsum(padded, 0) - padded  # NEW ids of each class in the rows above (a small array)
        totals = self.new_base.sum(1) + self.new_weight * before
        return freqs.reshape(q * p, p, k)[:h], totals.reshape(q * p, p)[:h]

    def runs(self, ids: np.ndarray, previous: np.ndarray | None = None) -> list[Run]:
        """The grid's symbols as :data:`Run` s in decode order: same symbols and probabilities as :meth:`segments`,
        in fewer, larger arrays. Per step: the modes (one probability row each), then the NEW ids of each class."""
        plan = self._plan(ids)
        (s, bands, w), p, b = plan.modes.shape, self.period, plan.bounds
        modes = plan.modes.reshape(s, bands * w)
        rows = self.mode_tables.probabilities.take(plan.contexts.ravel(), axis=0).reshape(s, bands * w, -1)
        # == Tables(freqs[y, j]).probabilities[0], all at once: the same divisions of the same integers
        tables = plan.freqs.reshape(s * p, -1) / plan.totals.reshape(s * p, 1)
        out: list = [None] * (s * (p + 1))  # step y: its modes at y * (p + 1), then its p classes of NEW ids
        out[:: p + 1] = [(rows[y, :n], modes[y, :n]) for y, n in enumerate(plan.widths())]
        new = [(t, plan.symbols[a:e]) for t, a, e in zip(tables, b[:-1], b[1:], strict=True)]
        for j in range(p):
            out[j + 1 :: p + 1] = new[j::p]
        return [run for run in out if len(run[1])]

    def segments(self, ids: np.ndarray, previous: np.ndarray | None = None) -> Iterator[Segment]:
        plan = self._plan(ids)
        p, b = self.period, plan.bounds
        for y, n in enumerate(plan.widths()):
            yield Segment(self.mode_tables, plan.contexts[y].ravel()[:n], plan.modes[y].ravel()[:n])
            for j in range(p):
                if b[y * p + j + 1] > b[y * p + j]:
                    table = Tables._unchecked(plan.freqs[y, j].astype(np.uint32))
                    yield Segment(table, 0, plan.symbols[b[y * p + j] : b[y * p + j + 1]])

    def decode(self, shape: tuple[int, int], read: SymbolReader, previous: np.ndarray | None = None) -> np.ndarray:
        h, w = shape
        p, n, weight = self.period, len(self.offsets), self.new_weight
        rows, bands, last = self._bands(h)
        decoder = RowDecoder(p, w, bands)
        freqs = self.new_base.copy()  # (p * p, K): each class's NEW table, base + weight x NEW ids so far
        totals = freqs.sum(1).tolist()
        ids = np.empty((bands * rows, w), np.int64)
        by_band = ids.reshape(bands, rows, w)
        for y in range(rows):
            k = bands if y < last else bands - 1
            modes = read(self.mode_tables, decoder.contexts(y, k).ravel(), k * w).reshape(k, w)
            decoder.check(y, modes)
            new, values = modes == n, decoder.values(y, k)
            for j in range(p):
                sel = new[:, j::p]
                count = int(np.count_nonzero(sel))
                if count:
                    cls = (y % p) * p + j
                    symbols = read(Tables._exact(freqs[cls], freqs[cls] / totals[cls]), 0, count)
                    values[:, j::p][sel] = symbols
                    freqs[cls] += np.bincount(symbols, minlength=freqs.shape[1]) * weight
                    totals[cls] += weight * count
            by_band[:k, y] = decoder.resolve(y, modes)
        return ids[:h]


@dataclass(frozen=True)
class _Plan:
    """What :class:`ContextPrior` codes for one ``(h, w)`` grid cut into bands, in decode order.

    Step ``y`` codes row ``y`` of every band that has one (all but the last band when ``y >= last``). ``modes``:
    ``(rows, bands, w)`` int32 and ``contexts``: ``(rows, bands, w)`` int64 rows of ``mode_tables``, step by step
    (the last band padded). ``symbols``: the NEW ids (int32), step by step, within a step class by class (``x % p``),
    band by band, left to right; those of step ``y``, class ``j`` are ``symbols[bounds[y * p + j] : bounds[y * p + j +
    1]]`` and are coded with the table ``freqs[y, j]`` (``(rows, p, K)`` int64, the class's base table plus
    ``new_weight`` x the NEW ids of that class in the steps before), whose sum is ``totals[y, j]`` (``(rows, p)``).
    """

    modes: np.ndarray
    contexts: np.ndarray
    last: int
    symbols: np.ndarray
    bounds: list[int]
    freqs: np.ndarray
    totals: np.ndarray

    def widths(self) -> list[int]:
        """How many modes each step codes."""
        rows, bands, w = self.modes.shape
        return [bands * w if y < self.last else (bands - 1) * w for y in range(rows)]


# ---- model tables -> prior, ideal code lengths --------------------------------------------------------------
def make_prior(unigram: np.ndarray, tables: Mapping[str, np.ndarray] | None = None) -> StaticPrior | ContextPrior:
    """The prior of one layer from a model file: :class:`ContextPrior` when its tables are there, else static."""
    if tables:
        return ContextPrior.from_tensors(unigram, tables)
    return StaticPrior(smooth_counts(unigram))


def ideal_bits(ids: np.ndarray, prior: IdPrior | SequentialPrior, previous: np.ndarray | None = None) -> float:
    """Ideal code length in bits of the grid ``ids`` under ``prior``: the sum of ``-log2 p`` over every coded symbol,
    with the same float64 probabilities the coder uses. The payload exceeds it by the coder's overhead only."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a non-empty 2-d integer array, got shape {ids.shape} dtype {ids.dtype}")
    if ids.min() < 0 or ids.max() >= prior.num_ids:
        raise ValueError(f"ids must lie in [0, {prior.num_ids})")
    if isinstance(prior, SequentialPrior):
        total = 0.0
        for s in prior.segments(ids, previous):
            total -= float(np.log2(s.tables.probabilities[s.contexts, s.symbols]).sum())
        return total
    t = prior.tables(ids.shape, previous)
    probs = Tables(t.freqs).probabilities
    contexts = 0 if t.contexts is None else np.asarray(t.contexts)
    return float(-np.log2(probs[contexts, ids]).sum())

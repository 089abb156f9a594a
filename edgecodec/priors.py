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
  one segment at a time. :class:`ContextPrior` is one; an inter-frame or learned model can be another.

:class:`ContextPrior` codes each id as a *mode*: a copy of a causal neighbour at a fixed offset (the first offset in
priority order whose id is equal), or NEW. Grids are coded row by row: the row's modes (one table per context, the
context taken from the rows above), then the row's NEW ids (one table per position class, plus the counts of the NEW
ids already coded in this grid), then the copies are resolved with numpy. See ``docs/bitstream.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np

from edgecodec.errors import BitstreamError

__all__ = [
    "DEFAULT_TOTAL_BITS",
    "MAX_TOTAL_BITS",
    "ContextPrior",
    "IdPrior",
    "PriorCounter",
    "PriorTables",
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
def offsets(period: int) -> tuple[tuple[int, int], ...]:
    """Copy offsets (dy, dx) in priority order. ``period`` 2 suits grids made by space-to-depth."""
    if period == 1:
        return ((0, -1), (-1, 0), (-1, -1), (-1, 1))
    if period == 2:
        return ((0, -2), (-2, 0), (0, -1), (-1, 0), (-1, -1), (-1, 1))
    raise ValueError(f"period must be 1 or 2, got {period}")


def num_contexts(period: int) -> int:
    """Mode contexts: class (period**2) x availability (8) x equalities above (8) x two modes above (n + 2 each)."""
    n = len(offsets(period))
    return period * period * 64 * (n + 2) ** 2


def _shift(a: np.ndarray, y0: int, y1: int, dy: int, dx: int, fill: int) -> np.ndarray:
    """``a[y + dy, x + dx]`` for rows ``y0 <= y < y1`` (``dy < 0``), ``fill`` where that lies outside the grid."""
    w = a.shape[1]
    out = np.full((y1 - y0, w), fill, np.int64)
    lo = max(y0, -dy)
    if lo < y1:
        src = a[lo + dy : y1 + dy]
        if dx <= 0:
            out[lo - y0 :, -dx:] = src[:, : w + dx]
        else:
            out[lo - y0 :, : w - dx] = src[:, dx:]
    return out


def compute_modes(ids: np.ndarray, period: int) -> np.ndarray:
    """Mode of every position: index of the first offset whose neighbour holds the same id, else ``len(offsets)``."""
    offs = offsets(period)
    h, w = ids.shape
    ids = ids.astype(np.int64, copy=False)
    modes = np.full((h, w), len(offs), np.int64)
    for j in reversed(range(len(offs))):
        dy, dx = offs[j]
        nb = np.full((h, w), -1, np.int64)
        ys, xs = slice(max(-dy, 0), h), slice(max(-dx, 0), min(w, w - dx))
        nb[ys, xs] = ids[max(-dy, 0) + dy : h + dy, xs.start + dx : xs.stop + dx]
        modes[nb == ids] = j
    return modes


def mode_contexts(ids: np.ndarray, modes: np.ndarray, period: int, y0: int, y1: int) -> np.ndarray:
    """Context index of the mode at every position of rows ``y0 <= y < y1``, from rows above ``y`` only.

    Features: position class ``(y % p) * p + x % p``; which of up, left, right exist; which of the ids up, up-left,
    up-right are equal; the mode up, and the mode two up (period 2) or up-left (period 1). ``ids`` and ``modes`` need
    only rows ``< y1 - 1`` filled.
    """
    n = len(offsets(period))
    w = ids.shape[1]
    y = np.arange(y0, y1)[:, None]
    x = np.arange(w)[None, :]
    up, up_left, up_right = (_shift(ids, y0, y1, -1, dx, -1 - j) for j, dx in enumerate((0, -1, 1)))
    equal = (up == up_left) + 2 * (up == up_right) + 4 * (up_left == up_right)
    available = (y > 0) + 2 * (x > 0) + 4 * (x < w - 1)
    cls = (y % period) * period + x % period
    mode_up = _shift(modes, y0, y1, -1, 0, n + 1)
    mode_2nd = _shift(modes, y0, y1, -2, 0, n + 1) if period == 2 else _shift(modes, y0, y1, -1, -1, n + 1)
    return (((cls * 8 + available) * 8 + equal) * (n + 2) + mode_2nd) * (n + 2) + mode_up


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
        return f"ContextPrior(num_ids={self.num_ids}, period={self.period}, new_weight={self.new_weight})"

    def _new_tables(self, counts: np.ndarray, cls: int) -> Tables:
        # entries in [1, 2**16 + 256 * 2**22]: valid uint32 by construction
        return Tables._unchecked((self.new_base[cls] + self.new_weight * counts[cls]).astype(np.uint32))

    def _row_classes(self, y: int, columns: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
        """(class, column mask) of each position class of row ``y``; ``columns[j]`` masks the columns ``x % p == j``."""
        p = self.period
        return [((y % p) * p + j, columns[j]) for j in range(p)]

    def _columns(self, w: int) -> list[np.ndarray]:
        return [np.arange(w) % self.period == j for j in range(self.period)]

    def segments(self, ids: np.ndarray, previous: np.ndarray | None = None) -> Iterator[Segment]:
        ids = np.asarray(ids).astype(np.int64)
        h, w = ids.shape
        modes = compute_modes(ids, self.period)
        contexts = mode_contexts(ids, modes, self.period, 0, h)
        new = modes == len(self.offsets)
        counts = np.zeros((self.period**2, self.num_ids), np.int64)
        masks = self._columns(w)
        for y in range(h):
            yield Segment(self.mode_tables, contexts[y], modes[y])
            for cls, columns in self._row_classes(y, masks):
                symbols = ids[y][new[y] & columns]
                if symbols.size:
                    yield Segment(self._new_tables(counts, cls), 0, symbols)
                    counts[cls] += np.bincount(symbols, minlength=self.num_ids)

    def decode(self, shape: tuple[int, int], read: SymbolReader, previous: np.ndarray | None = None) -> np.ndarray:
        h, w = shape
        n = len(self.offsets)
        ids = np.zeros((h, w), np.int64)
        modes = np.zeros((h, w), np.int64)
        counts = np.zeros((self.period**2, self.num_ids), np.int64)
        contexts = _RowContexts(self.period, w)
        x = np.arange(w)
        # Copies read a buffer of three rows [y - 2, y - 1, y]; a copy's source is an index into it.
        buffer = np.zeros(3 * w, np.int64)
        source = np.arange(3 * w)
        delta = np.array([dy * w + dx for dy, dx in self.offsets] + [0], np.int64)
        valid = [self._valid_modes(y, w) for y in range(3)]  # rows 0, 1 and >= 2
        masks = self._columns(w)
        for y in range(h):
            row_modes = read(self.mode_tables, contexts(y, ids, modes), w).astype(np.int64)
            if not valid[min(y, 2)][row_modes, x].all():
                raise BitstreamError(f"corrupt id payload: a copy from outside the grid in row {y}")
            new = row_modes == n
            for cls, columns in self._row_classes(y, masks):
                sel = new & columns
                k = int(np.count_nonzero(sel))
                if k:
                    symbols = read(self._new_tables(counts, cls), 0, k).astype(np.int64)
                    buffer[2 * w :][sel] = symbols
                    counts[cls] += np.bincount(symbols, minlength=self.num_ids)
            source[2 * w :] = 2 * w + x + delta[row_modes]
            while True:  # pointer jumping: same-row copies point left, so chains end within log2(w) steps
                jumped = source[source]
                if np.array_equal(jumped, source):
                    break
                source = jumped
            ids[y] = buffer[source[2 * w :]]
            modes[y] = row_modes
            buffer[: 2 * w] = buffer[w:]
            buffer[w : 2 * w] = ids[y]
            source = np.arange(3 * w)
        return ids

    def _valid_modes(self, y: int, w: int) -> np.ndarray:
        """``(n + 1, w)``: whether mode m may occur at column x of row y (its offset lies inside the grid)."""
        x = np.arange(w)
        rows = [(y + dy >= 0) & (x + dx >= 0) & (x + dx < w) for dy, dx in self.offsets]
        return np.array(rows + [np.ones(w, bool)])


class _RowContexts:
    """:func:`mode_contexts` of one row at a time, as the decoder needs them: same values, fewer numpy calls."""

    def __init__(self, period: int, w: int) -> None:
        self.period, self.n = period, len(offsets(period))
        x = np.arange(w)
        self.base = {
            (above, parity): ((parity * period + x % period) * 8 + above + 2 * (x > 0) + 4 * (x < w - 1)) * 8
            for above in (0, 1)
            for parity in range(period)
        }
        self.padded = np.empty(w + 2, np.int64)
        self.padded[0], self.padded[-1] = -2, -3  # up-left at x = 0, up-right at x = w - 1
        self.none = np.full(w, self.n + 1, np.int64)

    def __call__(self, y: int, ids: np.ndarray, modes: np.ndarray) -> np.ndarray:
        n, base = self.n, self.base[(int(y > 0), y % self.period)]
        if y == 0:
            return (base * (n + 2) + self.none) * (n + 2) + self.none
        self.padded[1:-1] = ids[y - 1]
        up, up_left, up_right = self.padded[1:-1], self.padded[:-2], self.padded[2:]
        equal = (up == up_left) + 2 * (up == up_right) + 4 * (up_left == up_right)
        if self.period == 2:
            second = modes[y - 2] if y >= 2 else self.none
        else:
            second = np.concatenate(([n + 1], modes[y - 1][:-1]))
        return ((base + equal) * (n + 2) + second) * (n + 2) + modes[y - 1]


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

"""The mode model of :class:`~edgecodec.priors.ContextPrior`: copy offsets, modes and mode contexts of id grids.

numpy only. An id is coded as a *mode*: a copy of a causal neighbour at a fixed offset (the first offset in priority
order whose id is equal), or NEW. The whole-grid functions (:func:`compute_modes`, :func:`mode_contexts`) serve the
encoder and the counter; :class:`RowDecoder` gives the same contexts one row at a time, as the decoder needs them, and
resolves the copies of a decoded row. All arithmetic is on integers, so every machine gets the same values.
"""

from __future__ import annotations

import functools

import numpy as np

from edgecodec.errors import BitstreamError

__all__ = ["RowDecoder", "compact", "compute_modes", "mode_contexts", "num_contexts", "offsets"]


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


def compact(ids: np.ndarray) -> np.ndarray:
    """The ``(h, w)`` non-negative integer grid ``ids`` as ``uint16`` where its values fit, else as it is: the
    comparisons of :func:`compute_modes` and :func:`mode_contexts` run several times faster on narrow integers."""
    ids = np.asarray(ids)
    if ids.dtype.itemsize > 2 and ids.size and int(ids.max()) < 1 << 16:
        return ids.astype(np.uint16)
    return ids


def compute_modes(ids: np.ndarray, period: int) -> np.ndarray:
    """``(h, w)`` uint8 mode of every position of the ``(h, w)`` integer grid ``ids``: the index of the first offset of
    :func:`offsets` whose neighbour (inside the grid) holds the same id, else ``len(offsets(period))`` (NEW)."""
    offs = offsets(period)
    ids = np.asarray(ids)
    h, w = ids.shape
    modes = np.full((h, w), len(offs), np.uint8)
    for j in reversed(range(len(offs))):  # lowest index last: it wins
        dy, dx = offs[j]
        x0, x1 = max(-dx, 0), min(w, w - dx)
        if -dy >= h or x0 >= x1:
            continue
        here = ids[-dy:, x0:x1]
        np.copyto(modes[-dy:, x0:x1], j, where=here == ids[: h + dy, x0 + dx : x1 + dx])
    return modes


def _base_rows(period: int, w: int) -> np.ndarray:
    """``(2 * period, w)`` int32: the context part known from the position alone, row ``above * period + y % period``
    (``above``: whether the row has a row above). Still to be added: the equalities above, then the modes above."""
    x = np.arange(w)
    rows = [((parity * period + x % period) * 8 + above + 2 * (x > 0) + 4 * (x < w - 1)) * 8
            for above in (0, 1) for parity in range(period)]  # fmt: skip
    return np.array(rows, np.int32)


def _equalities(above: np.ndarray) -> np.ndarray:
    """``(r, w)`` uint8 from the ``(r, w)`` rows above: 1 * (up == up-left) + 2 * (up == up-right) + 4 * (up-left ==
    up-right), each term 0 where a neighbour lies outside the grid."""
    r, w = above.shape
    out = np.zeros((r, w), np.uint8)
    if w > 1:
        same = (above[:, 1:] == above[:, :-1]).view(np.uint8)  # x + 1 holds what x holds
        out[:, 1:] += same
        out[:, :-1] += same << 1
    if w > 2:
        out[:, 1:-1] += (above[:, 2:] == above[:, :-2]).view(np.uint8) << 2
    return out


def mode_contexts(ids: np.ndarray, modes: np.ndarray, period: int, y0: int, y1: int) -> np.ndarray:
    """``(y1 - y0, w)`` int32 context index (in ``[0, num_contexts(period))``) of the mode at every position of rows
    ``y0 <= y < y1`` of the ``(h, w)`` grids ``ids`` and ``modes``, from rows above ``y`` only.

    Features: position class ``(y % p) * p + x % p``; which of up, left, right exist; which of the ids up, up-left,
    up-right are equal; the mode up, and the mode two up (period 2) or up-left (period 1), ``n + 1`` where there is
    none. ``ids`` and ``modes`` need only rows ``< y1 - 1`` filled.
    """
    n = len(offsets(period))
    m = n + 2
    w = ids.shape[1]
    y = np.arange(y0, y1)
    out = _base_rows(period, w).take((y > 0) * period + y % period, axis=0)
    first, second = max(y0, 1), max(y0, 2) if period == 2 else max(y0, 1)  # first rows with the feature
    if first < y1:
        out[first - y0 :] += _equalities(np.asarray(ids)[first - 1 : y1 - 1])
    out *= m
    out[: second - y0] += n + 1
    if second < y1:
        if period == 2:
            out[second - y0 :] += modes[second - 2 : y1 - 2]
        else:
            out[second - y0 :, 1:] += modes[second - 1 : y1 - 1, :-1]
            out[second - y0 :, 0] += n + 1
    out *= m
    out[: first - y0] += n + 1
    if first < y1:
        out[first - y0 :] += modes[first - 1 : y1 - 1]
    return out


@functools.lru_cache(maxsize=64)
def _layout(period: int, w: int, bands: int) -> tuple:
    """What :class:`RowDecoder` knows from the grid's width and bands alone (read-only arrays, built once):
    the scaled position part of the contexts, the columns, the flat positions, the copy sources, the invalid modes
    per row (0, 1, >= 2) and the edge columns where a mode can be invalid from row 2 on."""
    offs = offsets(period)
    m = len(offs) + 2
    size = bands * w
    base = _base_rows(period, w).astype(np.int64) * (m * m)  # from the position alone, scaled to its place
    x = np.arange(w)
    flat = np.arange(size).reshape(bands, w)
    delta = [np.array([((s + dy) % 3 - s) * size + dx for dy, dx in offs] + [0]) for s in range(3)]
    dx_same_row = np.array([dx if dy == 0 else 0 for dy, dx in offs] + [0])  # < 0: a copy from this row
    # invalid[r][mode, x]: a mode whose neighbour lies outside the band, at row 0, 1 and >= 2
    inside = [[(y + dy >= 0) & (x + dx >= 0) & (x + dx < w) for dy, dx in offs] for y in range(3)]
    invalid = [~np.array(rows + [np.ones(w, bool)]) for rows in inside]
    edges = np.flatnonzero(invalid[2].any(0))
    arrays = [base, x, flat, *delta, dx_same_row, *invalid, edges]
    for a in arrays:
        a.flags.writeable = False
    return base, x, flat, delta, dx_same_row, invalid, edges


class RowDecoder:
    """The decoder's view of one grid of width ``w`` cut into ``bands`` bands of rows, decoded row by row in every band
    at once: the mode contexts of the next rows, checks of the decoded modes, and the ids they resolve to. Same values
    as :func:`compute_modes` and :func:`mode_contexts` applied to each band alone (``bands=1``: the whole grid).

    For local rows ``y = 0, 1, ...`` in order: :meth:`contexts`, then (once the modes are decoded) :meth:`check`, the
    NEW ids written into :meth:`values`, and :meth:`resolve`. ``k``: the bands that have a row ``y`` (the first ``k``;
    only the last band may be shorter). Rows are ``(k, w)`` arrays, band by band.
    """

    def __init__(self, period: int, w: int, bands: int = 1) -> None:
        self.period, self.w, self.bands = period, w, bands
        self.n = n = len(offsets(period))
        self.m = m = n + 2
        self.size = bands * w
        (self.base, self.x, self.flat, self.delta, self.dx_same_row, self.invalid,
         self.edges) = _layout(period, w, bands)  # fmt: skip
        none = np.full((bands, w), n + 1, np.int64)
        self.term = none * (m + 1)  # equalities and modes above, scaled, for the next row: none at row 0
        self.modes_up = none  # modes of the rows above
        self.padded = np.empty((bands, w + 2), np.int64)  # rows between two sentinels that equal nothing
        self.padded[:, 0], self.padded[:, -1] = -2, -3
        # Rows y - 2, y - 1 and y of every band sit in a ring of three slots, row y in slot y % 3; a copy reads its
        # source there. Slot s holds (bands, w) ids; a position is s * size + band * w + x.
        self.buffer = np.zeros(3 * self.size, np.int64)

    def contexts(self, y: int, k: int = 1) -> np.ndarray:
        """``(k, w)`` int64 mode contexts of row ``y`` of the first ``k`` bands (the rows above resolved)."""
        return self.base[(y > 0) * self.period + y % self.period] + self.term[:k]

    def check(self, y: int, modes: np.ndarray) -> None:
        """BitstreamError if one of the ``(k, w)`` decoded modes of row ``y`` copies from outside its band."""
        if y < 2:
            bad = self.invalid[y][modes, self.x].any()
        else:
            edges = self.edges
            bad = edges.size and self.invalid[2][modes[:, edges], edges].any()
        if bad:
            raise BitstreamError(f"corrupt id payload: a copy from outside the grid in row {y}")

    def values(self, y: int, k: int = 1) -> np.ndarray:
        """``(k, w)`` int64 view where row ``y``'s NEW ids are written, at their positions, before :meth:`resolve`."""
        s = y % 3
        return self.buffer[s * self.size : (s + 1) * self.size].reshape(self.bands, self.w)[:k]

    def resolve(self, y: int, modes: np.ndarray) -> np.ndarray:
        """``(k, w)`` int64 ids of row ``y`` of the first ``k`` bands from their checked ``(k, w)`` modes and the NEW
        ids in :meth:`values`; prepares the contexts of row ``y + 1``."""
        s, k = y % 3, modes.shape[0]
        here = self.flat[:k]
        source = here + s * self.size + self.delta[s].take(modes)
        dx = self.dx_same_row.take(modes)
        if np.count_nonzero(dx):  # copies within the row point left: follow them out of the row (pointer jumping)
            parent = (here + dx).ravel()
            total = int(np.add.reduce(parent))
            while True:
                parent = parent.take(parent)
                now = int(np.add.reduce(parent))  # pointers only move left: an unchanged sum is no change at all
                if now == total:
                    break
                total = now
            source = source.ravel().take(parent).reshape(k, self.w)
        ids = self.buffer.take(source)
        self.buffer[s * self.size : s * self.size + k * self.w] = ids.ravel()
        self._prepare(ids, modes)
        return ids

    def _prepare(self, ids: np.ndarray, modes: np.ndarray) -> None:
        """The part of the next row's contexts that comes from this row: equalities, the modes up and second."""
        k, m = ids.shape[0], self.m
        padded = self.padded[:k]
        padded[:, 1:-1] = ids
        same = padded[:, 1:] == padded[:, :-1]  # (k, w + 1): x - 1 and x hold the same id
        term = same[:, :-1] * (m * m)  # the equalities, scaled
        term += same[:, 1:] * (2 * m * m)
        term += (padded[:, 2:] == padded[:, :-2]) * (4 * m * m)
        if self.period == 2:  # the mode two up
            term += self.modes_up[:k] * m
        else:  # the mode up-left
            term[:, 1:] += modes[:, :-1] * m
            term[:, 0] += (self.n + 1) * m
        term += modes
        self.term[:k], self.modes_up[:k] = term, modes

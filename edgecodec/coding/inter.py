"""The inter prior: the ids of a P-frame coded conditionally on the ids of its reference frame, at the same layer.

numpy only, like :mod:`edgecodec.priors`; :mod:`edgecodec.entropy` drives it through the
:class:`~edgecodec.priors.SequentialPrior` interface with ``previous`` = the reference's id grid. Every table is an
integer array (counted on video and stored in the model file, or counted in the payload), so DESIGN principle 1
holds: a GPU sender and a CPU receiver build bit-identical probabilities.

A P-frame's grid is coded in five steps, each a handful of vectorised constriction calls (no Python loop over rows or
positions, so the whole grid costs a few milliseconds):

1. **Changed blocks.** The grid is cut into ``block x block`` tiles. The number ``nb`` of tiles holding any id that
   differs from the reference is coded (:func:`count_segments`), then one flag per tile with the two-entry table
   ``[Nb - nb, nb]``: the flags cost what their empirical entropy says, and a still frame costs only the count.
2. **Changed positions.** Inside changed tiles, each position is a *same as reference* / *changed* flag, in three
   classes by the reference's texture (how many of its four neighbours hold another id: 0, 1-2, 3-4; flicker lives
   on edges). Per class, the number of changed positions is coded, then the flags with the table
   ``[N_c - n_c, n_c]``.
3. **Modes.** A changed position copies the reference at one of four offsets (left, up, right, down: motion by one
   grid step), the first in that order whose reference id equals it, or is NEW. The mode is coded with a counted
   table per context; the context is the set of offsets that can be copied at all (inside the grid and holding
   another id than the reference at the position itself): 16 contexts of 5 modes.
4. **NEW ids**: each as its rank among the reference code's M nearest codes (a stored integer list per code, counted
   rank table), and only an id outside that list in full, with a counted table of the ids P-frames introduce. A
   changed id is most often a code near the one it replaces.

Positions are taken in row-major order everywhere. The decoder checks every count and mode against what the encoder
can produce, so a corrupt payload raises :class:`~edgecodec.errors.BitstreamError`.

Stored tables per layer ``l`` (int64, covered by the model fingerprint): ``prior_inter_mode.l`` (16, 5),
``prior_inter_new.l`` (K,), ``prior_inter_near.l`` (K, M), ``prior_inter_rank.l`` (M + 1,), ``prior_inter_param.l`` =
``[2, block, M]`` (version 1, ``[1, block]``, codes every NEW id in full and has no near or rank table). They are
counted by :class:`InterCounter` (``tools/count_inter_priors.py``). Source: the inter-frame issue (#11),
docs/bitstream.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from edgecodec.errors import BitstreamError
from edgecodec.modes import compact
from edgecodec.priors import Segment, SymbolReader, Tables, smooth_counts, smooth_rows

__all__ = [
    "INTER_OFFSETS",
    "InterCounter",
    "InterPrior",
    "count_segments",
    "inter_tables",
    "mode_contexts",
    "modes",
    "near_codes",
]

INTER_OFFSETS = ((0, -1), (-1, 0), (0, 1), (1, 0))
"""Reference offsets (dy, dx) a changed id may copy, in priority order: modes 0..3; mode 4 is NEW."""
NEW = len(INTER_OFFSETS)
NUM_CONTEXTS = 1 << len(INTER_OFFSETS)
TEXTURE_CLASS = np.array([0, 1, 1, 2, 2], np.int64)  # reference neighbours with another id (0..4) -> class
NUM_CLASSES = 3
DEFAULT_BLOCK = 4
_PARAM_VERSION = 2  # [2, block, M]: NEW ids as ranks among the reference code's M nearest codes; 1: [1, block]
DEFAULT_NEAR = 64
_ALPHA = 4  # pseudo-counts of the overall mode distribution added to each context's counts
_PREFIX = "inter_"
_BIT = Tables(np.array([1, 1], np.uint32))  # a uniform bit


# ---- counts -----------------------------------------------------------------------------------------------------
def count_segments(n: int, limit: int) -> list[Segment]:
    """Segments coding an integer ``0 <= n <= limit`` (``limit`` known to the decoder): its bit length with a
    uniform table over ``0..limit.bit_length()``, then the bits below the leading one, uniform. ~4 bits for 0."""
    if limit == 0:
        return []
    length = int(n).bit_length()
    table = Tables._unchecked(np.ones(int(limit).bit_length() + 1, np.uint32))
    out = [Segment(table, 0, np.array([length], np.int64))]
    if length > 1:
        bits = (n >> np.arange(length - 2, -1, -1)) & 1
        out.append(Segment(_BIT, 0, bits.astype(np.int64)))
    return out


def read_count(read: SymbolReader, limit: int, what: str) -> int:
    """Inverse of :func:`count_segments`; a count above ``limit`` is a corrupt payload."""
    if limit == 0:
        return 0
    table = Tables._unchecked(np.ones(int(limit).bit_length() + 1, np.uint32))
    length = int(read(table, 0, 1)[0])
    if length <= 1:
        n = length
    else:
        bits = read(_BIT, 0, length - 1).astype(np.int64)
        n = int((1 << (length - 1)) + (bits << np.arange(length - 2, -1, -1)).sum())
    if n > limit:
        raise BitstreamError(f"corrupt inter payload: {n} {what} of at most {limit}")
    return n


def _flag_table(n: int, total: int) -> Tables:
    return Tables._unchecked(np.array([total - n, n], np.uint32))


def _flags_segments(flags: np.ndarray) -> list[Segment]:
    """A boolean vector: its count of ones, then (unless all equal) the flags with the empirical two-entry table."""
    total, n = int(flags.size), int(np.count_nonzero(flags))
    out = count_segments(n, total)
    if 0 < n < total:
        out.append(Segment(_flag_table(n, total), 0, flags.astype(np.int64)))
    return out


def _read_flags(read: SymbolReader, total: int, what: str) -> np.ndarray:
    n = read_count(read, total, what)
    if n in (0, total):
        return np.full(total, n == total)
    flags = read(_flag_table(n, total), 0, total).astype(bool)
    if int(np.count_nonzero(flags)) != n:
        raise BitstreamError(f"corrupt inter payload: {what} flags do not add up to their count")
    return flags


# ---- the statistics of one P-frame -------------------------------------------------------------------------------
_POPCOUNT = np.array([bin(i).count("1") for i in range(NUM_CONTEXTS)], np.int64)
_CLASS_OF_CONTEXT = TEXTURE_CLASS[_POPCOUNT].astype(np.uint8)  # one look-up instead of two


def mode_contexts(ref: np.ndarray) -> np.ndarray:
    """``(h, w)`` uint8 context of every position: bit j set when offset j of :data:`INTER_OFFSETS` can be copied
    there (inside the grid, and the reference holds another id there than at the position itself): 0..15."""
    ref = compact(ref)
    horizontal = ref[:, 1:] != ref[:, :-1]  # (h, w - 1): x differs from x + 1
    vertical = ref[1:, :] != ref[:-1, :]  # (h - 1, w): y differs from y + 1
    ctx = np.zeros(ref.shape, np.uint8)
    ctx[:, 1:] |= horizontal.view(np.uint8)  # left
    ctx[1:, :] |= vertical.view(np.uint8) << 1  # up
    ctx[:, :-1] |= horizontal.view(np.uint8) << 2  # right
    ctx[:-1, :] |= vertical.view(np.uint8) << 3  # down
    return ctx


def texture_classes(contexts: np.ndarray) -> np.ndarray:
    """uint8 class 0..2 of positions by how many reference neighbours hold another id, from their
    :func:`mode_contexts` (any shape)."""
    return _CLASS_OF_CONTEXT.take(contexts)


def _neighbours_at(ref: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(4, k)`` reference ids at :data:`INTER_OFFSETS` of positions ``(ys, xs)`` (-1 outside the grid), and
    whether each can be copied."""
    h, w = ref.shape
    padded = np.full((h + 2, w + 2), -1, np.int64)  # a border of -1: every neighbour is one flat look-up
    padded[1:-1, 1:-1] = ref
    padded = padded.ravel()
    at = (ys + 1) * (w + 2) + (xs + 1)
    nb = np.stack([padded.take(at + (dy * (w + 2) + dx)) for dy, dx in INTER_OFFSETS])
    return nb, (nb >= 0) & (nb != padded.take(at))


def _modes_at(ids: np.ndarray, nb: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Modes of changed positions with values ``ids`` (k,), given their neighbours: first copyable offset whose
    reference id is equal, else NEW."""
    out = np.full(ids.shape, NEW, np.int64)
    for j in reversed(range(len(INTER_OFFSETS))):
        out[usable[j] & (nb[j] == ids)] = j
    return out


def modes(ids: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``(h, w)`` mode of every position: -1 where ``ids`` equals the reference, else the first offset whose
    reference id is equal (and can be copied), else :data:`NEW` (4)."""
    ids, ref = np.asarray(ids), np.asarray(ref)
    out = np.full(ids.shape, -1, np.int64)
    ys, xs = np.nonzero(ids != ref)
    out[ys, xs] = _modes_at(ids[ys, xs], *_neighbours_at(ref, ys, xs))
    return out


def _block_grid(shape: tuple[int, int], block: int) -> tuple[int, int]:
    return -(-shape[0] // block), -(-shape[1] // block)


def _block_of(shape: tuple[int, int], block: int) -> np.ndarray:
    """``(h, w)`` int32 row-major index of the tile each position lies in."""
    h, w = shape
    _, bw = _block_grid(shape, block)
    return (np.arange(h, dtype=np.int32)[:, None] // block) * bw + np.arange(w, dtype=np.int32)[None, :] // block


# ---- the prior ---------------------------------------------------------------------------------------------------
class InterPrior:
    """P-frame coding of id grids against a reference grid (module docstring); a
    :class:`~edgecodec.priors.SequentialPrior` whose ``previous`` is required.

    ``mode_counts``: (16, 5) int counts of the modes per context; ``new_counts``: (K,) int counts of NEW ids;
    ``block``: tile side in ids (1..64). ``near`` (K, M) ints: for each code, the M nearest other codes, nearest first
    (an integer table stored with the model, so both ends agree whatever their floating point), with ``rank_counts``
    (M + 1,): how often a NEW id was the r-th nearest code of the reference id, or none of them (r = M). With them a
    NEW id is coded as that rank, and only an id outside the list as itself. Raises ValueError for tables of the wrong
    shape, sign or range.
    """

    def __init__(
        self,
        mode_counts: np.ndarray,
        new_counts: np.ndarray,
        block: int = DEFAULT_BLOCK,
        near: np.ndarray | None = None,
        rank_counts: np.ndarray | None = None,
    ) -> None:
        mode_counts, new_counts = np.asarray(mode_counts), np.asarray(new_counts)
        if mode_counts.shape != (NUM_CONTEXTS, NEW + 1):
            raise ValueError(f"inter mode counts must have shape {(NUM_CONTEXTS, NEW + 1)}, got {mode_counts.shape}")
        if new_counts.ndim != 1 or new_counts.size < 2:
            raise ValueError(f"inter NEW counts must have shape (K,), got {new_counts.shape}")
        if not 1 <= int(block) <= 64:
            raise ValueError(f"inter block must be in 1..64, got {block}")
        if (mode_counts >= 1 << 40).any() or (new_counts >= 1 << 40).any():
            raise ValueError("inter counts must be below 2**40")
        self.block = int(block)
        self.num_ids = int(new_counts.size)
        parent = smooth_counts(mode_counts.sum(0))
        blended = mode_counts.astype(np.int64) * (1 << 16) + _ALPHA * parent.astype(np.int64)
        self.mode_tables = Tables(smooth_rows(blended))
        self.new_table = Tables(smooth_counts(new_counts))
        self.new_bits = -np.log2(self.new_table.probabilities[0])
        """``(K,)`` float64: ideal bits of each id as a NEW id outside the reference's near list."""
        self.near = self.rank_table = self.rank_bits = None
        if (near is None) != (rank_counts is None):
            raise ValueError("the near-code table and the rank counts go together")
        if near is not None:
            self._set_near(np.asarray(near), np.asarray(rank_counts))

    def _set_near(self, near: np.ndarray, rank_counts: np.ndarray) -> None:
        k = self.num_ids
        if near.ndim != 2 or near.shape[0] != k or not 1 <= near.shape[1] < k:
            raise ValueError(f"inter near-code table must have shape ({k}, M) with 1 <= M < {k}, got {near.shape}")
        m = near.shape[1]
        if rank_counts.shape != (m + 1,) or (rank_counts < 0).any() or (rank_counts >= 1 << 40).any():
            raise ValueError(f"inter rank counts must be {m + 1} non-negative counts below 2**40")
        if near.min() < 0 or near.max() >= k or (near == np.arange(k)[:, None]).any():
            raise ValueError(f"inter near-code table must hold other codes' ids in [0, {k})")
        if (np.sort(near, 1)[:, 1:] == np.sort(near, 1)[:, :-1]).any():
            raise ValueError("inter near-code table repeats a code in a row")
        self.near = near.astype(np.int64)
        self._near32 = near.astype(np.int32)  # for the rank look-ups of replenishment: half the memory traffic
        self.rank_table = Tables(smooth_counts(rank_counts))
        self.rank_bits = -np.log2(self.rank_table.probabilities[0])
        """``(M + 1,)`` float64: ideal bits of a NEW id at each rank of the near list (the last: outside it)."""

    def ranks(self, ref_ids: np.ndarray, new_ids: np.ndarray) -> np.ndarray:
        """Rank of each NEW id in its reference id's near list (0 = nearest), M where it is not in the list."""
        m = self.near.shape[1]
        hit = self._near32[ref_ids] == np.asarray(new_ids, np.int32)[:, None]
        return np.where(hit.any(1), hit.argmax(1), m)

    def switch_bits(self, ref_ids: np.ndarray, new_ids: np.ndarray) -> np.ndarray:
        """Ideal bits of coding each ``new_ids`` as a NEW id against ``ref_ids`` (conditional replenishment's rate)."""
        if self.near is None:
            return self.new_bits[new_ids]
        rank = self.ranks(ref_ids, new_ids)
        return self.rank_bits[rank] + np.where(rank == self.near.shape[1], self.new_bits[new_ids], 0.0)

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray]) -> InterPrior:
        """From a model file's ``inter_mode``, ``inter_new``, ``inter_param`` tables (and, in version 2,
        ``inter_near`` and ``inter_rank``); ValueError if they do not fit."""
        missing = {"inter_mode", "inter_new", "inter_param"} - set(tensors)
        if missing:
            raise ValueError(f"inter prior tables missing: {', '.join(sorted(missing))}")
        param = np.asarray(tensors["inter_param"])
        version = int(param[0]) if param.ndim == 1 and param.size else -1
        if (version, param.shape) not in ((1, (2,)), (2, (3,))):
            raise ValueError(f"unknown inter prior parameters {param.tolist()} (expected version 1 or 2)")
        names = ("inter_mode", "inter_new") + (("inter_near", "inter_rank") if version == 2 else ())
        for name in names:
            if name not in tensors:
                raise ValueError(f"inter prior table {name!r} missing")
            t = np.asarray(tensors[name])
            if not np.issubdtype(t.dtype, np.integer) or (t < 0).any():
                raise ValueError(f"inter prior table {name!r} must hold non-negative integers")
        if version == 2 and np.asarray(tensors["inter_near"]).shape[1:] != (int(param[2]),):
            raise ValueError(f"inter near-code table does not have the {int(param[2])} columns its parameters say")
        near = (tensors["inter_near"], tensors["inter_rank"]) if version == 2 else (None, None)
        return cls(tensors["inter_mode"], tensors["inter_new"], int(param[1]), *near)

    def __repr__(self) -> str:
        near = "" if self.near is None else f", near={self.near.shape[1]}"
        return f"InterPrior(num_ids={self.num_ids}, block={self.block}{near})"

    def _reference(self, previous: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
        if previous is None:
            raise ValueError("the inter prior codes against a reference grid: previous is required")
        ref = np.asarray(previous)
        if ref.shape != tuple(shape) or not np.issubdtype(ref.dtype, np.integer):
            raise ValueError(f"reference grid {ref.shape} ({ref.dtype}) does not match an integer grid {tuple(shape)}")
        ref = ref.astype(np.int64, copy=False)
        if ref.size and (ref.min() < 0 or ref.max() >= self.num_ids):
            raise ValueError(f"reference ids must lie in [0, {self.num_ids})")
        return ref

    def _tiles(self, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        return _block_of(shape, self.block).ravel(), int(np.prod(_block_grid(shape, self.block)))

    def segments(self, ids: np.ndarray, previous: np.ndarray | None = None) -> Iterator[Segment]:
        ids = np.asarray(ids).astype(np.int64)
        ref = self._reference(previous, ids.shape)
        flat = (ids != ref).ravel()
        tile, nb = self._tiles(ids.shape)
        tiles = np.bincount(tile[flat], minlength=nb) > 0
        yield from _flags_segments(tiles)
        inside = tiles[tile]
        ctx = mode_contexts(ref).ravel()
        cls = texture_classes(ctx)
        for c in range(NUM_CLASSES):
            yield from _flags_segments(flat[inside & (cls == c)])
        if flat.any():
            ys, xs = np.divmod(np.flatnonzero(flat), ids.shape[1])
            values = ids[ys, xs]
            mode = _modes_at(values, *_neighbours_at(ref, ys, xs))
            yield Segment(self.mode_tables, ctx[flat].astype(np.int64), mode)
            yield from self._new_segments(ref[ys, xs][mode == NEW], values[mode == NEW])

    def _new_segments(self, ref_ids: np.ndarray, new_ids: np.ndarray) -> Iterator[Segment]:
        """NEW ids: their ranks in the reference ids' near lists, then the ids outside them (or all ids, version 1)."""
        if not new_ids.size:
            return
        if self.near is not None:
            rank = self.ranks(ref_ids, new_ids)
            yield Segment(self.rank_table, 0, rank)
            new_ids = new_ids[rank == self.near.shape[1]]
        if new_ids.size:
            yield Segment(self.new_table, 0, new_ids)

    def _read_new(self, read: SymbolReader, ref_ids: np.ndarray) -> np.ndarray:
        if self.near is None:
            return read(self.new_table, 0, ref_ids.size).astype(np.int64)
        m = self.near.shape[1]
        rank = read(self.rank_table, 0, ref_ids.size).astype(np.int64)
        out = self.near[ref_ids, np.minimum(rank, m - 1)]
        outside = rank == m
        if outside.any():
            out[outside] = read(self.new_table, 0, int(outside.sum()))
            if (self.ranks(ref_ids[outside], out[outside]) < m).any():
                raise BitstreamError("corrupt inter payload: a NEW id coded in full that its rank would have named")
        return out

    def decode(self, shape: tuple[int, int], read: SymbolReader, previous: np.ndarray | None = None) -> np.ndarray:
        ref = self._reference(previous, shape)
        tile, nb = self._tiles(shape)
        tiles = _read_flags(read, nb, "changed tiles")
        inside = tiles[tile]
        ctx = mode_contexts(ref).ravel()
        cls = texture_classes(ctx)
        flat = np.zeros(ref.size, bool)
        for c in range(NUM_CLASSES):
            sel = inside & (cls == c)
            flat[sel] = _read_flags(read, int(np.count_nonzero(sel)), "changed positions")
        if not np.array_equal(np.bincount(tile[flat], minlength=nb) > 0, tiles):
            raise BitstreamError("corrupt inter payload: a changed tile holds no changed id")
        ids = ref.copy()
        k = int(np.count_nonzero(flat))
        if not k:
            return ids
        mode = read(self.mode_tables, ctx[flat].astype(np.int64), k).astype(np.int64)
        ys, xs = np.divmod(np.flatnonzero(flat), shape[1])
        nbs, usable = _neighbours_at(ref, ys, xs)
        copy = mode < NEW
        cols = np.flatnonzero(copy)
        if not usable[mode[cols], cols].all():
            raise BitstreamError("corrupt inter payload: a copy from a reference neighbour that cannot be copied")
        values = np.empty(k, np.int64)
        values[cols] = nbs[mode[cols], cols]
        if cols.size < k:
            values[~copy] = self._read_new(read, ref[ys, xs][~copy])
        if (values == ref[ys, xs]).any() or not np.array_equal(_modes_at(values, nbs, usable), mode):
            raise BitstreamError("corrupt inter payload: ids that the encoder cannot produce")
        ids[ys, xs] = values
        return ids


# ---- counting -----------------------------------------------------------------------------------------------------
class InterCounter:
    """Counts the statistics of the inter prior over (P-frame ids, reference ids) pairs of one layer."""

    def __init__(self, num_ids: int, block: int = DEFAULT_BLOCK, near: np.ndarray | None = None) -> None:
        """``near``: the (K, M) near-code table to count NEW ids' ranks against (:func:`near_codes`); without it the
        tables are those of version 1 (NEW ids coded in full)."""
        self.num_ids, self.block = int(num_ids), int(block)
        self.mode = np.zeros((NUM_CONTEXTS, NEW + 1), np.int64)
        self.new = np.zeros(self.num_ids, np.int64)
        self.near = None if near is None else np.asarray(near).astype(np.int64)
        self.rank = None if near is None else np.zeros(self.near.shape[1] + 1, np.int64)
        self.frames = 0
        self.positions = 0
        self.changed = 0

    def add(self, ids: np.ndarray, ref: np.ndarray) -> None:
        """Count one P-frame: ``ids`` coded against ``ref`` (both (h, w) ints in [0, K))."""
        ids, ref = np.asarray(ids).astype(np.int64), np.asarray(ref).astype(np.int64)
        if ids.shape != ref.shape or ids.ndim != 2 or ids.size == 0:
            raise ValueError(f"ids {ids.shape} and reference {ref.shape} must be equal non-empty 2-d grids")
        for a in (ids, ref):
            if a.min() < 0 or a.max() >= self.num_ids:
                raise ValueError(f"ids must lie in [0, {self.num_ids})")
        changed = ids != ref
        ys, xs = np.nonzero(changed)
        mode = _modes_at(ids[ys, xs], *_neighbours_at(ref, ys, xs))
        ctx = mode_contexts(ref)[ys, xs].astype(np.int64)
        self.mode += np.bincount(ctx * (NEW + 1) + mode, minlength=self.mode.size).reshape(self.mode.shape)
        new_ids, ref_ids = ids[ys, xs][mode == NEW], ref[ys, xs][mode == NEW]
        if self.near is not None:
            m = self.near.shape[1]
            hit = self.near[ref_ids] == new_ids[:, None]
            rank = np.where(hit.any(1), hit.argmax(1), m)
            self.rank += np.bincount(rank, minlength=m + 1)
            new_ids = new_ids[rank == m]
        self.new += np.bincount(new_ids, minlength=self.num_ids)
        self.frames += 1
        self.positions += ids.size
        self.changed += int(np.count_nonzero(changed))

    def tensors(self) -> dict[str, np.ndarray]:
        """The tables a model file stores for :meth:`InterPrior.from_tensors`."""
        if self.near is None:
            param = np.array([1, self.block], np.int64)
            return {"inter_mode": self.mode.copy(), "inter_new": self.new.copy(), "inter_param": param}
        param = np.array([_PARAM_VERSION, self.block, self.near.shape[1]], np.int64)
        return {"inter_mode": self.mode.copy(), "inter_new": self.new.copy(), "inter_param": param,
                "inter_near": self.near.copy(), "inter_rank": self.rank.copy()}  # fmt: skip


def near_codes(codes: np.ndarray, m: int = DEFAULT_NEAR) -> np.ndarray:
    """``(K, m)`` int64: for each of the ``(K, D)`` codes the ``m`` most similar other codes (largest dot product,
    ties to the lower id). Computed once from the float codebook when the tables are counted and stored as integers,
    so that no decoder ever recomputes it."""
    codes = np.asarray(codes, np.float64)
    k = codes.shape[0]
    m = min(int(m), k - 1)
    sim = codes @ codes.T
    np.fill_diagonal(sim, -np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(k), sim.shape), -sim), axis=1)
    return order[:, :m].astype(np.int64)


def inter_tables(tables: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split a layer's stored prior tables into (intra tables, inter tables)."""
    intra = {k: v for k, v in tables.items() if not k.startswith(_PREFIX)}
    inter = {k: v for k, v in tables.items() if k.startswith(_PREFIX)}
    return intra, inter

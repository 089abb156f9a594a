"""The fast paths of ContextPrior (whole-grid plans, runs, row-by-row decoding) against its reference semantics.

:class:`ReferencePrior` is the plain form of the intra bitstream (``docs/bitstream.md``), as ContextPrior coded it
before it was made fast: contexts from shifted copies of the grid, one segment per row and class with a table made
from running counts, decoding by pointer jumping over a three-row buffer. It has no ``runs``, so the coder drives it
through the generic segment path. Every test here fails if the two ever code or decode differently.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgecodec import modes as mode_model
from edgecodec.bitstream import INTRA_BAND_ROWS
from edgecodec.entropy import _segment_runs, decode_ids, encode_ids
from edgecodec.errors import BitstreamError
from edgecodec.priors import ContextPrior, Segment, Tables, ideal_bits
from tests.test_priors import structured_grid, trained_prior

SHAPES = [(1, 1), (1, 2), (1, 9), (9, 1), (2, 1), (2, 2), (3, 5), (5, 3), (17, 23), (40, 56)]


# ---- the reference ----------------------------------------------------------------------------------------------
def ref_shift(a: np.ndarray, y0: int, y1: int, dy: int, dx: int, fill: int) -> np.ndarray:
    """``a[y + dy, x + dx]`` for rows ``y0 <= y < y1`` (``dy < 0``), ``fill`` outside the grid."""
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


def ref_modes(ids: np.ndarray, period: int) -> np.ndarray:
    offs = mode_model.offsets(period)
    h, w = ids.shape
    modes = np.full((h, w), len(offs), np.int64)
    for j in reversed(range(len(offs))):
        dy, dx = offs[j]
        nb = np.full((h, w), -1, np.int64)
        ys, xs = slice(max(-dy, 0), h), slice(max(-dx, 0), min(w, w - dx))
        nb[ys, xs] = ids[max(-dy, 0) + dy : h + dy, xs.start + dx : xs.stop + dx]
        modes[nb == ids] = j
    return modes


def ref_contexts(ids: np.ndarray, modes: np.ndarray, period: int, y0: int, y1: int) -> np.ndarray:
    n = len(mode_model.offsets(period))
    w = ids.shape[1]
    y, x = np.arange(y0, y1)[:, None], np.arange(w)[None, :]
    up, up_left, up_right = (ref_shift(ids, y0, y1, -1, dx, -1 - j) for j, dx in enumerate((0, -1, 1)))
    equal = (up == up_left) + 2 * (up == up_right) + 4 * (up_left == up_right)
    available = (y > 0) + 2 * (x > 0) + 4 * (x < w - 1)
    cls = (y % period) * period + x % period
    mode_up = ref_shift(modes, y0, y1, -1, 0, n + 1)
    mode_2nd = ref_shift(modes, y0, y1, -2, 0, n + 1) if period == 2 else ref_shift(modes, y0, y1, -1, -1, n + 1)
    return (((cls * 8 + available) * 8 + equal) * (n + 2) + mode_2nd) * (n + 2) + mode_up


class ReferencePrior:
    """ContextPrior's bitstream, coded the plain way with ``prior``'s tables (a SequentialPrior without ``runs``).

    ``band_rows``: the grid is cut into bands of that many rows, each coded like a grid of its own, row ``y`` of every
    band in one step (format version 3); ``None``: one band (version 2)."""

    def __init__(self, prior: ContextPrior, band_rows: int | None = None) -> None:
        self.prior, self.num_ids, self.period = prior, prior.num_ids, prior.period
        self.offsets = mode_model.offsets(prior.period)
        self.band_rows = band_rows

    def _table(self, counts: np.ndarray, cls: int) -> Tables:
        return Tables((self.prior.new_base[cls] + self.prior.new_weight * counts[cls]).astype(np.uint32))

    def _bands(self, h: int) -> list[tuple[int, int]]:
        rows = h if self.band_rows is None else self.band_rows
        return [(y0, min(h, y0 + rows)) for y0 in range(0, h, rows)]

    def _classes(self, y: int, w: int) -> list[tuple[int, np.ndarray]]:
        p = self.period
        return [((y % p) * p + j, np.arange(w) % p == j) for j in range(p)]

    def segments(self, ids, previous=None):
        ids = np.asarray(ids).astype(np.int64)
        h, w = ids.shape
        bands = [ids[y0:y1] for y0, y1 in self._bands(h)]
        modes = [ref_modes(b, self.period) for b in bands]
        contexts = [ref_contexts(b, m, self.period, 0, b.shape[0]) for b, m in zip(bands, modes, strict=True)]
        counts = np.zeros((self.period**2, self.num_ids), np.int64)
        for y in range(len(bands[0])):
            here = [i for i, b in enumerate(bands) if y < b.shape[0]]
            yield Segment(self.prior.mode_tables, np.concatenate([contexts[i][y] for i in here]),
                          np.concatenate([modes[i][y] for i in here]))  # fmt: skip
            for cls, columns in self._classes(y, w):
                new = [bands[i][y][(modes[i][y] == len(self.offsets)) & columns] for i in here]
                symbols = np.concatenate(new)
                if symbols.size:
                    yield Segment(self._table(counts, cls), 0, symbols)
                    counts[cls] += np.bincount(symbols, minlength=self.num_ids)

    def decode(self, shape, read, previous=None):
        h, w = shape
        bands = [_ReferenceBand(y1 - y0, w, self.period) for y0, y1 in self._bands(h)]
        counts = np.zeros((self.period**2, self.num_ids), np.int64)
        for y in range(bands[0].h):
            here = [b for b in bands if y < b.h]
            ctx = np.concatenate([b.contexts(y) for b in here])
            modes = read(self.prior.mode_tables, ctx, len(here) * w).astype(np.int64).reshape(len(here), w)
            for band, row_modes in zip(here, modes, strict=True):
                band.check(y, row_modes)
            for cls, columns in self._classes(y, w):
                sel = [(row_modes == len(self.offsets)) & columns for row_modes in modes]
                total = int(sum(s.sum() for s in sel))
                if total:
                    symbols = read(self._table(counts, cls), 0, total).astype(np.int64)
                    counts[cls] += np.bincount(symbols, minlength=self.num_ids)
                    for band, s in zip(here, sel, strict=True):
                        band.buffer[2 * w :][s], symbols = symbols[: s.sum()], symbols[s.sum() :]
            for band, row_modes in zip(here, modes, strict=True):
                band.resolve(y, row_modes)
        return np.concatenate([b.ids for b in bands])


class _ReferenceBand:
    """One band of :class:`ReferencePrior`'s decoder: its ids and modes so far and a three-row buffer."""

    def __init__(self, h: int, w: int, period: int) -> None:
        self.h, self.w, self.period = h, w, period
        self.offsets = mode_model.offsets(period)
        self.ids, self.modes = np.zeros((h, w), np.int64), np.zeros((h, w), np.int64)
        self.buffer = np.zeros(3 * w, np.int64)  # rows y - 2, y - 1, y

    def contexts(self, y: int) -> np.ndarray:
        return ref_contexts(self.ids, self.modes, self.period, y, y + 1)[0]

    def check(self, y: int, row_modes: np.ndarray) -> None:
        x = np.arange(self.w)
        for j, (dy, dx) in enumerate(self.offsets):
            outside = (y + dy < 0) | (x + dx < 0) | (x + dx >= self.w)
            if (outside & (row_modes == j)).any():
                raise BitstreamError("a copy from outside the grid")

    def resolve(self, y: int, row_modes: np.ndarray) -> None:
        w = self.w
        delta = np.array([dy * w + dx for dy, dx in self.offsets] + [0], np.int64)
        source = np.arange(3 * w)
        source[2 * w :] = 2 * w + np.arange(w) + delta[row_modes]
        while not np.array_equal(source[source], source):
            source = source[source]
        self.ids[y], self.modes[y] = self.buffer[source[2 * w :]], row_modes
        self.buffer[: 2 * w] = self.buffer[w:]
        self.buffer[w : 2 * w] = self.ids[y]


# ---- grids ------------------------------------------------------------------------------------------------------
def grids(shape: tuple[int, int], k: int, seed: int) -> list[np.ndarray]:
    """Random ids, few ids (many copies, long chains within rows), structured, constant."""
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, k, size=shape),
        rng.integers(0, 3, size=shape),
        structured_grid(shape, k, seed),
        np.full(shape, k - 1),
    ]


PRIORS = {period: trained_prior(256, period, seed=period) for period in (1, 2)}


# ---- tests ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("band_rows", [None, 2, 4, 16])
@pytest.mark.parametrize("period", [1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_path_codes_and_decodes_like_the_reference(period, shape, band_rows):
    prior = PRIORS[period].with_band_rows(band_rows)
    reference = ReferencePrior(PRIORS[period], band_rows)
    for ids in grids(shape, prior.num_ids, seed=shape[0] * 100 + shape[1]):
        fast, slow = encode_ids(ids, prior), encode_ids(ids, reference)
        assert fast == slow
        np.testing.assert_array_equal(decode_ids(fast, reference, shape), ids)
        np.testing.assert_array_equal(decode_ids(slow, prior, shape), ids)
        assert ideal_bits(ids, prior) == pytest.approx(ideal_bits(ids, reference), rel=1e-12)


def test_bands_change_the_bitstream_only_past_the_first_band():
    """A grid of at most one band codes the same in both versions; a taller one differs (its bands restart)."""
    prior = PRIORS[2]
    low, tall = grids((16, 20), prior.num_ids, seed=1)[2], grids((40, 20), prior.num_ids, seed=1)[2]
    assert encode_ids(low, prior.with_band_rows(16)) == encode_ids(low, prior)
    assert encode_ids(tall, prior.with_band_rows(16)) != encode_ids(tall, prior)
    with pytest.raises(ValueError, match="even number"):
        prior.with_band_rows(3)


@pytest.mark.parametrize("period", [1, 2])
def test_runs_are_the_segments_with_their_tables_looked_up(period):
    prior = PRIORS[period]
    ids = grids((13, 22), prior.num_ids, seed=5)[2]
    runs, segments = prior.runs(ids), _segment_runs(prior.segments(ids))
    assert len(runs) == len(segments)
    for (p, s), (q, t) in zip(runs, segments, strict=True):
        assert p.dtype == q.dtype == np.float64 and p.flags.c_contiguous
        np.testing.assert_array_equal(p, q)  # exactly: the same divisions of the same integers
        np.testing.assert_array_equal(s, t)
        assert s.dtype == np.int32


@pytest.mark.parametrize("period", [1, 2])
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 3), (9, 14)])
def test_modes_and_contexts_match_the_reference(period, shape):
    rng = np.random.default_rng(shape[0] + 7 * shape[1])
    for k in (2, 3, 1000, 70000):  # 70000: ids that do not fit in uint16
        ids = rng.integers(0, k, size=shape)
        modes = mode_model.compute_modes(ids, period)
        np.testing.assert_array_equal(modes, ref_modes(ids, period))
        np.testing.assert_array_equal(mode_model.compute_modes(mode_model.compact(ids), period), modes)
        h = shape[0]
        expected = ref_contexts(ids, modes.astype(np.int64), period, 0, h)
        np.testing.assert_array_equal(mode_model.mode_contexts(ids, modes, period, 0, h), expected)
        for y0 in range(h):  # any slice of rows, rows below it unset
            for y1 in range(y0 + 1, min(h, y0 + 3) + 1):
                got = mode_model.mode_contexts(ids, modes, period, y0, y1)
                np.testing.assert_array_equal(got, expected[y0:y1])


@pytest.mark.parametrize("period", [1, 2])
@pytest.mark.parametrize("bands", [1, 3])
def test_row_decoder_gives_the_band_contexts_and_ids(period, bands):
    """Bands of 11 rows, the last one 5: row y of every band at once, each band like a grid of its own."""
    grid = np.random.default_rng(period).integers(0, 3, size=(11 * bands - 6 * (bands > 1), 17))
    parts = [grid[y0 : y0 + 11] for y0 in range(0, grid.shape[0], 11)]
    modes = [mode_model.compute_modes(b, period).astype(np.int32) for b in parts]
    whole = [mode_model.mode_contexts(b, m, period, 0, len(b)) for b, m in zip(parts, modes, strict=True)]
    rows = mode_model.RowDecoder(period, 17, len(parts))
    n = len(mode_model.offsets(period))
    for y in range(11):
        k = sum(y < len(b) for b in parts)
        step_modes = np.stack([m[y] for m in modes[:k]])
        np.testing.assert_array_equal(rows.contexts(y, k), np.stack([c[y] for c in whole[:k]]))
        rows.check(y, step_modes)
        values, ids = rows.values(y, k), np.stack([b[y] for b in parts[:k]])
        values[step_modes == n] = ids[step_modes == n]
        np.testing.assert_array_equal(rows.resolve(y, step_modes), ids)


def test_row_decoder_refuses_copies_from_outside_the_grid():
    rows = mode_model.RowDecoder(1, 4)
    with pytest.raises(BitstreamError):
        rows.check(0, np.array([[4, 1, 4, 4]], np.int32))  # up, in row 0
    rows = mode_model.RowDecoder(2, 4, 2)
    for y in range(2):
        rows.check(y, np.full((2, 4), 6, np.int32))
        rows.resolve(y, np.full((2, 4), 6, np.int32))
    with pytest.raises(BitstreamError):
        rows.check(2, np.array([[6, 6, 6, 6], [6, 6, 6, 5]], np.int32))  # up-right at the last column, band 2


def test_real_ids_code_like_the_reference():
    """hqa5's ids of a Kodak crop (or a synthetic frame) at every layer, both ways."""
    import cv2

    from edgecodec.capture import SyntheticSource
    from edgecodec.codec import Codec
    from edgecodec.data import read_rgb
    from tests.conftest import SHARED_DATA

    codec = Codec("hqa5")
    kodak = SHARED_DATA / "eval" / "kodak" / "kodim23.png"
    if kodak.is_file():
        rgb = cv2.resize(read_rgb(kodak), (176, 144), interpolation=cv2.INTER_AREA)
    else:
        rgb = SyntheticSource((176, 144)).read().rgb
    code = codec.encode(rgb)
    for layer in range(1, codec.num_layers + 1):
        ids, prior = code.ids[layer - 1], codec.priors[layer - 1]
        reference = ReferencePrior(prior, INTRA_BAND_ROWS)
        payload = encode_ids(ids, prior)
        assert payload == encode_ids(ids, reference)
        np.testing.assert_array_equal(decode_ids(payload, reference, ids.shape), ids)
        np.testing.assert_array_equal(decode_ids(payload, prior, ids.shape), ids)


@pytest.mark.parametrize("band_rows, pinned", [(None, "PINNED"), (INTRA_BAND_ROWS, "PINNED_V3")])
def test_payload_digest_is_pinned(band_rows, pinned):
    """The intra bitstream of a fixed grid, pinned by its SHA-256: format version 2 (one band; computed by the code
    before the fast paths) and version 3 (bands of 16 rows; the 23-row grid has two).

    ``tests/expected/golden_context_packet.bin`` pins a version 3 packet too. A change here is a change of the
    bitstream: it needs a format version bump, not a new digest."""
    digests = []
    for period in (1, 2):
        prior = PRIORS[period].with_band_rows(band_rows)
        for ids in grids((23, 31), prior.num_ids, seed=3):
            digests.append(hashlib.sha256(encode_ids(ids, prior)).hexdigest()[:16])
    assert digests == globals()[pinned]


PINNED = [  # period 1, then 2; per period: random, three ids, structured, constant
    "c9496a788ac7f1dc", "7c1cbe977e676fc2", "08ed575d1c8821d4", "d1cd6c9f42ce4f06",
    "8e75294619bd5c59", "1a63e2fbca74b4fe", "53451d6e7a9a1245", "773e44b8abcbae13",
]  # fmt: skip

PINNED_V3 = [  # the same grids coded in bands of 16 rows
    "f6021ff0a6ec2834", "30656d2f51944d96", "0418f3257eba2ad7", "84c85a98ed07b9b6",
    "8aa44ddb572ab644", "4b5b1e6fc9fb67ea", "5aefebdc766fdce4", "8fadd361e6f3e24c",
]  # fmt: skip


def test_codec_decodes_each_packet_with_the_coding_of_its_version():
    """A keyframe written by a format-2 sender (whole-grid context coding) still decodes on a format-3 codec, which
    codes in bands; the version byte, not the codec, decides how the payload is read."""
    from dataclasses import replace

    from edgecodec import bitstream
    from edgecodec.capture import SyntheticSource
    from edgecodec.codec import Codec

    codec = Codec("hqa5-cpu")
    code = codec.encode(SyntheticSource((128, 96)).read().rgb)
    ids = code.ids[0]  # 48 x 64: three bands in format 3
    assert ids.shape[0] > 2 * INTRA_BAND_ROWS
    old_payload = encode_ids(ids, codec._intra_prior(1, 2))
    assert old_payload != codec.code_ids(ids, 1)
    new = codec.parse(codec.packet(code, 1))
    old = codec.parse(bitstream.encode_packet(replace(new, payload=old_payload, version=2)))
    assert (new.version, old.version) == (3, 2)
    np.testing.assert_array_equal(codec.packet_ids(new), ids)
    np.testing.assert_array_equal(codec.packet_ids(old), ids)

"""Conditional replenishment: which ids of a P-frame to update, and which to keep from the reference.

Where the encoder's best id differs from the reference id, switching costs bits (a changed flag, a mode and usually a
NEW id) and buys distortion. The sender keeps the reference id unless switching lowers the latent distortion by more
than ``lam`` times the bits it costs (Mann, Mitchell et al.'s conditional replenishment, here as a rate-distortion
test in latent space, DESIGN.md "Inter frames"). A still scene then costs almost nothing, and ids stop flickering.

Distortion is the squared distance between the unit encoder output z_e and the code (what the encoder's nearest-code
search minimises, so ``lam`` = 0 keeps exactly the encoder's ids), summed over the D channels of a position and
scaled by the mean of 1/std^2 of the layer's z_e, the scale of its quantisation error ``qerr``; ``lam`` is in those
units per bit. ``tools/sweep_lambda.py`` measured the default (rate presets' ``replenish_lambda``, docs/inter.md).
Nothing here reaches the entropy coder's probabilities: the ids it returns are coded like any other ids, so the
receiver decodes exactly what the sender chose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["SWITCH_FLAG_BITS", "LayerCodes", "Replenished", "replenish"]

SWITCH_FLAG_BITS = 2.0
"""Bits charged to a switch beyond its NEW id: the changed flag, its tile and its mode. A fixed estimate, not
measured: the flags cost their empirical entropy, which the decision cannot know before it is made."""


@dataclass(frozen=True)
class LayerCodes:
    """What the decision needs of one layer: ``codes`` (K, D) float32 unit codes, ``inv_std`` (D,) float32 (1 / the
    running std of z_e; its mean square scales distortion), and ``switch_bits(ref_ids, new_ids)``: the ideal bits of
    coding each new id (n,) where the reference holds ref_ids (n,) (:meth:`InterPrior.switch_bits`), at least
    ``min_bits`` each."""

    codes: np.ndarray
    inv_std: np.ndarray
    switch_bits: Callable[[np.ndarray, np.ndarray], np.ndarray]
    min_bits: float = 0.0

    @cached_property
    def squared_norms(self) -> np.ndarray:
        return np.einsum("kd,kd->k", self.codes, self.codes)

    @cached_property
    def scale(self) -> float:
        return float(np.mean(self.inv_std * self.inv_std))


@dataclass(frozen=True)
class Replenished:
    """The P-frame's ids and what keeping reference ids cost in distortion.

    ``ids``: (h, w) int64. ``kept_gain``: summed distortion (units of :mod:`replenish`'s docstring) that switching the
    kept positions would have removed (<= 0 where the reference code was the better one). ``switched``/``kept``:
    positions whose best id differed from the reference and were updated / kept."""

    ids: np.ndarray
    kept_gain: float
    switched: int
    kept: int


def replenish(best: np.ndarray, ref: np.ndarray, z: np.ndarray, layer: LayerCodes, lam: float) -> Replenished:
    """Conditional replenishment of one grid.

    ``best``: (h, w) int ids the encoder found; ``ref``: (h, w) int reference ids; ``z``: (h, w, D) float32 unit
    encoder output (:meth:`~edgecodec.runtime.Backend.encode_latents`); ``lam`` >= 0 (0 switches wherever the best
    code is nearer). Raises ValueError for mismatched shapes or a negative ``lam``.
    """
    best, ref = np.asarray(best), np.asarray(ref)
    if best.shape != ref.shape or z.shape[:2] != best.shape or z.shape[2] != layer.codes.shape[1]:
        raise ValueError(f"best {best.shape}, reference {ref.shape} and z {z.shape} do not fit together")
    if not lam >= 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    differ = np.flatnonzero(best != ref)
    out = ref.astype(np.int64, copy=True)
    if not differ.size:
        return Replenished(out, 0.0, 0, 0)
    d = layer.codes.shape[1]
    zz = z.reshape(-1, d)[differ]
    b, r = best.reshape(-1)[differ], ref.reshape(-1)[differ]
    # |z - c_r|^2 - |z - c_b|^2 = 2 z.(c_b - c_r) + |c_r|^2 - |c_b|^2, scaled like qerr
    sq = layer.squared_norms
    gain = (2.0 * np.einsum("nd,nd->n", zz, layer.codes[b] - layer.codes[r]) + sq[r] - sq[b]) * layer.scale
    switch = gain > lam * (layer.min_bits + SWITCH_FLAG_BITS)  # only these can pay for any switch
    maybe = np.flatnonzero(switch)
    switch[maybe] = gain[maybe] > lam * (layer.switch_bits(r[maybe], b[maybe]) + SWITCH_FLAG_BITS)
    out.reshape(-1)[differ[switch]] = b[switch]
    kept = ~switch
    return Replenished(out, float(gain[kept].sum()), int(switch.sum()), int(kept.sum()))

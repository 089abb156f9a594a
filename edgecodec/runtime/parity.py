"""Do two backends agree? Ids position by position, and frames decoded from the same ids, in PSNR.

Used by the tests, by ``edgecodec export`` (a check after building) and by the benchmarks. Float arithmetic differs
between runtimes, so a position whose two nearest codes are a near-tie may get another id; what matters is that
such positions are rare and that decoding the same ids gives the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of float frames in [0, 1]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@dataclass(frozen=True)
class Parity:
    id_mismatch: list[float]  # per layer, fraction of positions whose ids differ
    psnr_ref: list[float]  # per layer, PSNR of the reference decode of the reference ids against the input
    psnr_change: list[float]  # per layer, PSNR(other decode) - PSNR(reference decode) of the same ids, dB
    psnr_between: list[float]  # per layer, PSNR between the two decodes of the same ids
    qerr_max_diff: float

    @property
    def psnr_delta(self) -> list[float]:
        """Per layer, |PSNR change| of the same ids."""
        return [abs(c) for c in self.psnr_change]

    def lines(self) -> list[str]:
        return [
            f"layer {i + 1}: ids differ at {m:.4%} of positions; same ids decode to {p:.2f} dB vs input, "
            f"other backend {d:+.4f} dB, {b:.1f} dB between the two"
            for i, (m, p, d, b) in enumerate(
                zip(self.id_mismatch, self.psnr_ref, self.psnr_change, self.psnr_between, strict=True)
            )
        ]


def compare(ref, other, frames: np.ndarray) -> Parity:  # noqa: ANN001 - two Backends
    """Encode ``frames`` (N, 3, H, W) float32 with both backends and decode the reference ids with both."""
    ids_ref, qerr_ref = ref.encode(frames)
    ids_other, qerr_other = other.encode(frames)
    mismatch, p_ref, between, change = [], [], [], []
    for layer, (a, b) in enumerate(zip(ids_ref, ids_other, strict=True), start=1):
        if a.shape != b.shape:
            raise ValueError(f"layer {layer}: id grids {a.shape} and {b.shape} differ in shape")
        mismatch.append(float(np.mean(a != b)))
        da, db = ref.decode(a, layer), other.decode(a, layer)
        pa, pb = psnr(da, frames), psnr(db, frames)
        p_ref.append(pa)
        change.append(pb - pa)
        between.append(psnr(da, db))
    return Parity(mismatch, p_ref, change, between, float(np.max(np.abs(qerr_ref - qerr_other))))

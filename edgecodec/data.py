"""Image folders for training and evaluation: listing, loading, and random crops with flips."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecodec.errors import SourceError
from edgecodec.readers import read_image

if TYPE_CHECKING:  # imported where tensors are made: listing and reading images needs no torch
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}


def list_images(dirs: Iterable[str | Path], exclude: Sequence[str | Path] = ()) -> list[Path]:
    """Every image file below ``dirs`` (recursively, sorted), minus those below any folder in ``exclude``."""
    excluded = [Path(e).resolve() for e in exclude]
    out: list[Path] = []
    for d in dirs:
        root = Path(d)
        if not root.exists():
            raise SourceError(f"no such folder: {d}")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        out += [p for p in files if not any(p.resolve().is_relative_to(e) for e in excluded)]
    if not out:
        raise SourceError(f"no images found in {', '.join(map(str, dirs))}")
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as an RGB uint8 array (H, W, 3), upright (:func:`edgecodec.readers.read_image`: OpenCV, then
    Pillow with the EXIF/TIFF orientation applied)."""
    return read_image(path)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Float (N, 3, H, W) in [0, 1] -> RGB uint8 (N, H, W, 3), rounded."""
    import torch

    return frames.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class CropSampler:
    """Random square crops with horizontal and vertical flips, drawn from images held on ``device``."""

    def __init__(self, images: Sequence[np.ndarray], device: torch.device | str = "cpu") -> None:
        import torch

        self.images = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).to(device) for im in images]
        self.device = torch.device(device)

    def sample(self, batch: int, crop: int, gen: np.random.Generator) -> torch.Tensor:
        import torch

        out = torch.empty(batch, 3, crop, crop, dtype=torch.uint8, device=self.device)
        for b in range(batch):
            im = self.images[int(gen.integers(len(self.images)))]
            _, h, w = im.shape
            if h < crop or w < crop:
                im = torch.nn.functional.pad(im[None].float(), (0, max(0, crop - w), 0, max(0, crop - h)), "reflect")
                im = im[0].to(torch.uint8)
                _, h, w = im.shape
            y, x = int(gen.integers(h - crop + 1)), int(gen.integers(w - crop + 1))
            c = im[:, y : y + crop, x : x + crop]
            if gen.random() < 0.5:
                c = c.flip(2)
            if gen.random() < 0.5:
                c = c.flip(1)
            out[b] = c
        return out.float().div_(255.0)

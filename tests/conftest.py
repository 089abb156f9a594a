"""Shared fixtures. Tests that need ../shared/data skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# the data sets (README, "Data"): $EDGECODEC_DATA, else the development layout, ../shared/data beside the repository
SHARED_DATA = Path(os.environ.get("EDGECODEC_DATA") or REPO.parent / "shared" / "data")


def read_until(stream, text: str, lines: int = 5) -> str:  # noqa: ANN001 - a text stream of a child process
    """Read ``stream`` line by line up to the line that holds ``text`` (at most ``lines`` lines); that line."""
    for _ in range(lines):
        line = stream.readline()
        if text in line:
            return line
        if not line:
            break
    raise AssertionError(f"no line with {text!r} in the first {lines} lines")


def shared_data(*parts: str) -> Path:
    """A path inside ../shared/data, or skip the test when it is not there."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the data sets at {SHARED_DATA} (not present here; set EDGECODEC_DATA, see README 'Data')")
    return p


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A folder of small synthetic RGB images with some structure (gradients and shapes)."""
    import cv2

    rng = np.random.default_rng(0)
    d = tmp_path / "images"
    d.mkdir()
    for i in range(4):
        h, w = 96 + 16 * i, 128
        y, x = np.mgrid[0:h, 0:w]
        im = np.stack([x * 255 / w, y * 255 / h, 128 + 100 * np.sin((x + y) / (8 + 4 * i))], -1).astype(np.uint8)
        cv2.circle(im, (int(rng.integers(20, 100)), int(rng.integers(20, 70))), 15, (255, 255, 0), -1)
        cv2.imwrite(str(d / f"im{i}.png"), im)
    return d


@pytest.fixture(scope="session", autouse=True)
def _artefact_cache(tmp_path_factory: pytest.TempPathFactory):
    """Exported ONNX graphs go to a temporary cache, not the user's ~/.cache (subprocesses inherit it)."""
    import os

    old = os.environ.get("EDGECODEC_CACHE")
    os.environ["EDGECODEC_CACHE"] = str(tmp_path_factory.mktemp("edgecodec-cache"))
    yield
    if old is None:
        os.environ.pop("EDGECODEC_CACHE", None)
    else:
        os.environ["EDGECODEC_CACHE"] = old


@pytest.fixture
def garbage_decodes():
    """``garbage_decodes(prior, k)``: decode 64 random byte strings (0..63 bytes) as a 4x5 grid of ids under
    ``prior``; each must either raise BitstreamError or give ids in 0..k-1. Returns how many raised."""
    from edgecodec.entropy import decode_ids
    from edgecodec.errors import BitstreamError

    def run(prior, k: int) -> int:  # noqa: ANN001 - an IdPrior
        rng = np.random.default_rng(3)
        raised = 0
        for n in range(64):
            data = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
            try:
                out = decode_ids(data, prior, (4, 5))
            except BitstreamError:
                raised += 1
            else:
                assert out.shape == (4, 5) and out.min() >= 0 and out.max() < k
        return raised

    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """On a small shared CI machine two torch threads are often far slower than one; restore the setting after.
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

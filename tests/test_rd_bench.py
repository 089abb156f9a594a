"""tools/rd_bench.py run in-process on two tiny synthetic images and a short synthetic clip: table and JSON
structure, positive rates, x264/x265 streams that decode to as many frames as went in, finite PSNR."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rd_bench():  # noqa: ANN201
    torch.set_num_threads(2)
    spec = importlib.util.spec_from_file_location("rd_bench", REPO / "tools" / "rd_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pattern(h: int, w: int, shift: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    im = np.stack([(x * 3 + shift) % 256, (y * 4) % 256, ((x + y + shift) * 2) % 256], -1).astype(np.uint8)
    cv2.circle(im, (w // 3 + shift, h // 2), min(h, w) // 5, (250, 240, 10), -1)
    cv2.rectangle(im, (w // 2, h // 4), (w - 8, h // 2 + shift // 2), (20, 30, 200), -1)
    return im


def _run(module, argv: list[str]) -> str:  # noqa: ANN001
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert module.main(argv) == 0
    return out.getvalue()


def _finite_point(p: dict) -> None:
    assert p["kbps" if "kbps" in p else "bpp"] > 0
    assert p["bpp"] > 0
    assert math.isfinite(p["psnr"]) and p["psnr"] > 5
    assert p["encode_fps"] > 0


def test_images(rd_bench, tmp_path: Path) -> None:  # noqa: ANN001
    d = tmp_path / "imgs"
    d.mkdir()
    for i, (h, w) in enumerate(((64, 96), (80, 64))):
        cv2.imwrite(str(d / f"im{i}.png"), cv2.cvtColor(_pattern(h, w, 7 * i), cv2.COLOR_RGB2BGR))
    md, js, png = tmp_path / "r.md", tmp_path / "r.json", tmp_path / "r.png"
    text = _run(rd_bench, ["--images", str(d), "--quiet", "--md", str(md), "--json", str(js), "--plot", str(png)])
    assert md.read_text() == text and png.stat().st_size > 1000
    result = json.loads(js.read_text())
    assert result["mode"] == "images" and result["images"] == 2 and len(result["per_image"]) == 2
    layers = result["edgecodec"]
    assert [p["layer"] for p in layers] == list(range(1, len(layers) + 1)) and len(layers) >= 2
    for p in layers:
        _finite_point(p)
        assert p["ms_ssim"] is None  # both images are under 161 pixels on a side
    assert layers[0]["bpp"] > layers[-1]["bpp"]
    for fmt in ("jpeg", "webp"):
        assert [p["target"] for p in result["matched"][fmt]] == [p["label"] for p in layers]
        for p in result["matched"][fmt]:
            assert p["bpp"] > 0 and math.isfinite(p["psnr"]) and 1 <= p["quality"] <= 100
            assert 0 <= p["floor_images"] <= 2
        assert all(p["bpp"] > 0 for p in result["sweeps"][fmt])
    # the table: one row per layer, in order, with the matched columns
    rows = [line for line in text.splitlines() if line.startswith("| ") and " L" in line[:14]]
    assert [r.split("|")[1].strip() for r in rows] == [p["label"] for p in layers]
    assert "JPEG bpp" in text and "WebP PSNR" in text


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """8 frames of a moving pattern, 96x64, nearly lossless H.264 in MP4 at 10 fps."""
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"qp": "0"}
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(_pattern(64, 96, 3 * i), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_video(rd_bench, clip: Path, tmp_path: Path) -> None:  # noqa: ANN001
    js, md = tmp_path / "v.json", tmp_path / "v.md"
    argv = ["--video", str(clip), "--frames", "6", "--crf", "30", "45", "--presets", "balanced", "fixed",
            "--kbps", "40", "--match-tries", "2", "--quiet", "--json", str(js), "--md", str(md),
            "--plot", str(tmp_path / "v.png")]  # fmt: skip
    text = _run(rd_bench, argv)
    result = json.loads(js.read_text())
    assert md.read_text() == text
    assert result["mode"] == "video" and result["frames"] == 6 and result["size"] == [96, 64]
    assert result["fps"] == 10 and result["fps_note"] == "from the container"
    edge = result["edgecodec"]
    labels = [p["label"] for p in edge]
    n = len([p for p in edge if p["kind"] == "layer"]) // 2
    presets = ["balanced (2000 kbps)", "balanced @ 40 kbps", "fixed (no budget)"]
    assert labels == [f"L{i}" for i in range(1, n + 1)] + presets + [f"L{i} intra" for i in range(1, n + 1)] + [
        f"{p} intra" for p in presets
    ]  # with P-frames first, then intra-only
    for p in edge:
        _finite_point(p)
        assert sum(p["layer_counts"].values()) == 6 == len(p["per_frame"]["layer"])
    inter, intra = edge[: n + 3], edge[n + 3 :]
    assert all(p["coding"] == "inter" for p in inter) and all(p["coding"] == "intra" for p in intra)
    fixed = intra[-1]
    assert fixed["layer_counts"] == {"3": 6} and fixed["kbps"] == pytest.approx(intra[2]["kbps"])
    assert intra[0]["kbps"] > intra[n - 1]["kbps"]
    for layer in range(n):  # P-frames never cost more than intra-only, and keep the layer
        assert inter[layer]["kbps"] <= intra[layer]["kbps"] * 1.001
        assert inter[layer]["layer_counts"] == intra[layer]["layer_counts"]
        assert inter[layer]["frame_types"]["I"] >= 1
    assert "P-frames against intra-only coding" in text
    for name in ("x264", "x265"):
        assert [p["target"] for p in result["matched"][name]] == labels
        runs = [*result["matched"][name], *result["sweeps"][name], *result["floors"][name]]
        for p in runs:
            _finite_point(p)
            assert p["frames_decoded"] == 6
            assert p["bytes"] > p["header_bytes"] > 0
        for p in result["matched"][name]:
            assert 1 <= len(p["requests_kbps"]) <= 2
            assert p["below_minimum"] == (result["minimum"][name]["kbps"] > p["target_kbps"])
        assert result["minimum"][name]["kbps"] == min(p["kbps"] for p in runs)
    assert [p["crf"] for p in result["sweeps"]["x264"]] == [30, 45]
    assert 30 < result["x26x"]["yuv420_ceiling_psnr"] < 100
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows[1 : 1 + len(labels)] == labels
    assert "x264 kbps" in text and "x265 PSNR" in text and "CRF 45" in text and "QP 51" in text


def test_x264_decodes_every_frame(rd_bench) -> None:  # noqa: ANN001
    frames = [_pattern(64, 96, 5 * i) for i in range(5)]
    packets, seconds = rd_bench.x26x_encode("x264", frames, 25.0, "ultrafast", kbps=50)
    decoded = rd_bench.x26x_decode("x264", packets)
    assert len(decoded) == 5 and seconds > 0
    assert all(d.shape == f.shape for d, f in zip(decoded, frames, strict=True))
    assert min(rd_bench.psnr(f, d) for f, d in zip(frames, decoded, strict=True)) > 15


def test_bad_arguments(rd_bench, tmp_path: Path) -> None:  # noqa: ANN001
    for argv in (["--frames", "0"], ["--kbps", "-1"], ["--size", "10by5"], ["--presets", "nope"]):
        err = io.StringIO()
        with pytest.raises(SystemExit), contextlib.redirect_stderr(err):
            rd_bench.main(["--video", str(tmp_path / "x.mp4"), *argv])
        assert "error:" in err.getvalue()

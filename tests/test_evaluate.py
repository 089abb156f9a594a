"""`edgecodec eval` run in-process on a few small images: JSON schema, the bpp formulas, and the measured frames
checked against an independent packet round trip."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from edgecodec import cli, evaluate
from edgecodec.bitstream import HEADER_SIZE
from edgecodec.codec import Codec
from edgecodec.data import list_images, read_rgb
from edgecodec.entropy import ideal_bits

KODAK = SHARED_DATA / "eval" / "kodak"
LAYER_KEYS = {
    "layer",
    "bpp_fixed",
    "bpp_entropy",
    "bpp_coded",
    "bpp_payload",
    "bpp_zstd",
    "bpp_xent",
    "psnr",
    "ms_ssim",
    "encode_ms",
    "decode_ms",
    "jpeg",
    "webp",
}
CLASSIC_KEYS = {"bpp", "psnr", "ms_ssim", "quality", "floor_images", "min_bpp"}


def _synthetic(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    im = np.stack([(x * 2 + 40) % 256, (y * 3) % 256, ((x + y) * 2) % 256], -1).astype(np.float64)
    im += rng.normal(0, 6, im.shape)
    im = np.clip(im, 0, 255).astype(np.uint8)
    cv2.circle(im, (w // 3, h // 2), min(h, w) // 5, (255, 255, 0), -1)
    cv2.rectangle(im, (w // 2, h // 4), (w - 10, h // 2), (20, 30, 200), -1)
    return im


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two PNGs: a 176x200 one (a Kodak crop when the shared data is there, else synthetic), large enough for
    MS-SSIM, and a 72x100 synthetic one that is not."""
    d = tmp_path_factory.mktemp("evalset")
    big = cv2.imread(str(KODAK / "kodim23.png")) if (KODAK / "kodim23.png").is_file() else None
    big = _synthetic(176, 200, 0) if big is None else big[100:276, 200:400]
    cv2.imwrite(str(d / "a.png"), big)
    cv2.imwrite(str(d / "b_synthetic.png"), _synthetic(72, 100, 1))
    return d


@pytest.fixture(scope="module")
def run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("evalout")
    mp = pytest.MonkeyPatch()
    mp.setattr(evaluate, "PLOT_QUALITIES", (5, 50, 95))  # fewer MS-SSIM calls; the code path is the same
    threads = torch.get_num_threads()
    buf = io.StringIO()
    argv = ["--model", "hqa5", "--data", str(images), "--json", str(out / "r.json"), "--plot", str(out / "r.png")]
    try:
        with contextlib.redirect_stdout(buf):
            rc = evaluate.main([*argv, "--quiet", "--threads", "1"])
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    assert rc == 0
    return json.loads((out / "r.json").read_text()), out, buf.getvalue()


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec("hqa5", backend="auto")  # the backend eval uses by default


def test_schema_and_invariants(run, images, codec):
    result, out, table = run
    paths = list_images([images])
    assert result["model"] == "hqa5" and result["fingerprint"] == codec.model.fingerprint_hex
    assert result["data"] == images.name and "/" not in result["data"]
    assert result["images"] == len(paths) and result["header_bytes"] == HEADER_SIZE
    assert result["ms_ssim_images"] == len(paths) - 1  # the 72x100 image is too small for 5 scales
    assert [r["layer"] for r in result["layers"]] == list(range(1, codec.num_layers + 1))
    for r in result["layers"]:
        assert LAYER_KEYS <= set(r)
        assert r["bpp_payload"] <= r["bpp_coded"]
        assert math.isfinite(r["psnr"]) and 10 < r["psnr"] < 60
        assert 0 < r["ms_ssim"] <= 1
        assert r["encode_ms"] > 0 and r["decode_ms"] > 0
        for fmt in ("jpeg", "webp"):
            assert CLASSIC_KEYS <= set(r[fmt]) and math.isfinite(r[fmt]["psnr"])
            assert 1 <= r[fmt]["quality"] <= 100 and 0 <= r[fmt]["floor_images"] <= result["images"]
    # coarser layers cost fewer fixed-length bits
    fixed = [r["bpp_fixed"] for r in result["layers"]]
    assert fixed == sorted(fixed, reverse=True)
    for fmt in ("jpeg", "webp"):
        assert [p["quality"] for p in result["sweeps"][fmt]] == [5, 50, 95]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("|")]
    assert rows[2:] == [str(layer) for layer in range(1, codec.num_layers + 1)]
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_image_numbers_match_an_independent_round_trip(run, images, codec):
    """Recompute every bit count and the PSNR of each layer from the codec, packet by packet."""
    result, _, _ = run
    paths = list_images([images])
    assert [im["image"] for im in result["per_image"]] == [p.name for p in paths]
    for path, im in zip(paths, result["per_image"], strict=True):
        rgb = read_rgb(path)
        pixels = rgb.shape[0] * rgb.shape[1]
        code = codec.encode(rgb)
        for layer, row in enumerate(im["layers"], start=1):
            ids = code.ids[layer - 1]
            k = codec.model.net.config.layers[layer - 1].codebook_size
            h, w = codec.grid_shape(rgb.shape[:2], layer)
            assert row["bpp_fixed"] == h * w * math.log2(k) / pixels
            packet = codec.packet(code, layer)
            assert row["bpp_coded"] == len(packet) * 8 / pixels
            assert row["bpp_coded"] - row["bpp_payload"] == pytest.approx(HEADER_SIZE * 8 / pixels, rel=1e-12)
            xent = ideal_bits(ids, codec.priors[layer - 1])
            assert row["bpp_xent"] == pytest.approx(xent / pixels, rel=1e-12)
            assert row["overhead_bits"] <= 0.01 * xent + 64
            assert row["bpp_entropy"] <= row["bpp_fixed"] + 1e-12
            _, frame = codec.decode_packet(packet)
            assert row["psnr"] == pytest.approx(evaluate.psnr(rgb, frame), abs=1e-9)
            for fmt in ("jpeg", "webp"):
                p = row[fmt]
                assert p["floor"] == (p["min_bpp"] > row["bpp_coded"])
                if p["floor"]:
                    assert p["bpp"] == p["min_bpp"]
    # the means are means of the per-image numbers
    for i, r in enumerate(result["layers"]):
        for key in ("bpp_fixed", "bpp_coded", "psnr"):
            assert r[key] == pytest.approx(np.mean([im["layers"][i][key] for im in result["per_image"]]), rel=1e-12)


def test_metrics():
    a = _synthetic(176, 176, 3)
    assert evaluate.psnr(a, a) == evaluate.PSNR_CAP
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert evaluate.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (1 / a.size)))
    assert evaluate.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    assert evaluate.ms_ssim(a[:160], a[:160]) is None
    assert evaluate.entropy_bits(np.array([[0, 0, 1, 1]])) == pytest.approx(4.0)
    assert evaluate.entropy_bits(np.full((3, 3), 7)) == 0.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/folder"], "no such folder"),
        (["--data", "{empty}"], "no images"),
        (["--model", "no-such-model", "--data", "{images}"], "no model named"),
    ],
)
def test_errors_are_one_line(args, message, images, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = [a.format(empty=tmp_path / "empty", images=images) for a in args]
    assert cli.main(["eval", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_update_card_writes_only_the_card(run, images, tmp_path, monkeypatch, capsys):
    """--update-card on a copy of the model: the card gains eval[<data folder>], the weights stay byte-identical."""
    result, _, _ = run
    src = Path(evaluate.__file__).resolve().parents[1] / "models"
    for ext in (".safetensors", ".json"):
        shutil.copy(src / f"hqa5{ext}", tmp_path / f"hqa5{ext}")
    weights = (tmp_path / "hqa5.safetensors").read_bytes()
    before = json.loads((tmp_path / "hqa5.json").read_text())
    monkeypatch.setattr(evaluate, "evaluate", lambda codec, paths, data, progress: {**result, "data": data})
    rc = evaluate.main(["--model", str(tmp_path / "hqa5.safetensors"), "--data", str(images), "--update-card"])
    assert rc == 0 and "updated" in capsys.readouterr().out
    card = json.loads((tmp_path / "hqa5.json").read_text())
    assert (tmp_path / "hqa5.safetensors").read_bytes() == weights
    assert {k: v for k, v in card.items() if k != "eval"} == {k: v for k, v in before.items() if k != "eval"}
    for name, old in before.get("eval", {}).items():  # results on other data sets are kept
        if name != images.name:
            assert card["eval"][name] == old
    entry = card["eval"][images.name]
    assert entry["images"] == result["images"] and entry["layers"] == result["layers"]
    assert "per_image" not in entry
    assert not list(tmp_path.glob("*.tmp"))
    # a card that belongs to other weights is refused
    card["fingerprint"] = "00" * 8
    (tmp_path / "hqa5.json").write_text(json.dumps(card))
    assert (
        cli.main(["eval", "--model", str(tmp_path / "hqa5.safetensors"), "--data", str(images), "--update-card"]) == 2
    )
    assert "not updating" in capsys.readouterr().err

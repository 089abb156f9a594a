"""Backends agree: ONNX Runtime and torch.compile against eager torch, on a tiny model and on the shipped model
with Kodak images and video frames; the TensorRT path up to where it needs torch-tensorrt and a GPU."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from edgecodec.errors import ConfigError
from edgecodec.nn import HQAStack, tiny_config
from edgecodec.runtime import make_backend, resolve_auto, tensorrt_missing
from edgecodec.runtime.graphs import DecoderGraph, EncoderGraph
from edgecodec.runtime.parity import compare
from edgecodec.runtime.parity import psnr as compare_psnr
from edgecodec.runtime.torch_backend import TorchBackend
from edgecodec.zoo import load_model, save_model

REPO = Path(__file__).resolve().parents[1]

# Acceptance thresholds (issue: ids equal or differing at < 0.1% of positions; same ids decode within 0.05 dB).
MAX_ID_MISMATCH = 0.001
MAX_PSNR_DELTA_DB = 0.05


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):  # noqa: ANN201
    torch.manual_seed(0)
    net = HQAStack(tiny_config())
    priors = [np.ones(c.codebook_size, dtype=np.int64) for c in net.config.layers]
    return save_model(net, tmp_path_factory.mktemp("models") / "tiny", priors=priors)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("artefacts")


def frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


# ---- names and selection -------------------------------------------------------------------------------------------
def test_unknown_backend_is_a_config_error(tiny) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="unknown backend 'tflite'.*onnx"):
        make_backend("tflite", tiny)


def test_auto_prefers_onnx_on_the_cpu_and_falls_back_to_torch(monkeypatch) -> None:  # noqa: ANN001
    import edgecodec.runtime as rt

    monkeypatch.setattr(rt, "has_onnxruntime", lambda: True)
    assert resolve_auto("cpu") == "onnx"
    monkeypatch.setattr(rt, "has_onnxruntime", lambda: False)
    assert resolve_auto("cpu") == "torch"
    monkeypatch.setattr(rt, "tensorrt_missing", lambda: None)
    assert resolve_auto("cuda") == "tensorrt"
    monkeypatch.setattr(rt, "tensorrt_missing", lambda: "torch_tensorrt")
    assert resolve_auto("cuda:1") == "torch"


def test_onnx_backend_runs_on_the_cpu_only(tiny, cache_dir) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="runs on the CPU"):
        make_backend("onnx", tiny, "cuda", cache_dir=cache_dir)
    assert make_backend("auto", tiny, "cpu", cache_dir=cache_dir).name == "onnx"


def test_other_sessions_work_beside_a_backend(tiny, cache_dir) -> None:  # noqa: ANN001
    """Backends with other thread counts, and other libraries' sessions with ONNX Runtime's defaults, work beside a
    backend (ONNX Runtime's process-wide thread pool, once made, refuses the latter)."""
    import onnxruntime as ort

    from edgecodec.runtime.onnx_backend import OnnxBackend, ensure_onnx

    two, one = OnnxBackend(tiny, cache_dir=cache_dir, threads=2), OnnxBackend(tiny, cache_dir=cache_dir, threads=1)
    ids, _ = two.encode(frames(1, 16, 16))
    np.testing.assert_allclose(one.decode(ids[0], 1), two.decode(ids[0], 1), atol=1e-6)
    path = ensure_onnx(tiny, cache_dir)[0]["decoder-1.onnx"]
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(plain.run(None, {"ids": ids[0]})[0], two.decode(ids[0], 1), atol=1e-6)


# ---- the fast CPU search is the same search -----------------------------------------------------------------------
def test_blocked_cpu_search_gives_the_one_matrix_ids(monkeypatch) -> None:  # noqa: ANN001
    from edgecodec.nn.layers import VectorQuantizer

    torch.manual_seed(1)
    vq = VectorQuantizer(64, 8)
    z = torch.nn.functional.normalize(torch.randn(2, 8, 21, 30), dim=1)
    c = vq.codes
    flat = z.permute(0, 2, 3, 1).reshape(-1, 8)
    expected = torch.addmm((c * c).sum(1), flat, c.t(), beta=-0.5).argmax(1).view(2, 21, 30)
    monkeypatch.setattr(VectorQuantizer, "CPU_BLOCK", 97)  # many blocks and a ragged last one
    assert torch.equal(vq.ids(z), expected)
    vq.eval()
    z_q, ids, _ = vq(z.requires_grad_())  # eval forward with autograd on (the trainer's validation path)
    assert torch.equal(ids, expected) and z_q.shape == z.shape


def test_export_graphs_compute_what_the_stack_computes(tiny) -> None:  # noqa: ANN001
    net = tiny.net
    x = torch.from_numpy(frames(2, 48, 64))
    with torch.no_grad():
        *ids, qerr = EncoderGraph(net)(x)
        ref = net.encode(x)
        for a, b in zip(ids, ref.ids, strict=True):
            assert (a != b).float().mean() <= MAX_ID_MISMATCH
        assert torch.allclose(qerr, ref.qerr, atol=1e-5)
        for layer in range(1, net.num_layers + 1):
            assert torch.allclose(
                DecoderGraph(net, layer)(ref.ids[layer - 1]), net.decode(ref.ids[layer - 1], layer), atol=1e-5
            )


def test_space_to_depth_rewrite_computes_the_same() -> None:
    from torch import nn

    from edgecodec.runtime.graphs import SpaceToDepth, with_space_to_depth

    torch.manual_seed(0)
    for block in (2, 4):
        seq = nn.Sequential(nn.PixelUnshuffle(block), nn.Conv2d(3 * block * block, 5, 3, padding=1), nn.GELU()).eval()
        new = with_space_to_depth(seq)
        assert isinstance(new[0], SpaceToDepth) and not torch.equal(new[1].weight, seq[1].weight)
        x = torch.rand(2, 3, 8 * block, 4 * block)
        torch.testing.assert_close(new(x), seq(x), atol=1e-5, rtol=1e-5)


# ---- ONNX Runtime against eager torch ------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "d"), [(256, 8), (2048, 32)])  # TopK blocks, and the two-step ArgMax
@pytest.mark.parametrize("variant", ["cpu", "plain"])
def test_onnx_search_is_argmax_with_first_index_on_ties(k, d, variant) -> None:  # noqa: ANN001
    import onnxruntime as ort
    from onnx import helper

    from edgecodec.runtime.onnx_backend import OPSET, _scan_rows, _vq_nodes

    rng = np.random.default_rng(k)
    codes = rng.standard_normal((k, d)).astype(np.float32)
    codes[k // 2 :] = codes[: k - k // 2]  # every code twice: each maximum is a tie, the lower index must win
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    z = codes[rng.integers(0, k, (2, 32, 24))] + 0.01 * rng.standard_normal((2, 32, 24, d)).astype(np.float32)
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    rows = _scan_rows(1, 5, k)
    assert rows > 0
    nodes, inits, ids, _ = _vq_nodes(1, "z", codes, np.ones(d, np.float32), variant, rows)
    graph = helper.make_graph(
        nodes, "search", [helper.make_tensor_value_info("z", 1, ["N", "h", "w", d])],
        [helper.make_tensor_value_info(ids, 7, None)], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"z": z})[0]
    score = z.reshape(-1, d) @ codes.T - 0.5 * (codes * codes).sum(1)
    want = score.argmax(1).reshape(2, 32, 24)
    assert (want < k - k // 2).all()  # the test really has ties, broken towards the first copy
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("variant", ["cpu", "plain"])
@pytest.mark.parametrize("first_layer", ["plain", "space_to_depth"])
def test_tiny_onnx_matches_torch(tiny, cache_dir, variant, first_layer, tmp_path) -> None:  # noqa: ANN001
    from edgecodec.runtime.onnx_backend import OnnxBackend

    model = tiny
    if first_layer == "space_to_depth":  # as hqa5's layer 1: exported with SpaceToDepth and permuted channels
        config = tiny_config()
        config = replace(config, layers=(replace(config.layers[0], space_to_depth=True), *config.layers[1:]))
        torch.manual_seed(1)
        net = HQAStack(config)
        priors = [np.ones(c.codebook_size, dtype=np.int64) for c in config.layers]
        model = save_model(net, tmp_path / "tiny_s2d", priors=priors)
    onnx_b = OnnxBackend(model, cache_dir=cache_dir, variant=variant, threads=1)
    torch_b = TorchBackend(model.net)
    if first_layer == "space_to_depth":
        import onnx

        from edgecodec.runtime.onnx_backend import ensure_onnx

        paths, _ = ensure_onnx(model, cache_dir, variant)
        for name in ("encoder.onnx", "decoder-1.onnx"):
            assert "SpaceToDepth" in {n.op_type for n in onnx.load(str(paths[name])).graph.node}
    for shape in ((2, 64, 96), (1, 24, 40)):  # dynamic N, H and W
        x = frames(shape[0], shape[1], shape[2], seed=shape[1])
        ids_o, qerr_o = onnx_b.encode(x)
        ids_t, qerr_t = torch_b.encode(x)
        assert [i.dtype for i in ids_o] == [np.int64] * 3 and qerr_o.shape == (shape[0], 3)
        for layer, (a, b) in enumerate(zip(ids_o, ids_t, strict=True), start=1):
            assert a.shape == b.shape and np.mean(a != b) <= MAX_ID_MISMATCH
            np.testing.assert_allclose(onnx_b.decode(b, layer), torch_b.decode(b, layer), atol=1e-4)
        np.testing.assert_allclose(qerr_o, qerr_t, rtol=1e-4, atol=1e-6)


def test_backends_refuse_bad_input(tiny, cache_dir) -> None:  # noqa: ANN001
    backends = [TorchBackend(tiny.net), make_backend("onnx", tiny, cache_dir=cache_dir)]
    for b in backends:
        with pytest.raises(ValueError, match="multiples of 8"):
            b.encode(frames(1, 20, 32))
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
            b.encode(np.zeros((3, 32, 32), np.float32))
        with pytest.raises(ValueError, match="must lie in 0..63"):
            b.decode(np.full((1, 4, 4), 64, np.int64), 1)
        with pytest.raises(ValueError, match="layer 4 out of range"):
            b.decode(np.zeros((1, 4, 4), np.int64), 4)


def test_torch_compile_backend_matches_eager(tiny) -> None:  # noqa: ANN001
    # Dynamo capture of the export graphs; the 'eager' compiler keeps this test fast (inductor takes minutes on 2 CPUs)
    compiled = TorchBackend(tiny.net, compile=True, compile_backend="eager")
    assert compiled.name == "torch-compile"
    x = frames(1, 32, 48)
    ids_c, qerr_c = compiled.encode(x)
    ids_e, qerr_e = TorchBackend(tiny.net).encode(x)
    assert all(np.mean(a != b) <= MAX_ID_MISMATCH for a, b in zip(ids_c, ids_e, strict=True))
    np.testing.assert_allclose(compiled.decode(ids_e[2], 3), TorchBackend(tiny.net).decode(ids_e[2], 3), atol=1e-5)


def _kodak_and_video_frames() -> list[np.ndarray]:
    """2 Kodak images at half size and 2 video frames, as (1, 3, H, W) float32 with sides multiples of 32."""
    cv2 = pytest.importorskip("cv2")
    kodak, video = SHARED_DATA / "eval" / "kodak", SHARED_DATA / "video"
    if not kodak.is_dir() or not video.is_dir():
        pytest.skip(f"needs the shared data set at {SHARED_DATA} (eval/kodak and video/; not present here)")
    images = [cv2.imread(str(p))[:, :, ::-1] for p in sorted(kodak.glob("*.png"))[:2]]
    images = [cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA) for im in images]
    for clip, picks, scale in (("foreman_cif_352x288_299f.264", (40,), 1), ("solidWhiteRight.mp4", (0,), 2)):
        cap = cv2.VideoCapture(str(video / clip))
        for i in range(max(picks) + 1):
            ok, bgr = cap.read()
            if not ok:
                pytest.skip(f"cannot read frame {i} of {clip} with OpenCV")
            if i in picks:
                images.append(cv2.resize(bgr, (bgr.shape[1] // scale, bgr.shape[0] // scale))[:, :, ::-1])
        cap.release()
    out = []
    for im in images:
        h, w = im.shape[0] // 32 * 32, im.shape[1] // 32 * 32
        out.append(np.ascontiguousarray(im[:h, :w].transpose(2, 0, 1)[None], dtype=np.float32) / 255)
    return out


def test_onnx_parity_on_kodak_and_video(cache_dir, capsys) -> None:  # noqa: ANN001
    model = load_model("hqa5")
    data = _kodak_and_video_frames()
    ref, onnx_b = TorchBackend(model.net), make_backend("onnx", model, cache_dir=cache_dir)
    results = [compare(ref, onnx_b, x) for x in data]
    worst_ids = [max(r.id_mismatch[i] for r in results) for i in range(model.num_layers)]
    worst_db = [max(r.psnr_delta[i] for r in results) for i in range(model.num_layers)]
    with capsys.disabled():
        print(
            f"\nONNX vs torch on {len(data)} frames: worst id mismatch per layer "
            + ", ".join(f"{v:.4%}" for v in worst_ids)
            + "; worst PSNR delta "
            + ", ".join(f"{v:.4f}" for v in worst_db)
        )
    assert max(worst_ids) < MAX_ID_MISMATCH
    assert max(worst_db) < MAX_PSNR_DELTA_DB


def test_int8_decoders_keep_the_ids_and_cost_little_psnr(cache_dir) -> None:  # noqa: ANN001
    """onnx-int8 on the shipped model, on a frame of the shipped clip the calibration did not use: the same ids (the
    encoder is the float one), and frames decoded from them within 0.1 dB of the float decoders' PSNR."""
    from edgecodec.capture import sample_frames
    from edgecodec.runtime.onnx_backend import calibration_frames

    model = load_model("hqa5")
    frames = sample_frames()
    calibration = calibration_frames(model.net.multiple)
    x = next(
        f
        for f in (np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255 for rgb in frames[30:])
        if not any(np.array_equal(f, c) for c in calibration)
    )  # 352x288: multiples of 32 already
    fp32, int8 = make_backend("onnx", model, cache_dir=cache_dir), make_backend("onnx-int8", model, cache_dir=cache_dir)
    assert int8.name == "onnx-int8"
    ids, qerr = fp32.encode(x)
    ids8, qerr8 = int8.encode(x)
    for a, b in zip(ids, ids8, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(qerr, qerr8)
    for layer in range(1, model.num_layers + 1):
        y32, y8 = fp32.decode(ids[layer - 1], layer), int8.decode(ids[layer - 1], layer)
        assert not np.array_equal(y32, y8)  # really another decoder
        change = compare_psnr(y8, x) - compare_psnr(y32, x)
        assert abs(change) < 0.1, (layer, change)


def test_bench_backends_writes_json(tiny, cache_dir, tmp_path, capsys) -> None:  # noqa: ANN001
    spec = importlib.util.spec_from_file_location("bench_backends", REPO / "tools" / "bench_backends.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    rc = bench.main(
        [
            "--model",
            str(tiny.path),
            "--sizes",
            "60x44",  # padded to 64x48, the tiny model's multiple of 8
            "--backends",
            "torch",
            "onnx",
            "onnx-int8",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--cache",
            str(cache_dir),
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["backend"], r["size"], r["padded_size"]) for r in rows] == [
        ("torch", "60x44", "64x48"),
        ("onnx", "60x44", "64x48"),
        ("onnx-int8", "60x44", "64x48"),
    ]
    assert all(r["encode_fps"] > 0 and len(r["decode_fps_per_layer"]) == 3 for r in rows)
    assert "| onnx-int8 | 60x44 (64x48) |" in capsys.readouterr().out


# ---- TensorRT, as far as it goes without torch-tensorrt and a GPU -------------------------------------------------
@pytest.mark.skipif(tensorrt_missing() is None, reason="torch-tensorrt and a CUDA GPU are present")
def test_tensorrt_without_the_library_is_a_clear_error(tiny) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="tensorrt backend needs torch-tensorrt and a CUDA GPU"):
        make_backend("tensorrt", tiny)
    from edgecodec.runtime.tensorrt_backend import ensure_tensorrt, import_engines

    with pytest.raises(ConfigError, match="tensorrt backend needs torch-tensorrt and a CUDA GPU"):
        ensure_tensorrt(tiny, (64, 64))
    with pytest.raises(ConfigError, match="tensorrt backend needs torch-tensorrt and a CUDA GPU"):
        import_engines(tiny, (64, 64), "engines")


def test_trtexec_commands_use_the_profile_the_backend_checks() -> None:
    from edgecodec.runtime.tensorrt_backend import trtexec_commands

    enc, dec1, *_, dec5 = trtexec_commands(5, (480, 640), 32)
    assert enc == (
        "trtexec --onnx=encoder.onnx --fp16 --minShapes=frames:1x3x32x32 --optShapes=frames:1x3x480x640 "
        "--maxShapes=frames:1x3x1088x1920 --saveEngine=encoder.plan"
    )
    assert "--optShapes=ids:1x240x320" in dec1 and "--minShapes=ids:1x1x1" in dec5 and dec5.endswith("decoder-5.plan")


def test_tensorrt_profile_and_cache_folder(tiny, tmp_path) -> None:  # noqa: ANN001
    from edgecodec.runtime.tensorrt_backend import artefact_dir, profile

    prof = profile((736, 1280), 32)
    assert prof == {"min": (32, 32), "opt": (736, 1280), "max": (1088, 1920)}
    assert profile((2048, 64), 32)["max"] == (2048, 1920)
    with pytest.raises(ConfigError, match="multiples of 32"):
        profile((720, 1280), 32)
    folder = artefact_dir(tiny, tmp_path, (736, 1280), "fp16", "NVIDIA Orin (nvgpu)")
    assert folder == tmp_path / f"tiny-{tiny.fingerprint_hex}" / "tensorrt-1280x736-fp16-nvidia-orin-nvgpu"


def test_tensorrt_export_step_has_dynamic_frame_sizes(tiny) -> None:  # noqa: ANN001
    """torch.export with dynamic H and W: the program torch-tensorrt compiles, run here on the CPU."""
    from edgecodec.runtime.tensorrt_backend import export_program, profile

    net, m = tiny.net, tiny.net.multiple
    prof = profile((64, 96), m)
    enc = export_program(EncoderGraph(net), torch.rand(1, 3, 64, 96), m, prof).module()
    dec = export_program(DecoderGraph(net, 2), torch.zeros(1, 16, 24, dtype=torch.int32), m, prof, factor=4).module()
    for h, w in ((64, 96), (40, 120)):
        x = torch.from_numpy(frames(1, h, w, seed=h))
        with torch.no_grad():
            *ids, qerr = enc(x)
            ref = net.encode(x)
            assert all(torch.equal(a, b) for a, b in zip(ids, ref.ids, strict=True))
            assert torch.allclose(dec(ref.ids[1].int()), net.decode(ref.ids[1], 2), atol=1e-6)


@pytest.mark.skipif(
    tensorrt_missing() is not None, reason=f"needs torch-tensorrt and a CUDA GPU (missing here: {tensorrt_missing()})"
)
def test_tensorrt_engines_match_torch(tiny, tmp_path, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.WARNING)
    trt_b = make_backend("tensorrt", tiny, "cuda", cache_dir=tmp_path)
    x = frames(2, 64, 96)
    ids_t, qerr_t = trt_b.encode(x)
    ids_r, qerr_r = TorchBackend(tiny.net).encode(x)
    assert all(np.mean(a != b) <= MAX_ID_MISMATCH for a, b in zip(ids_t, ids_r, strict=True))
    np.testing.assert_allclose(trt_b.decode(ids_r[0], 1), TorchBackend(tiny.net).decode(ids_r[0], 1), atol=1e-3)
    assert sorted(p.name for p in tmp_path.rglob("*.engine")) == ["decoder-1.engine", "encoder.engine"]

"""`edgecodec export` and the artefact cache: sidecars, reuse, and stale or foreign artefacts rebuilt, never used."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecodec.cli import main as cli
from edgecodec.nn import HQAStack, tiny_config
from edgecodec.runtime import cache, tensorrt_missing
from edgecodec.zoo import save_model

REPO = Path(__file__).resolve().parents[1]
NAMES = ["encoder.onnx", "decoder-1.onnx", "decoder-2.onnx", "decoder-3.onnx"]


def _model(folder: Path, seed: int = 0):  # noqa: ANN202
    torch.manual_seed(seed)
    net = HQAStack(tiny_config())
    return save_model(
        net, folder / f"tiny{seed}", priors=[np.ones(c.codebook_size, np.int64) for c in net.config.layers]
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):  # noqa: ANN201
    """A tiny model and a cache folder holding its ONNX graphs, built once through the CLI."""
    root = tmp_path_factory.mktemp("export")
    model = _model(root)
    assert (
        cli(
            [
                "export",
                "--backend",
                "onnx",
                "--model",
                str(model.path),
                "--size",
                "64x48",
                "--cache",
                str(root / "cache"),
            ]
        )
        == 0
    )
    return model, root / "cache"


def _folder(model, root: Path) -> Path:  # noqa: ANN001
    return root / f"{model.name}-{model.fingerprint_hex}" / "onnx-cpu"


def _copy_cache(exported, tmp_path: Path) -> Path:  # noqa: ANN001
    model, root = exported
    shutil.copytree(root, tmp_path / "cache")
    return tmp_path / "cache"


def test_export_writes_graphs_with_sidecars(exported, capsys) -> None:  # noqa: ANN001
    model, root = exported
    folder = _folder(model, root)
    assert sorted(p.name for p in folder.glob("*.onnx")) == sorted(NAMES)
    meta = json.loads((folder / "encoder.onnx.json").read_text())
    assert meta["fingerprint"] == model.fingerprint_hex
    assert meta["key"] == {"kind": "onnx", "variant": "cpu", "size": "dynamic"}
    assert meta["versions"]["opset"] == "17" and meta["sha256"] == cache.sha256_file(folder / "encoder.onnx")
    assert cli(["export", "--backend", "onnx", "--model", str(model.path), "--cache", str(root), "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date") == 4 and "built" not in out


def test_stale_and_foreign_artefacts_are_rebuilt_with_the_reason(exported, tmp_path, capsys) -> None:  # noqa: ANN001
    model, _ = exported
    root = _copy_cache(exported, tmp_path)
    folder = _folder(model, root)
    (folder / "decoder-1.onnx").write_bytes((folder / "decoder-1.onnx").read_bytes()[:1000])  # truncated
    meta = json.loads((folder / "encoder.onnx.json").read_text())
    (folder / "encoder.onnx.json").write_text(json.dumps(meta | {"fingerprint": "00" * 8}))  # another model's
    (folder / "decoder-2.onnx.json").unlink()  # no sidecar
    meta3 = json.loads((folder / "decoder-3.onnx.json").read_text())
    (folder / "decoder-3.onnx.json").write_text(json.dumps(meta3 | {"versions": meta3["versions"] | {"opset": "11"}}))

    assert cli(["export", "--backend", "onnx", "--model", str(model.path), "--cache", str(root), "--check"]) == 1
    assert "stale or missing" in capsys.readouterr().out
    assert len((folder / "decoder-1.onnx").read_bytes()) == 1000  # --check builds nothing

    assert cli(["export", "--backend", "onnx", "--model", str(model.path), "--cache", str(root), "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert "encoder.onnx: rebuilt (built for model 0000000000000000" in out
    assert "decoder-1.onnx: rebuilt (file is corrupt" in out
    assert "decoder-2.onnx: rebuilt (no readable sidecar" in out
    assert "decoder-3.onnx: rebuilt (built with opset 11" in out
    versions = json.loads((folder / "encoder.onnx.json").read_text())["versions"]
    for name in NAMES:
        assert cache.check(folder / name, model.fingerprint_hex, {"kind": "onnx"}, versions) is None


def test_backend_rebuilds_a_corrupt_graph_instead_of_using_it(exported, tmp_path, caplog) -> None:  # noqa: ANN001
    from edgecodec.runtime import make_backend

    model, _ = exported
    root = _copy_cache(exported, tmp_path)
    enc = _folder(model, root) / "encoder.onnx"
    enc.write_bytes(b"\x00" * enc.stat().st_size)  # same size, wrong bytes
    caplog.set_level(logging.WARNING)
    backend = make_backend("onnx", model, cache_dir=root)
    assert "rebuilding" in caplog.text and "corrupt" in caplog.text
    ids, qerr = backend.encode(np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32))
    assert [i.shape for i in ids] == [(1, 16, 16), (1, 8, 8), (1, 4, 4)] and qerr.shape == (1, 3)


def test_a_graph_of_another_model_is_not_used(exported, tmp_path) -> None:  # noqa: ANN001
    from edgecodec.runtime.onnx_backend import ensure_onnx

    model, _ = exported
    root = _copy_cache(exported, tmp_path)
    other = _model(tmp_path, seed=1)
    # Someone copies the first model's graphs and sidecars into the second model's folder.
    shutil.copytree(_folder(model, root), _folder(other, root))
    _, report = ensure_onnx(other, root, build=True)
    assert all(f"rebuilt (built for model {model.fingerprint_hex}" in line for line in report)


def test_cache_root_is_configurable_and_outside_the_package(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setenv("EDGECODEC_CACHE", str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"
    assert cache.cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("EDGECODEC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "edgecodec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_root() == Path.home() / ".cache" / "edgecodec"
    assert REPO / "edgecodec" not in cache.cache_root().parents


def test_bad_arguments_are_one_line_errors(exported, capsys) -> None:  # noqa: ANN001
    model, root = exported
    assert cli(["export", "--backend", "onnx", "--model", str(model.path), "--size", "640by480"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "edgecodec export: error: size must look like 640x480 (width x height), not '640by480'"
    assert cli(["export", "--backend", "onnx", "--model", "no-such-model", "--cache", str(root)]) == 2
    assert "no model named 'no-such-model'" in capsys.readouterr().err


@pytest.mark.skipif(tensorrt_missing() is None, reason="torch-tensorrt and a CUDA GPU are present")
def test_tensorrt_export_says_what_is_missing(exported, capsys) -> None:  # noqa: ANN001
    model, root = exported
    assert cli(["export", "--backend", "tensorrt", "--model", str(model.path), "--cache", str(root)]) == 2
    err = capsys.readouterr().err
    assert "tensorrt backend needs torch-tensorrt and a CUDA GPU" in err and len(err.strip().splitlines()) == 1


def test_bench_gpu_runs_on_the_cpu(capsys) -> None:  # noqa: ANN001
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "tools" / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # The 'eager' compiler backend keeps this short: inductor's C++ build takes minutes on 2 CPUs.
    assert (
        bench.main(
            ["--device", "cpu", "--sizes", "64x64", "--iters", "1", "--warmup", "0", "--compile-backend", "eager"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| eager | 64x64 |" in out and "| compile | 64x64 |" in out


def test_int8_decoders_are_exported_beside_the_float_graphs(exported, capsys) -> None:  # noqa: ANN001
    import onnx

    model, root = exported
    args = ["export", "--backend", "onnx", "--precision", "int8", "--model", str(model.path), "--size", "64x48"]
    assert cli([*args, "--cache", str(root)]) == 0
    out = capsys.readouterr().out
    assert "check of onnx-int8 against eager torch" in out
    folder = root / f"{model.name}-{model.fingerprint_hex}" / "onnx-cpu-int8"
    for layer in (1, 2, 3):
        graph = onnx.load(str(folder / f"decoder-{layer}.onnx")).graph
        ops = {node.op_type for node in graph.node}
        assert "QLinearConv" in ops and "Conv" not in ops  # every convolution is int8
        side = json.loads(cache.sidecar_path(folder / f"decoder-{layer}.onnx").read_text())
        assert side["key"]["precision"] == "int8" and "onnxruntime" in side["versions"]
    assert not (folder / "encoder.onnx").exists()  # the encoder stays float
    assert cli([*args, "--cache", str(root), "--check"]) == 0  # up to date: nothing to rebuild
    assert "built" not in capsys.readouterr().out


def test_precision_must_fit_the_backend(exported, capsys) -> None:  # noqa: ANN001
    model, root = exported
    args = ["export", "--model", str(model.path), "--cache", str(root)]
    assert cli([*args, "--backend", "onnx", "--precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--precision fp16 is not for --backend onnx (choose from fp32, int8)")
    assert len(err.splitlines()) == 1
    assert cli([*args, "--backend", "tensorrt", "--precision", "int8"]) == 2
    assert "--precision int8 is not for --backend tensorrt" in capsys.readouterr().err


def test_int8_decoders_follow_the_float_graphs_they_were_made_from(exported, tmp_path, capsys) -> None:  # noqa: ANN001
    """A float decoder that changed (here: rewritten in place with another doc string and a valid sidecar, as a new
    export would write it) makes its int8 decoder stale, and only that one."""
    import onnx

    model, _ = exported
    root = _copy_cache(exported, tmp_path)
    args = ["export", "--backend", "onnx", "--precision", "int8", "--model", str(model.path), "--cache", str(root)]
    assert cli([*args, "--no-verify"]) == 0
    capsys.readouterr()
    float_dec = _folder(model, root) / "decoder-2.onnx"
    side = json.loads(cache.sidecar_path(float_dec).read_text())
    graph = onnx.load(str(float_dec))
    graph.doc_string = "re-exported"
    cache.write(float_dec, graph.SerializeToString(), model.fingerprint_hex, side["key"], side["versions"])
    assert cli([*args, "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert "onnx-cpu-int8/decoder-2.onnx: rebuilt (" in out
    assert "onnx-cpu/decoder-2.onnx: built" not in out and "onnx-cpu/decoder-2.onnx: rebuilt" not in out
    assert "int8/decoder-1.onnx: rebuilt" not in out and "int8/decoder-3.onnx: rebuilt" not in out


def test_int8_is_for_the_cpu_variant(exported, capsys) -> None:  # noqa: ANN001
    model, root = exported
    args = ["export", "--backend", "onnx", "--model", str(model.path), "--cache", str(root), "--precision", "int8"]
    assert cli([*args, "--variant", "plain"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--precision int8 is for --variant cpu (ONNX Runtime on a CPU), not --variant plain")

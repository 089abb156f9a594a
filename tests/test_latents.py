"""Backend.encode_latents: the ids and qerr of encode() plus the unit encoder output z_e of chosen layers.

Every backend that runs here (eager torch, torch-compile's graph, ONNX Runtime) gives the same z as eager torch, the
same ids and qerr as its own encode(), and z that is exactly what the search scored: unit vectors (per group, scaled,
for a product codebook), whose nearest codes are the ids and whose distance to them is qerr. On a tiny untrained
model and on the shipped hqa5-cpu (product codebooks at layers 1-3). The TensorRT path is run on the CPU as far as
it goes: the program torch-tensorrt would compile, and the backend's handling of an engine's outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgecodec.nn import HQAStack, tiny_config
from edgecodec.runtime import check_layers, make_backend
from edgecodec.runtime.graphs import EncoderGraph
from edgecodec.runtime.torch_backend import TorchBackend
from edgecodec.zoo import load_model, save_model

Z_ATOL = 1e-4  # z of another backend against eager torch's, max abs
# Positions whose two best scores are closer than this may take either code (float32 scores err by ~1e-7; hqa5-cpu's
# layer 1 has sub-codes 0.002 apart, so on noise frames 2% of its positions are within 1e-5)
NEAR_TIE = 1e-6


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artefacts")


def tiny_model(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - zoo.Model
    torch.manual_seed(0)
    net = HQAStack(tiny_config())
    priors = [np.ones(c.codebook_size, dtype=np.int64) for c in net.config.layers]
    return save_model(net, tmp_path_factory.mktemp("models") / "tiny", priors=priors)


@pytest.fixture(scope="module", params=["tiny", "hqa5-cpu"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - zoo.Model
    return load_model("hqa5-cpu") if request.param == "hqa5-cpu" else tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - zoo.Model
    return tiny_model(tmp_path_factory)


def frames(model, n: int = 2, seed: int = 0) -> np.ndarray:  # noqa: ANN001
    m = model.net.multiple
    return np.random.default_rng(seed).random((n, 3, 2 * m, 3 * m), dtype=np.float32)


def backend(name: str, model, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    """Backend ``name``; ``torch-compile`` with torch.compile as the identity: its EncoderGraph modules run as they
    are (what the compiler captures), without minutes of compiling."""
    if name == "torch":
        return TorchBackend(model.net)
    if name == "torch-compile":
        monkeypatch.setattr(torch, "compile", lambda module, **_: module)
        b = TorchBackend(model.net, compile=True)
        assert isinstance(b._encoder, EncoderGraph)
        return b
    return make_backend(name, model, cache_dir=cache_dir, threads=1)


BACKENDS = ["torch", "torch-compile", "onnx"]


@pytest.fixture(scope="module")
def reference(model):  # noqa: ANN001, ANN201
    """Eager torch's encode_latents of every layer on :func:`frames`."""
    return TorchBackend(model.net).encode_latents(frames(model), range(1, model.num_layers + 1))


@pytest.mark.parametrize("name", BACKENDS)
def test_latents_come_with_the_ids_and_qerr_of_encode(name, model, reference, cache_dir, monkeypatch) -> None:  # noqa: ANN001
    b = backend(name, model, cache_dir, monkeypatch)
    x = frames(model)
    ids_e, qerr_e = b.encode(x)
    layers = [model.num_layers, 1]
    ids, qerr, z = b.encode_latents(x, layers)
    assert len(ids) == model.num_layers and sorted(z) == sorted(layers)
    for a, e in zip(ids, ids_e, strict=True):
        np.testing.assert_array_equal(a, e)
    np.testing.assert_array_equal(qerr, qerr_e)
    for layer in layers:
        d = model.net.config.layers[layer - 1].code_dim
        assert z[layer].dtype == np.float32 and z[layer].shape == (*ids[layer - 1].shape, d)
        assert z[layer].flags.c_contiguous
        err = np.abs(z[layer] - reference[2][layer]).max()
        assert err <= Z_ATOL, f"layer {layer}: z differs from eager torch's by {err}"
    assert b.encode_latents(x, [])[2] == {}
    assert list(b.encode_latents(x, [2, 2, 1])[2]) == [2, 1]


@pytest.mark.parametrize("name", BACKENDS)
def test_latents_are_what_the_search_scores(name, model, cache_dir, monkeypatch) -> None:  # noqa: ANN001
    """Unit vectors (per group, scaled by 1 / sqrt(G)); the ids are the argmax of z.c - |c|^2 / 2 over the layer's
    codes (but at near-ties); qerr is the mean of ((z - codes[ids]) / ze_std)^2 over positions and channels."""
    b = backend(name, model, cache_dir, monkeypatch)
    layers = range(1, model.num_layers + 1)
    ids, qerr, z = b.encode_latents(frames(model, seed=1), layers)
    for layer in layers:
        lyr = model.net.layers[layer - 1]
        g = lyr.cfg.groups
        zl = z[layer].astype(np.float64)
        n, h, w, d = zl.shape
        norms = np.linalg.norm(zl.reshape(n, h, w, g, d // g), axis=-1)
        np.testing.assert_allclose(norms, 1 / np.sqrt(g), atol=1e-5, err_msg=f"layer {layer}")
        codes = lyr.quantizer.codes.detach().double().numpy()  # (K, D), the whole product table for G > 1
        scores = zl.reshape(-1, d) @ codes.T - 0.5 * (codes * codes).sum(1)
        top2 = np.sort(scores, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > NEAR_TIE
        assert clear.mean() >= 0.9, f"layer {layer}: too many near-ties to check"
        got = ids[layer - 1].reshape(-1)
        np.testing.assert_array_equal(got[clear], scores.argmax(1)[clear], err_msg=f"layer {layer}")
        inv_std = 1 / lyr.ze_std.detach().double().numpy()
        diff = (zl - codes[ids[layer - 1]]) * inv_std
        expect = (diff**2).sum((1, 2, 3)) / (h * w * d)
        np.testing.assert_allclose(qerr[:, layer - 1], expect, rtol=1e-4, atol=1e-8, err_msg=f"layer {layer}")


@pytest.mark.parametrize("name", BACKENDS)
def test_a_layer_out_of_range_is_a_value_error(name, model, cache_dir, monkeypatch) -> None:  # noqa: ANN001
    b = backend(name, model, cache_dir, monkeypatch)
    x, top = frames(model, n=1), model.num_layers
    for bad in ([0], [top + 1], [1, -1]):
        with pytest.raises(ValueError, match=rf"layer -?\d+ out of range 1..{top}"):
            b.encode_latents(x, bad)
    with pytest.raises(ValueError, match="not an integer"):
        b.encode_latents(x, ["1"])
    with pytest.raises(ValueError, match="multiples of"):
        b.encode_latents(x[:, :, :-1], [1])


def test_check_layers() -> None:
    assert check_layers([3, 1, 3, np.int64(2)], 3) == [3, 1, 2]
    assert check_layers(range(1, 4), 3) == [1, 2, 3]
    for bad in (1, "12", [True], [1.0]):
        with pytest.raises(ValueError):
            check_layers(bad, 3)


def test_stack_encode_returns_the_latents_asked_for(model) -> None:  # noqa: ANN001
    net = model.net
    x = torch.from_numpy(frames(model, n=1))
    plain = net.encode(x)
    assert plain.z == {}  # the default: existing callers see ids and qerr as before
    enc = net.encode(x, latents=(2,))
    assert list(enc.z) == [2] and enc.z[2].is_contiguous()
    z_e = net.layers[1].encode_ze(net.layer_input(x, 2))
    assert torch.equal(enc.z[2], z_e.permute(0, 2, 3, 1))
    assert all(torch.equal(a, b) for a, b in zip(enc.ids, plain.ids, strict=True))
    assert torch.equal(enc.qerr, plain.qerr)
    with pytest.raises(ValueError, match="latent layer 3 out of range 1..2"):
        net.encode(x, max_layer=2, latents=(3,))


def test_encoder_graph_outputs_all_is_ids_then_z(model) -> None:  # noqa: ANN001
    net, n = model.net, model.num_layers
    x = torch.from_numpy(frames(model, n=1, seed=2))
    with torch.no_grad():
        ids_mode = EncoderGraph(net)(x)
        z_mode = EncoderGraph(net, outputs="z")(x)
        both = EncoderGraph(net, outputs="all")(x)
    assert len(both) == 2 * n + 1
    assert all(torch.equal(a, b) for a, b in zip(both[: n + 1], ids_mode, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(both[n + 1 :], z_mode, strict=True))
    with pytest.raises(ValueError, match="outputs must be one of"):
        EncoderGraph(net, outputs="latents")


def test_onnx_encoder_has_the_z_outputs_and_passes_the_checker(model, cache_dir) -> None:  # noqa: ANN001
    import onnx

    from edgecodec.runtime.onnx_backend import encoder_output_names, ensure_onnx, export_encoder

    paths, _ = ensure_onnx(model, cache_dir)
    graph = onnx.load(str(paths["encoder.onnx"]))
    onnx.checker.check_model(graph, full_check=True)  # z_l: a graph output and the input of later nodes
    assert [o.name for o in graph.graph.output] == encoder_output_names(model.num_layers)
    z_dims = [o.type.tensor_type.shape.dim[3].dim_value for o in graph.graph.output[model.num_layers + 1 :]]
    assert z_dims == [c.code_dim for c in model.net.config.layers]
    consumed = {i for node in graph.graph.node for i in node.input}
    assert all(f"z_{layer}" in consumed for layer in range(1, model.num_layers + 1))
    # export_encoder's default, as the tests and tools that call it directly expect: ids and qerr only
    plain = onnx.load_from_string(export_encoder(model.net))
    assert [o.name for o in plain.graph.output] == encoder_output_names(model.num_layers, latents=False)


def test_tensorrt_encode_latents_from_an_engine_of_the_all_graph(tiny) -> None:  # noqa: ANN001
    """No GPU here: the program torch-tensorrt would compile for encoder-latents.engine (torch.export, dynamic H and
    W) stands in for the engine, and the backend's choice of engine and its slicing of the outputs are checked."""
    model = tiny
    from edgecodec.runtime import tensorrt_backend as trt
    from edgecodec.runtime.tensorrt_backend import TensorRTBackend, export_program, profile

    net, m, n = model.net, model.net.multiple, model.num_layers
    size = (2 * m, 3 * m)
    program = export_program(EncoderGraph(net, outputs="all"), torch.rand(1, 3, *size), m, profile(size, m)).module()

    class FakeEngine:
        def __init__(self, outputs: int) -> None:
            self.outputs = [f"output_{i}" for i in range(outputs)]

        def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
            with torch.no_grad():
                return list(program(x))[: len(self.outputs)]

    asked = []

    def run(encoder_outputs: int):  # noqa: ANN202
        b = TensorRTBackend.__new__(TensorRTBackend)
        b.model, b.device, b.multiple, b.num_layers, b._engines = model, torch.device("cpu"), m, n, {}

        def engine(size: tuple[int, int], name: str, build: bool = True) -> FakeEngine:
            asked.append((name, build))
            eng = FakeEngine(encoder_outputs if name == "encoder.engine" else 2 * n + 1)
            b._engines[(size, name)] = eng
            return eng

        b._engine = engine
        return b

    x = frames(model)
    ref = TorchBackend(net).encode_latents(x, [1, n])
    for encoder_outputs, engines in ((n + 1, ["encoder.engine", trt.LATENT_ENGINE]), (2 * n + 1, ["encoder.engine"])):
        asked.clear()
        b = run(encoder_outputs)
        for _ in range(2):  # the second call finds its engine without asking the cache again
            ids, qerr, z = b.encode_latents(x, [n, 1])
        assert [a for a, _ in asked] == engines and asked[0] == ("encoder.engine", False)
        assert sorted(z) == [1, n] and all(z[k].shape == ref[2][k].shape for k in z)
        assert all(np.abs(z[k] - ref[2][k]).max() <= Z_ATOL for k in z)
        assert all(np.mean(a != r) <= 0.001 for a, r in zip(ids, ref[0], strict=True))
        np.testing.assert_allclose(qerr, ref[1], rtol=1e-4, atol=1e-7)
        ids_e, qerr_e = b.encode(x)  # encode reads qerr at position L, whichever engine it has
        np.testing.assert_array_equal(qerr_e, qerr)


def test_tensorrt_engine_outputs_are_put_in_graph_order() -> None:
    from edgecodec.runtime.tensorrt_backend import _output_order

    assert _output_order(["output_10", "output_2", "output_0"]) == ["output_0", "output_2", "output_10"]
    onnx_names = ["z_2", "ids_10", "qerr", "ids_2", "z_1", "ids_1"]
    assert _output_order(onnx_names) == ["ids_1", "ids_2", "ids_10", "qerr", "z_1", "z_2"]
    assert _output_order(["frames"]) == ["frames"]

"""Product codebooks (``LayerConfig.groups``) and lighter encoders: the search of the CPU-speed architecture.

A product code is G unit sub-codes scaled by 1 / sqrt(G); its nearest code must be the nearest sub-code of every
group, and every path (eager, export graph, ONNX, training) must give the same ids as a search over the whole table.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecodec.nn import ARCHITECTURES, HQAStack, LayerConfig, ModelConfig, cpu_fast_config, tiny_config
from edgecodec.nn.layers import VectorQuantizer
from edgecodec.runtime.graphs import EncoderGraph
from edgecodec.train import main as train
from edgecodec.zoo import load_model, save_model


def product_tiny() -> ModelConfig:
    """tiny_config with product codebooks at layers 1-2 (8 x 8 sub-codes) and a lighter first encoder."""
    layers = list(tiny_config().layers)
    layers[0] = replace(layers[0], groups=2, encoder_hidden=8, encoder_res_blocks=0)
    layers[1] = replace(layers[1], groups=2)
    return ModelConfig(layers=tuple(layers), name="tiny-product")


@pytest.fixture(scope="module")
def net() -> HQAStack:
    torch.manual_seed(0)
    return HQAStack(product_tiny()).eval()


def unit_groups(n: int, d: int, g: int, seed: int) -> torch.Tensor:
    z = torch.randn(1, d, n, 1, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(z.unflatten(1, (g, -1)), dim=2).flatten(1, 2) / g**0.5


def test_bad_product_shapes_are_errors() -> None:
    with pytest.raises(ValueError, match="groups 3 must divide code_dim 8"):
        LayerConfig(64, 8, 16, groups=3)
    with pytest.raises(ValueError, match="codebook_size 512 is not a 2-th power"):
        LayerConfig(512, 8, 16, groups=2)
    assert LayerConfig(4096, 32, 128, groups=2).sub_codebook_size == 64


@pytest.mark.parametrize(("k", "d", "g"), [(256, 8, 2), (4096, 32, 2), (512, 12, 3)])
def test_product_search_equals_search_over_the_whole_table(k: int, d: int, g: int) -> None:
    torch.manual_seed(k)
    q = VectorQuantizer(k, d, groups=g)
    codes = q.codes
    assert codes.shape == (k, d)
    assert torch.allclose(codes.norm(dim=1), torch.ones(k), atol=1e-6), "product codes are unit vectors"
    z = unit_groups(3000, d, g, seed=k)
    full = (z[0, :, :, 0].t() @ codes.t()).argmax(1)
    assert torch.equal(q.ids(z).flatten(), full)
    ids = torch.arange(k)
    assert torch.equal(q.combine(q.digits(ids)), ids)
    assert torch.equal(q.lookup(ids.view(1, k, 1))[0, :, :, 0].t(), codes)


def test_training_forward_gives_the_search_ids(net: HQAStack) -> None:
    x = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(1))
    enc = net.encode(x)
    for layer in (1, 2):
        lyr = net.layers[layer - 1]
        z = lyr.encode_ze(net.layer_input(x, layer))
        lyr.quantizer.train()
        z_q, ids, losses = lyr.quantizer(z)
        lyr.quantizer.eval()
        assert torch.equal(ids, enc.ids[layer - 1])
        assert z_q.shape == z.shape and set(losses) == {"kl", "commit"}
        usage = lyr.quantizer.usage(ids)
        assert usage.shape == (2, 8) and int(usage.sum()) == 2 * ids.numel()


def test_decode_of_encode_equals_training_path_in_eval_mode(net: HQAStack) -> None:
    x = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(2))
    enc = net.encode(x)
    for layer in range(1, net.num_layers + 1):
        assert torch.equal(net.decode(enc.ids[layer - 1], layer), net.reconstruct(x, layer)), f"layer {layer}"


def test_export_graph_searches_like_the_stack(net: HQAStack) -> None:
    x = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(3))
    enc = net.encode(x)
    with torch.no_grad():
        out = EncoderGraph(net)(x)
    assert all(torch.equal(a, b) for a, b in zip(out[:-1], enc.ids, strict=True))
    assert torch.allclose(out[-1], enc.qerr, atol=1e-6)


def test_onnx_encoder_matches_torch(net: HQAStack) -> None:
    import onnxruntime as ort

    from edgecodec.runtime.onnx_backend import export_encoder, session_options

    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    enc = net.encode(x)
    session = ort.InferenceSession(export_encoder(net), session_options(ort, 1), providers=["CPUExecutionProvider"])
    out = session.run(None, {"frames": x.numpy()})
    for layer, (a, b) in enumerate(zip(out[:-1], enc.ids, strict=True), start=1):
        assert np.mean(a != b.numpy()) < 0.001, f"layer {layer}"
    assert np.allclose(out[-1], enc.qerr.numpy(), atol=1e-5)


def test_older_models_keep_their_canonical_config_and_new_fields_round_trip() -> None:
    default = json.loads(ARCHITECTURES["default"]().canonical_json())
    assert all(
        set(layer) == {"codebook_size", "code_dim", "hidden", "res_blocks", "space_to_depth"}
        for layer in default["layers"]
    ), "fields added later must not enter an older model's fingerprint"
    fast = cpu_fast_config()
    assert ModelConfig.from_dict(json.loads(fast.canonical_json())) == fast
    assert fast.layers[0].groups == 2 and fast.layers[0].enc_hidden < fast.layers[0].hidden


def test_product_model_saves_and_loads(net: HQAStack, tmp_path: Path) -> None:
    model = save_model(net, tmp_path / "p", priors=[np.ones(c.codebook_size, np.int64) for c in net.config.layers])
    assert model.net.config == net.config
    half = copy.deepcopy(net)  # the file holds fp16 weights
    for p in half.parameters():
        p.data = p.data.half().float()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    a, b = half.encode(x), model.net.encode(x)
    assert all(torch.equal(i, j) for i, j in zip(a.ids, b.ids, strict=True))


def test_training_a_product_architecture(image_dir: Path, tmp_path: Path) -> None:
    arch = tmp_path / "arch.json"
    arch.write_text(product_tiny().canonical_json())
    out = tmp_path / "m"
    args = [
        "--data",
        str(image_dir),
        "--out",
        str(out),
        "--arch",
        str(arch),
        "--steps",
        "120",
        "3",
        "3",
        "--crop",
        "32",
        "--batch",
        "4",
        "--quiet",
        "--seed",
        "1",
    ]
    assert train(args) == 0
    m = load_model(out.with_suffix(".safetensors"))
    assert m.net.layers[0].quantizer.codebook.shape == (2, 8, 4)
    assert int(m.priors[0].sum()) > 0


def test_dead_sub_codes_move_onto_busy_ones_of_their_own_group() -> None:
    torch.manual_seed(6)
    q = VectorQuantizer(64, 8, groups=2)
    before = q.codebook.detach().clone()
    usage = torch.full((2, 8), 100.0)
    usage[0, 3] = 0.0  # dead in group 0 only
    usage[1, :] = 0.0
    usage[1, 5] = 800.0  # group 1: one busy code, seven dead
    assert q.reset_dead(usage, torch.Generator().manual_seed(0)) == 8
    after = q.codebook.detach()
    unchanged = [(0, i) for i in range(8) if i != 3] + [(1, 5)]
    assert all(torch.equal(after[g, i], before[g, i]) for g, i in unchanged)
    for i in [j for j in range(8) if j != 5]:  # group 1's dead codes now sit next to its busy one
        assert (after[1, i] - before[1, 5]).norm() < 0.2 * before[1, 5].norm()


def test_onnx_backend_encodes_and_decodes_a_product_model(net: HQAStack, tmp_path: Path) -> None:
    from edgecodec.runtime.onnx_backend import OnnxBackend
    from edgecodec.runtime.torch_backend import TorchBackend

    model = save_model(net, tmp_path / "p", priors=[np.ones(c.codebook_size, np.int64) for c in net.config.layers])
    onnx_b = OnnxBackend(model, cache_dir=tmp_path / "cache", threads=1)
    torch_b = TorchBackend(model.net)
    x = np.random.default_rng(7).random((1, 3, 48, 64), dtype=np.float32)
    ids_o, qerr_o = onnx_b.encode(x)
    ids_t, qerr_t = torch_b.encode(x)
    for layer, (a, b) in enumerate(zip(ids_o, ids_t, strict=True), start=1):
        assert np.mean(a != b) < 0.001
        np.testing.assert_allclose(onnx_b.decode(b, layer), torch_b.decode(b, layer), atol=1e-4)
    np.testing.assert_allclose(qerr_o, qerr_t, rtol=1e-4, atol=1e-6)


def test_torch_export_of_a_product_encoder_has_dynamic_frame_sizes(net: HQAStack) -> None:
    """The program torch-tensorrt would compile, run here on the CPU."""
    from edgecodec.runtime.tensorrt_backend import export_program, profile

    m = net.multiple
    enc = export_program(EncoderGraph(net), torch.rand(1, 3, 64, 96), m, profile((64, 96), m)).module()
    for h, w in ((64, 96), (40, 120)):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            *ids, _ = enc(x)
        assert all(torch.equal(a, b) for a, b in zip(ids, net.encode(x).ids, strict=True))

"""The HQA stack: device path equals the training path in eval mode, determinism, shapes and rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecodec.codec import Codec
from edgecodec.nn import HQAStack, default_config, tiny_config
from edgecodec.zoo import load_model


@pytest.fixture(scope="module")
def tiny() -> HQAStack:
    torch.manual_seed(0)
    return HQAStack(tiny_config()).eval()


@pytest.fixture(scope="module")
def shipped():
    return load_model("hqa5")


def test_default_stack_has_at_least_five_rates_down_to_001_bpp() -> None:
    cfg = default_config()
    bpp = [np.log2(c.codebook_size) / 4**i for i, c in enumerate(cfg.layers, start=1)]
    assert len(bpp) >= 5
    assert all(a > b for a, b in zip(bpp, bpp[1:], strict=False))
    assert bpp[-1] <= 0.01
    assert any(0.08 <= b <= 0.2 for b in bpp)


@pytest.mark.parametrize("model_name", ["tiny", "shipped"])
def test_decode_of_encode_equals_training_path_in_eval_mode(model_name: str, tiny, shipped) -> None:
    net = tiny if model_name == "tiny" else shipped.net
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    enc = net.encode(x)
    for layer in range(1, net.num_layers + 1):
        device_path = net.decode(enc.ids[layer - 1], layer)
        training_path = net.reconstruct(x, layer)
        assert torch.equal(device_path, training_path), f"layer {layer}"


def test_forward_in_eval_mode_gives_the_encoded_ids(shipped) -> None:
    net = shipped.net
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    enc = net.encode(x)
    for layer in range(1, net.num_layers + 1):
        _, ids, losses = net(x, layer)
        assert torch.equal(ids, enc.ids[layer - 1])
        assert losses == {}


def test_encode_is_deterministic(shipped) -> None:
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(3))
    a, b = shipped.net.encode(x), shipped.net.encode(x.clone())
    assert all(torch.equal(i, j) for i, j in zip(a.ids, b.ids, strict=True))
    assert torch.equal(a.qerr, b.qerr)


def test_grid_shapes_and_qerr(tiny) -> None:
    x = torch.rand(3, 3, 32, 64)
    enc = tiny.encode(x)
    assert [tuple(i.shape) for i in enc.ids] == [(3, 16, 32), (3, 8, 16), (3, 4, 8)]
    assert enc.qerr.shape == (3, 3) and bool((enc.qerr >= 0).all())
    for i, c in zip(enc.ids, tiny.config.layers, strict=True):
        assert int(i.min()) >= 0 and int(i.max()) < c.codebook_size


def test_layer_out_of_range_is_an_error(tiny) -> None:
    with pytest.raises(ValueError, match="out of range"):
        tiny.decode(torch.zeros(1, 2, 2, dtype=torch.long), 4)


@pytest.mark.parametrize("size", [(31, 45), (1, 1), (33, 64), (100, 7)])
def test_codec_handles_any_frame_size(shipped, size) -> None:
    codec = Codec(shipped)
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    code = codec.encode(rgb)
    assert code.size == size
    for layer in (1, codec.num_layers):
        out = codec.decode(code.ids[layer - 1], layer, size)
        assert out.shape == (*size, 3) and out.dtype == np.uint8


def test_finest_layer_reconstructs_a_smooth_image_well(shipped) -> None:
    """A trained model, not random weights: a smooth gradient decodes at layer 1 above 25 dB (random: ~10 dB)."""
    y, x = np.mgrid[0:128, 0:160]
    rgb = np.stack([x * 1.5, y * 1.8, (x + y) * 0.8], -1).clip(0, 255).astype(np.uint8)
    codec = Codec(shipped)
    out = codec.decode(codec.encode(rgb).ids[0], 1, rgb.shape[:2])
    mse = np.mean((out.astype(float) - rgb) ** 2)
    assert 10 * np.log10(255**2 / mse) > 25

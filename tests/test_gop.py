"""I/P decisions, conditional replenishment and the reference store, in process, on the shipped hqa5-cpu model."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest

from edgecodec.codec import Codec
from edgecodec.coding.gop import InterEncoder, InterSettings, ReferenceStore
from edgecodec.coding.replenish import replenish
from edgecodec.config import RateConfig
from edgecodec.errors import MissingReferenceError
from edgecodec.rate import RateController
from edgecodec.receiver import FrameReceiver
from edgecodec.sender import FrameCoder
from edgecodec.transport import Message, stream_number


@pytest.fixture(scope="module")
def codec() -> Codec:
    codec = Codec("hqa5-cpu", backend="torch")
    if not all(codec.has_inter(layer) for layer in range(1, codec.num_layers + 1)):
        pytest.fail("the shipped hqa5-cpu has no inter tables (tools/count_inter_priors.py)")
    return codec


def scene(shift: int = 0, h: int = 96, w: int = 128, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A still scene with a bright square that moves ``shift`` pixels to the right, plus optional sensor noise."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(2 * x) % 256, (3 * y) % 256, (x + y) % 256], -1).astype(np.float64)
    rgb[30:60, 20 + shift : 50 + shift] = (250, 240, 20)
    if noise:
        rgb += np.random.default_rng(seed).normal(0, noise, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def test_replenishment_lambda_zero_keeps_the_encoders_ids_and_a_huge_lambda_keeps_the_reference(codec: Codec):
    a, b = codec.encode(scene(), latents=(3,)), codec.encode(scene(6, noise=3, seed=1), latents=(3,))
    best, ref, z = b.ids[2], a.ids[2], b.latents[3]
    assert (best != ref).any()
    zero = replenish(best, ref, z, codec.layer_codes(3), 0.0)
    assert (zero.ids == best).mean() > 0.999  # ties alone may keep the reference
    huge = replenish(best, ref, z, codec.layer_codes(3), 1e6)
    assert np.array_equal(huge.ids, ref) and huge.switched == 0 and huge.kept == int((best != ref).sum())
    switched = [replenish(best, ref, z, codec.layer_codes(3), lam).switched for lam in (0.0, 0.02, 0.1, 1.0)]
    assert switched == sorted(switched, reverse=True)
    with pytest.raises(ValueError):
        replenish(best, ref, z, codec.layer_codes(3), -1.0)
    with pytest.raises(ValueError):
        replenish(best, ref[:-1], z, codec.layer_codes(3), 0.1)


def coded_sequence(codec: Codec, frames: list[np.ndarray], layer: int, settings: InterSettings, fps: float = 10.0):
    inter, out = InterEncoder(codec, settings), []
    for i, rgb in enumerate(frames):
        now = i / fps
        code = codec.encode(rgb, latents=inter.latents(now))
        coded = inter.code(code, layer, now, seq=i, timestamp_us=round(now * 1e6))
        inter.sent(coded, i, now, round(now * 1e6))
        out.append(coded)
    return out


def test_a_still_camera_sends_p_frames_much_smaller_than_keyframes(codec: Codec):
    frames = [scene(noise=2, seed=i) for i in range(6)]
    for layer in (1, 3, 5):
        coded = coded_sequence(codec, frames, layer, InterSettings(keyframe_seconds=10))
        assert [c.is_inter for c in coded] == [False] + [True] * 5
        intra = np.mean([c.intra_bytes for c in coded])
        assert max(len(c.payload) for c in coded[1:]) * 5 < intra + 1, f"layer {layer}"


def test_keyframes_come_at_the_interval_and_intra_only_sends_none_else(codec: Codec):
    frames = [scene(noise=2, seed=i) for i in range(12)]
    coded = coded_sequence(codec, frames, 4, InterSettings(keyframe_seconds=0.5), fps=10)
    assert [i for i, c in enumerate(coded) if not c.is_inter] == [0, 5, 10]
    coded = coded_sequence(codec, frames[:4], 4, InterSettings(enabled=False))
    assert not any(c.is_inter for c in coded)


def test_intra_is_sent_when_it_is_cheaper(codec: Codec):
    """Unrelated frames: a P-frame would cost more than a keyframe, so every frame is a keyframe."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    coded = coded_sequence(codec, frames, 2, InterSettings(lam=0.0))
    for c in coded[1:]:
        assert not c.is_inter and c.inter_bytes is not None and c.inter_bytes >= c.intra_bytes


def test_a_layer_switch_starts_with_a_keyframe_and_references_follow_what_was_sent(codec: Codec):
    inter = InterEncoder(codec, InterSettings(keyframe_seconds=100))
    codes = [codec.encode(scene(noise=2, seed=i), latents=(3,)) for i in range(3)]
    first = inter.code(codes[0], 3, 0.0, seq=0)
    assert not first.is_inter
    assert not inter.code(codes[1], 3, 0.1, seq=1).is_inter  # nothing was sent yet: no reference
    inter.sent(first, 0, 0.0)
    p = inter.code(codes[1], 3, 0.1, seq=1)
    assert p.is_inter and p.ref_seq == 0
    assert not inter.code(codes[1], 2, 0.1, seq=1).is_inter  # another layer: a keyframe there
    assert not inter.code(codes[2], 3, 0.2, seq=300).is_inter  # reference 300 frames back: the header cannot say
    assert inter.latents(0.2) == (3,)


def test_reference_store_decodes_only_against_the_named_reference(codec: Codec):
    coder = FrameCoder(codec, RateController(RateConfig(fixed_layer=3), codec.num_layers), session_id=5)
    packets = []
    for i in range(3):
        code = codec.encode(scene(8 * i, noise=2, seed=i), latents=coder.latents(i / 10))  # it moves: sent
        made = coder.code(code, i / 10, seq=i, timestamp_us=1000 + i)
        assert not made.skipped
        coder.sent(made, i / 10)
        packets.append(codec.parse(made.packet))
    assert [p.is_inter for p in packets] == [False, True, True]
    store = ReferenceStore()
    with pytest.raises(MissingReferenceError, match="before any keyframe"):
        store.resolve("cam", packets[1])
    key, _ = store.resolve("cam", packets[0])
    store.update("cam", key, codec.packet_ids(key))
    with pytest.raises(MissingReferenceError, match="names reference 1"):
        store.resolve("cam", packets[2])  # frame 1 was lost
    p1, ref = store.resolve("cam", packets[1])
    assert p1.resolved and (p1.frame_w, p1.frame_h, p1.timestamp_us) == (128, 96, 1001)
    assert p1.fingerprint == codec.fingerprint and p1.stream_id == key.stream_id
    ids = codec.packet_ids(p1, ref)
    assert ids.shape == ref.shape
    with pytest.raises(MissingReferenceError, match="session"):
        store.resolve("cam", replace(packets[2], ref_seq=1, session_id=6))


def test_receiver_holds_after_a_loss_and_recovers_at_the_next_keyframe(codec: Codec):
    name = "cam"
    config = RateConfig(fixed_layer=3, keyframe_seconds=0.35)
    coder = FrameCoder(codec, RateController(config, codec.num_layers), stream_id=stream_number(name))
    receiver = FrameReceiver(codec)
    lost, shown, held = {2, 5}, [], []
    for i in range(10):
        now = i / 10
        code = codec.encode(scene(i % 3, noise=2, seed=i), latents=coder.latents(now))
        made = coder.code(code, now, seq=i, timestamp_us=round(now * 1e6))
        coder.sent(made, now)
        if i in lost:
            continue
        try:
            decoded = receiver.decode(Message(name, made.packet), lambda stage: nullcontext())
        except MissingReferenceError:
            held.append(i)
            continue
        assert np.array_equal(decoded.ids, made.coded.ids)
        shown.append((i, made.coded.is_inter))
    keyframes = [i for i, inter in shown if not inter]
    assert keyframes == [0, 4, 8]
    assert held == [3, 6, 7]  # after each loss, until the next keyframe
    state = receiver.streams[name]
    assert state.received + state.held == 10 and state.gaps == 2 and state.held == 5


def test_an_unchanged_p_frame_is_not_sent_and_the_next_names_the_same_reference(codec: Codec):
    """A frame that changes no id costs nothing: no packet; the receiver counts it as not sent, not lost."""
    name = "cam"
    coder = FrameCoder(
        codec, RateController(RateConfig(fixed_layer=5), codec.num_layers), stream_id=stream_number(name)
    )
    receiver = FrameReceiver(codec)
    still, made = scene(), []
    for i in range(4):
        rgb = still if i < 3 else scene(40)
        code = codec.encode(rgb, latents=coder.latents(i / 10))
        m = coder.code(code, i / 10, seq=i, timestamp_us=i * 100_000)
        if not m.skipped:
            coder.sent(m, i / 10)
            receiver.decode(Message(name, m.packet), lambda stage: nullcontext())
        made.append(m)
    assert [m.skipped for m in made] == [False, True, True, False] and made[1].bits == 0
    assert made[3].coded.is_inter and made[3].coded.ref_seq == 0  # names the last frame sent
    state = receiver.streams[name]
    assert (state.received, state.held, state.unsent, state.gaps) == (2, 0, 2, 2)

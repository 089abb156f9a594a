"""Issue 12: the receiver, the transport and the model files against hostile and unlucky input, one test (or more)
per item of the issue, each with its input. In process, on 127.0.0.1 (and [::1] where the machine has IPv6)."""

from __future__ import annotations

import json
import socket
import struct
import time
import zlib
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from edgecodec import bitstream
from edgecodec.authz import AllowList
from edgecodec.cli import main as cli_main
from edgecodec.codec import Codec
from edgecodec.config import RateConfig
from edgecodec.errors import (
    BitstreamError,
    DecodeBudgetError,
    FrameSizeError,
    ModelError,
    RivalSessionError,
    StreamRefusedError,
    UnsupportedVersionError,
)
from edgecodec.limits import DecodeBudget, message_bound, payload_bound
from edgecodec.nn import HQAStack, ModelConfig, tiny_config
from edgecodec.rate import RateController
from edgecodec.receiver import FrameReceiver, Outputs
from edgecodec.receiving import receive_frames
from edgecodec.sender import FrameCoder
from edgecodec.streams import TAKEOVER_S
from edgecodec.timing import StatsLog, StreamMeter
from edgecodec.transport import Message, Receiver, ReceiverStats, Sender, create_keys, load_client_keys, stream_number
from edgecodec.zoo import fingerprint, load_model, main_models, save_model

ANY_PORT = "tcp://127.0.0.1:*"
NO_STAGES = lambda stage: nullcontext()  # noqa: E731


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec("hqa5-cpu", backend="torch", budget=DecodeBudget(1 << 21))


def scene(shift: int = 0, h: int = 96, w: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(2 * x) % 256, (3 * y) % 256, (x + y) % 256], -1).astype(np.uint8)
    rgb[30:60, 20 + shift : 50 + shift] = (250, 240, 20)
    return rgb


def keyframe(codec: Codec, h: int, w: int, layer: int, payload: bytes = b"\0" * 8, **kw) -> bytes:
    """A valid keyframe (right CRC, right grid for the model) that claims an ``h x w`` frame."""
    return codec.packet_for(codec.grid_shape((h, w), layer), layer, (h, w), payload, seq=kw.pop("seq", 0),
                            timestamp_us=kw.pop("timestamp_us", 0), **kw)  # fmt: skip


def reseal(data: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite bytes at ``offset`` and fix the CRC (the last 4 header bytes) so the packet stays valid."""
    head = bitstream.header_size(data)
    out = bytearray(data)
    out[offset : offset + len(value)] = value
    crc = zlib.crc32(bytes(out[head:]), zlib.crc32(bytes(out[: head - 4])))
    out[head - 4 : head] = struct.pack("<I", crc)
    return bytes(out)


def joined(receiver: Receiver, *senders: Sender, timeout_s: float = 5.0) -> bool:
    """Wait until every sender sees the receiver subscribe (a SUB socket must be polled to send its subscription)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        receiver.recv(0)
        if all(s.has_receiver for s in senders):
            return True
        time.sleep(0.02)
    return False


def good_packet(codec: Codec, stream: str, seq: int = 0, session: int = 1, ts: int = 0) -> bytes:
    return codec.packet(codec.encode(scene()), 4, seq=seq, stream_id=stream_number(stream), session_id=session,
                        timestamp_us=ts)  # fmt: skip


# -- 1. decode bombs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(4096, 4096), (16384, 16384), (1449, 1449)])
def test_1_decode_bombs_are_refused_from_the_header(codec: Codec, size: tuple[int, int]) -> None:
    receiver = FrameReceiver(codec)
    layer = 5 if size[0] > 8192 else 3
    bomb = keyframe(codec, *size, layer, stream_id=stream_number("evil"))
    assert len(bomb) < 100
    with pytest.raises(DecodeBudgetError, match="decode budget"):
        receiver.decode(Message("evil", bomb), NO_STAGES)
    decoded = receiver.decode(Message("cam", good_packet(codec, "cam")), NO_STAGES)  # still serving the others
    assert decoded.rgb.shape == (96, 128, 3) and receiver.bad == 1
    with pytest.raises(DecodeBudgetError):  # the same one validation path for files
        Codec("hqa5-cpu", budget=DecodeBudget(1 << 20)).decode_packet(bomb)


def test_1_payload_bound_covers_p_frames_from_their_reference(codec: Codec) -> None:
    """A P-frame's budget is checked once it is resolved against its reference (its sizes are the reference's)."""
    coder = FrameCoder(codec, RateController(RateConfig(fixed_layer=3, keyframe_seconds=100), codec.num_layers),
                       stream_id=stream_number("cam"), session_id=9)  # fmt: skip
    receiver = FrameReceiver(codec)
    made = []
    for i in range(2):
        code = codec.encode(scene(i), latents=coder.latents(i / 10))
        made.append(coder.code(code, i / 10, seq=i, timestamp_us=i * 100000))
        coder.sent(made[-1], i / 10)
    assert made[1].coded.is_inter
    receiver.decode(Message("cam", made[0].packet), NO_STAGES)
    grid = made[0].coded.ids.size
    p = bitstream.decode_packet(made[1].packet)
    fat = bitstream.encode_packet(replace(p, payload=b"\0" * (payload_bound(grid) + 4)))
    with pytest.raises(DecodeBudgetError, match="exceeds its bound"):
        receiver.decode(Message("cam", fat), NO_STAGES)


# -- 2. maximum-size packets ----------------------------------------------------------------------------------------
def test_2_oversized_messages_are_refused_by_the_transport_and_others_still_arrive() -> None:
    limit = message_bound(1 << 16)
    with Receiver(ANY_PORT, bind=True, max_message_bytes=limit) as receiver:
        with Sender(receiver.endpoint, bind=False, stream="big") as big, \
                Sender(receiver.endpoint, bind=False, stream="small") as small:  # fmt: skip
            assert joined(receiver, big, small)
            big.send(b"\0" * (8 << 20))
            got = []
            deadline = time.monotonic() + 5
            while len(got) < 3 and time.monotonic() < deadline:
                small.send(b"ok")
                message = receiver.recv_message(50)
                if message is not None:
                    got.append(message)
            assert got and all(m.stream == "small" for m in got)


def test_2_payload_over_its_grid_bound_is_refused_before_entropy_decoding(codec: Codec) -> None:
    grid = codec.grid_shape((96, 128), 4)
    data = keyframe(codec, 96, 128, 4, payload=b"\0" * (payload_bound(grid[0] * grid[1]) + 4))
    with pytest.raises(DecodeBudgetError, match="exceeds its bound"):
        codec.parse(data)


# -- 3. stale backlog ---------------------------------------------------------------------------------------------
class QueueTransport:
    """A transport whose messages are all queued already (what a receiver finds after a stall)."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = list(messages)
        self.stats = ReceiverStats()

    def recv_message(self, timeout_ms: int) -> Message | None:
        return self.messages.pop(0) if self.messages else None


class Shown:
    def __init__(self) -> None:
        self.frames: list = []

    def write(self, decoded) -> bool:  # noqa: ANN001
        self.frames.append(decoded)
        return True


def test_3_after_a_stall_only_the_newest_frame_is_shown_and_references_are_kept(codec: Codec) -> None:
    from edgecodec.capture import wall_clock_us

    coder = FrameCoder(codec, RateController(RateConfig(fixed_layer=3, keyframe_seconds=100), codec.num_layers),
                       stream_id=stream_number("cam"), session_id=3)  # fmt: skip
    now_us = wall_clock_us()
    messages, made = [], []
    for i in range(12):
        code = codec.encode(scene(i % 4), latents=coder.latents(i / 20))
        ts = now_us - 5_000_000 + i * 50_000 if i < 11 else wall_clock_us()  # 5 s of backlog, then a live frame
        made.append(coder.code(code, i / 20, seq=i, timestamp_us=ts))
        coder.sent(made[-1], i / 20)
        messages.append(Message("cam", made[-1].packet))
    assert sum(m.coded.is_inter for m in made) >= 8
    receiver, shown = FrameReceiver(codec), Shown()
    reason = receive_frames(QueueTransport(messages), receiver, shown, log=StatsLog(None), meter=StreamMeter(),
                            status=None, frames=12, max_latency_s=0.5)  # fmt: skip
    assert reason == "12 frames received"
    assert [d.packet.seq for d in shown.frames] == [11]
    assert np.array_equal(shown.frames[0].ids, made[11].coded.ids)  # a P-frame: every reference was applied
    assert receiver.skipped == 11 and receiver.held == 0 and receiver.bad == 0


def test_3_frames_older_than_max_latency_are_skipped(codec: Codec) -> None:
    old = [Message("cam", good_packet(codec, "cam", seq=0, ts=1))]
    receiver, shown = FrameReceiver(codec), Shown()
    receive_frames(QueueTransport(old), receiver, shown, log=StatsLog(None), meter=StreamMeter(), status=None,
                   frames=1, max_latency_s=0.5)  # fmt: skip
    assert shown.frames == [] and receiver.skipped == 1


def test_3_a_frame_whose_decode_was_stalled_is_not_shown(codec: Codec, monkeypatch) -> None:
    """The frame being decoded when the receiver was stopped (SIGSTOP) is stale by the time it is ready."""
    from edgecodec.capture import wall_clock_us

    receiver, shown = FrameReceiver(codec), Shown()
    render = receiver.render

    def stalled(*args, **kwargs):  # noqa: ANN002, ANN003
        time.sleep(0.6)  # off the CPU, as under SIGSTOP
        return render(*args, **kwargs)

    monkeypatch.setattr(receiver, "render", stalled)
    live = [Message("cam", good_packet(codec, "cam", seq=0, ts=wall_clock_us()))]
    receive_frames(QueueTransport(live), receiver, shown, log=StatsLog(None), meter=StreamMeter(), status=None,
                   frames=1, max_latency_s=0.5)  # fmt: skip
    assert shown.frames == [] and receiver.skipped == 1 and receiver.received == 0


# -- 4. two senders under one name; 5. stream injection ----------------------------------------------------------
def test_4_two_live_sessions_under_one_name_are_kept_apart_and_never_merged(codec: Codec) -> None:
    receiver = FrameReceiver(codec)
    shown = []
    packets = [[good_packet(codec, "main", i, session) for session in (0xA, 0xB)] for i in range(6)]
    for pair in packets:
        for data in pair:
            shown.append(receiver.decode(Message("main", data), NO_STAGES))
    by_stream = {}
    for d in shown:
        by_stream.setdefault(d.stream.name, set()).add(d.packet.session_id)
    assert by_stream == {"main": {0xA}, "main~0000000b": {0xB}}  # two streams, each one session: never merged
    first, second = receiver.streams["main"], receiver.streams["main~0000000b"]
    assert (first.received, second.received) == (6, 6) and first.gaps == second.gaps == 0
    assert first.sessions == 1 and second.sessions == 1 and first.rivals == 6
    assert len(receiver.notices) == 1 and "two senders" in receiver.notices[0] and "--stream" in receiver.notices[0]


def test_4_a_restarted_sender_takes_over_and_the_old_session_is_dropped(codec: Codec) -> None:
    receiver = FrameReceiver(codec)
    state = receiver.stream("main")
    state.admit(1, 100.0)
    state.track(0, 1)
    with pytest.raises(RivalSessionError, match="two senders"):
        state.admit(2, 100.0 + TAKEOVER_S / 2)
    state.admit(2, 100.0 + TAKEOVER_S + 0.1)  # the old one went quiet: a restart
    state.track(0, 2)
    with pytest.raises(StreamRefusedError, match="superseded"):
        state.admit(1, 102.0)
    assert state.sessions == 2 and state.superseded == 1


def test_5_an_injected_packet_cannot_inflate_the_gap_counter(codec: Codec) -> None:
    receiver = FrameReceiver(codec)
    owner = [good_packet(codec, "cam", seq, session=7) for seq in (5, 6)]
    injected = good_packet(codec, "cam", 5 + (1 << 31) - 1, session=8)
    receiver.decode(Message("cam", owner[0]), NO_STAGES)
    receiver.decode(Message("cam", injected), NO_STAGES)  # kept apart under its own name
    receiver.decode(Message("cam", owner[1]), NO_STAGES)
    assert receiver.streams["cam"].gaps == 0 and receiver.streams["cam"].received == 2
    assert receiver.streams["cam~00000008"].received == 1


def test_5_allow_list_names_the_streams_a_key_may_publish(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    create_keys(keys)
    (keys / "authorized" / "client.streams").write_text("cam0, cam1\n")
    with Receiver(ANY_PORT, bind=True, curve=keys) as receiver:
        assert receiver.allow is not None
        with Sender(receiver.endpoint, bind=False, stream="main", curve=keys) as intruder, \
                Sender(receiver.endpoint, bind=False, stream="cam0", curve=keys) as owner:  # fmt: skip
            assert joined(receiver, intruder, owner)
            got = []
            deadline = time.monotonic() + 5
            while len(got) < 3 and time.monotonic() < deadline:
                intruder.send(b"fake")
                owner.send(b"real")
                message = receiver.recv_message(50)
                if message is not None:
                    got.append(message)
            assert got and {m.stream for m in got} == {"cam0"}
            assert all(m.user_id == load_client_keys(keys).public.decode() for m in got)
            assert receiver.stats.unauthorised >= 1 and "may not publish stream 'main'" in receiver.refused[0]


# -- 6. revocation; 7. handshake failures --------------------------------------------------------------------------
def test_6_a_revoked_key_is_cut_off_within_2_s(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    create_keys(keys)
    with Receiver(ANY_PORT, bind=True, curve=keys) as receiver:
        with Sender(receiver.endpoint, bind=False, stream="cam", curve=keys) as sender:
            assert joined(receiver, sender)
            sender.send(b"before")
            assert receiver.recv(2000) == b"before"
            (keys / "authorized" / "client.key").unlink()
            revoked_at = time.monotonic()
            last = revoked_at
            while time.monotonic() - revoked_at < 4:
                receiver.poll_allow_list()
                sender.send(b"after")
                if receiver.recv(20) is not None:
                    last = time.monotonic()
            assert last - revoked_at < 2.0 and receiver.stats.resets == 1
    with pytest.raises(Exception, match="no client keys"):
        AllowList(keys / "authorized")


def test_7_a_wrong_server_key_is_reported_on_both_sides(tmp_path: Path) -> None:
    create_keys(tmp_path / "keys")
    create_keys(tmp_path / "other")
    with Receiver(ANY_PORT, bind=True, curve=tmp_path / "keys") as receiver:
        with Sender(receiver.endpoint, bind=False, curve=tmp_path / "other") as sender:  # other receiver's key
            sender_lines: list[str] = []
            receiver_lines: list[str] = []
            deadline = time.monotonic() + 5
            while (not sender_lines or not receiver_lines) and time.monotonic() < deadline:
                sender.send(b"x")
                receiver.recv(20)
                sender_lines += sender.handshake_failures()
                receiver_lines += receiver.handshake_failures()
            assert sender_lines and receiver_lines, (sender_lines, receiver_lines)
            lines = sender_lines + receiver_lines
            assert all("handshake " in line and " failed: " in line and "\n" not in line for line in lines)


# -- 8. per-stream resources ----------------------------------------------------------------------------------------
def test_8_max_streams_and_idle_streams_closed_and_finalised(codec: Codec, tmp_path: Path) -> None:
    receiver = FrameReceiver(codec, max_streams=2, idle_s=5.0)
    outputs = Outputs(display=False, record=str(tmp_path / "out.mp4"), fps=10, overlay=False)
    for name in ("a", "b"):
        outputs.write(receiver.decode(Message(name, good_packet(codec, name)), NO_STAGES))
    with pytest.raises(StreamRefusedError, match="--max-streams 2"):
        receiver.decode(Message("c", good_packet(codec, "c")), NO_STAGES)
    assert receiver.expire(time.monotonic() + 10) == ["a", "b"]
    for name in ("a", "b"):
        outputs.close_stream(name)
    assert all(Path(p).stat().st_size > 0 for p in outputs.paths())  # finalised
    outputs.write(receiver.decode(Message("a", good_packet(codec, "a", seq=1)), NO_STAGES))  # room again
    outputs.close()
    assert len(set(outputs.paths())) == 3  # the stream that came back got a new file
    assert receiver.received == 3


# -- 9. flags: one validation path ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [0x03, 0x00, 0x04, 0x81])
def test_9_bad_flags_refused_alike_by_receiver_and_decode(codec: Codec, tmp_path: Path, flags: int) -> None:
    data = reseal(good_packet(codec, "cam"), 5, bytes([flags]))
    with pytest.raises(UnsupportedVersionError):
        FrameReceiver(codec).decode(Message("cam", data), NO_STAGES)
    with pytest.raises(UnsupportedVersionError):
        codec.decode_packet(data)


def test_9_keyframe_header_marked_inter_is_refused(codec: Codec) -> None:
    data = reseal(good_packet(codec, "cam"), 5, bytes([bitstream.FLAG_INTER]))  # a 52-byte header read as 28
    with pytest.raises(BitstreamError):
        FrameReceiver(codec).decode(Message("cam", data), NO_STAGES)


# -- 10. model files ------------------------------------------------------------------------------------------------
def _tiny(tmp_path: Path, name: str = "m"):
    import torch

    torch.manual_seed(0)
    net = HQAStack(tiny_config())
    priors = [np.ones(c.codebook_size, dtype=np.int64) for c in net.config.layers]
    save_model(net, tmp_path / name, priors=priors)
    return tmp_path / f"{name}.safetensors"


def _rewrite(path: Path, config: object = None, tensors: dict | None = None) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    if config is not None:
        meta["config"] = config if isinstance(config, str) else json.dumps(config)
    tensors = tensors if tensors is not None else load_file(str(path))
    if config is None:  # the same architecture: a consistent fingerprint, so that only the tensors are wrong
        meta["fingerprint"] = fingerprint(ModelConfig.from_dict(json.loads(meta["config"])), tensors).hex()
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"res_blocks": 100000}, "layers[0].res_blocks"),
        ({"hidden": 200000}, "layers[0].hidden"),
        ({"codebook_size": -5}, "layers[0].codebook_size"),
        ({"code_dim": 8.5}, "layers[0].code_dim"),
        ({"hidden": "16"}, "layers[0].hidden"),
        ({"space_to_depth": 1}, "layers[0].space_to_depth"),
        ({"mystery": 1}, "mystery"),
        ({"hidden": 1024, "res_blocks": 16}, "parameters"),
    ],
)
def test_10_model_metadata_is_bounded_with_the_field_named(tmp_path: Path, change: dict, field: str) -> None:
    path = _tiny(tmp_path)
    config = tiny_config().to_dict()
    config["layers"][0].update(change)
    _rewrite(path, config)
    with pytest.raises(ModelError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_model(path)


@pytest.mark.parametrize("config", ['{"layers": []}', '{"layers": 5}', "[]", '"x"', "{}",
                                    '{"layers": [' * 5000 + "]" * 5000 + "}"])  # fmt: skip
def test_10_odd_metadata_shapes_are_model_errors(tmp_path: Path, config: str) -> None:
    path = _tiny(tmp_path)
    _rewrite(path, config)
    with pytest.raises(ModelError):
        load_model(path)


def test_10_prior_longer_than_the_codebook_is_refused_at_load(tmp_path: Path) -> None:
    path = _tiny(tmp_path)
    tensors = load_file(str(path))
    tensors["prior.1"] = np.ones(65, dtype=np.int64)
    _rewrite(path, None, tensors)
    with pytest.raises(ModelError, match="prior.1"):
        load_model(path)


def test_10_inter_tables_longer_than_the_codebook_are_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    import torch

    from edgecodec.coding.inter import InterCounter

    torch.manual_seed(0)
    net = HQAStack(tiny_config())
    priors = [np.ones(c.codebook_size, dtype=np.int64) for c in net.config.layers]
    tables = [InterCounter(net.config.layers[0].codebook_size + 1).tensors(), {}, {}]
    model = save_model(net, tmp_path / "inter", priors=priors, prior_tables=tables)
    with pytest.raises(ModelError, match="inter prior of layer 1 codes 65 ids"):
        Codec(model)
    monkeypatch.setenv("EDGECODEC_MODELS", str(tmp_path))
    assert main_models([]) == 0
    assert "inter            broken:" in capsys.readouterr().out


def test_10_a_broken_model_or_card_never_hides_the_others(tmp_path: Path, monkeypatch, capsys) -> None:
    good = _tiny(tmp_path, "good")
    _tiny(tmp_path, "card")
    (tmp_path / "card.json").write_text("{not json")
    bad = _tiny(tmp_path, "bad")
    bad.write_bytes(bad.read_bytes()[:100])
    monkeypatch.setenv("EDGECODEC_MODELS", str(tmp_path))
    assert load_model(tmp_path / "card.safetensors").card_error is not None
    assert load_model(good).card_error is None
    assert main_models([]) == 0
    out = capsys.readouterr().out
    assert "bad " in out and "broken:" in out and "card broken" in out and "good " in out


# -- 11. frame sizes -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (12, 12), (33, 2), (3, 100)])
def test_11_small_frames_encode_at_every_layer(codec: Codec, size: tuple[int, int]) -> None:
    frame = np.full((*size, 3), 128, np.uint8)
    code = codec.encode(frame)
    for layer in range(1, codec.num_layers + 1):
        _, rgb = codec.decode_packet(codec.packet(code, layer))
        assert rgb.shape == frame.shape


def test_11_frames_over_the_limit_are_refused_before_encoding(codec: Codec, capsys) -> None:
    with pytest.raises(FrameSizeError, match="--size"):
        codec.encode(np.zeros((3648, 5472 // 2 * 2 + 2000, 3), np.uint8))
    with pytest.raises(FrameSizeError, match="side over 16384"):
        codec.encode(np.zeros((1, 20000, 3), np.uint8))
    assert cli_main(["send", "--synthetic", "--size", "5472x3648", "--frames", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "over the limit" in err[-1] and "--size" in err[-1]


# -- 12. IPv6 ---------------------------------------------------------------------------------------------------------
def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_12_ipv6_bind_and_connect() -> None:
    with Receiver("tcp://[::1]:*", bind=True) as receiver:
        assert receiver.endpoint.startswith("tcp://[::1]:")
        with Sender(receiver.endpoint, bind=False) as sender:
            assert joined(receiver, sender)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                sender.send(b"v6")
                if receiver.recv(50) == b"v6":
                    break
            else:
                pytest.fail("nothing arrived over [::1]")

"""Issue 14: a receiver holds every shipped model and picks it by the fingerprint in each packet."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest

from edgecodec import bitstream
from edgecodec.codec import Codec
from edgecodec.errors import UnknownModelError
from edgecodec.modelset import CodecSet, model_index
from edgecodec.receiver import FrameReceiver
from edgecodec.transport import Message, stream_number
from edgecodec.zoo import load_model

NO_STAGES = lambda stage: nullcontext()  # noqa: E731


def scene() -> np.ndarray:
    y, x = np.mgrid[0:96, 0:128]
    return np.stack([(2 * x) % 256, (3 * y) % 256, (x + y) % 256], -1).astype(np.uint8)


def packet(codec: Codec, stream: str = "cam", seq: int = 0) -> bytes:
    return codec.packet(codec.encode(scene()), 4, seq=seq, stream_id=stream_number(stream), session_id=1)


def test_the_index_finds_every_shipped_model_by_fingerprint() -> None:
    index = model_index()
    for name in ("hqa5", "hqa5-cpu"):
        assert index[load_model(name).fingerprint].stem == name


def test_a_receiver_started_with_hqa5_decodes_hqa5_cpu_packets() -> None:
    first = Codec("hqa5", backend="torch")
    receiver = FrameReceiver(CodecSet(first))
    sender = Codec("hqa5-cpu", backend="torch")
    decoded = receiver.decode(Message("cam", packet(sender)), NO_STAGES)
    assert decoded.rgb.shape == (96, 128, 3)
    assert np.array_equal(decoded.rgb, sender.decode(sender.encode(scene()).ids[3], 4, (96, 128)))
    assert any("loaded model hqa5-cpu" in n for n in receiver.notices)
    assert [c.model.name for c in receiver.codecs] == ["hqa5", "hqa5-cpu"]
    again = receiver.decode(Message("cam", packet(first, seq=1)), NO_STAGES)  # and back to the first model
    assert again.rgb.shape == (96, 128, 3) and receiver.bad == 0


def test_an_unknown_fingerprint_says_what_to_pass() -> None:
    codec = Codec("hqa5-cpu", backend="torch")
    receiver = FrameReceiver(CodecSet(codec))
    foreign = bitstream.decode_packet(packet(codec))
    data = bitstream.encode_packet(replace(foreign, fingerprint=bytes.fromhex("0123456789abcdef")))
    with pytest.raises(UnknownModelError, match=r"0123456789abcdef.*hqa5-cpu.*--model PATH.*EDGECODEC_MODELS"):
        receiver.decode(Message("cam", data), NO_STAGES)
    assert receiver.bad == 1


def test_a_codec_alone_decodes_only_its_own_model() -> None:
    """FrameReceiver(codec) (files, tests) keeps to that model: a packet of another is refused."""
    receiver = FrameReceiver(Codec("hqa5", backend="torch"))
    with pytest.raises(UnknownModelError, match="no model here"):
        receiver.decode(Message("cam", packet(Codec("hqa5-cpu", backend="torch"))), NO_STAGES)


def test_a_receiver_that_decodes_nothing_exits_non_zero(tmp_path) -> None:
    """Only packets of an unknown model: the receiver says so and exits 1, not 0 with 0 frames."""
    import zmq

    codec = Codec("hqa5-cpu", backend="torch")
    good = bitstream.decode_packet(packet(codec))
    data = bitstream.encode_packet(replace(good, fingerprint=bytes.fromhex("0123456789abcdef")))
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecodec", "receive", "--connect", f"tcp://127.0.0.1:{port}", "--headless",
         "--backend", "torch", "--frames", "3", "--timeout", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert pub.poll(30000), "the receiver never subscribed"
        pub.recv()
        for _ in range(3):
            pub.send_multipart([b"cam", data])
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        pub.close(0)
    assert proc.returncode == 1, err
    assert "0123456789abcdef" in err and "--model PATH" in err
    assert "none could be decoded" in err

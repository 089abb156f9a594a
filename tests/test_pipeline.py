"""Issue 16: the hand-overs of the pipelined sender and receiver, the drop policy of a live source, and a pipelined
receive that gives exactly what a lock-step one gives. No test asserts a wall-clock time: slow stages are made slow
by waiting on events, and what is checked is which frames pass and in what order."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from edgecodec.codec import Codec
from edgecodec.pipeline import Closed, Handover, Mailbox, send_pipelined
from edgecodec.receiver import FrameReceiver, Outputs
from edgecodec.receiving import receive_frames
from edgecodec.timing import StatsLog, StreamMeter
from edgecodec.transport import Message, stream_number


def test_handover_drops_the_waiting_item_or_waits() -> None:
    h: Handover[int] = Handover()
    assert h.put(1, drop=True) is None
    assert h.put(2, drop=True) == 1  # the newer one takes the place of the one not yet taken
    assert h.get() == 2
    assert h.put(3, drop=False) is None
    got = []
    waiter = threading.Thread(target=lambda: got.append(h.put(4, drop=False)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the slot is full: put waits
    assert h.get() == 3
    waiter.join(5)
    assert got == [None] and h.get() == 4
    h.put(5, drop=True)
    h.close()
    assert h.get() == 5  # what is left, then Closed
    with pytest.raises(Closed):
        h.get()
    with pytest.raises(Closed):
        h.put(6, drop=True)


def test_mailbox_keeps_the_newest_per_key_in_arrival_order() -> None:
    m: Mailbox[str] = Mailbox()
    assert m.put("a", "a1", replace=True) is None
    assert m.put("b", "b1", replace=True) is None
    assert m.put("a", "a2", replace=True) == "a1"
    assert [m.get(), m.get()] == ["b1", "a2"]
    assert m.get(timeout=0.01) is None
    bounded: Mailbox[int] = Mailbox(capacity=2)
    bounded.put(1, 1, replace=False)
    bounded.put(2, 2, replace=False)
    waiter = threading.Thread(target=lambda: bounded.put(3, 3, replace=False))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # two wait: the third put waits for the decoder
    assert bounded.get() == 1
    waiter.join(5)
    bounded.close()
    assert [bounded.get(), bounded.get()] == [2, 3]
    with pytest.raises(Closed):
        bounded.get()


@dataclass
class FakeFrame:
    index: int
    timestamp_us: int = 0


class FakeSource:
    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    def read(self) -> FakeFrame | None:
        if self.i >= self.n:
            return None
        self.i += 1
        return FakeFrame(self.i - 1)


class GatedSender:
    """encode() waits for the test to open a gate per frame, so the capture runs ahead of it."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.gate = threading.Semaphore(0)
        self.fail_at = fail_at
        self.dropped_frames: list[int] = []

    def encode(self, frame: FakeFrame, now: float, capture_ms: float) -> FakeFrame:
        if frame.index == self.fail_at:
            raise RuntimeError("encoder failed")
        self.gate.acquire()
        return frame

    def finish(self, encoded: FakeFrame) -> dict:
        return {"kind": "frame", "index": encoded.index}

    def dropped(self, frame: FakeFrame, reason: str) -> dict:
        self.dropped_frames.append(frame.index)
        return {"kind": "dropped", "index": frame.index, "reason": reason}


def _run(sender: GatedSender, source: FakeSource, live: bool, opener: float) -> tuple[bool, list[dict]]:
    records: list[dict] = []

    def open_gates() -> None:
        for _ in range(source.n):
            time.sleep(opener)
            sender.gate.release()

    threading.Thread(target=open_gates, daemon=True).start()
    done = send_pipelined(source, sender, clock=lambda f: f.index / 25, on_record=records.append, live=live)
    return done, records


def test_a_live_source_drops_what_the_encoder_cannot_take_and_never_queues() -> None:
    sender = GatedSender()
    done, records = _run(sender, FakeSource(30), live=True, opener=0.02)
    sent = [r["index"] for r in records if r["kind"] == "frame"]
    dropped = [r["index"] for r in records if r["kind"] == "dropped"]
    assert done and sorted(sent + dropped) == list(range(30))
    assert dropped and dropped == sender.dropped_frames  # the capture ran ahead: frames were dropped, and counted
    assert sent == sorted(sent) and sent[-1] == 29  # in order, and the newest frame is the last one sent


def test_a_file_read_as_fast_as_it_can_be_waits_for_the_encoder() -> None:
    sender = GatedSender()
    done, records = _run(sender, FakeSource(12), live=False, opener=0.01)
    assert done and [r["index"] for r in records] == list(range(12))


def test_an_error_in_a_stage_reaches_the_caller() -> None:
    sender = GatedSender(fail_at=3)
    with pytest.raises(RuntimeError, match="encoder failed"):
        _run(sender, FakeSource(10), live=False, opener=0.0)


class ListTransport:
    """The receive side of a transport, from a list of messages."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = list(messages)

    def recv_message(self, timeout_ms: int) -> Message | None:
        return self.messages.pop(0) if self.messages else None


class Kept(Outputs):
    def __init__(self) -> None:
        super().__init__(display=False, record=None, fps=25.0, overlay=False)
        self.hashes: list[tuple[int, bytes]] = []

    def write(self, decoded) -> bool:  # noqa: ANN001
        self.hashes.append((decoded.packet.seq, decoded.rgb.tobytes()))
        return True


def test_a_pipelined_receive_shows_what_a_lockstep_one_shows() -> None:
    """Every frame (no live-view skipping), P-frames included: the same pictures in the same order."""
    from edgecodec.config import RateConfig
    from edgecodec.rate import RateController
    from edgecodec.sender import FrameCoder

    codec = Codec("hqa5-cpu", backend="torch")
    coder = FrameCoder(codec, RateController(RateConfig(fixed_layer=3), codec.num_layers),
                       stream_id=stream_number("cam"), session_id=5)  # fmt: skip
    y, x = np.mgrid[0:64, 0:96]
    messages = []
    for i in range(8):
        rgb = np.stack([(2 * x) % 256, (3 * y) % 256, (x + y) % 256], -1).astype(np.uint8)
        rgb[20:40, 10 + 4 * i : 30 + 4 * i] = 250
        code = codec.encode(rgb, latents=coder.latents(i / 25))
        made = coder.code(code, i / 25, seq=i, timestamp_us=i * 40_000)
        coder.sent(made, i / 25)
        messages.append(Message("cam", made.packet))
    assert any(bitstream_is_inter(m.packet) for m in messages)
    shown = {}
    for pipelined in (False, True):
        out = Kept()
        meter = StreamMeter(interval_s=0)
        reason = receive_frames(ListTransport(messages), FrameReceiver(codec), out, log=StatsLog(None), meter=meter,
                                status=None, frames=8, pipelined=pipelined)  # fmt: skip
        assert reason == "8 frames received"
        shown[pipelined] = out.hashes
    assert [seq for seq, _ in shown[True]] == list(range(8))
    assert shown[True] == shown[False]


def bitstream_is_inter(packet: bytes) -> bool:
    from edgecodec import bitstream

    return bitstream.decode_packet(packet).is_inter

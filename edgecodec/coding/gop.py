"""I-frames and P-frames: the sender's choice per frame and reference, and the receiver's reference store.

**Sender** (:class:`InterEncoder`, one per stream). The reference is the id grid of the last frame that was queued
for sending (a frame dropped by the sender never becomes a reference, so the receiver can hold every reference a
P-frame names). A frame at layer L is a P-frame only when the reference is at layer L and of the same grid, and no
keyframe is due (``keyframe_seconds`` since the last one): a layer switch therefore starts with an I-frame at the new
layer, and the keyframe interval bounds how long a receiver that joined late or lost a packet waits for a correct
picture. The P-frame's ids come from conditional replenishment (:mod:`edgecodec.coding.replenish`); the sender codes
both the I-frame and the P-frame and sends the P-frame only if it is smaller and its rate-distortion cost
``D + lambda * bits`` is lower: an inter frame is never sent when intra is cheaper.

**Receiver** (:class:`ReferenceStore`). Per stream, the ids of the last frame decoded, with its sender session,
sequence number and layer. A P-frame decodes only against exactly the reference it names; anything else raises
:class:`~edgecodec.errors.MissingReferenceError`, and the receiver holds its last good picture until the next
keyframe. Pixels never feed back into coding, so both ends stay in step bit for bit.

Source: the inter-frame issue (#11); DESIGN.md "Inter frames".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecodec import bitstream
from edgecodec.bitstream import MAX_REF_DELTA, Packet
from edgecodec.coding.replenish import replenish
from edgecodec.errors import MissingReferenceError

__all__ = ["CodedFrame", "InterEncoder", "InterSettings", "ReferenceStore"]


@dataclass(frozen=True)
class InterSettings:
    """``enabled``: P-frames at all; ``keyframe_seconds``: longest time between keyframes (> 0); ``lam``: the
    replenishment lambda of layer 1 (distortion units per bit, :mod:`edgecodec.coding.replenish`), doubled at each
    coarser layer (:meth:`layer_lambda`)."""

    enabled: bool = True
    keyframe_seconds: float = 2.0
    lam: float = 0.03

    def layer_lambda(self, layer: int) -> float:
        """The lambda of 1-based ``layer``: ``lam`` at layer 1, doubled at every coarser layer (an id of the next layer
        stands for four times the pixels; measured in docs/inter.md, "Choosing lambda")."""
        return self.lam * 2.0 ** (layer - 1)


@dataclass(frozen=True)
class CodedFrame:
    """One frame coded at one layer, ready for a packet.

    ``ids``: the (h, w) int64 grid the receiver will decode. ``ref_seq``: the reference's sequence number for a
    P-frame, None for a keyframe; ``timestamp_delta_us``: a P-frame's capture time minus its reference's.
    ``intra_bytes``/``inter_bytes``: the payload sizes of the two codings that were tried (None where not tried).
    ``switched``/``kept``: replenishment counts of a tried P-frame."""

    layer: int
    ids: np.ndarray
    payload: bytes
    ref_seq: int | None
    timestamp_delta_us: int = 0
    intra_bytes: int | None = None
    inter_bytes: int | None = None
    switched: int = 0
    kept: int = 0

    @property
    def is_inter(self) -> bool:
        return self.ref_seq is not None

    @property
    def unchanged(self) -> bool:
        """A P-frame that changes no id of its reference: a sender need not send it at all (the receiver keeps
        showing the reference, which is the same picture)."""
        return self.is_inter and self.switched == 0


@dataclass(frozen=True)
class _Reference:
    seq: int
    layer: int
    ids: np.ndarray
    timestamp_us: int


_MAX_DELTA_US = (1 << 31) - 1


class InterEncoder:
    """The sender's I/P decisions and reference for one stream (module docstring). ``codec``: a
    :class:`~edgecodec.codec.Codec`; time ``now`` is the rate controller's clock in seconds."""

    def __init__(self, codec, settings: InterSettings | None = None) -> None:  # noqa: ANN001 - Codec (import cycle)
        self.codec = codec
        self.settings = settings or InterSettings()
        self.reference: _Reference | None = None
        self._last_keyframe: float | None = None
        self.keyframes = 0
        self.inter_frames = 0

    def force_keyframe(self) -> None:
        """The next frame is a keyframe (a receiver joined, say)."""
        self._last_keyframe = None

    def keyframe_due(self, now: float) -> bool:
        last = self._last_keyframe
        return last is None or now < last or now - last >= self.settings.keyframe_seconds

    def latents(self, now: float) -> tuple[int, ...]:
        """Layers whose z_e the encoder must return for this frame: the reference's, when a P-frame is possible."""
        ref = self.reference
        if not self.settings.enabled or ref is None or self.keyframe_due(now) or not self.codec.has_inter(ref.layer):
            return ()
        return (ref.layer,)

    def code(self, frame, layer: int, now: float, *, seq: int = 0, timestamp_us: int = 0) -> CodedFrame:  # noqa: ANN001
        """Code ``frame`` (a FrameCode, with the latents of :meth:`latents`) at ``layer`` as frame ``seq`` captured at
        ``timestamp_us``: a P-frame where possible and cheaper, else a keyframe."""
        best = frame.ids[layer - 1]
        intra = self.codec.code_ids(best, layer)
        ref = self.reference
        z = (frame.latents or {}).get(layer) if self.settings.enabled else None
        if z is None or ref is None or ref.layer != layer or ref.ids.shape != best.shape or self.keyframe_due(now):
            return CodedFrame(layer, best, intra, None, intra_bytes=len(intra))
        delta_us = timestamp_us - ref.timestamp_us
        if not 1 <= (seq - ref.seq) % (1 << 32) <= MAX_REF_DELTA or abs(delta_us) > _MAX_DELTA_US:
            return CodedFrame(layer, best, intra, None, intra_bytes=len(intra))  # the header cannot name it
        lam = self.settings.layer_lambda(layer)
        rep = replenish(best, ref.ids, z, self.codec.layer_codes(layer), lam)
        inter = self.codec.code_ids(rep.ids, layer, reference=ref.ids)
        extra_bits = 8 * (len(inter) + bitstream.INTER_HEADER_SIZE - len(intra) - bitstream.HEADER_SIZE)
        if extra_bits < 0 and rep.kept_gain + lam * extra_bits < 0:
            return CodedFrame(layer, rep.ids, inter, ref.seq, delta_us, len(intra), len(inter), rep.switched, rep.kept)
        return CodedFrame(layer, best, intra, None, 0, len(intra), len(inter), rep.switched, rep.kept)

    def sent(self, coded: CodedFrame, seq: int, now: float, timestamp_us: int = 0) -> None:
        """The frame was queued for sending as sequence number ``seq``: it becomes the reference."""
        self.reference = _Reference(seq, coded.layer, coded.ids, timestamp_us)
        if coded.is_inter:
            self.inter_frames += 1
        else:
            self.keyframes += 1
            self._last_keyframe = now


@dataclass(frozen=True)
class _Held:
    packet: Packet
    ids: np.ndarray


class ReferenceStore:
    """The receiver's references, one per stream name (module docstring)."""

    def __init__(self) -> None:
        self._refs: dict[str, _Held] = {}

    def resolve(self, stream: str, packet: Packet) -> tuple[Packet, np.ndarray | None]:
        """A parsed packet completed (:func:`edgecodec.bitstream.resolve`) and the reference ids it decodes against:
        ``(packet, None)`` for a keyframe; for a P-frame whose session, reference sequence number and layer match the
        held frame, ``(resolved packet, its ids)``; else :class:`MissingReferenceError`."""
        if not packet.is_inter:
            return packet, None
        held = self._refs.get(stream)
        if held is None:
            raise MissingReferenceError(f"P-frame {packet.seq} before any keyframe: waiting for a keyframe")
        h = held.packet
        if (h.session_id, h.seq, h.layer) != (packet.session_id, packet.ref_seq, packet.layer):
            raise MissingReferenceError(
                f"P-frame {packet.seq} (session {packet.session_id:08x}) names reference {packet.ref_seq} at layer "
                f"{packet.layer}; held is frame {h.seq} (session {h.session_id:08x}) at layer {h.layer}: "
                "waiting for a keyframe"
            )
        return bitstream.resolve(packet, h), held.ids

    def update(self, stream: str, packet: Packet, ids: np.ndarray) -> None:
        """Frame ``packet`` (resolved) of ``stream`` decoded to ``ids``: it is now the reference."""
        self._refs[stream] = _Held(bitstream.replace_payload(packet), ids)

    def forget(self, stream: str) -> None:
        self._refs.pop(stream, None)

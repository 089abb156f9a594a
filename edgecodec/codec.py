"""The codec facade: RGB uint8 frames of any size in, ids and packets out, and back.

It joins a model (:mod:`edgecodec.zoo`), a backend (:mod:`edgecodec.runtime`), the integer priors and entropy coder
(:mod:`edgecodec.entropy`) and the packet format (:mod:`edgecodec.bitstream`). Frames are padded to the stack's
multiple by repeating edge pixels and cropped back after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecodec import bitstream, entropy
from edgecodec.errors import BitstreamError, LayerRangeError, ModelError
from edgecodec.runtime import Backend, make_backend
from edgecodec.zoo import DEFAULT_MODEL, Model, load_model


@dataclass(frozen=True)
class FrameCode:
    """Everything one encoder pass gives for a frame."""

    ids: list[np.ndarray]  # per layer, (h_l, w_l) int64
    qerr: np.ndarray  # (L,) normalised quantisation error per layer
    size: tuple[int, int]  # original (H, W)


class Codec:
    def __init__(self, model: Model | str = DEFAULT_MODEL, backend: str | Backend = "torch", device: str = "cpu"):
        self.model = load_model(model) if isinstance(model, str) else model
        self.backend = make_backend(backend, self.model, device) if isinstance(backend, str) else backend
        if len(self.model.priors) != self.model.num_layers:
            raise ModelError(f"model {self.model.name} has no id priors: it cannot be entropy-coded")
        tables = self.model.prior_tables or [{}] * self.model.num_layers
        try:  # a context prior where the model holds its tables, else the static unigram prior
            self.priors = [entropy.make_prior(c, t) for c, t in zip(self.model.priors, tables, strict=True)]
        except ValueError as exc:
            raise ModelError(f"model {self.model.name}: bad id prior tables ({exc})") from None

    @property
    def num_layers(self) -> int:
        return self.model.num_layers

    @property
    def fingerprint(self) -> bytes:
        return self.model.fingerprint

    def grid_shape(self, size: tuple[int, int], layer: int) -> tuple[int, int]:
        """Id grid (h, w) of ``layer`` for a frame of ``size`` (H, W)."""
        m = self.backend.multiple
        ph, pw = -(-size[0] // m) * m, -(-size[1] // m) * m
        return ph >> layer, pw >> layer

    def check_layer(self, layer: int) -> None:
        if not 1 <= layer <= self.num_layers:
            raise LayerRangeError(f"layer {layer} out of range 1..{self.num_layers} for model {self.model.name}")

    # ---- frames <-> ids -----------------------------------------------------------------------------------
    def _to_input(self, frames: list[np.ndarray]) -> np.ndarray:
        h, w = frames[0].shape[:2]
        m = self.backend.multiple
        ph, pw = (-h) % m, (-w) % m
        batch = np.stack([np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else f for f in frames])
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)

    def encode_frames(self, frames: list[np.ndarray]) -> list[FrameCode]:
        """Encode RGB uint8 frames (H, W, 3) of one size through every layer in one pass."""
        if not frames:
            return []
        for f in frames:
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8 or f.shape[:2] != frames[0].shape[:2]:
                raise ValueError("frames must be RGB uint8 arrays (H, W, 3) of one size")
        ids, qerr = self.backend.encode(self._to_input(frames))
        size = frames[0].shape[:2]
        return [FrameCode([i[n] for i in ids], qerr[n], size) for n in range(len(frames))]

    def encode(self, frame: np.ndarray) -> FrameCode:
        return self.encode_frames([frame])[0]

    def decode(self, ids: np.ndarray, layer: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 frame (H, W, 3) from the id grid of ``layer``, cropped to ``size``."""
        self.check_layer(layer)
        if ids.shape != self.grid_shape(size, layer):
            raise BitstreamError(f"id grid {ids.shape} does not fit a {size[1]}x{size[0]} frame at layer {layer}")
        out = self.backend.decode(ids[None].astype(np.int64, copy=False), layer)[0]
        out = out[:, : size[0], : size[1]].transpose(1, 2, 0)
        return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)

    # ---- ids <-> packets ----------------------------------------------------------------------------------
    def code_ids(self, ids: np.ndarray, layer: int) -> bytes:
        """Entropy-coded payload of one layer's id grid."""
        self.check_layer(layer)
        return entropy.encode_ids(ids, self.priors[layer - 1])

    def packet(self, code: FrameCode, layer: int, *, seq: int = 0, timestamp_us: int = 0, stream_id: int = 0,
               payload: bytes | None = None) -> bytes:
        """A complete packet for ``layer`` of an encoded frame (``payload`` if already coded)."""
        ids = code.ids[layer - 1]
        data = self.code_ids(ids, layer) if payload is None else payload
        return bitstream.encode_packet(bitstream.Packet(
            fingerprint=self.fingerprint, layer=layer, seq=seq & 0xFFFFFFFF, timestamp_us=timestamp_us,
            frame_h=code.size[0], frame_w=code.size[1], grid_h=ids.shape[0], grid_w=ids.shape[1],
            payload=data, stream_id=stream_id))

    def parse(self, data: bytes) -> bitstream.Packet:
        """Parse and check one packet against this model (fingerprint, layer, grid)."""
        p = bitstream.decode_packet(data, known_fingerprints={self.fingerprint}, num_layers=self.num_layers)
        if (p.grid_h, p.grid_w) != self.grid_shape((p.frame_h, p.frame_w), p.layer):
            raise BitstreamError(f"packet grid {p.grid_w}x{p.grid_h} does not match a {p.frame_w}x{p.frame_h} "
                                 f"frame at layer {p.layer}")
        return p

    def packet_ids(self, p: bitstream.Packet) -> np.ndarray:
        """Entropy-decode the id grid of a parsed packet."""
        return entropy.decode_ids(p.payload, self.priors[p.layer - 1], (p.grid_h, p.grid_w)).astype(np.int64)

    def decode_packet(self, data: bytes) -> tuple[bitstream.Packet, np.ndarray]:
        """Packet bytes -> (packet, RGB uint8 frame)."""
        p = self.parse(data)
        return p, self.decode(self.packet_ids(p), p.layer, (p.frame_h, p.frame_w))

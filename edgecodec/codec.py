"""The codec facade: RGB uint8 frames of any size in, ids and packets out, and back.

It joins a model (:mod:`edgecodec.zoo`), a backend (:mod:`edgecodec.runtime`), the integer priors and entropy coder
(:mod:`edgecodec.entropy`) and the packet format (:mod:`edgecodec.bitstream`). Frames are padded to the stack's
multiple by repeating edge pixels and cropped back after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecodec import bitstream, entropy
from edgecodec.coding.inter import InterPrior, inter_tables
from edgecodec.coding.replenish import LayerCodes
from edgecodec.errors import BitstreamError, LayerRangeError, MissingReferenceError, ModelError, UnknownModelError
from edgecodec.limits import DecodeBudget, check_encode_size
from edgecodec.runtime import Backend, make_backend
from edgecodec.zoo import DEFAULT_MODEL, Model, load_model


@dataclass(frozen=True)
class FrameCode:
    """Everything one encoder pass gives for a frame."""

    ids: list[np.ndarray]  # per layer, (h_l, w_l) int64
    qerr: np.ndarray  # (L,) normalised quantisation error per layer
    size: tuple[int, int]  # original (H, W)
    latents: dict[int, np.ndarray] | None = None  # per asked layer, (h_l, w_l, D) float32 unit z_e


class Codec:
    def __init__(
        self,
        model: Model | str = DEFAULT_MODEL,
        backend: str | Backend = "torch",
        device: str = "cpu",
        budget: DecodeBudget | None = None,
        threads: int | None = None,
    ):
        """``threads``: CPU threads of the onnx backends' inference (default $EDGECODEC_THREADS, else every CPU)."""
        self.budget = budget or DecodeBudget()
        """What one packet may cost to decode (:mod:`edgecodec.limits`), checked by :meth:`check`."""
        self.model = load_model(model) if isinstance(model, str) else model
        self.backend = (
            make_backend(backend, self.model, device, threads=threads) if isinstance(backend, str) else backend
        )
        if len(self.model.priors) != self.model.num_layers:
            raise ModelError(f"model {self.model.name} has no id priors: it cannot be entropy-coded")
        tables = [inter_tables(t) for t in self.model.prior_tables or [{}] * self.model.num_layers]
        try:  # a context prior where the model holds its tables, else the static unigram prior
            self._row_priors = [entropy.make_prior(c, t[0]) for c, t in zip(self.model.priors, tables, strict=True)]
            self.inter_priors = [InterPrior.from_tensors(t[1]) if t[1] else None for t in tables]
        except ValueError as exc:
            raise ModelError(f"model {self.model.name}: bad id prior tables ({exc})") from None
        self.priors = [self._intra_prior(layer, bitstream.FORMAT_VERSION) for layer in range(1, len(tables) + 1)]
        """The intra prior of each layer as format :data:`~edgecodec.bitstream.FORMAT_VERSION` codes keyframes."""
        for layer, (cfg, intra, inter) in enumerate(
            zip(self.model.net.config.layers, self.priors, self.inter_priors, strict=True), start=1
        ):
            for kind, prior in (("intra", intra), ("inter", inter)):
                if prior is not None and prior.num_ids != cfg.codebook_size:
                    raise ModelError(f"model {self.model.name}: the {kind} prior of layer {layer} codes "
                                     f"{prior.num_ids} ids, the codebook has {cfg.codebook_size}")  # fmt: skip
        self._layer_codes: dict[int, LayerCodes] = {}

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

    def encode_frames(self, frames: list[np.ndarray], latents: tuple[int, ...] = ()) -> list[FrameCode]:
        """Encode RGB uint8 frames (H, W, 3) of one size through every layer in one pass; ``latents``: 1-based
        layers whose unit encoder output z_e is also returned (what conditional replenishment needs)."""
        if not frames:
            return []
        for f in frames:
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8 or f.shape[:2] != frames[0].shape[:2]:
                raise ValueError("frames must be RGB uint8 arrays (H, W, 3) of one size")
        size = frames[0].shape[:2]
        check_encode_size(*size)
        if latents:
            ids, qerr, z = self.backend.encode_latents(self._to_input(frames), latents)
            return [FrameCode([i[n] for i in ids], qerr[n], size, {k: v[n] for k, v in z.items()})
                    for n in range(len(frames))]  # fmt: skip
        ids, qerr = self.backend.encode(self._to_input(frames))
        return [FrameCode([i[n] for i in ids], qerr[n], size) for n in range(len(frames))]

    def encode(self, frame: np.ndarray, latents: tuple[int, ...] = ()) -> FrameCode:
        return self.encode_frames([frame], latents)[0]

    def _intra_prior(self, layer: int, version: int):
        """The intra prior of ``layer`` as packets of format ``version`` code it (context priors: in bands from
        version 3, see :func:`edgecodec.bitstream.intra_band_rows`)."""
        prior = self._row_priors[layer - 1]
        if isinstance(prior, entropy.ContextPrior):
            return prior.with_band_rows(bitstream.intra_band_rows(version))
        return prior

    def has_inter(self, layer: int) -> bool:
        """Whether the model holds inter tables for ``layer`` (P-frames are possible there)."""
        return self.inter_priors[layer - 1] is not None

    def layer_codes(self, layer: int) -> LayerCodes:
        """The codes, 1/std and NEW-id bits of ``layer`` that conditional replenishment needs (cached)."""
        if layer not in self._layer_codes:
            lyr, prior = self.model.net.layers[layer - 1], self.inter_priors[layer - 1]
            if prior is None:
                raise ModelError(f"model {self.model.name} has no inter tables for layer {layer}")
            codes = lyr.quantizer.codes.detach().cpu().float().numpy()
            inv_std = (1.0 / lyr.ze_std.detach().cpu().float()).numpy()
            low = float(prior.new_bits.min()) if prior.rank_bits is None else float(prior.rank_bits.min())
            self._layer_codes[layer] = LayerCodes(codes, inv_std, prior.switch_bits, low)
        return self._layer_codes[layer]

    def decode(self, ids: np.ndarray, layer: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 frame (H, W, 3) from the id grid of ``layer``, cropped to ``size``."""
        self.check_layer(layer)
        if ids.shape != self.grid_shape(size, layer):
            raise BitstreamError(f"id grid {ids.shape} does not fit a {size[1]}x{size[0]} frame at layer {layer}")
        out = self.backend.decode(ids[None].astype(np.int64, copy=False), layer)[0]
        out = out[:, : size[0], : size[1]].transpose(1, 2, 0)
        return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)

    # ---- ids <-> packets ----------------------------------------------------------------------------------
    def code_ids(self, ids: np.ndarray, layer: int, reference: np.ndarray | None = None) -> bytes:
        """Entropy-coded payload of one layer's id grid: intra, or inter against the ``reference`` id grid."""
        self.check_layer(layer)
        if reference is None:
            return entropy.encode_ids(ids, self.priors[layer - 1])
        prior = self.inter_priors[layer - 1]
        if prior is None:
            raise ModelError(f"model {self.model.name} has no inter tables for layer {layer}")
        return entropy.encode_ids(ids, prior, reference)

    def packet(
        self,
        code: FrameCode,
        layer: int,
        *,
        seq: int = 0,
        timestamp_us: int = 0,
        stream_id: int = 0,
        payload: bytes | None = None,
        session_id: int = 0,
    ) -> bytes:
        """A complete keyframe packet for ``layer`` of an encoded frame (``payload`` if already coded)."""
        ids = code.ids[layer - 1]
        data = self.code_ids(ids, layer) if payload is None else payload
        return self.packet_for(ids.shape, layer, code.size, data, seq=seq, timestamp_us=timestamp_us,
                               stream_id=stream_id, session_id=session_id)  # fmt: skip

    def packet_for(
        self,
        grid: tuple[int, int],
        layer: int,
        size: tuple[int, int],
        payload: bytes,
        *,
        seq: int,
        timestamp_us: int,
        stream_id: int = 0,
        session_id: int = 0,
        ref_seq: int | None = None,
        timestamp_delta_us: int = 0,
    ) -> bytes:
        """Packet bytes for a coded payload: a P-frame when ``ref_seq`` is given (its header names the reference and
        the capture time relative to the reference's; the rest is the reference's), else a keyframe."""
        flags = bitstream.FLAG_KEYFRAME if ref_seq is None else bitstream.FLAG_INTER
        return bitstream.encode_packet(bitstream.Packet(
            fingerprint=self.fingerprint, layer=layer, seq=seq & 0xFFFFFFFF, timestamp_us=timestamp_us,
            frame_h=size[0], frame_w=size[1], grid_h=grid[0], grid_w=grid[1], payload=payload, stream_id=stream_id,
            flags=flags, session_id=session_id, ref_seq=0 if ref_seq is None else ref_seq & 0xFFFFFFFF,
            timestamp_delta_us=timestamp_delta_us))  # fmt: skip

    def parse(self, data: bytes) -> bitstream.Packet:
        """Parse and check one packet against this model (fingerprint, layer, grid, inter tables). A P-frame comes
        back unresolved: its fingerprint and grid are its reference's (:func:`edgecodec.bitstream.resolve`)."""
        p = bitstream.decode_packet(data, known_fingerprints={self.fingerprint}, num_layers=self.num_layers)
        return self.check(p)

    def check(self, p: bitstream.Packet) -> bitstream.Packet:
        """Check a parsed packet against this model: the fingerprint, grid and decode budget (:attr:`budget`) of a
        resolved one, the inter tables of a P-frame. The one validation path of the receiver, ``decode`` and ``info``:
        a P-frame is checked again once resolved, before any entropy decoding."""
        if not 1 <= p.layer <= self.num_layers:
            raise LayerRangeError(f"packet names layer {p.layer}; the model has layers 1..{self.num_layers}")
        if p.is_inter and not self.has_inter(p.layer):
            raise BitstreamError(f"inter packet for layer {p.layer}, but model {self.model.name} has no inter tables")
        if not p.resolved:
            return p
        if p.fingerprint != self.fingerprint:
            raise UnknownModelError(
                f"packet names model fingerprint {p.fingerprint.hex()}, not {self.fingerprint.hex()}"
            )
        if (p.grid_h, p.grid_w) != self.grid_shape((p.frame_h, p.frame_w), p.layer):
            raise BitstreamError(
                f"packet grid {p.grid_w}x{p.grid_h} does not match a {p.frame_w}x{p.frame_h} frame at layer {p.layer}"
            )
        self.budget.check(p.frame_h, p.frame_w, p.grid_h, p.grid_w, len(p.payload))
        return p

    def packet_ids(self, p: bitstream.Packet, reference: np.ndarray | None = None) -> np.ndarray:
        """Entropy-decode the id grid of a parsed packet; a P-frame must be resolved and needs its ``reference`` id
        grid, else :class:`MissingReferenceError`."""
        shape = (p.grid_h, p.grid_w)
        self.check(p)
        if not p.is_inter:
            current = p.version == bitstream.FORMAT_VERSION
            prior = self.priors[p.layer - 1] if current else self._intra_prior(p.layer, p.version)
            return entropy.decode_ids(p.payload, prior, shape).astype(np.int64)
        if not p.resolved or reference is None or reference.shape != shape:
            raise MissingReferenceError(f"inter frame {p.seq} needs reference frame {p.ref_seq}, which is not held")
        prior = self.inter_priors[p.layer - 1]
        if prior is None:
            raise BitstreamError(f"inter packet for layer {p.layer}, but model {self.model.name} has no inter tables")
        return entropy.decode_ids(p.payload, prior, shape, reference).astype(np.int64)

    def decode_packet(self, data: bytes) -> tuple[bitstream.Packet, np.ndarray]:
        """Keyframe packet bytes -> (packet, RGB uint8 frame). P-frames go through a
        :class:`~edgecodec.coding.gop.ReferenceStore` (see :class:`~edgecodec.receiver.FrameReceiver`)."""
        p = self.parse(data)
        return p, self.decode(self.packet_ids(p), p.layer, (p.frame_h, p.frame_w))

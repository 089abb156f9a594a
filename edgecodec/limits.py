"""The decode budget: what a packet may cost, checked from its (resolved) header alone, before anything is allocated.

In the spirit of libavcodec's ``max_pixels``: a frame may have at most ``max_pixels`` pixels, and its payload at
most :func:`payload_bound` bytes for its id grid. A keyframe is checked from its own header; a P-frame from its
reference's sizes once :func:`edgecodec.bitstream.resolve` has completed it (still before any entropy decoding).

Payload bound. The entropy coder is constriction's ANS with its default 24-bit precision, so one symbol never costs
more than 24 bits. The intra priors code at most two symbols per id (a mode and an id), the inter prior at most four
(the tile flag, the changed flag, the mode and a NEW id) plus its counts, fewer than one per id. So 12 bytes per id
bound both; :data:`BYTES_PER_ID` = 16 and :data:`PAYLOAD_SLACK` = 256 bytes leave a generous margin. A legal packet
is usually under 1 byte per id.

The same pixel limit bounds the sender (:func:`check_encode_size`): a frame over it is refused before it is encoded,
with one line that names the limit and the way out.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecodec.bitstream import MAX_FRAME_SIDE
from edgecodec.errors import DecodeBudgetError, FrameSizeError

__all__ = [
    "BYTES_PER_ID",
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS",
    "PAYLOAD_SLACK",
    "RECEIVER_MAX_PIXELS",
    "DecodeBudget",
    "check_encode_size",
    "message_bound",
    "payload_bound",
]

MAX_PIXELS = 1 << 23
"""8 Mi pixels (3840x2160 fits): the most any frame may have, encoded or decoded. Every layer's grid of such a frame
stays under :data:`edgecodec.bitstream.MAX_GRID_IDS`."""
DEFAULT_MAX_PIXELS = MAX_PIXELS
"""The decode budget of files (``edgecodec decode`` / ``info``)."""
RECEIVER_MAX_PIXELS = 1 << 21
"""The default ``--max-pixels`` of ``edgecodec receive``: 2 Mi pixels (1920x1088 fits)."""
BYTES_PER_ID = 16
PAYLOAD_SLACK = 256


def payload_bound(grid_ids: int) -> int:
    """The most payload bytes a legal packet of ``grid_ids`` ids can have (module docstring)."""
    return BYTES_PER_ID * grid_ids + PAYLOAD_SLACK


def message_bound(max_pixels: int) -> int:
    """The largest message a receiver with budget ``max_pixels`` accepts off the wire (ZeroMQ MAXMSGSIZE): the
    payload bound of a layer-1 grid of such a frame (a quarter of its pixels, doubled for padding) plus a header."""
    return payload_bound(max_pixels // 2 + 4096) + 1024


@dataclass(frozen=True)
class DecodeBudget:
    """What one packet may cost: ``max_pixels`` pixels per frame, and a payload within :func:`payload_bound` of its
    grid."""

    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not isinstance(self.max_pixels, int) or not 1 <= self.max_pixels <= MAX_PIXELS:
            raise ValueError(f"max_pixels must be an integer in 1..{MAX_PIXELS}, got {self.max_pixels!r}")

    def check(self, frame_h: int, frame_w: int, grid_h: int, grid_w: int, payload_len: int) -> None:
        """:class:`DecodeBudgetError` when a frame of these sizes is over the budget."""
        pixels = frame_h * frame_w
        if pixels > self.max_pixels:
            raise DecodeBudgetError(
                f"frame {frame_w}x{frame_h} has {pixels} pixels, over the decode budget of {self.max_pixels} "
                "(--max-pixels)"
            )
        bound = payload_bound(grid_h * grid_w)
        if payload_len > bound:
            raise DecodeBudgetError(
                f"payload of {payload_len} bytes for a {grid_w}x{grid_h} id grid exceeds its bound of {bound} bytes"
            )


def check_encode_size(height: int, width: int, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse, before encoding, a frame this build cannot pack (:class:`FrameSizeError`, one line)."""
    if height < 1 or width < 1:
        raise FrameSizeError(f"frame {width}x{height} is empty")
    if max(height, width) > MAX_FRAME_SIDE:
        raise FrameSizeError(
            f"frame {width}x{height} has a side over {MAX_FRAME_SIDE} pixels; scale it down with --size WxH"
        )
    if height * width > max_pixels:
        raise FrameSizeError(
            f"frame {width}x{height} has {height * width} pixels, over the limit of {max_pixels} "
            f"(about {int(max_pixels**0.5)}x{int(max_pixels**0.5)}); scale it down with --size WxH"
        )

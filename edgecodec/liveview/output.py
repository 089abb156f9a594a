"""How a receive loop feeds the live view: as one more frame output, and by a tap on its stats log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecodec.liveview.view import LiveView
from edgecodec.timing import StatsLog

if TYPE_CHECKING:
    from edgecodec.receiver import Decoded, FrameOutput


class LiveOutput:
    """A receiver output (:class:`~edgecodec.receiver.FrameOutput`): each frame shown goes to the live view (a
    reference handed over, nothing encoded here), then to ``inner`` (the windows and recordings, if any)."""

    def __init__(self, view: LiveView, inner: FrameOutput | None = None) -> None:
        self.view, self.inner = view, inner

    def write(self, decoded: Decoded) -> bool:
        self.view.show(decoded.stream, decoded.rgb)
        return True if self.inner is None else self.inner.write(decoded)

    def close_stream(self, stream: str) -> None:
        """The receiver closed an idle stream."""
        self.view.forget(stream)
        close = getattr(self.inner, "close_stream", None)
        if close is not None:
            close(stream)


class StatsTap(StatsLog):
    """The receiver's stats log, with every record also handed to the live view (layer, bits and latency of each
    frame shown, streams closed)."""

    def __init__(self, view: LiveView, log: StatsLog) -> None:
        super().__init__(None)
        self.view, self.log = view, log

    def write(self, record: dict[str, Any]) -> None:
        self.log.write(record)
        self.view.observe(record)

    def close(self) -> None:
        self.log.close()

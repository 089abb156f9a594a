"""What a receiver knows of each stream: sequence numbers, sender sessions, counters; and the bounds on streams.

* **Sessions.** Every sender start draws a random 32-bit session id (packet format 2). A stream is owned by one
  session at a time. A packet of another session is a **rival** while the owner is live (it sent within
  :data:`TAKEOVER_S`, or three of its frame intervals, at most 10 s): it is refused, counted and reported, never
  merged into the owner's frames. Once the owner has been silent that long, the next session takes the stream over
  (a restarted sender), and the old session is **superseded**: its late frames are dropped. Version 1 packets carry
  no session: a step backwards in sequence numbers tells a restart.
* **Bounds.** At most ``max_streams`` streams at once; a stream silent for ``idle_s`` is forgotten (the receiver
  closes and finalises its recorder), which makes room for another.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from edgecodec.errors import RivalSessionError, StreamRefusedError
from edgecodec.transport import stream_number

__all__ = ["MAX_GAP", "SEQ_MOD", "TAKEOVER_S", "StreamState", "StreamTable"]

SEQ_MOD = 1 << 32
MAX_GAP = 1 << 31  # a forward step at least this large is a step backwards modulo 2**32: a restarted sender
TAKEOVER_S = 1.0
"""A stream's session must be silent this long before another session may take the stream over."""
MAX_TAKEOVER_S = 10.0
_SUPERSEDED_KEPT = 16


@dataclass
class StreamState:
    """What a receiver knows of one stream."""

    name: str
    number: int
    last_seq: int | None = None
    session: int | None = None
    sessions: int = 0
    received: int = 0  # frames decoded and shown
    held: int = 0  # frames not shown: lost on the way, or P-frames whose reference is missing
    unsent: int = 0  # frames the sender did not send (unchanged P-frames, or dropped before sending): not lost
    gaps: int = 0  # frames missing between received ones, summed over sessions
    bad: int = 0
    keyframes: int = 0
    inter: int = 0
    skipped: int = 0  # entropy-decoded (references kept) but not shown: late, or behind a newer frame
    rivals: int = 0  # packets of another live session under this name: refused
    superseded: int = 0  # packets of a session that another one took over: dropped
    layers: dict[int, int] = field(default_factory=dict)
    last_seen: float = 0.0
    interval: float = 0.0  # the owner's last frame interval: a slow sender keeps its stream for 3 of them
    _old_sessions: deque = field(default_factory=lambda: deque(maxlen=_SUPERSEDED_KEPT))

    def admit(self, session: int | None, now: float) -> None:
        """Refuse (:class:`StreamRefusedError`) a packet of a rival or superseded session; else note it."""
        if session is None or self.session is None or session == self.session:
            if self.last_seen and session is not None and session == self.session:
                self.interval = min(max(now - self.last_seen, 0.0), MAX_TAKEOVER_S)
            self.last_seen = now
            return
        if session in self._old_sessions:
            self.superseded += 1
            raise StreamRefusedError(f"stream {self.name!r}: frame of superseded sender session {session:08x} dropped")
        if now - self.last_seen < max(TAKEOVER_S, 3 * self.interval):
            self.rivals += 1
            raise RivalSessionError(
                f"stream {self.name!r}: two senders publish it (sessions {self.session:08x} and {session:08x}); "
                f"the second is kept apart as stream {rival_name(self.name, session)!r}: give each sender its own "
                "--stream"
            )
        self._old_sessions.append(self.session)
        self.last_seen = now

    def track(self, seq: int, session: int | None = None) -> tuple[int, bool]:
        """Account for sequence number ``seq`` of sender session ``session`` (None: version 1 packets, where only a
        step backwards tells a restart): (frames missing just before it, whether it starts a new session)."""
        if self.last_seq is None or (session is not None and session != self.session):
            gap, new = 0, True
        else:
            step = (seq - self.last_seq - 1) % SEQ_MOD
            gap, new = (step, False) if step < MAX_GAP else (0, True)
        self.last_seq, self.session = seq, session
        self.sessions += new
        self.gaps += gap
        self.held += gap
        return gap, new


def rival_name(name: str, session: int) -> str:
    """The name under which a receiver keeps a second live sender of stream ``name`` apart (``~`` is in no stream id,
    so it cannot clash with a real stream)."""
    return f"{name}~{session:08x}"


class StreamTable(dict):
    """The receiver's streams by name, at most ``max_streams`` of them (None: no bound)."""

    def __init__(self, max_streams: int | None = None, idle_s: float | None = None) -> None:
        super().__init__()
        self.max_streams, self.idle_s = max_streams, idle_s
        self.refused = 0  # packets of streams beyond max_streams
        self.expired: list[StreamState] = []  # forgotten streams, for the summary

    def get_or_add(self, name: str, number: int | None = None) -> StreamState:
        """The state of stream ``name``, made on first sight with ``number`` (default: the name's stream number; a
        rival sender's stream, whose name holds ``~``, keeps the number of the stream it publishes under)."""
        state = self.get(name)
        if state is None:
            if self.max_streams is not None and len(self) >= self.max_streams:
                self.refused += 1
                raise StreamRefusedError(
                    f"stream {name!r} refused: {len(self)} streams already (--max-streams {self.max_streams})"
                )
            number = stream_number(name) if number is None else number
            state = self[name] = StreamState(name, number, last_seen=time.monotonic())
        return state

    def expire(self, now: float) -> list[str]:
        """Forget the streams silent for ``idle_s``; returns their names."""
        if self.idle_s is None:
            return []
        gone = [name for name, s in self.items() if now - s.last_seen > self.idle_s]
        for name in gone:
            self.expired.append(self.pop(name))
            del self.expired[:-256]
        return gone

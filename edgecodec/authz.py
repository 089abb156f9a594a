"""Who may publish what: the receiver's allow-list of CURVE client keys, and the streams each key may publish.

The allow-list is the folder ``DIR/authorized/``: one public key per allowed sender (``NAME.key``, as written by
``edgecodec keygen``). Beside a key, ``NAME.streams`` may name the streams that key may publish, one per line or
separated by commas (``*`` or no file: any stream). The ZAP handler asks :meth:`AllowList.allowed` at every
handshake, and the receiver checks every message's ZeroMQ User-Id (the z85 public key) with
:meth:`AllowList.may_publish`.

:meth:`AllowList.reload_if_changed` re-reads the folder when a file in it changed (the receiver calls it about once
a second); it returns the keys that were removed, so that the receiver can drop their connections.

:class:`HandshakeMonitor` turns failed CURVE handshakes (a socket monitor's ``EVENT_HANDSHAKE_FAILED_*``) into one
line, on the sender and on the receiver.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from edgecodec.errors import TransportError

__all__ = ["AllowList", "HandshakeMonitor"]

_SPLIT = re.compile(r"[\s,]+")


class AllowList:
    """The keys of ``folder`` and the streams each may publish (module docstring). Thread-safe: the ZAP thread
    reads it while the receiver reloads it."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._keys: dict[str, frozenset[str] | None] = {}
        self._signature: tuple = ()
        self.reload_if_changed()
        if not self._keys:
            raise TransportError(f"allow-list {str(self.folder)!r}: no client keys, nobody could connect")

    def _scan(self) -> tuple:
        try:
            files = sorted(p for p in self.folder.iterdir() if p.suffix in (".key", ".streams"))
            return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        except OSError:
            return ()

    def _load(self) -> dict[str, frozenset[str] | None]:
        keys: dict[str, frozenset[str] | None] = {}
        for path in sorted(self.folder.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError):
                continue  # a half-written or foreign file: not a key
            if not public:
                continue
            streams: frozenset[str] | None = None
            side = path.with_suffix(".streams")
            if side.is_file():
                try:
                    names = {n for n in _SPLIT.split(side.read_text()) if n}
                except (OSError, UnicodeDecodeError):
                    names = set()  # unreadable: nothing allowed rather than everything
                streams = None if "*" in names else frozenset(names)
            keys[public.decode("ascii")] = streams
        return keys

    def reload_if_changed(self) -> set[str]:
        """Re-read the folder if it changed; returns the keys no longer allowed (or allowed fewer streams)."""
        signature = self._scan()
        if signature == self._signature:
            return set()
        keys = self._load()
        with self._lock:
            old, self._keys, self._signature = self._keys, keys, signature
        return {k for k, streams in old.items() if k not in keys or (keys[k] is not None and keys[k] != streams)}

    def allowed(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def may_publish(self, key: str | None, stream: str) -> bool:
        """Whether the peer with z85 public key ``key`` may publish ``stream`` (False for an unknown key)."""
        with self._lock:
            if key not in self._keys:
                return False
            streams = self._keys[key]
        return streams is None or stream in streams

    def callback(self, domain: str, key: bytes) -> bool:
        """The credentials provider of pyzmq's authenticator: ``key`` is the z85 client key."""
        return self.allowed(key.decode("ascii", "replace"))


# -- handshake failures --------------------------------------------------------------------------------------------
_HANDSHAKE_EVENTS = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the key was refused",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the peers disagree on encryption (CURVE keys on one side only, or a wrong "
    "server key)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the peers disagree on encryption (a wrong server key, or CURVE on one side "
    "only)",
}


class HandshakeMonitor:
    """Watches a socket for failed handshakes and turns each into one line (once per endpoint and kind). On every
    socket, CURVE or not: a sender without keys at a CURVE receiver, or the reverse, is reported too."""

    def __init__(self, sock: zmq.Socket, role: str) -> None:
        self.role = role
        self.failures = 0
        self._seen: set[tuple[int, str]] = set()
        events = 0
        for event in _HANDSHAKE_EVENTS:
            events |= event
        self._monitor = sock.get_monitor_socket(events)

    def lines(self) -> list[str]:
        """The new failures since the last call, one line each."""
        out = []
        for _ in range(64):
            try:
                if not self._monitor.poll(0, zmq.POLLIN):
                    break
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except (zmq.ZMQError, ValueError):
                break
            kind, peer = event["event"], event.get("endpoint", b"")
            peer = peer.decode("utf-8", "replace") if isinstance(peer, bytes) else str(peer)
            peer = peer.replace("[::ffff:", "").replace("]:", ":") if "[::ffff:" in peer else peer
            self.failures += 1
            if (kind, peer) in self._seen or kind not in _HANDSHAKE_EVENTS:
                continue
            self._seen.add((kind, peer))
            detail = _HANDSHAKE_EVENTS[kind]
            if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH and self.role == "sender":
                detail = "the receiver refused this sender's key (not in its authorized/ folder)"
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                detail = "a sender's key is not in the allow-list (authorized/)"
            who = f"with the receiver on {peer}" if self.role == "sender" else f"of a sender on {peer}"
            out.append(f"handshake {who} failed: {detail}")
        return out

    def close(self) -> None:
        self._monitor.close(linger=0)

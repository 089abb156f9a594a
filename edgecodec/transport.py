"""ZeroMQ transport: opaque packets from senders to receivers. It knows nothing of torch or of the packet layout.

Pattern: **XPUB (sender) -> SUB (receiver)**, one two-part message ``[stream id, packet]`` per frame.

* *Many senders, one or more receivers.* SUB fans in from any number of publishers and the stream id (the topic)
  tells them apart; several receivers may subscribe to one sender and each gets every frame. PUSH/PULL would
  round-robin the frames of one sender between receivers, which is wrong for video.
* *Either side may start first, and either may bind.* ZeroMQ reconnects by itself, so a receiver survives a sender
  restart and a late receiver gets the frames sent after it joined (earlier ones are gone, as they should be).
* *The sender never blocks, and every drop is counted.* A plain PUB drops silently when nobody listens or a queue is
  full. XPUB sees the subscriptions arrive and leave, so a frame sent with no matching receiver is dropped here and
  counted (``dropped_no_receiver``); with ``XPUB_NODROP`` and a non-blocking send, a full queue (``hwm`` messages, kept
  small for latency) gives EAGAIN instead of a silent loss, and is counted too (``dropped_queue_full``). With several
  receivers, one stalled receiver makes frames drop for all until its heartbeat times out.
* Sockets use LINGER=0 (closing never waits), ZMTP heartbeats (a dead peer is noticed in seconds), IMMEDIATE on
  connect (no queueing for a peer that is not there), IPV6 (IPv4 and IPv6 endpoints both), and on the receiver
  MAXMSGSIZE (a peer cannot make it allocate more than that per message; ``edgecodec receive`` sets it from its decode
  budget); malformed messages are counted and skipped. A socket monitor reports failed handshakes in one line.

Stream ids: the topic is a name (``cam0``); a packet header carries a 32-bit number instead. The number of a stream is
the CRC-32 of its name (:func:`stream_number`), so a receiver can check that a packet arrived under the topic its
sender meant.

CURVE (optional): the receiver is the CURVE server whatever side binds, and a ZAP authenticator lets in only the
client public keys found in ``DIR/authorized/``. ``edgecodec keygen --out DIR`` writes::

    DIR/server.key          server public key   -> every sender needs it
    DIR/server.key_secret   server key pair     -> the receiver only
    DIR/client.key          client public key
    DIR/client.key_secret   client key pair     -> the sender only
    DIR/authorized/client.key                   -> the receiver: one public key per allowed sender

``edgecodec keygen --out DIR --add-client NAME`` adds ``NAME.key[_secret]`` and authorises it. A sender whose key is
not authorised never completes the handshake: it delivers nothing and counts its frames as ``dropped_no_receiver``.
``authorized/NAME.streams`` may name the streams a key may publish; every message's User-Id is checked against it,
and the folder is re-read when it changes (:mod:`edgecodec.authz`).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from edgecodec.authz import AllowList, HandshakeMonitor
from edgecodec.cliutil import ArgumentParser
from edgecodec.errors import ConfigError, TransportError

DEFAULT_STREAM = "main"
DEFAULT_PORT = 5555
SENDER_HWM = 8
RECEIVER_HWM = 16
MAX_MESSAGE_BYTES = (64 << 20) + (64 << 10)  # the largest legal packet (64 MiB payload) plus headroom for its header
RECONNECT_MAX_MS = 500  # a restarted peer is found again within half a second
_V4_MAPPED = re.compile(r"^tcp://\[::ffff:(\d+\.\d+\.\d+\.\d+)\]:")
_STREAM_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_SUBSCRIPTIONS = 1024


# -- endpoints and stream ids --------------------------------------------------------------------------------------
def normalise_endpoint(endpoint: str, *, bind: bool | None = None) -> str:
    """Check an endpoint's form and return it in ZeroMQ's: ``tcp://HOST:PORT``, ``ipc://PATH`` or ``inproc://NAME``.

    ``HOST:PORT`` gains ``tcp://``; a bare ``PORT`` means every interface when binding (``tcp://*:PORT``) and this
    machine when connecting (``tcp://127.0.0.1:PORT``). A tcp port must be 1..65535, or ``*`` (a free port) when
    binding; an IPv6 host is written in brackets (``tcp://[::1]:5555``). ``bind`` None checks the form only.

    Raises:
        TransportError: the endpoint is malformed; the message says what was expected.
    """
    text = endpoint.strip()
    if text.lstrip("+-").isdigit() and not text.isdigit():  # a bare port with a sign: -1, +5555
        raise TransportError(f"bad endpoint {endpoint!r}: port {text!r} must be a number in 1..65535")
    if text.isdigit():
        text = f"tcp://{'*' if bind else '127.0.0.1'}:{text}"
    elif "://" not in text:
        text = f"tcp://{text}"
    scheme, _, rest = text.partition("://")
    expected = "expected tcp://HOST:PORT (e.g. tcp://*:5555 to bind, tcp://192.168.1.20:5555 to connect)"
    if scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise TransportError(f"bad endpoint {endpoint!r}: {expected}, ipc://PATH or inproc://NAME")
    if scheme == "tcp":
        _check_tcp(endpoint, rest, bind, expected)
    return text


def _check_tcp(endpoint: str, rest: str, bind: bool | None, expected: str) -> None:
    host, colon, port = rest.rpartition(":")
    if not colon:
        raise TransportError(f"bad endpoint {endpoint!r}: no port; {expected}")
    if not host:
        raise TransportError(f"bad endpoint {endpoint!r}: no host before the port; {expected}")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise TransportError(f"bad endpoint {endpoint!r}: write an IPv6 address in brackets, tcp://[::1]:5555")
    if port == "*":
        if bind is False:
            raise TransportError(f"bad endpoint {endpoint!r}: a port of * only makes sense with --bind")
        return
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise TransportError(f"bad endpoint {endpoint!r}: port {port!r} must be a number in 1..65535")
    if bind is False and host != "*":
        _check_resolves(endpoint, host.strip("[]"), int(port))
    elif bind is False:
        raise TransportError(f"bad endpoint {endpoint!r}: * is for --bind; to connect, name the host to connect to")


def _check_resolves(endpoint: str, host: str, port: int) -> None:
    """A host name to connect to must resolve now: else ZeroMQ retries forever and every frame is dropped unseen."""
    import socket

    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransportError(
            f"cannot connect to {endpoint!r}: host {host!r} does not resolve ({getattr(exc, 'strerror', exc)}); "
            "check the host name or address"
        ) from None


def check_stream(stream: str) -> bytes:
    """A stream id: 1 to 64 characters of ``A-Z a-z 0-9 . _ -``; returns its topic bytes."""
    if not isinstance(stream, str) or not _STREAM_RE.fullmatch(stream):
        raise ConfigError(f"stream id {stream!r}: use 1 to 64 characters among A-Z a-z 0-9 . _ -")
    return stream.encode("ascii")


def stream_number(stream: str) -> int:
    """The 32-bit number a packet carries for stream id ``stream``: ``zlib.crc32`` of its ASCII name."""
    return zlib.crc32(check_stream(stream))


def _configure(sock: zmq.Socket, hwm: int) -> None:
    sock.setsockopt(zmq.IPV6, 1)  # IPv4 and IPv6 both: tcp://[::1]:PORT binds and connects
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)


def _attach(sock: zmq.Socket, endpoint: str, bind: bool) -> str:
    endpoint = normalise_endpoint(endpoint, bind=bind)
    try:
        if bind:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except zmq.ZMQError as exc:
        why = exc.strerror
        if bind and exc.errno == errno.ENODEV:  # ZeroMQ's word for a host that is neither an address nor an interface
            why = "no such address or interface on this machine (bind to '*', an address of it, or an interface name)"
        raise TransportError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {why}") from None
    last = sock.getsockopt(zmq.LAST_ENDPOINT)
    if not (bind and last):
        return endpoint
    # with IPV6 on, an IPv4 bind reports the v4-mapped address: give back the plain one, which peers can connect to
    return _V4_MAPPED.sub(r"tcp://\1:", last.decode())


# -- CURVE keys ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveClientKeys:
    """What a sender needs: its own key pair and the receiver's public key (Z85 bytes)."""

    public: bytes
    secret: bytes
    server_public: bytes


@dataclass(frozen=True)
class CurveServerKeys:
    """What a receiver needs: its key pair and the folder of authorised client public keys."""

    public: bytes
    secret: bytes
    authorized: Path


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise TransportError(f"CURVE key {str(path)!r}: cannot load ({exc}); make keys with edgecodec keygen") from None
    if secret and not secret_key:
        raise TransportError(f"CURVE key {str(path)!r} holds no secret key")
    return public, secret_key


def load_client_keys(directory: str | Path, name: str = "client") -> CurveClientKeys:
    """Load ``DIR/NAME.key_secret`` and ``DIR/server.key``."""
    folder = Path(directory)
    public, secret = _load(folder / f"{name}.key_secret", secret=True)
    server_public, _ = _load(folder / "server.key", secret=False)
    return CurveClientKeys(public, secret or b"", server_public)


def load_server_keys(directory: str | Path) -> CurveServerKeys:
    """Load ``DIR/server.key_secret`` and check that ``DIR/authorized/`` holds at least one public key."""
    folder = Path(directory)
    public, secret = _load(folder / "server.key_secret", secret=True)
    authorized = folder / "authorized"
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise TransportError(f"CURVE keys {str(folder)!r}: no client keys in {str(authorized)!r}, nobody could connect")
    return CurveServerKeys(public, secret or b"", authorized)


def _new_pair(folder: Path, name: str) -> None:
    public_file, secret_file = zmq.auth.create_certificates(folder, name)
    os.chmod(secret_file, 0o600)
    (folder / "authorized").mkdir(exist_ok=True)
    shutil.copyfile(public_file, folder / "authorized" / f"{name}.key")


def create_keys(directory: str | Path, *, force: bool = False, add_client: str | None = None) -> list[Path]:
    """Write a server and a ``client`` key pair (or only one more client); returns the files written."""
    folder = Path(directory)
    names = [add_client] if add_client else ["server", "client"]
    if add_client:
        check_stream(add_client)  # same harmless alphabet for file names
        if add_client == "server" or not (folder / "server.key_secret").is_file():
            raise TransportError(f"{str(folder)!r} has no server keys to add client {add_client!r} to")
    targets = [folder / f"{n}{ext}" for n in names for ext in (".key", ".key_secret")]
    targets += [folder / "authorized" / f"{n}.key" for n in names if n != "server"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise TransportError(f"keys exist ({', '.join(existing)}); use --force to overwrite")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name == "server":
                zmq.auth.create_certificates(folder, name)
                os.chmod(folder / "server.key_secret", 0o600)
            else:
                _new_pair(folder, name)
    except OSError as exc:
        raise TransportError(f"cannot write keys to {str(folder)!r}: {exc.strerror or exc}") from None
    return targets


def main_keygen(argv: Sequence[str] | None = None) -> int:
    """``edgecodec keygen --out DIR [--add-client NAME] [--force]``."""
    parser = ArgumentParser(prog="edgecodec keygen", description="Make CURVE keys for encrypted streams.")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the keys")
    parser.add_argument("--add-client", metavar="NAME", help="only add (and authorise) one more client key pair")
    parser.add_argument("--force", action="store_true", help="overwrite existing keys")
    ns = parser.parse_args(argv)
    for path in create_keys(ns.out, force=ns.force, add_client=ns.add_client):
        print(f"wrote {path}")
    print(
        "receiver: --curve-keys DIR needs server.key_secret and authorized/; "
        "sender: --curve-keys DIR needs server.key and its CLIENT.key_secret"
    )
    return 0


# -- sender --------------------------------------------------------------------------------------------------------
@dataclass
class SenderStats:
    sent: int = 0
    dropped_no_receiver: int = 0
    dropped_queue_full: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_no_receiver + self.dropped_queue_full


class Sender:
    """Publishes packets under one stream id; :meth:`send` never blocks and returns False for a counted drop."""

    def __init__(
        self,
        endpoint: str,
        *,
        bind: bool,
        stream: str = DEFAULT_STREAM,
        hwm: int = SENDER_HWM,
        curve: CurveClientKeys | str | Path | None = None,
    ) -> None:
        self._topic = check_stream(stream)
        self.stream = stream
        self.bind, self.curve = bind, curve is not None
        self.stats = SenderStats()
        self._subscriptions: set[bytes] = set()
        self.joined = 0
        """Subscriptions that match this stream seen so far: it grows when a receiver joins (a sender sends it a
        keyframe then, rather than P-frames it cannot decode)."""
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.XPUB)
        try:
            _configure(self._socket, hwm)
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
            self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # every receiver's subscription, not only the first
            self._socket.setsockopt(zmq.IMMEDIATE, 1)
            self.monitor: HandshakeMonitor | None = None
            if curve is not None:
                keys = curve if isinstance(curve, CurveClientKeys) else load_client_keys(curve)
                self._socket.curve_secretkey = keys.secret
                self._socket.curve_publickey = keys.public
                self._socket.curve_serverkey = keys.server_public
            self.monitor = HandshakeMonitor(self._socket, "sender")
            self.endpoint = _attach(self._socket, endpoint, bind)
        except BaseException:
            self.close()
            raise

    def _poll_subscriptions(self) -> None:
        for _ in range(256):
            try:
                event = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if event[:1] == b"\x01" and self._topic.startswith(event[1:]):
                self.joined += 1
            if event[:1] == b"\x01" and len(self._subscriptions) < _MAX_SUBSCRIPTIONS:
                self._subscriptions.add(event[1:])
            elif event[:1] == b"\x00":
                self._subscriptions.discard(event[1:])

    @property
    def has_receiver(self) -> bool:
        """Whether some receiver subscribes to this stream now."""
        self._poll_subscriptions()
        return any(self._topic.startswith(prefix) for prefix in self._subscriptions)

    def wait_for_receiver(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a receiver (for tests and demos; a live sender just sends)."""
        deadline = time.monotonic() + timeout_s
        while not self.has_receiver:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._socket.poll(min(50, max(1, int(remaining * 1000))), zmq.POLLIN)
        return True

    def send(self, packet: bytes) -> bool:
        """Queue one packet without blocking; False means it was dropped (and counted)."""
        if not self.has_receiver:
            self.stats.dropped_no_receiver += 1
            return False
        try:
            self._socket.send_multipart([self._topic, packet], flags=zmq.NOBLOCK, copy=len(packet) < 65536)
        except zmq.Again:
            self.stats.dropped_queue_full += 1
            return False
        self.stats.sent += 1
        return True

    @property
    def dropped(self) -> int:
        return self.stats.dropped

    def close(self, linger_ms: int = 0) -> None:
        """Close; packets still queued get up to ``linger_ms`` to leave (0: discarded at once)."""
        if getattr(self, "monitor", None) is not None:
            self.monitor.close()
            self.monitor = None
        if not self._context.closed:
            self._socket.close(linger=max(0, int(linger_ms)))
            self._context.term()

    def handshake_failures(self) -> list[str]:
        """New failed handshakes since the last call, one line each."""
        return self.monitor.lines() if self.monitor is not None else []

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- receiver ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    stream: str
    packet: bytes
    user_id: str | None = None
    """The ZAP-authenticated peer (with CURVE: its z85 public key); None without authentication."""


@dataclass
class ReceiverStats:
    received: int = 0
    malformed: int = 0
    unauthorised: int = 0  # messages from a key not allowed to publish their stream
    resets: int = 0  # connections dropped because a key was revoked


class Receiver:
    """Subscribes to some streams (all by default) and returns their packets."""

    def __init__(
        self,
        endpoint: str,
        *,
        bind: bool,
        streams: Sequence[str] | None = None,
        hwm: int = RECEIVER_HWM,
        curve: CurveServerKeys | str | Path | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._streams = {check_stream(s) for s in streams} if streams else None
        self.stats = ReceiverStats()
        self._auth: ThreadAuthenticator | None = None
        self.allow: AllowList | None = None
        self.monitor: HandshakeMonitor | None = None
        self.refused: list[str] = []  # one line per (key, stream) refused, for the caller to print
        self._refused_seen: set[tuple[str | None, str]] = set()
        self._bind, self._next_reload = bind, 0.0
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        try:
            _configure(self._socket, hwm)
            self._socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            if curve is not None:
                keys = curve if isinstance(curve, CurveServerKeys) else load_server_keys(curve)
                self.allow = AllowList(keys.authorized)
                self._auth = ThreadAuthenticator(self._context)
                self._auth.start()
                self._auth.configure_curve_callback(domain="*", credentials_provider=self.allow)
                self._socket.curve_secretkey = keys.secret
                self._socket.curve_publickey = keys.public
                self._socket.curve_server = True
            self.monitor = HandshakeMonitor(self._socket, "receiver")
            for topic in self._streams or {b""}:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic)
            self.endpoint = _attach(self._socket, endpoint, bind)
            last = self._socket.getsockopt(zmq.LAST_ENDPOINT)
            self._attached = last.decode() if bind and last else self.endpoint  # exactly as ZeroMQ names it
        except BaseException:
            self.close()
            raise

    def handshake_failures(self) -> list[str]:
        """New failed handshakes since the last call, one line each."""
        return self.monitor.lines() if self.monitor is not None else []

    def poll_allow_list(self) -> set[str]:
        """Re-read the allow-list if it changed (at most once a second). When a key was revoked, every connection is
        dropped (the socket re-binds or re-connects): the others come back within a second, the revoked key fails
        its handshake. Returns the revoked keys."""
        now = time.monotonic()
        if self.allow is None or now < self._next_reload:
            return set()
        self._next_reload = now + 0.5
        revoked = self.allow.reload_if_changed()
        if revoked:
            self._reset_connections()
        return revoked

    def _reset_connections(self) -> None:
        try:
            if self._bind:
                self._socket.unbind(self._attached)
            else:
                self._socket.disconnect(self._attached)
        except zmq.ZMQError:
            pass
        deadline = time.monotonic() + 2.0
        while True:  # the old listener may take a moment to let the port go
            try:
                (self._socket.bind if self._bind else self._socket.connect)(self._attached)
                break
            except zmq.ZMQError as exc:
                if time.monotonic() > deadline:
                    raise TransportError(f"cannot re-bind {self.endpoint}: {exc.strerror}") from None
                time.sleep(0.05)
        self.stats.resets += 1

    def _authorised(self, stream: str, user_id: str | None) -> bool:
        if self.allow is None or self.allow.may_publish(user_id, stream):
            return True
        self.stats.unauthorised += 1
        if (user_id, stream) not in self._refused_seen and len(self._refused_seen) < 1024:
            self._refused_seen.add((user_id, stream))
            self.refused.append(f"key {user_id} may not publish stream {stream!r}: its messages are dropped")
        return False

    def _read_one(self) -> Message | None:
        """Read one whole message that is already there; None if it is malformed or filtered out."""
        first = self._socket.recv(zmq.NOBLOCK, copy=False)
        parts = [first.bytes]
        try:
            user_id: str | None = first.get("User-Id")
        except (zmq.ZMQError, UnicodeDecodeError):
            user_id = None
        while self._socket.getsockopt(zmq.RCVMORE):
            part = self._socket.recv(zmq.NOBLOCK)
            if len(parts) < 2:
                parts.append(part)
            else:
                parts = parts[:2] + [b""]  # keep draining, remember that it had too many parts
        if len(parts) != 2 or not _STREAM_RE.fullmatch(parts[0].decode("latin-1")):
            self.stats.malformed += 1
            return None
        if self._streams is not None and parts[0] not in self._streams:
            return None  # a prefix match of another stream (cam10 for cam1)
        stream = parts[0].decode("ascii")
        if not self._authorised(stream, user_id):
            return None
        self.stats.received += 1
        return Message(stream, parts[1], user_id)

    def recv_message(self, timeout_ms: int) -> Message | None:
        """The next message, or None after ``timeout_ms`` (0 = do not wait)."""
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        for _ in range(1024):  # bounded: a flood of malformed messages cannot keep us here
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(remaining, zmq.POLLIN):
                return None
            message = self._read_one()
            if message is not None:
                return message
        return None

    def recv(self, timeout_ms: int) -> bytes | None:
        """The next packet of any subscribed stream, or None after ``timeout_ms``."""
        message = self.recv_message(timeout_ms)
        return None if message is None else message.packet

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._context.closed:
            self._socket.close(linger=0)
            self._context.term()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- command line --------------------------------------------------------------------------------------------------
def add_transport_arguments(parser: argparse.ArgumentParser, *, role: str) -> None:
    """``--bind EP | --connect EP``, ``--curve-keys DIR`` (and ``--stream`` / ``--curve-client`` for a sender)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--bind", metavar="ENDPOINT", help="bind here, e.g. tcp://*:5555")
    group.add_argument("--connect", metavar="ENDPOINT", help="connect there, e.g. tcp://192.168.1.20:5555")
    parser.add_argument(
        "--curve-keys", metavar="DIR", help="encrypt and authenticate with the keys of edgecodec keygen"
    )
    if role == "sender":
        parser.add_argument("--stream", default=DEFAULT_STREAM, help=f"stream id (default {DEFAULT_STREAM})")
        parser.add_argument("--curve-client", default="client", metavar="NAME", help="client key name in DIR")
    else:
        parser.add_argument("--stream", action="append", metavar="ID", help="only these stream ids (repeatable)")


def endpoint_from_args(ns: argparse.Namespace, *, role: str) -> tuple[str, bool]:
    """(endpoint, bind). Defaults: the receiver binds tcp://*:5555, the sender connects to tcp://127.0.0.1:5555."""
    if ns.bind:
        return ns.bind, True
    if ns.connect:
        return ns.connect, False
    return (f"tcp://*:{DEFAULT_PORT}", True) if role == "receiver" else (f"tcp://127.0.0.1:{DEFAULT_PORT}", False)

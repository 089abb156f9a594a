"""The live view's HTTP server: the standard library's ``ThreadingHTTPServer``, one thread per connection.

========================  ========================================================================================
``GET /``                 the page (``page.html`` in this package): every stream, live, with its figures
``GET /events``           Server-Sent Events: ``stats`` (the JSON of ``/stats.json``) twice a second, and ``frame``
                          (``{"stream", "frame", "jpeg"}``, the JPEG in base64), the newest frame of each stream
                          at most ``max_fps`` times a second. The page needs this one connection only (a browser opens
                          at most 6 to one server, so one ``<img>`` stream per camera would not do beyond five)
``GET /stats.json``       every stream's layer, kbps, fps, latency and drops (:meth:`LiveView.stats`)
``GET /stream/NAME.mjpg`` one stream as MJPEG (``multipart/x-mixed-replace``), for players and ``<img>`` tags
``GET /frame/NAME.jpg``   the newest frame of one stream
========================  ========================================================================================

A viewer's thread encodes (once per frame, shared with the other viewers) and sends the newest frame when it is ready
for one, so a slow or stalled viewer holds one frame at most and slows nobody else; one that takes more than
``STALL_S`` to accept a write is dropped. At most ``MAX_VIEWERS`` streaming connections at once. Bound to a loopback
address, the server answers only requests addressed to a loopback name (a page of another site cannot read the
cameras through DNS rebinding). :meth:`LiveServer.close` ends every connection and joins every thread.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from edgecodec.errors import ConfigError
from edgecodec.liveview.address import is_loopback
from edgecodec.liveview.output import LiveOutput, StatsTap
from edgecodec.liveview.view import LiveView

if TYPE_CHECKING:
    from edgecodec.receiver import FrameOutput
    from edgecodec.timing import StatsLog

STALL_S = 10.0  # a viewer that accepts no byte for this long is dropped
MAX_VIEWERS = 32  # streaming connections (/events, /stream/...) at once
STATS_S = 0.5  # how often /events sends the stats
BOUNDARY = "edgecodec-frame"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # never keeps the process alive; close() ends and joins them all the same
    block_on_close = True

    def __init__(self, address: tuple[str, int], live: LiveServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.live = live
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up (socket.getfqdn), which can hang without DNS: not needed
        super(ThreadingHTTPServer, self).server_bind()
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):  # a viewer that went away is not worth a traceback
            super().handle_error(request, client_address)


class LiveServer:
    """Serves a :class:`LiveView` over HTTP from a thread; a context manager (:meth:`close` on exit).

    Binding happens in the constructor: a taken port or an unknown host is a :class:`ConfigError` at once."""

    def __init__(self, address: tuple[str, int], view: LiveView | None = None, *, max_fps: float = 25.0) -> None:
        if not max_fps > 0:
            raise ValueError(f"max_fps must be > 0, got {max_fps}")
        self.view = view or LiveView()
        self.max_fps = max_fps
        self.loopback = is_loopback(address[0])
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()  # every open connection: shut down on close
        self._viewers = 0  # streaming connections among them
        self._closing = threading.Event()
        try:
            self._server = _HTTPServer(address, self)
        except OSError as exc:
            raise ConfigError(f"--http: cannot listen on {_join(*address)}: {exc.strerror or exc}") from None
        host, port = self._server.server_address[:2]
        self.address = (str(host), int(port))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="edgecodec-liveview", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{_join(*self.address)}/"

    def describe(self) -> str:
        where = "" if self.loopback else " (reachable from other machines, without authentication)"
        return f"live view on {self.url}{where}"

    def output(self, inner: FrameOutput | None = None) -> LiveOutput:
        """A receiver output that shows each frame here, then hands it to ``inner``."""
        return LiveOutput(self.view, inner)

    def tap(self, log: StatsLog) -> StatsTap:
        """The receiver's stats log, its records also feeding the figures shown here."""
        return StatsTap(self.view, log)

    def viewers(self) -> int:
        """Streaming connections open now (``/events``, ``/stream/...``)."""
        with self._lock:
            return self._viewers

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            if self._closing.is_set():  # accepted just as the server closes
                _shut(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _enter(self) -> bool:
        with self._lock:
            if self._viewers >= MAX_VIEWERS:
                return False
            self._viewers += 1
            return True

    def _leave(self) -> None:
        with self._lock:
            self._viewers -= 1

    def pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` unless closing; False when closing."""
        return not self._closing.wait(seconds) if seconds > 0 else not self._closing.is_set()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def close(self) -> None:
        """Stop serving: wake every viewer, end every connection, join every thread. Idempotent."""
        if self._closing.is_set():
            return
        self.view.close()
        self._server.shutdown()
        with self._lock:
            self._closing.set()
            for connection in self._connections:
                _shut(connection)  # ends a send to a stalled viewer, or a wait for a request
        self._server.server_close()  # joins the connection threads
        self._thread.join()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = STALL_S  # per blocking socket call: reading the request, or a write to a stalled viewer
    server_version = "edgecodec-liveview"

    def setup(self) -> None:
        super().setup()
        self.server.live._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.live._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # no line per request on the receiver's stderr

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        live = self.server.live
        if live.loopback and not _loopback_host(self.headers.get("Host", "")):
            self._send(HTTPStatus.FORBIDDEN, b"the live view answers requests to localhost only\n", "text/plain")
            return
        path = unquote(urlsplit(self.path).path)
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, live.page, "text/html; charset=utf-8")
        elif path == "/stats.json":
            self._send(HTTPStatus.OK, _stats_json(live), "application/json")
        elif path == "/events":
            self._stream(self._events)
        elif path.startswith("/stream/") and path.endswith(".mjpg"):
            name = path[len("/stream/") : -len(".mjpg")]
            if name not in live.view.frame_numbers():
                self._not_found(f"no stream {name!r} (yet)")
            else:
                self._stream(lambda: self._mjpeg(name))
        elif path.startswith("/frame/") and path.endswith(".jpg"):
            got = live.view.jpeg(path[len("/frame/") : -len(".jpg")])
            if got is None:
                self._not_found("no such stream (yet)")
            else:
                self._send(HTTPStatus.OK, got[1], "image/jpeg", {"X-Frame": str(got[0])})
        else:
            self._not_found("not found")

    def _not_found(self, text: str) -> None:
        self._send(HTTPStatus.NOT_FOUND, f"{text}\n".encode(), "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._headers(kind, headers)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _headers(self, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)

    def _stream(self, body: Any) -> None:
        live = self.server.live
        if not live._enter():
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many viewers\n", "text/plain")
            return
        try:
            body()
        except OSError:
            pass  # the viewer went away, stalled past STALL_S, or the server is closing
        finally:
            live._leave()
            self.close_connection = True

    def _mjpeg(self, name: str) -> None:
        live = self.server.live
        self.send_response(HTTPStatus.OK)
        self._headers(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.end_headers()
        seen: dict[str, int] = {}
        while not live.closing:
            numbers = live.view.wait(seen, timeout=1.0)
            if name not in numbers or live.view.closed:  # the stream went idle and was closed, or the receiver stopped
                return
            if numbers.get(name) == seen.get(name):
                seen = numbers  # another stream changed
                continue
            started = time.monotonic()
            got = live.view.jpeg(name)
            if got is None:
                return
            seen = {**numbers, name: got[0]}
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(got[1])}\r\nX-Frame: {got[0]}"
            self.wfile.write(head.encode() + b"\r\n\r\n" + got[1] + b"\r\n")
            if not live.pause(1 / live.max_fps - (time.monotonic() - started)):
                return

    def _events(self) -> None:
        live = self.server.live
        self.send_response(HTTPStatus.OK)
        self._headers("text/event-stream")
        self.end_headers()
        self.wfile.write(b"retry: 2000\n\n")
        seen: dict[str, int] = {}  # per stream, the number of the frame sent last
        next_stats = 0.0
        while not (live.closing or live.view.closed):
            if time.monotonic() >= next_stats:
                self.wfile.write(b"event: stats\ndata: " + _stats_json(live) + b"\n\n")
                next_stats = time.monotonic() + STATS_S
            numbers = live.view.wait(seen, timeout=max(0.0, next_stats - time.monotonic()))
            started = time.monotonic()
            for name, number in numbers.items():
                got = None if seen.get(name) == number else live.view.jpeg(name)
                if got is not None:
                    event = {"stream": name, "frame": got[0], "jpeg": base64.b64encode(got[1]).decode("ascii")}
                    self.wfile.write(b"event: frame\ndata: " + json.dumps(event).encode() + b"\n\n")
                    numbers[name] = got[0]
            seen = numbers  # streams gone are forgotten
            if not live.pause(1 / live.max_fps - (time.monotonic() - started)):
                return


def _stats_json(live: LiveServer) -> bytes:
    stats: dict[str, Any] = live.view.stats()
    stats["viewers"] = live.viewers()
    return json.dumps(stats, separators=(",", ":")).encode()


def _loopback_host(host_header: str) -> bool:
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    return is_loopback(host.lower())

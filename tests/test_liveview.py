"""The live view's server and model (:mod:`edgecodec.liveview`), over real HTTP on 127.0.0.1 with plain http.client.

Frames here are made up (no model, no ZeroMQ); the two-process run with a real browser is in test_liveview_browser.py.
Every socket has a timeout, so nothing here can hang.
"""

from __future__ import annotations

import base64
import doctest
import http.client
import json
import re
import shlex
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecodec import demo, receiver, sender
from edgecodec.cli import main as cli_main
from edgecodec.errors import ConfigError
from edgecodec.liveview import LiveServer, LiveView, address, parse_http_address
from edgecodec.liveview import server as server_module
from edgecodec.streams import StreamState
from edgecodec.transport import endpoint_from_args, normalise_endpoint

TIMEOUT = 20.0
REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(value: tuple[int, int, int], h: int = 48, w: int = 64) -> np.ndarray:
    return np.broadcast_to(np.array(value, np.uint8), (h, w, 3)).copy()


def frame_record(stream: str, layer: int = 3, bits: int = 8000, latency_ms: float = 20.0) -> dict:
    return {"kind": "frame", "stream": stream, "layer": layer, "bits": bits, "latency_ms": latency_ms, "size": [48, 64]}


@pytest.fixture
def live() -> Iterator[LiveServer]:
    with LiveServer(("127.0.0.1", 0), LiveView(clock=Clock())) as server:
        yield server


def request(live: LiveServer, path: str, host: str | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(*live.address, timeout=TIMEOUT)
    connection.putrequest("GET", path, skip_host=host is not None)
    if host is not None:
        connection.putheader("Host", host)
    connection.endheaders()
    return connection.getresponse()


def mjpeg_parts(response: http.client.HTTPResponse) -> Iterator[tuple[dict[str, str], bytes]]:
    """(headers, body) of each part of a ``multipart/x-mixed-replace`` response, parsed by hand from the boundary."""
    kind, _, boundary = response.getheader("Content-Type", "").partition("; boundary=")
    assert kind == "multipart/x-mixed-replace" and boundary
    while True:
        line = response.readline()
        if not line:
            return
        assert line == f"--{boundary}\r\n".encode(), line
        headers = {}
        while (line := response.readline()) != b"\r\n":
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        body = response.read(int(headers["content-length"]))
        assert response.read(2) == b"\r\n"
        yield headers, body


def events(response: http.client.HTTPResponse) -> Iterator[tuple[str, str]]:
    """(event, data) of a Server-Sent Events response."""
    assert response.getheader("Content-Type") == "text/event-stream"
    event, data = "message", []
    while line := response.readline():
        line = line.rstrip(b"\n").decode()
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])


def decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "not a JPEG"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# -- --http --------------------------------------------------------------------------------------------------------
def test_address_doctests() -> None:
    result = doctest.testmod(address)
    assert result.attempted == 4 and result.failed == 0


@pytest.mark.parametrize(
    "text, address",
    [
        ("8080", ("127.0.0.1", 8080)),
        (":8080", ("127.0.0.1", 8080)),
        ("0", ("127.0.0.1", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("*:8080", ("0.0.0.0", 8080)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:8080", ("::", 8080)),
        ("cam-host.example:1", ("cam-host.example", 1)),
    ],
)
def test_http_address_forms(text: str, address: tuple[str, int]) -> None:
    assert parse_http_address(text) == address


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "expected PORT"),
        ("http", "expected PORT"),
        ("65536", "port must be 0..65535"),
        ("-1", "expected PORT"),
        ("8080:", "expected PORT"),
        ("host:８０", "expected PORT"),
        ("a b:80", "expected PORT"),
        ("::1:8080", "in brackets"),
        ("[::1]8080", "expected PORT"),
        ("[nope]:80", "not an IPv6 address"),
    ],
)
def test_bad_http_address_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_http_address(text)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["receive", "--headless", "--http", "99999"], "--http: port must be 0..65535"),
        (["receive", "--headless", "--http", "web:page"], "--http: expected PORT"),
        (["demo", "--http", "::1:8080"], "--http: write an IPv6 address in brackets"),
    ],
)
def test_bad_http_is_one_line_and_status_2(argv: list[str], message: str, capsys) -> None:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err


def test_a_taken_port_is_one_line_before_the_model_loads(capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli_main(["receive", "--headless", "--http", str(port), "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--http: cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 0, err


@pytest.mark.parametrize("doc", ["README.md", "docs/streaming.md"])
def test_the_documented_live_view_commands_parse(doc: str) -> None:
    """The commands of the "Live view in the browser" sections, as written (quotes and all): their options exist,
    their endpoints are valid, and the live view listens on localhost."""
    text = (REPO / doc).read_text()
    block = re.search(r"## Live view in the browser\n.*?```sh\n(.*?)```", text, re.S)
    assert block, f"{doc}: no sh block in its live view section"
    commands = [shlex.split(line.split("  #")[0]) for line in block.group(1).splitlines() if line.strip()]
    assert {argv[1] for argv in commands} >= {"receive", "send"}
    for argv in commands:
        ns = {"receive": receiver, "send": sender, "demo": demo}[argv[1]].build_parser().parse_args(argv[2:])
        if argv[1] in ("receive", "send"):
            normalise_endpoint(endpoint_from_args(ns, role={"receive": "receiver", "send": "sender"}[argv[1]])[0])
        if argv[1] in ("receive", "demo"):
            assert parse_http_address(ns.http)[0] == "127.0.0.1"


# -- pages, 404s, the host check -------------------------------------------------------------------------------------
def test_page_stats_and_not_found(live: LiveServer) -> None:
    page = request(live, "/")
    assert page.status == 200 and page.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b'new EventSource("events")' in page.read()
    stats = request(live, "/stats.json")
    assert stats.status == 200 and stats.getheader("Content-Type") == "application/json"
    assert json.loads(stats.read()) == {"streams": [], "interval_s": 1.0, "closed": False, "viewers": 0}
    for path in ("/nope", "/stream/cam.mjpg", "/frame/cam.jpg", "/stats.json/x", "/../etc/passwd"):
        response = request(live, path)
        assert response.status == 404, path
        response.read()


def test_only_loopback_hosts_are_answered_on_loopback(live: LiveServer) -> None:
    port = live.address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert request(live, "/stats.json", host=host).status == 200, host
    for host in (f"evil.example:{port}", "evil.example", "192.168.1.7", ""):  # e.g. DNS rebinding
        response = request(live, "/stats.json", host=host)
        assert response.status == 403 and b"localhost only" in response.read(), host


# -- the figures -----------------------------------------------------------------------------------------------------
def test_stats_are_the_receivers_counters_and_its_frame_records_per_second() -> None:
    clock = Clock()
    view = LiveView(clock=clock)
    cam, door = StreamState("cam", 1), StreamState("door", 2)
    for i in range(11):  # cam: 10 frames a second for 1 s, 8000 bits each, latency 20..30 ms
        clock.now = 100 + i / 10
        view.show(cam, frame((i, 0, 0)))
        view.observe(frame_record("cam", layer=3, bits=8000, latency_ms=20 + i))
    view.show(door, frame((0, 0, 9)))
    view.observe(frame_record("door", layer=5, bits=800))
    cam.received, cam.gaps, cam.held, cam.skipped, cam.unsent, cam.bad = 11, 2, 3, 4, 5, 1
    stats = {s["name"]: s for s in view.stats()["streams"]}
    assert stats["cam"] == {
        "name": "cam", "layer": 3, "width": 64, "height": 48, "fps": 11.0, "kbps": 88.0, "latency_ms": 25.0,
        "latency_p99_ms": 29.9, "frames": 11, "drops": 3 + 4, "lost": 2, "held": 3, "skipped": 4, "unsent": 5,
        "bad": 1, "idle": False, "age_s": 0.0,
    }  # fmt: skip
    assert stats["door"]["layer"] == 5 and stats["door"]["fps"] is None  # less than a second seen: no figure yet
    clock.now += 10  # nothing shown for 10 s
    assert {s["name"]: (s["fps"], s["kbps"], s["idle"]) for s in view.stats()["streams"]} == {
        "cam": (0.0, 0.0, True), "door": (0.0, 0.0, True)
    }  # fmt: skip
    view.observe({"kind": "stream_closed", "stream": "cam", "reason": "idle"})
    assert [s["name"] for s in view.stats()["streams"]] == ["door"]
    view.observe({"kind": "skipped", "stream": "door"})  # other records change nothing
    assert view.names() == ["door"]


# -- MJPEG, Server-Sent Events, one JPEG ---------------------------------------------------------------------------
def test_mjpeg_sends_the_newest_frame_each_time_it_changes(live: LiveServer) -> None:
    cam = StreamState("cam", 1)
    live.view.show(cam, frame((250, 0, 0)))
    response = request(live, "/stream/cam.mjpg")
    assert response.status == 200 and response.getheader("Cache-Control") == "no-store"
    parts = mjpeg_parts(response)
    headers, body = next(parts)
    assert headers["content-type"] == "image/jpeg" and headers["x-frame"] == "1"
    rgb = decode_jpeg(body)
    assert rgb.shape == (48, 64, 3) and np.abs(rgb.astype(int) - (250, 0, 0)).max() <= 8
    live.view.show(cam, frame((0, 0, 250)))
    headers, body = next(parts)
    assert headers["x-frame"] == "2" and np.abs(decode_jpeg(body).astype(int) - (0, 0, 250)).max() <= 8
    one = request(live, "/frame/cam.jpg")
    assert one.status == 200 and one.getheader("X-Frame") == "2" and one.read() == body
    assert live.view.encoded == 2  # once per frame, whoever asked
    live.view.forget("cam")  # the receiver closed the stream (idle): its MJPEG response ends
    assert next(parts, None) is None


def test_ffmpeg_reads_the_mjpeg_stream(live: LiveServer) -> None:
    """The MJPEG is what players expect: FFmpeg (through PyAV) detects it and decodes its frames."""
    import av

    cam = StreamState("cam", 1)
    live.view.show(cam, frame((0, 0, 0)))
    stop = threading.Event()

    def feed() -> None:  # a new frame every 20 ms until the player has read enough
        for n in range(1, 3000):
            if stop.wait(0.02):
                return
            live.view.show(cam, frame((n % 256, 0, 0)))

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        with av.open(live.url + "stream/cam.mjpg", timeout=TIMEOUT) as player:
            assert player.format.name == "mpjpeg"
            sizes = [(f.width, f.height) for f, _ in zip(player.decode(video=0), range(3), strict=False)]
    finally:
        stop.set()
        feeder.join()
    assert sizes == [(64, 48)] * 3


def test_events_carry_stats_and_frames_of_every_stream(live: LiveServer) -> None:
    live.view.show(StreamState("cam", 1), frame((0, 200, 0)))
    live.view.show(StreamState("cam~0000000b", 1), frame((0, 0, 200), 32, 32))  # a rival sender's stream
    live.view.observe(frame_record("cam"))
    response = request(live, "/events")
    seen: dict[str, np.ndarray] = {}
    stats = None
    for event, data in events(response):
        if event == "stats":
            stats = json.loads(data)
        elif event == "frame":
            got = json.loads(data)
            seen[got["stream"]] = decode_jpeg(base64.b64decode(got["jpeg"]))
        if stats is not None and len(seen) == 2:
            break
    assert [s["name"] for s in stats["streams"]] == ["cam", "cam~0000000b"] and stats["viewers"] == 1
    assert stats["streams"][0]["layer"] == 3 and stats["streams"][1]["layer"] is None
    assert seen["cam"].shape == (48, 64, 3) and seen["cam~0000000b"].shape == (32, 32, 3)


def test_streaming_viewers_are_bounded(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "MAX_VIEWERS", 1)
    first = request(live, "/events")
    assert first.status == 200 and first.readline() == b"retry: 2000\n"
    second = request(live, "/events")
    assert second.status == 503 and second.read() == b"too many viewers\n"
    assert request(live, "/stats.json").status == 200  # plain requests are not viewers


# -- a stalled viewer ------------------------------------------------------------------------------------------------
def test_a_stalled_viewer_neither_holds_up_the_receiver_nor_queues_frames(live: LiveServer) -> None:
    """A viewer that reads nothing while 60 large frames are shown: the receiver's hand-over never waits (the loop
    below would hang, and the other viewer's reads time out, if it did), another viewer gets every frame, and the
    stalled one, once it reads again, gets what the socket buffers held and then the newest frame: no backlog."""
    cam = StreamState("cam", 1)
    noise = np.random.default_rng(0).integers(0, 256, (720, 960, 3), dtype=np.uint8)  # ~0.5 MB as JPEG
    live.view.show(cam, noise)
    stalled = socket.socket()
    stalled.settimeout(TIMEOUT)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)  # before connecting: no window scaling past it
    stalled.connect(live.address)
    stalled.sendall(b"GET /stream/cam.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n")
    watching = mjpeg_parts(request(live, "/stream/cam.mjpg"))
    got = [int(next(watching)[0]["x-frame"])]
    for n in range(2, 62):
        live.view.show(cam, np.roll(noise, n, axis=1))  # the receive loop's hand-over: never waits for a viewer
        while got[-1] < n:
            got.append(int(next(watching)[0]["x-frame"]))
    assert got == list(range(1, 62))  # the viewer that keeps up sees every frame
    response = http.client.HTTPResponse(stalled)
    response.begin()
    late = []
    for headers, _ in mjpeg_parts(response):
        late.append(int(headers["x-frame"]))
        if late[-1] == 61:
            break
    stalled.close()
    assert late[-1] == 61 and len(late) < 30, late  # what the buffers held, then the newest: frames were skipped


# -- shutdown --------------------------------------------------------------------------------------------------------
def test_close_ends_every_viewer_and_joins_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module._Handler, "timeout", 3600)  # so only close() can end the idle connection
    live = LiveServer(("127.0.0.1", 0))
    live.view.show(StreamState("cam", 1), frame((9, 9, 9)))
    mjpeg = mjpeg_parts(request(live, "/stream/cam.mjpg"))
    next(mjpeg)
    sse = events(request(live, "/events"))
    next(sse)
    idle = socket.create_connection(live.address, timeout=TIMEOUT)  # connected, never sends a request
    assert live.viewers() == 2
    closing = threading.Thread(target=live.close)
    closing.start()
    closing.join(TIMEOUT)
    assert not closing.is_alive()
    assert next(mjpeg, None) is None  # the responses end: EOF (a socket timeout would raise)
    list(sse)
    try:
        assert idle.recv(1) == b""
    except ConnectionResetError:
        pass
    idle.close()
    assert not [t for t in threading.enumerate() if t.name == "edgecodec-liveview"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(live.address, timeout=TIMEOUT).close()
    live.close()  # idempotent

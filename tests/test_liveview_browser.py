"""The live view during a real stream: ``edgecodec send`` processes into an ``edgecodec receive --http`` process on
127.0.0.1, watched with plain HTTP and with a headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium; the browser test skips, saying why, when they are not installed).

``EDGECODEC_LIVEVIEW_SCREENSHOT=docs/liveview.png python -m pytest tests/test_liveview_browser.py`` keeps the
browser's screenshot there. The first three tests share one stream, in file order (the third stops its receiver);
the demo's test runs on its own.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_liveview import decode_jpeg, events, mjpeg_parts
from tests.test_streaming import SAMPLE, Proc, start

TIMEOUT = 20.0  # per socket operation
WAIT_S = 120.0  # for the first frames: the processes load models (and export ONNX graphs) on two shared cores
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Without these, Chromium reaches for the network (updates, sync, QUIC probes) and hangs on a closed one.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1040,720",
)  # fmt: skip
SCREENSHOT = os.environ.get("EDGECODEC_LIVEVIEW_SCREENSHOT")


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        return f"needs Chromium and its driver ({', '.join(missing)} missing: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A receiver with ``--http 127.0.0.1:0``, the sample clip looped at 10 fps (stream ``clip``) and a synthetic
    pattern at 5 fps (stream ``pattern``) into it."""
    tmp = tmp_path_factory.mktemp("liveview")
    started: list[Proc] = []
    try:
        receiver = start(started, tmp, "receive", "--bind", "tcp://127.0.0.1:*", "--http", "127.0.0.1:0",
                         "--headless", "--timeout", "120", "--stats", "receive.jsonl")  # fmt: skip
        _, endpoint = receiver.wait_for(r"listening on (tcp://127\.0\.0\.1:\d+)", WAIT_S)
        _, url = receiver.wait_for(r"live view on (http://127\.0\.0\.1:\d+/)", TIMEOUT)
        for stream, source, fps in (("clip", ("--video", str(SAMPLE), "--loop"), "10"),
                                    ("pattern", ("--synthetic", "--size", "160x120"), "5")):  # fmt: skip
            start(started, tmp, "send", *source, "--fps", fps, "--frames", "5000", "--connect", endpoint.group(1),
                  "--stream", stream, "--wait-receiver", "60", "--quiet")  # fmt: skip
        port = int(url.group(1).rstrip("/").rpartition(":")[2])
        yield {"receiver": receiver, "url": url.group(1), "address": ("127.0.0.1", port)}
    finally:
        for proc in started:
            proc.kill()


def stats(url: str) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(url + "stats.json", timeout=TIMEOUT) as response:
        return {s["name"]: s for s in json.load(response)["streams"]}


def wait_until(what: str, check: Any, proc: Proc, timeout: float = WAIT_S) -> Any:
    """Poll ``check()`` until it returns something true; else fail, with the stderr of ``proc`` (the receiver)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g} s; {proc.args[0]} stderr:\n{proc.stderr}")
        time.sleep(0.25)


def test_receiver_serves_the_figures_and_mjpeg_of_every_stream(live: dict[str, Any]) -> None:
    url = live["url"]
    first = wait_until(
        "both streams with figures",
        lambda: (s := stats(url)).keys() == {"clip", "pattern"} and all(v["fps"] for v in s.values()) and s,
        live["receiver"],
    )
    clip = first["clip"]
    assert (clip["width"], clip["height"]) == (352, 288) and 1 <= clip["layer"] <= 5
    assert clip["kbps"] > 0 and clip["latency_ms"] > 0 and clip["drops"] >= 0 and not clip["idle"]
    assert (first["pattern"]["width"], first["pattern"]["height"]) == (160, 120)
    wait_until("more clip frames shown", lambda: stats(url)["clip"]["frames"] > clip["frames"], live["receiver"])
    connection = http.client.HTTPConnection(*live["address"], timeout=TIMEOUT)
    connection.request("GET", "/stream/clip.mjpg")
    parts = mjpeg_parts(connection.getresponse())
    (h1, jpeg1), (h2, jpeg2) = next(parts), next(parts)
    assert int(h2["x-frame"]) > int(h1["x-frame"])
    assert decode_jpeg(jpeg1).shape == decode_jpeg(jpeg2).shape == (288, 352, 3)
    connection.close()


TILES_JS = """
const out = {};
for (const fig of document.querySelectorAll("figure[data-stream]")) {
  const img = fig.querySelector("img");
  let pixels = null;
  if (img.naturalWidth) {  // a digest of the picture on screen: it changes as new frames are drawn
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    pixels = 0;
    for (let i = 0; i < data.length; i += 61) pixels = (pixels * 31 + data[i]) >>> 0;
  }
  out[fig.dataset.stream] = {frames: Number(fig.dataset.frames), width: img.naturalWidth, height: img.naturalHeight,
    figures: fig.querySelector(".figures").textContent, counts: fig.querySelector(".counts").textContent, pixels};
}
return {tiles: out, stats_updates: Number(document.body.dataset.statsUpdates || 0),
        status: document.getElementById("status").textContent};
"""
FIGURES = re.compile(r"layer [1-5] · \d+\.\d kbps · \d+\.\d fps · latency \d+/\d+ ms · drops \d+")


def test_chromium_shows_every_stream_live_with_its_figures(live: dict[str, Any], tmp_path: Path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    # the driver is named, so selenium-manager never looks for (or downloads) one
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        driver.get(live["url"])
        assert driver.title == "edgecodec live view"

        def page() -> dict[str, Any]:
            return driver.execute_script(TILES_JS)

        def shown(state: dict[str, Any]) -> bool:
            tiles = state["tiles"]
            return (
                tiles.keys() == {"clip", "pattern"}
                and (tiles["clip"]["width"], tiles["clip"]["height"]) == (352, 288)
                and all(t["frames"] >= 2 and FIGURES.search(t["figures"]) for t in tiles.values())
            )

        first = wait_until(
            "both streams drawn with their figures", lambda: (s := page()) and shown(s) and s, live["receiver"]
        )

        def moved_on() -> dict[str, Any] | None:
            state, before = page(), first["tiles"]["clip"]
            clip = state["tiles"].get("clip", {})
            return state if (
                clip.get("frames", 0) >= before["frames"] + 5 and state["stats_updates"] > first["stats_updates"]
                and clip["counts"] != before["counts"] and clip["pixels"] != before["pixels"]
            ) else None  # fmt: skip

        later = wait_until("new frames drawn and the figures updated", moved_on, live["receiver"])
        assert later["status"].startswith("live · 2 stream(s)"), later["status"]
        counts = later["tiles"]["clip"]["counts"]
        assert re.search(r"352×288 · shown \d+ · lost \d+ · held \d+ · skipped \d+ · bad 0", counts), counts
        if SCREENSHOT:
            time.sleep(1.5)  # a full second of figures on screen
            assert driver.save_screenshot(SCREENSHOT), SCREENSHOT
    finally:
        driver.quit()


def test_sigterm_ends_the_receiver_and_every_viewer(live: dict[str, Any]) -> None:
    connections = [http.client.HTTPConnection(*live["address"], timeout=TIMEOUT) for _ in range(2)]
    connections[0].request("GET", "/stream/clip.mjpg")
    parts = mjpeg_parts(connections[0].getresponse())
    next(parts)
    connections[1].request("GET", "/events")
    sse = events(connections[1].getresponse())
    next(sse)
    receiver: Proc = live["receiver"]
    receiver.stop(signal.SIGTERM)
    status, out = receiver.finish(60)
    assert status == 143 and re.search(r"edgecodec receive: \d+ frames", out), out
    for _ in parts:  # to the end of the response (a viewer left open would time out here instead)
        pass
    for _ in sse:
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(live["address"], timeout=TIMEOUT).close()


def test_demo_serves_its_stream_and_stops_serving_when_done(tmp_path: Path) -> None:
    started: list[Proc] = []
    try:
        demo = start(started, tmp_path, "demo", "--http", "127.0.0.1:0", "--frames", "40", "--fps", "5", "--size",
                     "176x144", "--out", "demo.mp4")  # fmt: skip
        _, url = demo.wait_for(r"live view on (http://127\.0\.0\.1:\d+/)", WAIT_S)
        shown = wait_until("the demo's frames", lambda: stats(url.group(1)).get("demo", {}).get("frames"), demo)
        assert shown > 0
        status, out = demo.finish(WAIT_S)
        assert status == 0 and "wrote 40 side-by-side frames" in out, out
        port = int(url.group(1).rstrip("/").rpartition(":")[2])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    finally:
        for proc in started:
            proc.kill()

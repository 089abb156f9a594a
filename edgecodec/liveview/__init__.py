"""The live view: a browser page that shows every stream a receiver decodes, live, with its figures.

``edgecodec receive --http 8080`` (or ``edgecodec demo --http 8080``) serves it on http://127.0.0.1:8080/.

* :mod:`~edgecodec.liveview.address`: the ``--http`` option and its ``[HOST:]PORT`` (localhost unless named).
* :mod:`~edgecodec.liveview.view`: :class:`LiveView`, the newest frame and the stats of each stream; the receive loop
  hands frames over and never waits, the server's threads encode JPEG only when a browser asks.
* :mod:`~edgecodec.liveview.output`: :class:`LiveOutput` (one more receiver output) and :class:`StatsTap` (the stats
  log's records, for the figures).
* :mod:`~edgecodec.liveview.server`: :class:`LiveServer`, the HTTP side (stdlib ``ThreadingHTTPServer``): the page,
  Server-Sent Events, MJPEG and ``/stats.json``.
"""

from __future__ import annotations

from edgecodec.liveview.address import add_http_argument, parse_http_address
from edgecodec.liveview.output import LiveOutput, StatsTap
from edgecodec.liveview.server import LiveServer
from edgecodec.liveview.view import LiveView

__all__ = ["LiveOutput", "LiveServer", "LiveView", "StatsTap", "add_http_argument", "parse_http_address"]

"""The ``--http`` address of the live view: localhost unless another interface is named.

>>> parse_http_address("8080")
('127.0.0.1', 8080)
>>> parse_http_address(":8080")
('127.0.0.1', 8080)
>>> parse_http_address("0.0.0.0:8080")
('0.0.0.0', 8080)
>>> parse_http_address("[::1]:0")
('::1', 0)
"""

from __future__ import annotations

import argparse
import ipaddress
import re

from edgecodec.errors import ConfigError

LOCALHOST = "127.0.0.1"
FORMS = "PORT, :PORT or HOST:PORT (e.g. 8080, :8080, 0.0.0.0:8080, '[::1]:8080')"
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def parse_http_address(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``PORT``, ``:PORT`` (both 127.0.0.1), ``HOST:PORT``, ``*:PORT`` (every IPv4 interface)
    or ``[IPV6]:PORT``. Port 0 lets the system pick a free one. Anything else is a :class:`ConfigError`."""
    bad = ConfigError(f"--http: expected {FORMS}, got {text!r}")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise bad
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ConfigError(f"--http: {host!r} is not an IPv6 address (in {text!r})") from None
    elif text.count(":") > 1:
        raise ConfigError(f"--http: write an IPv6 address in brackets, e.g. '[::1]:8080' (got {text!r})")
    else:
        host, _, port = text.rpartition(":")
        if host == "*":
            host = "0.0.0.0"
        elif host and not _HOSTNAME.fullmatch(host):
            raise bad
    if not (port.isascii() and port.isdigit()):
        raise bad
    number = int(port)
    if number > 65535:
        raise ConfigError(f"--http: port must be 0..65535 (0: any free port), got {number}")
    return host or LOCALHOST, number


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_http_argument(parser: argparse.ArgumentParser) -> None:
    """``--http [HOST:]PORT``: serve the live view (a browser page of every stream)."""
    parser.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        help="serve a live view of every stream (picture, layer, kbps, fps, latency, drops) to a browser at "
        "http://HOST:PORT/; HOST defaults to 127.0.0.1 (this machine only): name another interface to serve it "
        "there, e.g. 0.0.0.0:8080 (every interface, unauthenticated!); port 0 picks a free one",
    )

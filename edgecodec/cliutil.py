"""Small helpers shared by the command-line modules: argument types and signal handling."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _number(kind: type, what: str, accept: Callable[[Any], bool], requirement: str) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` that ``accept`` takes, else an error naming ``requirement``."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value

    return convert


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` (int or float) that must be > 0."""
    return _number(kind, "a number", lambda v: 0 < v < float("inf"), "> 0 (and finite)")


def non_negative(kind: type) -> Callable[[str], Any]:
    """An argparse type: a finite number of ``kind`` (int or float) that must be >= 0."""
    return _number(kind, "a number", lambda v: 0 <= v < float("inf"), ">= 0 (and finite)")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""
    return _number(int, "an integer", lambda v: v >= minimum, f">= {minimum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (main thread only), so ``kill`` ends a stream with its summary."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Small helpers shared by the command-line modules: argument types and signal handling."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO


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


TERMINATED: list[int] = []  # the signal that ended the command (SIGTERM), read by the CLI for its exit status


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (main thread only), so ``kill`` ends a stream with its summary; the CLI
    then exits 143 (128 + SIGTERM), as Ctrl-C exits 130."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        TERMINATED.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


PLAIN_PROGRESS_S = 5.0  # without a terminal: one progress line this often


def progress(iterable: Any, total: int | None, desc: str, unit: str = "frame", *, enabled: bool = True) -> Any:
    """Iterate ``iterable`` with progress on stderr: a tqdm bar on a terminal, else one plain line every
    :data:`PLAIN_PROGRESS_S` seconds (logs and pipes get no carriage returns)."""
    if not enabled:
        return iterable
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total or None, desc=desc, unit=unit, leave=False, file=sys.stderr)
    return _plain_progress(iterable, total, desc, unit)


def _plain_progress(iterable: Any, total: int | None, desc: str, unit: str) -> Iterator[Any]:
    start = last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= PLAIN_PROGRESS_S:
            last = now
            of = f"/{total} ({100 * done / total:.0f}%)" if total else ""
            print(f"{desc}: {done}{of} {unit}s, {done / (now - start):.1f} {unit}s/s", file=sys.stderr, flush=True)


PLAIN_STATUS_S = 10.0  # without a terminal: at most one status line this often
QUIET_HELP = "no status line (one a second on a terminal, one every 10 s in a log or pipe)"


def status_printer(quiet: bool, stream: TextIO | None = None) -> Callable[[str], None] | None:
    """Where a streaming command's status line goes: None with ``quiet``; every line on a terminal; else at most one
    line every :data:`PLAIN_STATUS_S` seconds, so that a log file does not fill with a line a second."""
    if quiet:
        return None
    out = stream or sys.stderr
    if out.isatty():
        return lambda line: print(line, file=out, flush=True)
    last = -math.inf

    def plain(line: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PLAIN_STATUS_S:
            last = now
            print(line, file=out, flush=True)

    return plain


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: ``edgecodec send: error: MESSAGE (see edgecodec send --help)`` and exit 2,
    instead of the usage block first (issue 14: an error line that names the problem, nothing to scroll past)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (the neural backend's CPU threads) and ``--lockstep`` (no pipeline), for the streaming
    commands (issue 16)."""
    parser.add_argument("--threads", type=positive(int), metavar="N",
                        help="CPU threads of the neural network (default: every CPU; the demo and the profiler split "
                             "them between the sender and the receiver)")  # fmt: skip
    parser.add_argument("--lockstep", action="store_true",
                        help="one frame at a time, every stage in turn in one thread (default: the stages overlap on "
                             "threads of their own, edgecodec/pipeline.py)")  # fmt: skip

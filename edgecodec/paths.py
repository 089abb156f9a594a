"""Checks of the paths given on the command line, made before any work starts, each failing with one clear line.

Inputs: a missing path is "not found", a folder where a file is expected "is a directory". Outputs: a folder, a wrong
suffix, a missing folder or one that cannot be written are refused at start, not at the first frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from edgecodec.errors import ConfigError, SinkError, SourceError


def check_input_file(path: str | Path, what: str = "input") -> Path:
    """``path`` as a Path if it is a file; SourceError otherwise, telling a folder apart from a missing path."""
    path = Path(path)
    if path.is_dir():
        raise SourceError(f"{what} {str(path)!r} is a directory, not a file")
    if not path.exists():
        raise SourceError(f"{what} {str(path)!r} not found")
    if not path.is_file():
        raise SourceError(f"{what} {str(path)!r} is not a regular file")
    return path


def check_output_file(path: str | Path, suffixes: Iterable[str], what: str = "output") -> Path:
    """``path`` as a Path if a file of one of ``suffixes`` can be written there: ConfigError for a wrong suffix,
    SinkError for a folder, a missing folder or one that is not writable."""
    path = Path(path)
    allowed = sorted({s.lower() for s in suffixes})
    if path.is_dir():
        raise SinkError(f"{what} {str(path)!r} is a directory; give a file name ({', '.join(allowed)})")
    if path.suffix.lower() not in allowed:
        raise ConfigError(f"{what} {str(path)!r}: expected a {' / '.join(allowed)} file")
    folder = path.parent
    if not folder.is_dir():
        raise SinkError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"cannot write {str(path)!r}: folder {str(folder)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise SinkError(f"cannot write {str(path)!r}: the file exists and is not writable")
    return path

"""The artefact cache: exported graphs and engines, keyed by model fingerprint (and frame size where it matters).

Layout, under :func:`cache_root` (``$EDGECODEC_CACHE``, else ``$XDG_CACHE_HOME/edgecodec``, else
``~/.cache/edgecodec``; never inside the package)::

    <root>/<model name>-<fingerprint>/onnx-<variant>/encoder.onnx       (+ encoder.onnx.json)
                                                     decoder-<layer>.onnx (+ .json)
    <root>/<model name>-<fingerprint>/tensorrt-<WxH>-<precision>-<gpu>/encoder.engine ...

Every artefact has a JSON sidecar beside it with the model fingerprint, what it was built for (``key``: kind,
variant, size, precision, device), the versions that built it, and the SHA-256 of the artefact's bytes.
:func:`check` says why an artefact cannot be used (missing, no sidecar, another model, other build settings, other
versions, corrupt bytes); callers rebuild it or refuse with that reason. An artefact is never used unchecked.
Files are written to a temporary name and renamed, so a reader never sees half an artefact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgecodec.errors import ModelError

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "edgecodec-artefact/1"


def cache_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``explicit``, else ``$EDGECODEC_CACHE``, else ``$XDG_CACHE_HOME/edgecodec``, else
    ``~/.cache/edgecodec``."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("EDGECODEC_CACHE"):
        return Path(os.environ["EDGECODEC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "edgecodec"


def model_dir(root: Path, name: str, fingerprint_hex: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "model"
    return root / f"{safe}-{fingerprint_hex}"


def sidecar_path(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; artefacts are not secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(
    path: Path,
    data: bytes,
    fingerprint_hex: str,
    key: Mapping[str, Any],
    versions: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write an artefact and then its sidecar (a reader checks the sidecar against the bytes, so the order is
    safe). Returns the sidecar."""
    _atomic_write(path, data)
    meta = {
        "format": SIDECAR_FORMAT,
        "fingerprint": fingerprint_hex,
        "key": dict(key),
        "versions": dict(versions),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        **(dict(extra) if extra else {}),
    }
    _atomic_write(sidecar_path(path), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return meta


def read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def check(path: Path, fingerprint_hex: str, key: Mapping[str, Any], versions: Mapping[str, str]) -> str | None:
    """None if the artefact at ``path`` can be used, else the reason it cannot (one short phrase)."""
    if not path.is_file():
        return "not built yet"
    meta = read_sidecar(path)
    if meta is None:
        return f"no readable sidecar {sidecar_path(path).name}"
    if meta.get("format") != SIDECAR_FORMAT:
        return f"unknown sidecar format {meta.get('format')!r}"
    if meta.get("fingerprint") != fingerprint_hex:
        return f"built for model {meta.get('fingerprint')}, not {fingerprint_hex}"
    got_key = meta.get("key") or {}
    for k, v in key.items():
        if got_key.get(k) != v:
            return f"built with {k}={got_key.get(k)!r}, wanted {v!r}"
    got_versions = meta.get("versions") or {}
    for k, v in versions.items():
        if got_versions.get(k) != v:
            return f"built with {k} {got_versions.get(k)}, this is {v}"
    try:
        size = path.stat().st_size
        if size != meta.get("bytes") or sha256_file(path) != meta.get("sha256"):
            return "file is corrupt (size or SHA-256 differs from its sidecar)"
    except OSError as exc:
        return f"unreadable ({exc})"
    return None


def built_line(path: Path, reason: str) -> str:
    """The report line for an artefact just (re)built for ``reason`` (as :func:`build_reason` returned it)."""
    return f"{path}: {'built' if reason == 'not built yet' else 'rebuilt (' + reason + ')'}"


def build_reason(
    path: Path,
    fingerprint_hex: str,
    key: Mapping[str, Any],
    versions: Mapping[str, str],
    *,
    force: bool,
    build: bool,
    how_to_build: str,
    report: list[str],
) -> str | None:
    """Why the artefact at ``path`` must be (re)built, or None when it is up to date; never lets a stale one through.

    Up to date: notes it in ``report``. Otherwise, with ``build`` the reason is logged (for an existing file) and
    returned; without, a ModelError names the reason and ``how_to_build``.
    """
    reason = "forced" if force else check(path, fingerprint_hex, key, versions)
    if reason is None:
        report.append(f"{path}: up to date")
        return None
    if not build:
        raise ModelError(f"{path}: cannot be used ({reason}); run `{how_to_build}` to build it")
    if path.exists() or force:
        log.warning("rebuilding %s: %s", path, reason)
    return reason

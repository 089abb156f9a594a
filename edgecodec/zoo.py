"""Model files: safetensors weights with a JSON model card beside them, fingerprints, and the model registry.

A model ``NAME`` is the pair ``NAME.safetensors`` + ``NAME.json``. The weights file alone is enough to decode: its
metadata holds the architecture and the fingerprint. Nothing is ever loaded with pickle.

The fingerprint is the first 8 bytes of a SHA-256 over the canonical architecture JSON and every tensor (name,
dtype, shape, bytes) of the weights file, priors included: everything that decoding depends on.

Priors: ``prior.{l}`` holds the unigram id counts of layer ``l``; a model may also hold further integer tables of the
layer's prior as ``prior_{name}.{l}`` (e.g. the context prior's ``prior_mode``, ``prior_new``, ``prior_param``; see
:mod:`edgecodec.priors`). The fingerprint covers them all.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from edgecodec.cliutil import ArgumentParser
from edgecodec.errors import ModelError

if TYPE_CHECKING:  # torch is imported when a model is loaded, not with this module (fast --help, issue 14)
    import torch

    from edgecodec.nn import HQAStack, ModelConfig

DEFAULT_MODEL = "hqa5"
FINGERPRINT_BYTES = 8
MAX_MODEL_BYTES = 256 * 1024 * 1024


def models_dirs() -> list[Path]:
    """Where model names are looked up: $EDGECODEC_MODELS (os.pathsep-separated), then the project's models/."""
    dirs = [Path(p) for p in os.environ.get("EDGECODEC_MODELS", "").split(os.pathsep) if p]
    return dirs + [Path(__file__).resolve().parents[1] / "models"]


@dataclass
class Model:
    """A loaded model: the network, the integer priors of its ids, its fingerprint and its card."""

    net: HQAStack
    fingerprint: bytes
    priors: list[np.ndarray]  # per layer, int64 id counts from the training set (smoothed by the entropy coder)
    name: str
    card: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    prior_tables: list[dict[str, np.ndarray]] = field(default_factory=list)  # per layer, extra integer tables
    card_error: str | None = None  # why the card beside the weights could not be read (the model still loads)

    @property
    def num_layers(self) -> int:
        return self.net.num_layers

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def fingerprint(config: ModelConfig, tensors: dict[str, np.ndarray]) -> bytes:
    h = hashlib.sha256(config.canonical_json().encode())
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{t.dtype.str}|{tuple(t.shape)}".encode())
        h.update(t.tobytes())
    return h.digest()[:FINGERPRINT_BYTES]


def export_tensors(
    net: HQAStack,
    priors: Sequence[np.ndarray] | None,
    half: bool = True,
    prior_tables: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Weights (fp16 if ``half``; buffers stay fp32), int64 priors and int64 prior tables as numpy arrays."""
    params = {n for n, _ in net.named_parameters()}
    out: dict[str, np.ndarray] = {}
    for name, t in net.state_dict().items():
        a = t.detach().cpu()
        if half and name in params and a.is_floating_point():
            a = a.half()
        out[name] = a.numpy().copy()
    for i, p in enumerate(priors or []):
        out[f"prior.{i + 1}"] = np.asarray(p, dtype=np.int64)
    for i, tables in enumerate(prior_tables or []):
        for name, t in tables.items():
            if not name.isidentifier() or not np.issubdtype(np.asarray(t).dtype, np.integer):
                raise ValueError(f"prior table {name!r} of layer {i + 1}: needs an identifier name and integers")
            out[f"prior_{name}.{i + 1}"] = np.asarray(t, dtype=np.int64)
    return out


def save_model(
    net: HQAStack,
    path: str | Path,
    priors: Sequence[np.ndarray] | None = None,
    card: dict | None = None,
    prior_tables: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> Model:
    """Write ``path``.safetensors and ``path``.json; returns the model as it loads back (fp16 weights).

    ``prior_tables``: per layer, named integer tables of its prior beyond the unigram counts (see the module doc).
    """
    base = Path(path).with_suffix("") if Path(path).suffix in (".safetensors", ".json") else Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    tensors = export_tensors(net, priors, prior_tables=prior_tables)
    fp = fingerprint(net.config, tensors)
    meta = {"format": "edgecodec-model/1", "config": net.config.canonical_json(), "fingerprint": fp.hex()}
    save_numpy(tensors, str(base) + ".safetensors", metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(str(base) + ".safetensors", 0o666 & ~umask)  # safetensors writes 0600: readable as any other file
    full_card = {"name": base.name, "fingerprint": fp.hex(), "architecture": net.config.to_dict(), **(card or {})}
    Path(str(base) + ".json").write_text(json.dumps(full_card, indent=2) + "\n")
    return load_model(str(base) + ".safetensors")


def resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    candidates = [p, p.with_suffix(".safetensors")] if p.suffix != ".safetensors" else [p]
    if p.is_dir():
        candidates.append(p / f"{DEFAULT_MODEL}.safetensors")
    if len(p.parts) == 1:
        candidates += [d / f"{p.name.removesuffix('.safetensors')}.safetensors" for d in models_dirs()]
    for c in candidates:
        if c.is_file():
            return c
    raise ModelError(f"no model named {str(name_or_path)!r} (looked in {', '.join(str(d) for d in models_dirs())})")


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> Model:
    """Load a model by name (from :func:`models_dirs`) or by path. Raises ModelError for a bad file."""
    path = resolve(name_or_path)
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{path}: {size} bytes is too large for a model file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        tensors = load_numpy(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != "edgecodec-model/1" or "config" not in meta:
        raise ModelError(f"{path}: not an edgecodec model (missing edgecodec metadata)")
    from edgecodec.nn import ModelConfig

    try:
        config = ModelConfig.from_dict(json.loads(meta["config"]))
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: bad architecture metadata ({str(exc)[:200]})") from None
    fp = fingerprint(config, tensors)
    import torch

    from edgecodec.nn import HQAStack

    if fp.hex() != meta.get("fingerprint"):
        raise ModelError(f"{path}: fingerprint mismatch (file says {meta.get('fingerprint')}, content is {fp.hex()})")
    try:
        net = HQAStack(config)
    except (ValueError, RuntimeError, MemoryError) as exc:
        raise ModelError(f"{path}: cannot build the architecture ({str(exc)[:200]})") from None
    priors = [tensors.pop(f"prior.{i + 1}") for i in range(net.num_layers) if f"prior.{i + 1}" in tensors]
    for i, (prior, layer) in enumerate(zip(priors, config.layers, strict=False), start=1):
        if prior.shape != (layer.codebook_size,) or not np.issubdtype(prior.dtype, np.integer) or (prior < 0).any():
            raise ModelError(f"{path}: prior.{i} must hold {layer.codebook_size} non-negative integer counts "
                             f"(one per code of layer {i}), got {prior.dtype} {tuple(prior.shape)}")  # fmt: skip
    prior_tables: list[dict[str, np.ndarray]] = [{} for _ in range(net.num_layers)]
    for key in [k for k in tensors if k.startswith("prior_")]:
        name, _, layer = key.removeprefix("prior_").rpartition(".")
        if not layer.isdigit() or not 1 <= int(layer) <= net.num_layers or not name:
            raise ModelError(f"{path}: prior table {key!r} names no layer of the model")
        if not np.issubdtype(tensors[key].dtype, np.integer):
            raise ModelError(f"{path}: prior table {key!r} is not an integer table")
        prior_tables[int(layer) - 1][name] = tensors.pop(key)
    state = {k: torch.from_numpy(v).float() for k, v in tensors.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not match the architecture ({str(exc).splitlines()[0]})") from None
    card, card_error = read_card(path.with_suffix(".json"))
    net.eval().to(device)
    return Model(net=net, fingerprint=fp, priors=priors, name=path.stem, card=card, path=path,
                 prior_tables=prior_tables if any(prior_tables) else [], card_error=card_error)  # fmt: skip


MAX_CARD_BYTES = 1 << 20


def read_card(card_path: Path) -> tuple[dict[str, Any], str | None]:
    """The model card beside a weights file, and why it could not be read (None if fine). The weights alone are
    enough to decode, so a broken card never stops a model from loading: it is reported instead."""
    if not card_path.is_file():
        return {}, None
    try:
        if card_path.stat().st_size > MAX_CARD_BYTES:
            return {}, f"card {card_path.name} is over {MAX_CARD_BYTES} bytes"
        card = json.loads(card_path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        return {}, f"card {card_path.name} is not readable JSON ({str(exc)[:80]})"
    if not isinstance(card, dict):
        return {}, f"card {card_path.name} is not a JSON object"
    return card, None


def list_models() -> list[Path]:
    seen: dict[str, Path] = {}
    for d in models_dirs():
        for p in sorted(d.glob("*.safetensors")) if d.is_dir() else []:
            seen.setdefault(p.stem, p)
    return list(seen.values())


def check_priors(model: Model) -> None:
    """Build the model's entropy priors (intra and inter) as a codec would: :class:`ModelError` if its tables do not
    fit its codebooks."""
    from edgecodec.codec import Codec  # the codec imports this module

    if model.priors:
        Codec(model, backend="torch")


def main_models(argv: Sequence[str] | None = None) -> int:
    """`edgecodec models`: list the models found in the model folders."""
    ap = ArgumentParser(prog="edgecodec models", description=main_models.__doc__)
    ap.add_argument("--json", action="store_true", help="print the model cards as JSON")
    args = ap.parse_args(argv)
    rows = []
    for p in list_models():
        try:
            m = load_model(p)
            check_priors(m)
        except ModelError as exc:
            print(f"{p.stem:<16} broken: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - one bad model never hides the others
            print(f"{p.stem:<16} broken: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        rows.append(m)
    if args.json:
        print(json.dumps([m.card for m in rows], indent=2))
        return 0
    if not rows:
        print("no models found in " + ", ".join(str(d) for d in models_dirs()))
        return 0
    print(f"{'name':<16} {'fingerprint':<17} {'layers':>6}  {'MB':>5}  fixed-length bpp per layer")
    for m in rows:
        bpp = [np.log2(c.codebook_size) / 4**i for i, c in enumerate(m.net.config.layers, start=1)]
        mb = m.path.stat().st_size / 1e6 if m.path else 0.0
        default = {DEFAULT_MODEL: " (default: files, eval, a GPU)", "hqa5-cpu": " (default: streaming on a CPU)"}.get(
            m.name, ""
        )
        print(f"{m.name:<16} {m.fingerprint_hex:<17} {m.num_layers:>6}  {mb:5.1f}  "
              + " ".join(f"{b:.4g}" for b in bpp) + default
              + (f"  (card broken: {m.card_error})" if m.card_error else ""))  # fmt: skip
    return 0

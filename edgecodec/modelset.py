"""The receiver's models: every model it can find, picked per packet by the model fingerprint in the packet.

A receiver needs no configuration (issue 14): a sender may use ``hqa5`` or ``hqa5-cpu`` or a model of its own, and
every keyframe names its model by fingerprint (:mod:`edgecodec.bitstream`). :class:`CodecSet` knows the fingerprint
of every model in the model folders (:func:`edgecodec.zoo.models_dirs`) from the safetensors header alone, and loads
a model, with its backend, the first time a packet names it. The model given with ``--model`` is loaded at start.

A fingerprint no model here has raises :class:`~edgecodec.errors.UnknownModelError`, whose message says what to do:
pass the sender's model file with ``--model``, or put it in a folder of ``$EDGECODEC_MODELS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from edgecodec import zoo
from edgecodec.codec import Codec
from edgecodec.errors import ModelError, UnknownModelError
from edgecodec.limits import DecodeBudget


class CodecSet:
    """Codecs by model fingerprint (8 bytes), loaded on first use.

    Args:
        first: the codec loaded at start (the ``--model`` one; its model is also found by fingerprint).
        backend, device, budget, threads: what every codec loaded later is made with (as
            :class:`~edgecodec.codec.Codec`).
        others: look up the models in the model folders as well (False: ``first`` alone, as with a file of one
            model).
    """

    def __init__(
        self,
        first: Codec,
        *,
        backend: str = "torch",
        device: str = "cpu",
        budget: DecodeBudget | None = None,
        threads: int | None = None,
        others: bool = True,
    ) -> None:
        self.first = first
        self._make = {"backend": backend, "device": device, "budget": budget or first.budget, "threads": threads}
        self._loaded: dict[bytes, Codec] = {first.fingerprint: first}
        self._paths: dict[bytes, Path] = model_index() if others else {}
        self._broken: dict[bytes, str] = {}
        self.on_load = None  # called with each codec loaded after the first (the receiver warms it up)

    def __iter__(self) -> Iterator[Codec]:
        return iter(self._loaded.values())

    def known(self) -> set[bytes]:
        """The fingerprints this set can decode (loaded or loadable)."""
        return set(self._loaded) | set(self._paths)

    def get(self, fingerprint: bytes) -> Codec:
        """The codec of the model with ``fingerprint``, loading it on first use.

        Raises:
            UnknownModelError: no model here has it (or its file is broken); the message says what to pass.
        """
        codec = self._loaded.get(fingerprint)
        if codec is not None:
            return codec
        if fingerprint in self._broken:
            raise UnknownModelError(self._broken[fingerprint])
        path = self._paths.get(fingerprint)
        if path is None:
            raise UnknownModelError(unknown_message(fingerprint, self.describe()))
        try:
            codec = Codec(zoo.load_model(path), **self._make)
        except ModelError as exc:
            self._broken[fingerprint] = (
                f"packet names model {path.stem} ({fingerprint.hex()}), which fails to load: {exc}"
            )
            raise UnknownModelError(self._broken[fingerprint]) from None
        self._loaded[fingerprint] = codec
        if self.on_load is not None:
            self.on_load(codec)
        return codec

    def load_all(self) -> None:
        """Load every model known now (a receiver does so at start, so that no stream's first frames wait for one).
        One that fails to load is left for :meth:`get` to report when a packet names it."""
        for fingerprint in list(self._paths):
            try:
                self.get(fingerprint)
            except UnknownModelError:
                continue

    def describe(self) -> str:
        """``name (fingerprint)`` of each model known, loaded first."""
        names = {fp: c.model.name for fp, c in self._loaded.items()}
        names.update({fp: p.stem for fp, p in self._paths.items() if fp not in names})
        return ", ".join(f"{name} ({fp.hex()})" for fp, name in names.items())


def unknown_message(fingerprint: bytes, known: str) -> str:
    """The one line for a packet whose model no model here has."""
    return (
        f"packet names model fingerprint {fingerprint.hex()}, which no model here has (known: {known or 'none'}); "
        "pass the sender's model file with --model PATH, or put it in a folder listed in $EDGECODEC_MODELS"
    )


def model_index() -> dict[bytes, Path]:
    """Fingerprint -> weights file of every model in :func:`edgecodec.zoo.models_dirs`, read from the safetensors
    headers only (the fingerprint is checked against the weights when the model loads). Unreadable files are left
    out (``edgecodec models`` reports them)."""
    from safetensors import safe_open

    index: dict[bytes, Path] = {}
    for path in zoo.list_models():
        try:
            with safe_open(str(path), framework="numpy") as f:
                claimed = (f.metadata() or {}).get("fingerprint", "")
            fingerprint = bytes.fromhex(claimed)
        except Exception:  # noqa: BLE001 - safetensors raises its own error types; a bad file is left out
            continue
        if len(fingerprint) == zoo.FINGERPRINT_BYTES:
            index.setdefault(fingerprint, path)
    return index

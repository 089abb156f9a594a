"""Inference backends. Each one implements :class:`Backend`: encode frames into the ids and quantisation error of
every layer (with :meth:`Backend.encode_latents`, also the continuous encoder output of chosen layers), and decode
the ids of one layer into frames (DESIGN.md, principle 5).

:func:`make_backend` is the single entry point. Names:

* ``torch``: eager PyTorch on the CPU or a CUDA device (the reference: exactly :meth:`HQAStack.encode`/``decode``).
* ``torch-compile``: the same graphs through ``torch.compile`` (compiled on first use of each frame size).
* ``onnx``: ONNX Runtime on the CPU, with graphs exported to the artefact cache on first use.
* ``onnx-int8``: the same with int8 decoders (quantised on first use; the encoder, the ids and the bitstream are
  those of ``onnx``; decoded frames differ slightly, docs/backends.md).
* ``tensorrt``: TensorRT engines built by torch-tensorrt (dynamo IR) and cached per frame size; CUDA only.
* ``auto``: on a CUDA device ``tensorrt`` if torch-tensorrt is installed, else ``torch``; on the CPU ``onnx`` if
  onnxruntime is installed (measured 2-3x faster than eager torch on the CPU, docs/backends.md), else ``torch``.
  Device ``auto`` means CUDA when a GPU is present, else the CPU.
"""

from __future__ import annotations

import importlib.util
import logging
import operator
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "torch-compile", "onnx", "onnx-int8", "tensorrt")
BACKEND_HELP = f"inference backend: {', '.join(BACKENDS)} (default auto)"


class Backend(Protocol):
    """The calls every backend provides. Frames are float32 (N, 3, H, W) in [0, 1], H and W multiples of
    ``multiple``; ids are int64 (N, h, w)."""

    name: str
    multiple: int
    num_layers: int

    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(ids of every layer, qerr (N, L))."""
        ...

    def encode_latents(
        self, frames: np.ndarray, layers: Sequence[int]
    ) -> tuple[list[np.ndarray], np.ndarray, dict[int, np.ndarray]]:
        """Like :meth:`encode`, plus the continuous encoder output of the chosen layers, in one pass.

        Returns (ids, qerr, z): ``ids`` and ``qerr`` exactly as :meth:`encode` gives them (the ids of every layer,
        int64 (N, h_l, w_l), and qerr float32 (N, L)), and ``z[l]`` for each 1-based layer ``l`` in ``layers``
        (each once, however often it is named): the unit encoder output z_e of layer ``l`` as float32
        (N, h_l, w_l, D_l), channels last. These are exactly the vectors the nearest-code search scores: unit
        vectors, or for a product codebook of G groups each group of D_l / G channels a unit vector scaled by
        1 / sqrt(G) (:meth:`HQALayer.encode_ze <edgecodec.nn.layers.HQALayer.encode_ze>`). So the id at a position
        is the argmax over the layer's codes c of z.c - |c|^2 / 2 (up to float near-ties), and qerr[:, l - 1] is
        the mean over positions and channels of ((z - c[ids]) / ze_std)^2. ``layers`` may be empty (then ``z`` is
        empty and the call is :meth:`encode`).

        Raises ValueError for a layer outside 1..L (checked before anything runs) and for bad frames, as
        :meth:`encode` does.
        """
        ...

    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        """Frames (N, 3, H, W) float32 in [0, 1] from the ids of ``layer`` (1-based)."""
        ...


def check_frames(frames: np.ndarray, multiple: int) -> np.ndarray:
    """Frames as a contiguous float32 (N, 3, H, W) array with H, W positive multiples of ``multiple``, or ValueError."""
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be (N, 3, H, W), not {frames.shape}")
    h, w = frames.shape[2:]
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise ValueError(f"frame sides must be positive multiples of {multiple}, not {w}x{h}")
    return frames


def check_ids(ids: np.ndarray, layer: int, codebook_sizes: list[int]) -> np.ndarray:
    """Ids as a contiguous int64 (N, h, w) array within the codebook of ``layer``, or ValueError."""
    if not 1 <= layer <= len(codebook_sizes):
        raise ValueError(f"layer {layer} out of range 1..{len(codebook_sizes)}")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.ndim != 3 or 0 in ids.shape:
        raise ValueError(f"ids must be a non-empty (N, h, w) array, not {ids.shape}")
    if ids.min() < 0 or ids.max() >= codebook_sizes[layer - 1]:
        raise ValueError(f"ids of layer {layer} must lie in 0..{codebook_sizes[layer - 1] - 1}")
    return ids


def check_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """The distinct 1-based ``layers``, in the order first named, each within 1..``num_layers``, or ValueError."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise ValueError(f"layers must be a sequence of layer numbers, not {layers!r}")
    out: list[int] = []
    for layer in layers:
        try:
            if isinstance(layer, bool):
                raise TypeError
            n = operator.index(layer)
        except TypeError:
            raise ValueError(f"layer {layer!r} is not an integer") from None
        if not 1 <= n <= num_layers:
            raise ValueError(f"layer {n} out of range 1..{num_layers}")
        if n not in out:
            out.append(n)
    return out


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA GPU is present, else ``cpu``; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


FAST_CPU_MODEL = "hqa5-cpu"  # the shipped model whose encoder keeps 640x480 at camera rate on two cores


def streaming_defaults(
    model: str | None, backend: str, device: str, *, decode_only: bool = False, both_sides: bool = False
) -> tuple[str, str, str | None]:
    """The model and backend a streaming command uses, and the one line that says so (None when nothing was chosen
    for the user). Issue 16: on a CPU, an unset ``--model`` is :data:`FAST_CPU_MODEL` and ``--backend auto`` is
    ``onnx`` for an encoder and ``onnx-int8`` for a receiver's decoders (1.6-2x faster, within 0.07 dB on average,
    docs/backends.md); on a GPU the default model (hqa5) and ``auto``. An explicit ``--model`` or ``--backend`` is
    kept as given. ``both_sides``: the note names the encoder's and the decoders' backends (one process runs both)."""
    from edgecodec.zoo import DEFAULT_MODEL

    cpu = resolve_device(device) == "cpu"
    chosen_model = model if model is not None else (FAST_CPU_MODEL if cpu else DEFAULT_MODEL)
    chosen_backend = backend
    if backend == "auto" and cpu and has_onnxruntime():
        chosen_backend = "onnx-int8" if decode_only else "onnx"
    if not cpu or model is not None:
        return chosen_model, chosen_backend, None
    what = f"{chosen_backend} ({'decoders' if decode_only else 'encoder'})"
    if both_sides:
        decoders = streaming_defaults(model, backend, device, decode_only=True)[1]
        what = f"{chosen_backend} (encoder), {decoders} (decoders)"
    return (
        chosen_model,
        chosen_backend,
        (
            f"no GPU: model {chosen_model}, backend {what}, the fastest path on a CPU "
            "(--model and --backend choose others)"
        ),
    )


def split_threads(threads: int | None) -> int:
    """The CPU threads of each network when a sender and a receiver share this process (the demo, the profiler):
    ``threads`` if given, else half the usable CPUs (at least 1), so that the encoder and the decoders do not fight
    over every core while the entropy coders and the capture run beside them."""
    if threads is not None:
        return threads
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, usable // 2)


def has_onnxruntime() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def tensorrt_missing(build: bool = True) -> str | None:
    """None when the tensorrt backend can run here (and, with ``build``, build engines), else what is missing."""
    modules = ("torch_tensorrt", "tensorrt") if build else ("tensorrt",)
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    import torch

    if not torch.cuda.is_available():
        missing.append("a CUDA GPU")
    return ", ".join(missing) or None


def resolve_auto(device: str) -> str:
    """The backend ``auto`` stands for on ``device`` (see the module docstring)."""
    device = resolve_device(device)
    if device.startswith("cuda"):
        return "tensorrt" if tensorrt_missing() is None else "torch"
    return "onnx" if has_onnxruntime() else "torch"


def make_backend(
    name: str,
    model,
    device: str = "cpu",
    *,
    cache_dir: str | os.PathLike[str] | None = None,  # noqa: ANN001
    threads: int | None = None,
) -> Backend:
    """Backend ``name`` (one of :data:`BACKENDS`) for ``model`` (a :class:`edgecodec.zoo.Model`) on ``device``.

    ``cache_dir`` is the artefact cache of the onnx and tensorrt backends (default :func:`cache.cache_root`),
    ``threads`` the CPU threads of the onnx backend (default $EDGECODEC_THREADS, else the usable CPUs).
    """
    from edgecodec.errors import ConfigError

    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
    device = resolve_device(device)
    if name == "auto":
        name = resolve_auto(device)
        log.info("backend auto -> %s on %s", name, device)
    if name in ("torch", "torch-compile"):
        from edgecodec.runtime.torch_backend import TorchBackend

        return TorchBackend(model.net, device=device, compile=name == "torch-compile")
    if name in ("onnx", "onnx-int8"):
        if device != "cpu":
            raise ConfigError(f"the {name} backend runs on the CPU, not {device!r} (use tensorrt or torch on a GPU)")
        from edgecodec.runtime.onnx_backend import OnnxBackend

        precision = "int8" if name == "onnx-int8" else "fp32"
        return OnnxBackend(model, cache_dir=cache_dir, threads=threads, precision=precision)
    from edgecodec.runtime.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(model, device="cuda" if device == "cpu" else device, cache_dir=cache_dir)

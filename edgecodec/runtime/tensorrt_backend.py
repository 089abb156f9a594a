"""The TensorRT backend: engines built by torch-tensorrt (dynamo IR), cached, and run with the TensorRT runtime.

Build: :class:`~edgecodec.runtime.graphs.EncoderGraph` / ``DecoderGraph`` -> ``torch.export`` with dynamic H and W
(multiples of the stack's ``multiple``) -> ``torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine``
with an optimisation profile min/opt/max -> raw engine bytes in the artefact cache (no pickle anywhere: an engine is
TensorRT's own serialisation, loaded with ``tensorrt.Runtime.deserialize_cuda_engine``). Engines are batch 1; a
batch is run frame by frame. The encoder engine takes frames float32 (1, 3, H, W) and gives the ids of every layer
and qerr; the decoder engine of layer l takes ids int32 (1, h, w). Engines are specific to a GPU model and to the
TensorRT version, so both are part of the cache key and of the sidecar check.

``encode_latents`` needs the z_e of the layers too. An encoder engine built by ``trtexec`` from the ONNX graph
already has them (its outputs are ids_1 .. ids_L, qerr, z_1 .. z_L); otherwise a second engine,
``encoder-latents.engine`` (``EncoderGraph(outputs="all")``: the same outputs), is built on its first use, beside
``encoder.engine``, whose ids-only graph stays what ``encode`` runs.

Not executed in development (no GPU, no torch-tensorrt there): everything up to the ``torch_tensorrt`` call is
tested on the CPU (see tests/test_backends.py); deploy/README.md says how to run it on a GPU or a Jetson.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgecodec.errors import ConfigError, MissingDependencyError, ModelError
from edgecodec.runtime import cache, check_frames, check_ids, check_layers, tensorrt_missing
from edgecodec.runtime.graphs import DecoderGraph, EncoderGraph

log = logging.getLogger(__name__)

GRAPH_VERSION = "1"
LATENT_ENGINE = "encoder-latents.engine"  # built on first use of encode_latents, not by engine_names()/export
PRECISIONS = ("fp32", "fp16")
MAX_SIZE = (1088, 1920)  # (H, W) the profile reaches at least up to, so one engine serves every common size


def require_tensorrt(build: bool = True) -> None:
    """ConfigError unless TensorRT and a CUDA GPU (and, to ``build`` engines, torch-tensorrt) are here."""
    missing = tensorrt_missing(build)
    if missing:
        raise MissingDependencyError(
            f"the tensorrt backend needs torch-tensorrt and a CUDA GPU (missing here: {missing}; "
            "pip install 'edgecodec[tensorrt]' on a machine with one, see deploy/README.md)"
        )


def profile(size: tuple[int, int], multiple: int) -> dict[str, tuple[int, int]]:
    """Optimisation profile (H, W) for frames of ``size`` (H, W): min one multiple, opt ``size``, max at least
    :data:`MAX_SIZE`."""
    h, w = size
    if h % multiple or w % multiple or h <= 0 or w <= 0:
        raise ConfigError(f"engine size {w}x{h} must be positive multiples of {multiple}")
    up = lambda v, m: -(-v // m) * m  # noqa: E731
    return {
        "min": (multiple, multiple),
        "opt": (h, w),
        "max": (max(h, up(MAX_SIZE[0], multiple)), max(w, up(MAX_SIZE[1], multiple))),
    }


def export_program(module: torch.nn.Module, example: torch.Tensor, multiple: int, prof: dict, factor: int = 1):
    """``torch.export`` of ``module`` with dynamic H and W (axes 2, 3 of frames, or 1, 2 of ids at 1/``factor``)."""
    lo = max(1, prof["min"][0] // multiple), max(1, prof["min"][1] // multiple)
    hi = prof["max"][0] // multiple, prof["max"][1] // multiple
    unit = multiple // factor
    hb = torch.export.Dim("hb", min=lo[0], max=hi[0])
    wb = torch.export.Dim("wb", min=lo[1], max=hi[1])
    axes = {2: unit * hb, 3: unit * wb} if example.ndim == 4 else {1: unit * hb, 2: unit * wb}
    name = "frames" if example.ndim == 4 else "ids"
    with torch.no_grad():
        return torch.export.export(module.eval(), (example,), dynamic_shapes={name: axes})


def engine_inputs(kind: str, multiple: int, prof: dict, factor: int = 1) -> list[Any]:
    """torch_tensorrt.Input objects for the profile (imports torch_tensorrt)."""
    import torch_tensorrt

    def shape(hw: tuple[int, int]) -> tuple[int, ...]:
        return (1, 3, *hw) if kind == "encoder" else (1, hw[0] // factor, hw[1] // factor)

    dtype = torch.float32 if kind == "encoder" else torch.int32
    return [
        torch_tensorrt.Input(
            min_shape=shape(prof["min"]), opt_shape=shape(prof["opt"]), max_shape=shape(prof["max"]), dtype=dtype
        )
    ]


def trt_versions(device: torch.device) -> dict[str, str]:
    """What an engine depends on: a change of any of these rebuilds it."""
    import tensorrt

    props = torch.cuda.get_device_properties(device)
    return {
        "graph": GRAPH_VERSION,
        "tensorrt": tensorrt.__version__,
        "gpu": props.name,
        "sm": f"{props.major}.{props.minor}",
    }


def builder_info(builder: str) -> dict[str, str]:
    """Recorded in the sidecar, not checked: which tool built the engine, and with which versions."""
    info = {"builder": builder, "torch": torch.__version__.split("+")[0]}
    if builder == "torch-tensorrt":
        import torch_tensorrt

        info["torch_tensorrt"] = torch_tensorrt.__version__
    return info


def artefact_dir(model, root: Path, size: tuple[int, int], precision: str, gpu: str) -> Path:  # noqa: ANN001
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower() or "gpu"
    return cache.model_dir(root, model.name, model.fingerprint_hex) / f"tensorrt-{size[1]}x{size[0]}-{precision}-{slug}"


def build_engine(model, name: str, size: tuple[int, int], precision: str, device: torch.device) -> bytes:  # noqa: ANN001
    """Serialized TensorRT engine for ``name`` ('encoder.engine', 'encoder-latents.engine' or 'decoder-<l>.engine')."""
    import torch_tensorrt

    net, m = copy.deepcopy(model.net).to(device).eval(), model.net.multiple  # leave the caller's model where it is
    prof = profile(size, m)
    if name in ("encoder.engine", LATENT_ENGINE):
        outputs = "ids" if name == "encoder.engine" else "all"
        module, kind, factor = EncoderGraph(net, outputs=outputs), "encoder", 1
        example = torch.rand(1, 3, *size, device=device)
    else:
        layer = int(name.removeprefix("decoder-").removesuffix(".engine"))
        module, kind, factor = DecoderGraph(net, layer), "decoder", 2**layer
        example = torch.zeros(1, size[0] // factor, size[1] // factor, dtype=torch.int32, device=device)
    program = export_program(module.to(device), example, m, prof, factor)
    kwargs: dict[str, Any] = {"arg_inputs": engine_inputs(kind, m, prof, factor)}
    if precision == "fp16":
        kwargs["enabled_precisions"] = {torch.float16, torch.float32}
    return bytes(torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine(program, **kwargs))


def engine_names(num_layers: int) -> list[str]:
    return ["encoder.engine"] + [f"decoder-{layer}.engine" for layer in range(1, num_layers + 1)]


def _key(size: tuple[int, int], precision: str, prof: dict) -> dict[str, Any]:
    return {
        "kind": "tensorrt",
        "size": f"{size[1]}x{size[0]}",
        "precision": precision,
        "profile": {k: list(v) for k, v in prof.items()},
    }


def import_engines(
    model,  # noqa: ANN001
    size: tuple[int, int],
    source: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    precision: str = "fp16",
    device: str = "cuda",
) -> list[str]:
    """Put engines built on the device by ``trtexec`` (from ``edgecodec export --backend onnx --variant plain``)
    into the cache, with sidecars, so that the tensorrt backend uses them. ``source`` holds ``encoder.plan`` and
    ``decoder-<l>.plan`` (or ``.engine``), built with the profile that :func:`profile` gives for ``size``."""
    require_tensorrt(build=False)
    dev = torch.device(device)
    versions = trt_versions(dev)
    folder = artefact_dir(model, cache.cache_root(root), size, precision, versions["gpu"])
    key = _key(size, precision, profile(size, model.net.multiple))
    report = []
    for name in engine_names(model.num_layers):
        stem = name.removesuffix(".engine")
        found = [p for p in (Path(source) / f"{stem}.plan", Path(source) / name) if p.is_file()]
        if not found:
            raise ModelError(f"{source}: no {stem}.plan or {name} to import")
        data = found[0].read_bytes()
        engine = _Engine(data, dev, found[0]).engine  # refuse what this TensorRT cannot deserialize
        factor = 1 if name == "encoder.engine" else 2 ** int(stem.removeprefix("decoder-"))
        opt = tuple(engine.get_tensor_profile_shape(engine.get_tensor_name(0), 0)[1])[-2:]
        if opt != (size[0] // factor, size[1] // factor):
            raise ModelError(
                f"{found[0]}: built for {opt[1]}x{opt[0]}, not for {size[1] // factor}x{size[0] // factor}"
            )
        extra = {"model": model.name, "imported_from": str(found[0]), **builder_info("trtexec")}
        cache.write(folder / name, data, model.fingerprint_hex, key, versions, extra=extra)
        report.append(f"{folder / name}: imported from {found[0]}")
    return report


def trtexec_commands(num_layers: int, size: tuple[int, int], multiple: int, precision: str = "fp16") -> list[str]:
    """``trtexec`` commands that build, from the 'plain' ONNX graphs, engines :func:`import_engines` accepts."""
    prof = profile(size, multiple)
    flag = " --fp16" if precision == "fp16" else ""
    cmds = []
    for layer in range(0, num_layers + 1):
        name, inp, f = ("encoder", "frames", 1) if layer == 0 else (f"decoder-{layer}", "ids", 2**layer)
        shp = {k: (f"1x3x{h}x{w}" if layer == 0 else f"1x{h // f}x{w // f}") for k, (h, w) in prof.items()}
        cmds.append(
            f"trtexec --onnx={name}.onnx{flag} --minShapes={inp}:{shp['min']} --optShapes={inp}:{shp['opt']} "
            f"--maxShapes={inp}:{shp['max']} --saveEngine={name}.plan"
        )
    return cmds


def ensure_tensorrt(
    model,
    size: tuple[int, int],
    root: str | os.PathLike[str] | None = None,  # noqa: ANN001
    precision: str = "fp32",
    names: list[str] | None = None,
    device: str = "cuda",
    force: bool = False,
    build: bool = True,
) -> tuple[dict[str, Path], list[str]]:
    """Paths of the engines of ``model`` for frames of ``size`` (H, W), building those missing or stale (with
    ``build=False``: a ModelError that says why instead). Loading needs TensorRT and a GPU; building also needs
    torch-tensorrt."""
    require_tensorrt(build=False)
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    dev = torch.device(device)
    versions = trt_versions(dev)
    prof = profile(size, model.net.multiple)
    folder = artefact_dir(model, cache.cache_root(root), size, precision, versions["gpu"])
    key = _key(size, precision, prof)
    names = names or engine_names(model.num_layers)
    paths, report = {}, []
    for name in names:
        path = paths[name] = folder / name
        how = f"edgecodec export --backend tensorrt --model {model.name} --size {size[1]}x{size[0]}"
        reason = cache.build_reason(path, model.fingerprint_hex, key, versions, force=force, build=build,
                                    how_to_build=how, report=report)  # fmt: skip
        if reason is None:
            continue
        require_tensorrt(build=True)
        data = build_engine(model, name, size, precision, dev)
        extra = {"model": model.name, **builder_info("torch-tensorrt")}
        cache.write(path, data, model.fingerprint_hex, key, versions, extra=extra)
        report.append(cache.built_line(path, reason))
    return paths, report


def _output_order(outputs: list[str]) -> list[str]:
    """An engine's outputs in the order of the graph they came from: output_0, output_1, ... (torch-tensorrt), or
    the ONNX encoder's ids_1 .. ids_L, qerr, z_1 .. z_L (trtexec); anything else as the engine lists them."""
    if all(re.fullmatch(r"output_?\d+", n) for n in outputs):
        return sorted(outputs, key=lambda n: int(re.sub(r"\D", "", n)))
    rank = {"ids": 0, "qerr": 1, "z": 2}
    parts = [re.fullmatch(r"(ids|z)_(\d+)|(qerr)", n) for n in outputs]
    if all(parts):
        keys = {n: (rank[m[1] or m[3]], int(m[2] or 0)) for m, n in zip(parts, outputs, strict=True)}
        return sorted(outputs, key=keys.__getitem__)
    return outputs


class _Engine:
    """One deserialized engine and its execution context; calls take and give CUDA torch tensors."""

    def __init__(self, data: bytes, device: torch.device, path: Path) -> None:
        import tensorrt as trt

        self.trt, self.device = trt, device
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise ModelError(f"{path}: TensorRT cannot deserialize this engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.outputs = _output_order(outputs)
        self.dtypes = {
            trt.float32: torch.float32,
            trt.float16: torch.float16,
            trt.int32: torch.int32,
            trt.int64: torch.int64,
            trt.bool: torch.bool,
        }

    def __call__(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        # Inputs in the engine's own dtypes (ids: int32 from torch-tensorrt, int64 from a TensorRT 10 trtexec).
        keep = [
            t.to(self.dtypes[self.engine.get_tensor_dtype(n)]).contiguous()
            for n, t in zip(self.inputs, tensors, strict=True)
        ]
        for name, t in zip(self.inputs, keep, strict=True):
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self.dtypes[self.engine.get_tensor_dtype(name)], device=self.device)
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return outs


class TensorRTBackend:
    """Engines built (or loaded from the cache) per frame size on first use; batch 1, so batches run frame by frame."""

    name = "tensorrt"

    def __init__(
        self,
        model,
        device: str = "cuda",
        cache_dir: str | os.PathLike[str] | None = None,  # noqa: ANN001
        precision: str = "fp32",
    ) -> None:
        require_tensorrt(build=False)  # building engines on first use also needs torch-tensorrt
        self.model, self.device, self.cache_dir, self.precision = model, torch.device(device), cache_dir, precision
        self.multiple = model.net.multiple
        self.num_layers = model.num_layers
        self._codebook_sizes = [c.codebook_size for c in model.net.config.layers]
        self._engines: dict[tuple[tuple[int, int], str], _Engine] = {}

    def _loaded(self, size: tuple[int, int], name: str) -> _Engine | None:
        for (built, n), eng in self._engines.items():  # an engine whose profile covers this size will do
            prof = profile(built, self.multiple)
            if n == name and all(prof["min"][i] <= size[i] <= prof["max"][i] for i in (0, 1)):
                return eng
        return None

    def _engine(self, size: tuple[int, int], name: str, build: bool = True) -> _Engine:
        eng = self._loaded(size, name)
        if eng is not None:
            return eng
        paths, _ = ensure_tensorrt(
            self.model, size, self.cache_dir, self.precision, [name], str(self.device), build=build
        )
        eng = self._engines[(size, name)] = _Engine(paths[name].read_bytes(), self.device, paths[name])
        return eng

    def _latent_engine(self, size: tuple[int, int]) -> _Engine:
        """An encoder engine with the z outputs: encoder.engine when it has them (built by trtexec from the ONNX
        graph), else encoder-latents.engine (built on first use). The choice is kept per size, so the cache is
        checked once."""
        eng = self._loaded(size, LATENT_ENGINE)
        if eng is not None:
            return eng
        try:
            eng = self._engine(size, "encoder.engine", build=False)
        except ModelError:  # not built yet, or stale: build only the engine that is wanted
            eng = None
        if eng is not None and len(eng.outputs) == 2 * self.num_layers + 1:
            self._engines[(size, LATENT_ENGINE)] = eng
            return eng
        return self._engine(size, LATENT_ENGINE)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        frames = check_frames(frames, self.multiple)
        eng = self._engine(frames.shape[2:], "encoder.engine")
        per_frame = [eng(torch.from_numpy(f[None]).to(self.device)) for f in frames]
        # outputs ids_1 .. ids_L, qerr (then z_1 .. z_L in an engine from the ONNX graph)
        ids = [np.concatenate([o[i].long().cpu().numpy() for o in per_frame]) for i in range(self.num_layers)]
        qerr = np.concatenate([o[self.num_layers].float().cpu().numpy() for o in per_frame])
        return ids, qerr

    @torch.inference_mode()
    def encode_latents(
        self, frames: np.ndarray, layers: Sequence[int]
    ) -> tuple[list[np.ndarray], np.ndarray, dict[int, np.ndarray]]:
        """:meth:`encode`, plus z[l] (N, h, w, D) float32 for each layer l in ``layers`` (see ``Backend``), from an
        engine of ``EncoderGraph(outputs="all")`` (ids_1 .. ids_L, qerr, z_1 .. z_L)."""
        want = check_layers(layers, self.num_layers)
        frames = check_frames(frames, self.multiple)
        eng = self._latent_engine(frames.shape[2:])
        per_frame = [eng(torch.from_numpy(f[None]).to(self.device)) for f in frames]
        n = self.num_layers
        ids = [np.concatenate([o[i].long().cpu().numpy() for o in per_frame]) for i in range(n)]
        qerr = np.concatenate([o[n].float().cpu().numpy() for o in per_frame])
        z = {layer: np.concatenate([o[n + layer].float().cpu().numpy() for o in per_frame]) for layer in want}
        return ids, qerr, z

    @torch.inference_mode()
    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        ids = check_ids(ids, layer, self._codebook_sizes)
        size = (ids.shape[1] << layer, ids.shape[2] << layer)
        eng = self._engine(size, f"decoder-{layer}.engine")
        out = [eng(torch.from_numpy(i[None]).to(self.device))[0] for i in ids]
        return torch.cat(out).float().cpu().numpy()

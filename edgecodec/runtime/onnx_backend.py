"""The ONNX Runtime backend, and the export of a model to ONNX graphs.

Graphs (opset 17, dynamic N, H and W), one encoder and one decoder per layer:

* ``encoder.onnx``: ``frames`` (N, 3, H, W) float32 -> ``ids_1`` .. ``ids_L`` (N, h_l, w_l) int64, ``qerr``
  (N, L) float32, then ``z_1`` .. ``z_L`` (N, h_l, w_l, D_l) float32, the unit encoder outputs the search scores
  (``Backend.encode_latents``). The convolutions come from ``torch.onnx.export`` of
  :class:`~edgecodec.runtime.graphs.EncoderGraph`; the nearest-code search and the lookup for qerr are appended here
  as ONNX nodes (see :func:`_vq_nodes`). A z_l is both a graph output and the input of those nodes; a run fetches
  only the outputs it names (:meth:`OnnxBackend.encode` names the ids and qerr), so the z cost nothing to copy out
  unless asked for.
* ``decoder-<l>.onnx``: ``ids`` (N, h, w) int64 -> ``frames`` (N, 3, H, W) float32, the lookup inside the graph.

Precision ``int8`` (backend ``onnx-int8``) quantises the decoders' convolutions to int8 (ONNX Runtime's static
quantisation: QLinearConv, weights per channel, activation ranges calibrated on frames of the shipped sample clip),
stored beside the float graphs in ``onnx-cpu-int8``. The encoder stays float: int8 noise moved a large share of the
ids to other codes (the small cosine codebooks have many near-ties) for little speed. Decoding is a receiver's own
business (the ids, the bitstream and the sender do not change), so an int8 receiver trades a little PSNR for speed;
both in docs/backends.md.

Two variants of the search exist. ``plain`` is MatMul + Add + ArgMax: what TensorRT (``trtexec``) and any other
runtime take. ``cpu`` (the default here) runs the search in row blocks inside a ``Scan``, so that the score matrix of
a block (positions x K) stays in cache. Inside a block, small codebooks (K <= 512, the big grids of layers 1 and 2)
take the maximum with TopK(k=1), which ONNX Runtime vectorises; larger ones find it in two steps: ReduceMax over
groups of codes, ArgMax over the group maxima, then ArgMax inside the winning group (ONNX Runtime's ArgMax is not
vectorised). Both give the index a plain ArgMax gives (the first maximum: TopK breaks ties by the lower index);
timings in docs/backends.md.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgecodec.errors import ConfigError, EdgecodecError, ModelError, require
from edgecodec.runtime import cache, check_frames, check_ids, check_layers
from edgecodec.runtime.graphs import DecoderGraph, EncoderGraph

log = logging.getLogger(__name__)

OPSET = 17
VARIANTS = ("cpu", "plain")
PRECISIONS = ("fp32", "int8")
QUANT_VERSION = "1"  # bump when the int8 recipe changes
CALIBRATION_FRAMES = 8  # frames of the shipped sample clip the int8 activation ranges are taken from
# Export layout version: bump when the graphs change, so that cached graphs are rebuilt.
GRAPH_VERSION = "4"  # 4: the encoder also outputs z_1 .. z_L
TRACE_SIZE = (256, 256)  # (H, W) the graphs are traced at; every axis but C is dynamic anyway


def _need_onnx():  # noqa: ANN202 - the onnx module
    return require("onnx", "exporting to ONNX")


def onnx_versions() -> dict[str, str]:
    """Versions an exported graph depends on (a change rebuilds it)."""
    return {"graph": GRAPH_VERSION, "opset": str(OPSET), "torch": torch.__version__.split("+")[0]}


def artefact_dir(model, root: Path, variant: str = "cpu", precision: str = "fp32") -> Path:  # noqa: ANN001
    suffix = "" if precision == "fp32" else f"-{precision}"
    return cache.model_dir(root, model.name, model.fingerprint_hex) / f"onnx-{variant}{suffix}"


def artefact_names(num_layers: int) -> list[str]:
    return ["encoder.onnx"] + [f"decoder-{layer}.onnx" for layer in range(1, num_layers + 1)]


# ---- export -----------------------------------------------------------------------------------------------------
def _torch_export(
    module: torch.nn.Module,
    example: torch.Tensor,
    input_name: str,
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> bytes:
    """ONNX bytes of ``module`` through the TorchScript-based exporter (it needs no onnxscript)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated in favour of dynamo (onnxscript)
        torch.onnx.export(
            module.eval(),
            (example,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    return buf.getvalue()


def _const(name: str, value: Any, dtype: Any = np.int64):  # noqa: ANN202 - onnx TensorProto
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _argmax_nodes(score: str, out: str, k: int, group: int, p: str) -> tuple[list, list]:
    """ArgMax over the last axis of ``score`` (P, K) -> ``out`` (P,), in two steps through groups of codes."""
    from onnx import helper

    sub = k // group
    nodes = [
        helper.make_node("Reshape", [score, p + "gshape"], [p + "s3"]),  # (P, G, S)
        helper.make_node("ReduceMax", [p + "s3"], [p + "gmax"], axes=[2], keepdims=0),  # (P, G)
        helper.make_node("ArgMax", [p + "gmax"], [p + "g"], axis=1, keepdims=1),  # (P, 1)
        helper.make_node("Unsqueeze", [p + "g", p + "ax2"], [p + "g3"]),  # (P, 1, 1)
        helper.make_node("Expand", [p + "g3", p + "eshape"], [p + "gidx"]),  # (P, 1, S)
        helper.make_node("GatherElements", [p + "s3", p + "gidx"], [p + "sel"], axis=1),  # (P, 1, S)
        helper.make_node("ArgMax", [p + "sel"], [p + "j"], axis=2, keepdims=0),  # (P, 1)
        helper.make_node("Mul", [p + "g", p + "sub"], [p + "base"]),
        helper.make_node("Add", [p + "base", p + "j"], [p + "flat"]),
        helper.make_node("Reshape", [p + "flat", p + "m1"], [out]),  # (P,)
    ]
    inits = [
        _const(p + "gshape", [-1, group, sub]),
        _const(p + "ax2", [2]),
        _const(p + "eshape", [1, 1, sub]),
        _const(p + "sub", sub),
        _const(p + "m1", [-1]),
    ]
    return nodes, inits


def _group_size(k: int) -> int:
    """Groups of about sqrt(K) codes balance the two ArgMax steps (K is a power of two in practice)."""
    best = 1
    for g in range(1, k + 1):
        if k % g == 0 and g * g <= k:
            best = g
    return best


TOPK_MAX_K = 512  # codebooks up to this size are searched with TopK(k=1), larger ones in two ArgMax steps


def _topk_nodes(score: str, out: str, p: str) -> tuple[list, list]:
    """Index of the maximum over the last axis of ``score`` (P, K) -> ``out`` (P,), through TopK(k=1)."""
    from onnx import helper

    nodes = [
        helper.make_node("TopK", [score, p + "one"], [p + "top", p + "top_i"], axis=-1, largest=1, sorted=1),
        helper.make_node("Reshape", [p + "top_i", p + "m1"], [out]),  # (P,)
    ]
    return nodes, [_const(p + "one", [1]), _const(p + "m1", [-1])]


def _vq_nodes(
    layer: int, z: str, codes: np.ndarray, inv_std: np.ndarray, variant: str, rows: int, search: str | None = None
):  # fmt: skip
    """Nodes that turn unit vectors ``z`` (N, h, w, D) into ``ids_<layer>`` (N, h, w) and qerr (N, 1).

    ``search`` picks the maximum's form inside a Scan block: "topk" or "argmax2" (the two-step ArgMax); None chooses
    by the codebook size (:data:`TOPK_MAX_K`)."""
    from onnx import helper

    k, d = codes.shape
    p = f"vq{layer}_"
    ids = f"ids_{layer}"
    inits = [
        _const(p + "codes_t", codes.T.copy(), np.float32),
        _const(p + "bias", -0.5 * (codes.astype(np.float64) ** 2).sum(1), np.float32),
    ]
    if variant == "plain" or rows == 0:
        nodes = [
            helper.make_node("MatMul", [z, p + "codes_t"], [p + "dot"]),
            helper.make_node("Add", [p + "dot", p + "bias"], [p + "score"]),
            helper.make_node("ArgMax", [p + "score"], [ids], axis=-1, keepdims=0),
        ]
    else:
        # Blocks of `rows` grid rows: (N, h, w, D) -> (N*h/rows, rows*w, D), one Scan step per block.
        b = p + "b_"
        if (search or ("topk" if k <= TOPK_MAX_K else "argmax2")) == "topk":
            body_nodes, body_inits = _topk_nodes(b + "score", b + "ids", b)
        else:
            body_nodes, body_inits = _argmax_nodes(b + "score", b + "ids", k, _group_size(k), b)
        body_nodes = [
            helper.make_node("MatMul", [b + "z", p + "codes_t"], [b + "dot"]),
            helper.make_node("Add", [b + "dot", p + "bias"], [b + "score"]),
        ] + body_nodes
        body = helper.make_graph(
            body_nodes,
            f"vq{layer}_block",
            [helper.make_tensor_value_info(b + "z", 1, ["P", d])],  # 1 = FLOAT
            [helper.make_tensor_value_info(b + "ids", 7, ["P"])],  # 7 = INT64
            body_inits,
        )
        nodes = [
            helper.make_node("Shape", [z], [p + "zshape"]),
            helper.make_node("Gather", [p + "zshape", p + "i2"], [p + "w"]),  # (1,)
            helper.make_node("Mul", [p + "w", p + "rows"], [p + "bw"]),
            helper.make_node("Concat", [p + "m1", p + "bw", p + "d"], [p + "bshape"], axis=0),
            helper.make_node("Reshape", [z, p + "bshape"], [p + "zb"]),
            helper.make_node("Scan", [p + "zb"], [p + "ib"], body=body, num_scan_inputs=1),
            helper.make_node("Slice", [p + "zshape", p + "i0", p + "i3"], [p + "gshape"]),
            helper.make_node("Reshape", [p + "ib", p + "gshape"], [ids]),
        ]
        inits += [
            _const(p + "i0", [0]),
            _const(p + "i2", [2]),
            _const(p + "i3", [3]),
            _const(p + "rows", [rows]),
            _const(p + "m1", [-1]),
            _const(p + "d", [d]),
        ]
    qerr_nodes, qerr_inits = _qerr_nodes(p, z, ids, codes, inv_std)
    return nodes + qerr_nodes, inits + qerr_inits, ids, p + "qerr_n1"


def _product_vq_nodes(layer: int, z: str, sub_codes: np.ndarray, codes: np.ndarray, inv_std: np.ndarray):  # noqa: ANN202
    """Nodes that turn unit vectors ``z`` (N, h, w, D) into ``ids_<layer>`` (N, h, w) and qerr (N, 1) for a product
    codebook ``sub_codes`` (G, Kg, D / G) whose whole table is ``codes`` (K, D).

    One MatMul against the block-diagonal (D, G * Kg) matrix of the sub-codes scores every group at once (the
    search is G * Kg scores a position, small enough for no Scan), an ArgMax per group gives the sub-ids, and their
    mixed-radix number (sub-codebook 0 most significant) is the id."""
    from onnx import helper

    g, kg, dg = sub_codes.shape
    p = f"vq{layer}_"
    ids = f"ids_{layer}"
    block = np.zeros((g * dg, g * kg), np.float32)
    for i in range(g):
        block[i * dg : (i + 1) * dg, i * kg : (i + 1) * kg] = sub_codes[i].T
    bias = -0.5 * (sub_codes.astype(np.float64) ** 2).sum(-1).reshape(-1)
    nodes = [
        helper.make_node("MatMul", [z, p + "block"], [p + "dot"]),  # (N, h, w, G * Kg)
        helper.make_node("Add", [p + "dot", p + "bias"], [p + "score"]),
        helper.make_node("Reshape", [p + "score", p + "gk"], [p + "score_g"]),  # (N, h, w, G, Kg); 0 = keep
        helper.make_node("ArgMax", [p + "score_g"], [p + "digits"], axis=-1, keepdims=0),  # (N, h, w, G)
        helper.make_node("Mul", [p + "digits", p + "radix"], [p + "weighted"]),
        helper.make_node("ReduceSum", [p + "weighted", p + "m1"], [ids], keepdims=0),  # (N, h, w)
    ]
    inits = [
        _const(p + "block", block, np.float32),
        _const(p + "bias", bias, np.float32),
        _const(p + "gk", [0, 0, 0, g, kg]),
        _const(p + "radix", kg ** np.arange(g - 1, -1, -1)),
        _const(p + "m1", [-1]),
    ]
    qerr_nodes, qerr_inits = _qerr_nodes(p, z, ids, codes, inv_std)
    return nodes + qerr_nodes, inits + qerr_inits, ids, p + "qerr_n1"


def _qerr_nodes(p: str, z: str, ids: str, codes: np.ndarray, inv_std: np.ndarray) -> tuple[list, list]:
    """Nodes and initialisers of the normalised quantisation error (N, 1) of ``z`` against the ``codes`` of ``ids``."""
    from onnx import helper

    nodes = [
        helper.make_node("Gather", [p + "codes", ids], [p + "q"]),  # (N, h, w, D)
        helper.make_node("Sub", [z, p + "q"], [p + "diff"]),
        helper.make_node("Mul", [p + "diff", p + "inv_std"], [p + "dn"]),
        helper.make_node("Mul", [p + "dn", p + "dn"], [p + "sq"]),
        helper.make_node("ReduceMean", [p + "sq"], [p + "qerr"], axes=[1, 2, 3], keepdims=1),  # (N, 1, 1, 1)
        helper.make_node("Reshape", [p + "qerr", p + "n1"], [p + "qerr_n1"]),  # (N, 1)
    ]
    inits = [_const(p + "codes", codes, np.float32), _const(p + "inv_std", inv_std, np.float32),
             _const(p + "n1", [-1, 1])]  # fmt: skip
    return nodes, inits


def _scan_rows(layer: int, num_layers: int, codebook_size: int) -> int:
    """Grid rows per Scan block for ``layer`` (0: no Scan). Grids of layer l have heights that are multiples of
    2 ** (L - l); the top layer's grid is small enough for a plain search. TopK blocks are best at a few thousand
    positions (up to 16 rows), the two-step ArgMax at a few hundred (2 rows); measured in docs/backends.md."""
    if layer >= num_layers:
        return 0
    return min(16 if codebook_size <= TOPK_MAX_K else 2, 2 ** (num_layers - layer))


def encoder_output_names(num_layers: int, latents: bool = True) -> list[str]:
    """Outputs of the encoder graph, in order: ids_1 .. ids_L, qerr, and with ``latents`` z_1 .. z_L."""
    names = [f"ids_{layer}" for layer in range(1, num_layers + 1)] + ["qerr"]
    return names + ([f"z_{layer}" for layer in range(1, num_layers + 1)] if latents else [])


def export_encoder(net, variant: str = "cpu", latents: bool = False) -> bytes:  # noqa: ANN001 - HQAStack
    """ONNX bytes of the whole encoder of ``net``: frames -> ids of every layer + qerr, and with ``latents`` (as the
    cached graphs are exported) then z_1 .. z_L, each layer's unit encoder output (N, h, w, D)."""
    onnx = _need_onnx()
    from onnx import helper

    if variant not in VARIANTS:
        raise ConfigError(f"unknown ONNX variant {variant!r} (choose from {', '.join(VARIANTS)})")
    n_layers = net.num_layers
    znames = [f"z_{layer}" for layer in range(1, n_layers + 1)]
    axes = {"frames": {0: "N", 2: "H", 3: "W"}}
    axes |= {z: {0: "N", 1: f"h{i}", 2: f"w{i}"} for i, z in enumerate(znames, start=1)}
    example = torch.rand(1, 3, *TRACE_SIZE)
    graph_module = EncoderGraph(net, outputs="z", space_to_depth_op=True)
    trunk = onnx.load_from_string(_torch_export(graph_module, example, "frames", znames, axes))
    graph = trunk.graph
    z_outputs = [copy.deepcopy(out) for out in graph.output]  # z_1 .. z_L, (N, h_l, w_l, D_l) float32
    if [out.name for out in z_outputs] != znames:
        raise ModelError(f"the exported encoder trunk has outputs {[o.name for o in z_outputs]}, not {znames}")
    for out, lyr in zip(z_outputs, net.layers, strict=True):
        out.type.tensor_type.shape.dim[3].dim_value = lyr.cfg.code_dim  # the exporter leaves D symbolic
    del graph.output[:]
    qerrs = []
    for layer in range(1, n_layers + 1):
        lyr = net.layers[layer - 1]
        codes = lyr.quantizer.codes.detach().cpu().numpy()
        inv_std = (1.0 / lyr.ze_std.detach().cpu()).numpy()
        if lyr.quantizer.groups > 1:
            sub = lyr.quantizer.sub_codes.detach().cpu().numpy()
            nodes, inits, ids, qerr = _product_vq_nodes(layer, znames[layer - 1], sub, codes, inv_std)
        else:
            nodes, inits, ids, qerr = _vq_nodes(
                layer, znames[layer - 1], codes, inv_std, variant, _scan_rows(layer, n_layers, codes.shape[0])
            )
        graph.node.extend(nodes)
        graph.initializer.extend(inits)
        graph.output.append(helper.make_tensor_value_info(ids, onnx.TensorProto.INT64, ["N", f"h{layer}", f"w{layer}"]))
        qerrs.append(qerr)
    graph.node.append(helper.make_node("Concat", qerrs, ["qerr"], axis=1))
    graph.output.append(helper.make_tensor_value_info("qerr", onnx.TensorProto.FLOAT, ["N", n_layers]))
    if latents:  # after qerr, so that ids and qerr keep their positions
        graph.output.extend(z_outputs)
    trunk.doc_string = "edgecodec encoder: " + _io_doc("encoder.onnx", latents)
    onnx.checker.check_model(trunk)
    return trunk.SerializeToString()


def export_decoder(net, layer: int) -> bytes:  # noqa: ANN001 - HQAStack
    """ONNX bytes of the decoder of ``layer``: ids (N, h, w) int64 -> frames (N, 3, H, W)."""
    _need_onnx()
    grid = (TRACE_SIZE[0] >> layer, TRACE_SIZE[1] >> layer)
    example = torch.zeros(1, *grid, dtype=torch.int64)
    axes = {"ids": {0: "N", 1: "h", 2: "w"}, "frames": {0: "N", 2: "H", 3: "W"}}
    return _torch_export(DecoderGraph(net, layer, space_to_depth_op=True), example, "ids", ["frames"], axes)


def ensure_onnx(
    model,  # noqa: ANN001 - zoo.Model
    root: str | os.PathLike[str] | None = None,
    variant: str = "cpu",
    force: bool = False,
    build: bool = True,
    precision: str = "fp32",
) -> tuple[dict[str, Path], list[str]]:
    """Paths of the ONNX graphs of ``model`` in the cache, exporting those that are missing or stale.

    Returns (paths by name, report lines). A stale or foreign artefact is rebuilt with a logged warning; with
    ``build=False`` nothing is built and a missing or stale artefact is a ModelError that says why. With precision
    ``int8`` the decoders are the quantised ones (made from the float graphs, which are ensured first).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown ONNX precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "int8" and variant != "cpu":
        raise ConfigError(
            "int8 decoders are for ONNX Runtime on a CPU (variant cpu); for TensorRT, export the plain graphs and "
            "let trtexec build reduced-precision engines"
        )
    folder = artefact_dir(model, cache.cache_root(root), variant)
    key = {"kind": "onnx", "variant": variant, "size": "dynamic"}
    versions = onnx_versions()
    paths, report = {}, []
    for name in artefact_names(model.num_layers):
        path = folder / name
        paths[name] = path
        how = f"edgecodec export --backend onnx --model {model.name}"
        reason = cache.build_reason(path, model.fingerprint_hex, key, versions, force=force, build=build,
                                    how_to_build=how, report=report)  # fmt: skip
        if reason is None:
            continue
        data = (
            export_encoder(model.net, variant, latents=True)
            if name == "encoder.onnx"
            else export_decoder(model.net, int(name.removeprefix("decoder-").removesuffix(".onnx")))
        )
        cache.write(
            path, data, model.fingerprint_hex, key, versions, extra={"model": model.name, "inputs": _io_doc(name)}
        )
        report.append(cache.built_line(path, reason))
    if precision == "int8":
        _ensure_int8(model, root, variant, force, build, paths, report)
    return paths, report


def _ensure_int8(model, root, variant: str, force: bool, build: bool, paths: dict, report: list) -> None:  # noqa: ANN001
    """Point ``paths``' decoders at their int8 versions, quantising those that are missing or stale.

    An int8 decoder is stale when anything it was made from changed: the model (fingerprint), the float decoder and
    encoder graphs (their SHA-256, from their sidecars), the calibration clip, or the versions of the tools.
    """
    ort = require("onnxruntime", "int8 decoders")
    from edgecodec.capture import sample_path

    folder = artefact_dir(model, cache.cache_root(root), variant, "int8")
    clip = sample_path()
    base = {"kind": "onnx", "variant": variant, "size": "dynamic", "precision": "int8",
            "calibration": f"{CALIBRATION_FRAMES} frames of {clip.name}",
            "calibration_sha256": cache.sha256_file(clip) if clip.is_file() else "missing",
            "encoder_sha256": (cache.read_sidecar(paths["encoder.onnx"]) or {}).get("sha256")}  # fmt: skip
    versions = onnx_versions() | {"quant": QUANT_VERSION, "onnxruntime": ort.__version__}
    calibration: list[list[np.ndarray]] | None = None
    for layer in range(1, model.num_layers + 1):
        name = f"decoder-{layer}.onnx"
        path = folder / name
        key = base | {"source_sha256": (cache.read_sidecar(paths[name]) or {}).get("sha256")}
        how = f"edgecodec export --backend onnx --precision int8 --model {model.name}"
        reason = cache.build_reason(path, model.fingerprint_hex, key, versions, force=force, build=build,
                                    how_to_build=how, report=report)  # fmt: skip
        if reason is not None:
            if calibration is None:
                calibration = calibration_ids(paths["encoder.onnx"], model.net.multiple)
            data = quantize_decoder(paths[name], [ids[layer - 1] for ids in calibration])
            extra = {"model": model.name, "inputs": _io_doc(name), "quantised_from": str(paths[name])}
            cache.write(path, data, model.fingerprint_hex, key, versions, extra=extra)
            report.append(cache.built_line(path, reason))
        paths[name] = path


def calibration_frames(multiple: int) -> list[np.ndarray]:
    """The :data:`CALIBRATION_FRAMES` frames, spread over the shipped sample clip, that the int8 decoders' activation
    ranges are calibrated on: (1, 3, H, W) float32 in [0, 1], cropped to multiples of ``multiple``."""
    from edgecodec.capture import sample_frames

    try:
        frames = sample_frames()
    except EdgecodecError as exc:
        raise ModelError(f"cannot calibrate int8 decoders: {exc}") from None
    h, w = frames[0].shape[0] // multiple * multiple, frames[0].shape[1] // multiple * multiple
    if h == 0 or w == 0:
        raise ModelError(f"cannot calibrate int8 decoders: the sample clip is smaller than the model's {multiple}")
    picks = np.linspace(0, len(frames) - 1, CALIBRATION_FRAMES).round().astype(int)
    return [np.ascontiguousarray(frames[i][:h, :w].transpose(2, 0, 1)[None], dtype=np.float32) / 255 for i in picks]


def calibration_ids(encoder: Path, multiple: int) -> list[list[np.ndarray]]:
    """Ids of every layer of :func:`calibration_frames`, from the float encoder graph at ``encoder``."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(encoder), session_options(ort, 1), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs() if o.name.startswith("ids_")]
        return [session.run(names, {"frames": x}) for x in calibration_frames(multiple)]
    except EdgecodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own exception types
        raise ModelError(f"{encoder}: cannot encode the calibration frames ({str(exc).splitlines()[0]})") from None


class _QuieterThanError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def quantize_decoder(src: Path, calibration: list[np.ndarray]) -> bytes:
    """ONNX bytes of the decoder graph at ``src`` with its convolutions in int8 (QLinearConv: uint8 activations
    with ranges from running ``calibration`` ids through it, int8 weights per output channel)."""
    import tempfile

    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError as exc:
        raise ConfigError(f"int8 decoders need onnxruntime's quantisation tools and onnx ({exc})") from None

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"ids": ids} for ids in calibration])

        def get_next(self) -> dict | None:
            return next(self._it, None)

    # The quantiser logs advice ("consider pre-processing") with logging.warning() on the root logger. A filter on
    # the root logger sees only records logged on it directly (edgecodec's own records propagate past it), and a
    # NullHandler keeps logging.warning() from installing a stderr handler on a root logger that has none.
    root = logging.getLogger()
    quiet, null = _QuieterThanError(), logging.NullHandler()
    root.addFilter(quiet)
    root.addHandler(null)
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = Path(tmp) / "int8.onnx"
            quantize_static(
                str(src), str(out), Feeds(), quant_format=QuantFormat.QOperator, op_types_to_quantize=["Conv"],
                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )  # fmt: skip
            return out.read_bytes()
    except Exception as exc:  # noqa: BLE001 - the quantiser and ONNX Runtime raise their own types
        raise ModelError(f"{src}: int8 quantisation failed ({str(exc).splitlines()[0]})") from None
    finally:
        root.removeFilter(quiet)
        root.removeHandler(null)


def _io_doc(name: str, latents: bool = True) -> str:
    if name == "encoder.onnx":
        ids = "frames float32 (N,3,H,W) in [0,1], H and W multiples of 2**L -> ids_1..ids_L int64 (N,h,w), qerr (N,L)"
        return ids + (", z_1..z_L float32 (N,h,w,D) unit encoder outputs" if latents else "")
    return "ids int64 (N,h,w) -> frames float32 (N,3,H,W) in [0,1]"


# ---- run time ---------------------------------------------------------------------------------------------------
def default_threads() -> int:
    """Threads per session: $EDGECODEC_THREADS, else the CPUs this process may run on."""
    env = os.environ.get("EDGECODEC_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ConfigError(f"EDGECODEC_THREADS must be an integer, not {env!r}") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def session_options(ort, threads: int):  # noqa: ANN001, ANN201 - the onnxruntime module, SessionOptions
    """Options for a session on ``threads`` threads whose pool spins only while a run lasts.

    A session's threads spin between the nodes of a run, which keeps the encoder's many small Scan steps fast, but
    by default they also go on spinning after the run; the codec runs several sessions in turn (the encoder, then a
    decoder, in the loopback demo and the profiler), and on a 2-core machine the previous session's spinning threads
    slowed the next one by up to 2x. ``force_spinning_stop`` ends the spinning with the run (docs/backends.md).
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    return opts


class OnnxBackend:
    """Runs the cached ONNX graphs with ONNX Runtime on the CPU (exports them on first use)."""

    name = "onnx"

    def __init__(
        self,
        model,
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,  # noqa: ANN001
        variant: str = "cpu",
        precision: str = "fp32",
    ) -> None:
        ort = require("onnxruntime", "the onnx backend")
        self.name = "onnx" if precision == "fp32" else f"onnx-{precision}"
        self.model = model
        self.multiple = model.net.multiple
        self.num_layers = model.num_layers
        self.threads = threads or default_threads()
        self._codebook_sizes = [c.codebook_size for c in model.net.config.layers]
        paths, _ = ensure_onnx(model, cache_dir, variant, precision=precision)
        opts = session_options(ort, self.threads)
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3

        def session(path: Path):  # noqa: ANN202
            try:
                return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT raises its own exception types
                raise ModelError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None

        self._encoder = session(paths["encoder.onnx"])
        self._decoders = [session(paths[f"decoder-{layer}.onnx"]) for layer in range(1, self.num_layers + 1)]
        self._ids_outputs = encoder_output_names(self.num_layers, latents=False)
        have = [o.name for o in self._encoder.get_outputs()]
        if have != encoder_output_names(self.num_layers):
            raise ModelError(f"{paths['encoder.onnx']}: outputs {have}, not {encoder_output_names(self.num_layers)}")

    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        frames = check_frames(frames, self.multiple)
        out = self._encoder.run(self._ids_outputs, {"frames": frames})  # not the z outputs: nothing to copy
        return out[:-1], out[-1]

    def encode_latents(
        self, frames: np.ndarray, layers: Sequence[int]
    ) -> tuple[list[np.ndarray], np.ndarray, dict[int, np.ndarray]]:
        """:meth:`encode`, plus z[l] (N, h, w, D) float32 for each layer l in ``layers`` (see ``Backend``); the
        same run of the same graph, fetching the z outputs of those layers only."""
        want = check_layers(layers, self.num_layers)
        frames = check_frames(frames, self.multiple)
        out = self._encoder.run(self._ids_outputs + [f"z_{layer}" for layer in want], {"frames": frames})
        n = self.num_layers
        return out[:n], out[n], dict(zip(want, out[n + 1 :], strict=True))

    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        ids = check_ids(ids, layer, self._codebook_sizes)
        return self._decoders[layer - 1].run(None, {"ids": ids})[0]

"""The ONNX Runtime choices behind the onnx backend, measured: thread-pool spinning, the nearest-code search, and
space-to-depth. docs/backends.md quotes its output.

    python tools/bench_onnx_options.py [--model hqa5] [--size 640x480] [--threads 2] [--iters 15]

1. Spinning: the encoder and the five decoders of the model run in turn (as in the loopback demo and the profiler),
   with ONNX Runtime's default thread pools (threads spin after a run), spinning off, and spinning that ends with
   each run (``session.force_spinning_stop``, the backend's choice).
2. Search: the nearest-code search of every layer on the model's own codebooks and on unit vectors of the layer's
   grid at ``--size``, in each form the export can write: a plain MatMul + ArgMax, Scan blocks with the two-step
   ArgMax, Scan blocks with TopK(k=1); each checked against numpy's argmax.
3. Space-to-depth of a frame by 4: pixel-unshuffle as torch exports it (a 6-D Transpose) against ONNX SpaceToDepth.

Times are "median (min)" ms; the minimum is the least disturbed run on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecodec.export import padded, parse_size  # noqa: E402
from edgecodec.zoo import DEFAULT_MODEL, load_model  # noqa: E402


def cell(times: list[float]) -> str:
    """'median (min)' in ms: on a shared machine the minimum is the least disturbed run."""
    return f"{1e3 * np.median(times):.1f} ({1e3 * np.min(times):.1f})"


def timed(fn, iters: int) -> list[float]:  # noqa: ANN001
    fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def spinning(ort, model, frames: np.ndarray, threads: int, iters: int) -> None:  # noqa: ANN001
    from edgecodec.runtime.onnx_backend import ensure_onnx

    paths, _ = ensure_onnx(model)
    configs = {
        "default pools (spin after runs)": {},
        "spinning off": {"session.intra_op.allow_spinning": "0"},
        "spin during runs only (backend)": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    }
    print("\n1. encoder and decoders in turn, ms per call, median (min)\n")
    print("| thread pools | encode | " + " | ".join(f"decode L{i}" for i in range(1, model.num_layers + 1)) + " |")
    print("|---|---|" + "---|" * model.num_layers)
    for label, entries in configs.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        for k, v in entries.items():
            opts.add_session_config_entry(k, v)
        enc = ort.InferenceSession(str(paths["encoder.onnx"]), opts, providers=["CPUExecutionProvider"])
        decs = [
            ort.InferenceSession(str(paths[f"decoder-{i}.onnx"]), opts, providers=["CPUExecutionProvider"])
            for i in range(1, model.num_layers + 1)
        ]
        ids = enc.run(None, {"frames": frames})[:-1]
        te, td = [], [[] for _ in decs]
        for _ in range(iters + 2):
            t = time.perf_counter()
            enc.run(None, {"frames": frames})
            te.append(time.perf_counter() - t)
            for i, dec in enumerate(decs):
                t = time.perf_counter()
                dec.run(None, {"ids": ids[i]})
                td[i].append(time.perf_counter() - t)
        print(f"| {label} | " + " | ".join(cell(t[2:]) for t in [te, *td]) + " |")


def search(ort, model, size: tuple[int, int], threads: int, iters: int) -> None:  # noqa: ANN001
    from onnx import helper

    from edgecodec.runtime import onnx_backend as ob

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    rng = np.random.default_rng(0)
    print("\n2. nearest-code search, ms median (min) (rows: grid rows per Scan block; * the export's choice)\n")
    print("| layer | grid | K x D | plain ArgMax | two-step ArgMax, 2 rows | TopK, 2 rows | TopK, up to 16 rows |")
    print("|---|---|---|---|---|---|---|")
    for index, lyr in enumerate(model.net.layers):
        layer = index + 1
        codes = lyr.quantizer.codes.detach().numpy()
        k, d = codes.shape
        h, w = size[0] >> layer, size[1] >> layer
        z = rng.standard_normal((1, h, w, d)).astype(np.float32)
        z /= np.linalg.norm(z, axis=-1, keepdims=True)
        want = (z.reshape(-1, d) @ codes.T - 0.5 * (codes * codes).sum(1)).argmax(1).reshape(1, h, w)
        cells = []
        most = min(16, 2 ** (model.num_layers - layer))  # rows must divide every grid height of this layer
        chosen = ob._scan_rows(layer, model.num_layers, k), k <= ob.TOPK_MAX_K
        for rows, topk in ((0, False), (2, False), (2, True), (most, True)):
            if rows and (h % rows or layer == model.num_layers):
                cells.append("-")
                continue
            nodes, inits, ids, _ = ob._vq_nodes(
                layer,
                "z",
                codes,
                np.ones(d, np.float32),
                "cpu" if rows else "plain",
                rows,
                "topk" if topk else "argmax2",
            )
            graph = helper.make_graph(nodes, "search", [helper.make_tensor_value_info("z", 1, [1, h, w, d])],
                                      [helper.make_tensor_value_info(ids, 7, None)], inits)  # fmt: skip
            model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ob.OPSET)])
            sess = ort.InferenceSession(model_proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            got = sess.run(None, {"z": z})[0]
            ok = "" if np.array_equal(got, want) else " (ids differ!)"
            mark = "*" if (rows, topk or rows == 0) == (chosen[0], chosen[1] or chosen[0] == 0) else ""
            cells.append(f"{cell(timed(lambda s=sess, f={'z': z}: s.run(None, f), iters))}{mark}{ok}")
        print(f"| {layer} | {w}x{h} | {k} x {d} | " + " | ".join(cells) + " |")


def space_to_depth(ort, size: tuple[int, int], threads: int, iters: int) -> None:  # noqa: ANN001
    from onnx import helper, numpy_helper

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    h, w = size
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    inp = [helper.make_tensor_value_info("x", 1, [1, 3, h, w])]
    out = [helper.make_tensor_value_info("y", 1, None)]
    s2d = helper.make_graph([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=4)], "s2d", inp, out)
    shapes = [numpy_helper.from_array(np.array(v, np.int64), n)
              for n, v in (("s6", [1, 3, h // 4, 4, w // 4, 4]), ("s4", [1, 48, h // 4, w // 4]))]  # fmt: skip
    unshuffle = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "s6"], ["a"]),
            helper.make_node("Transpose", ["a"], ["b"], perm=[0, 1, 3, 5, 2, 4]),
            helper.make_node("Reshape", ["b", "s4"], ["y"]),
        ],
        "unshuffle",
        inp,
        out,
        shapes,
    )
    print(f"\n3. space-to-depth by 4 of a {w}x{h} frame, ms median (min)\n")
    for label, graph in (("pixel-unshuffle (Reshape, 6-D Transpose, Reshape)", unshuffle), ("SpaceToDepth", s2d)):
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        print(f"  {label}: {cell(timed(lambda s=sess: s.run(None, {'x': x}), iters))}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=15)
    args = ap.parse_args(argv)
    import os

    import onnxruntime as ort

    model = load_model(args.model)
    size = padded(parse_size(args.size), model.net.multiple)
    frames = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    load = os.getloadavg()[0]
    print(f"model {model.name}, {size[1]}x{size[0]}, {args.threads} threads, onnxruntime {ort.__version__}, "
          f"load average {load:.2f}")  # fmt: skip
    spinning(ort, model, frames, args.threads, args.iters)
    search(ort, model, size, args.threads, args.iters)
    space_to_depth(ort, size, args.threads, args.iters)
    print(f"\nload average {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())

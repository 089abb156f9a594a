"""`edgecodec export`: build the ONNX graphs or TensorRT engines of a model into the artefact cache.

    edgecodec export --backend onnx --model hqa5 --size 640x480 [--cache DIR] [--variant cpu|plain]
    edgecodec export --backend onnx --precision int8       # also the int8 decoders of backend onnx-int8
    edgecodec export --backend tensorrt --model hqa5 --size 1280x720 [--precision fp16]
    edgecodec export --backend onnx --model hqa5 --check      # report, build nothing, exit 1 if anything is stale
    edgecodec export --backend tensorrt --size 1280x720 --precision fp16 --from-engines DIR   # trtexec's .plan files

Artefacts are keyed by model fingerprint (and, for engines, by frame size, precision and GPU); each has a JSON
sidecar (:mod:`edgecodec.runtime.cache`). A missing, stale or foreign artefact is rebuilt, and the report says why.
After building ONNX graphs the command checks them against eager torch on a synthetic frame of ``--size`` and prints
the agreement per layer. Frame sizes are rounded up to the model's multiple, as the codec pads frames.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

import numpy as np

from edgecodec.cliutil import ArgumentParser
from edgecodec.errors import ConfigError, EdgecodecError
from edgecodec.runtime import cache
from edgecodec.zoo import DEFAULT_MODEL, load_model


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (H, W); each side 1..16384 as every --size (:func:`edgecodec.capture.parse_size`)."""
    from edgecodec.capture import MAX_SIDE

    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise ConfigError(f"size must look like 640x480 (width x height), not {text!r}")
    if not all(1 <= int(v) <= MAX_SIDE for v in m.groups()):
        raise ConfigError(f"size: width and height must be 1..{MAX_SIDE} pixels, got {text!r}")
    return int(m.group(2)), int(m.group(1))


def padded(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    return -(-size[0] // multiple) * multiple, -(-size[1] // multiple) * multiple


def synthetic_frame(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A deterministic (1, 3, H, W) float32 frame with gradients, smooth texture and edges."""
    import torch
    import torch.nn.functional as F

    h, w = size
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(
        torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g),
        size=(h, w),
        mode="bicubic",
        align_corners=False,
    )
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frame = 0.5 * smooth + 0.25 * torch.stack([x, y, (x + y) / 2])[None] + 0.1 * torch.rand(1, 3, h, w, generator=g)
    frame[..., h // 4 : h // 2, w // 4 : w // 2] = 0.9  # a bright block with sharp edges
    return frame.clamp(0, 1).numpy().astype(np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(
        prog="edgecodec export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--backend", required=True, choices=("onnx", "tensorrt"))
    ap.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or path (default {DEFAULT_MODEL})")
    ap.add_argument("--size", default="640x480", help="frame size WxH to build for and check at (default 640x480)")
    ap.add_argument(
        "--cache", default=None, help="artefact cache folder (default $EDGECODEC_CACHE or ~/.cache/edgecodec)"
    )
    ap.add_argument(
        "--variant",
        default="cpu",
        choices=("cpu", "plain"),
        help="onnx: 'cpu' for ONNX Runtime on a CPU, 'plain' for trtexec and other runtimes",
    )
    ap.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16", "int8"),
        help="fp32 (default); tensorrt: fp16 engines; onnx: int8 decoders (the onnx-int8 backend)",
    )
    ap.add_argument("--force", action="store_true", help="rebuild even if the cached artefacts are up to date")
    ap.add_argument("--check", action="store_true", help="build nothing; exit 1 if an artefact is missing or stale")
    ap.add_argument("--no-verify", action="store_true", help="skip the comparison with eager torch")
    ap.add_argument(
        "--from-engines",
        metavar="DIR",
        help="tensorrt: import engines built by trtexec (encoder.plan, decoder-<l>.plan) instead of building",
    )
    args = ap.parse_args(argv)

    if args.precision == "int8" and args.variant != "cpu":
        raise ConfigError("--precision int8 is for --variant cpu (ONNX Runtime on a CPU), not --variant plain")
    allowed = {"onnx": ("fp32", "int8"), "tensorrt": ("fp32", "fp16")}[args.backend]
    if args.precision not in allowed:
        raise ConfigError(
            f"--precision {args.precision} is not for --backend {args.backend} (choose from {', '.join(allowed)})"
        )
    model = load_model(args.model)
    size = padded(parse_size(args.size), model.net.multiple)
    root = cache.cache_root(args.cache)
    print(
        f"model {model.name} ({model.fingerprint_hex}), frames {size[1]}x{size[0]} (padded to a multiple of "
        f"{model.net.multiple}), cache {root}"
    )
    try:
        if args.backend == "onnx":
            from edgecodec.runtime.onnx_backend import ensure_onnx

            _, report = ensure_onnx(
                model, root, args.variant, force=args.force, build=not args.check, precision=args.precision
            )
        else:
            from edgecodec.runtime.tensorrt_backend import ensure_tensorrt, import_engines

            if args.from_engines:
                report = import_engines(model, size, args.from_engines, root, args.precision)
            else:
                report = ensure_tensorrt(model, size, root, args.precision, force=args.force, build=not args.check)[1]
    except EdgecodecError as exc:
        if args.check:
            print(f"stale or missing: {exc}")
            return 1
        raise
    print("\n".join(report))
    if not args.no_verify and not args.check:
        if args.backend == "onnx":
            from edgecodec.runtime.onnx_backend import OnnxBackend

            _verify(model, OnnxBackend(model, cache_dir=root, variant=args.variant, precision=args.precision), size)
        else:
            from edgecodec.runtime.tensorrt_backend import TensorRTBackend

            trt = TensorRTBackend(model, "cuda", cache_dir=root, precision=args.precision)
            _verify(model, trt, size, "cuda")
    if args.backend == "onnx" and args.variant == "plain":
        from edgecodec.runtime.tensorrt_backend import trtexec_commands

        print("on the device, in the folder of these graphs (deploy/README.md), then import with --from-engines:")
        print("\n".join("  " + c for c in trtexec_commands(model.num_layers, size, model.net.multiple)))
    return 0


def _verify(model, other, size: tuple[int, int], device: str = "cpu") -> None:  # noqa: ANN001
    from edgecodec.runtime.parity import compare
    from edgecodec.runtime.torch_backend import TorchBackend

    result = compare(TorchBackend(model.net, device), other, synthetic_frame(size))
    print(
        f"check of {other.name} against eager torch on {device}, synthetic {size[1]}x{size[0]} frame (qerr differs by "
        f"at most {result.qerr_max_diff:.2e}):"
    )
    print("\n".join("  " + line for line in result.lines()))

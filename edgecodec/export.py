"""`edgecodec export`: build the ONNX graphs or TensorRT engines of a model into the artefact cache.

    edgecodec export --backend onnx --model hqa5 --size 640x480 [--cache DIR] [--variant cpu|plain]
    edgecodec export --backend tensorrt --model hqa5 --size 1280x720 [--precision fp16]
    edgecodec export --backend onnx --model hqa5 --check      # report, build nothing, exit 1 if anything is stale

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

from edgecodec.errors import ConfigError, EdgecodecError
from edgecodec.runtime import cache
from edgecodec.zoo import DEFAULT_MODEL, load_model


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (H, W)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise ConfigError(f"size must look like 640x480 (width x height), not {text!r}")
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
    ap = argparse.ArgumentParser(
        prog="edgecodec export",
        description=__doc__.splitlines()[0],
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
    ap.add_argument("--precision", default="fp32", choices=("fp32", "fp16"), help="tensorrt engine precision")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cached artefacts are up to date")
    ap.add_argument("--check", action="store_true", help="build nothing; exit 1 if an artefact is missing or stale")
    ap.add_argument("--no-verify", action="store_true", help="onnx: skip the comparison with eager torch")
    args = ap.parse_args(argv)

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

            _, report = ensure_onnx(model, root, args.variant, force=args.force, build=not args.check)
        else:
            from edgecodec.runtime.tensorrt_backend import ensure_tensorrt

            _, report = ensure_tensorrt(model, size, root, args.precision, force=args.force, build=not args.check)
    except EdgecodecError as exc:
        if args.check:
            print(f"stale or missing: {exc}")
            return 1
        raise
    print("\n".join(report))
    if args.backend == "onnx" and not args.no_verify and not args.check:
        _verify_onnx(model, root, args.variant, size)
    if args.backend == "onnx" and args.variant == "plain":
        m = model.net.multiple
        print(
            f"on the device: trtexec --onnx=encoder.onnx --fp16 --minShapes=frames:1x3x{m}x{m} "
            f"--optShapes=frames:1x3x{size[0]}x{size[1]} --maxShapes=frames:1x3x{max(size[0], 1088)}x"
            f"{max(size[1], 1920)} --saveEngine=encoder.plan   (see deploy/README.md)"
        )
    return 0


def _verify_onnx(model, root, variant: str, size: tuple[int, int]) -> None:  # noqa: ANN001
    from edgecodec.runtime.onnx_backend import OnnxBackend
    from edgecodec.runtime.parity import compare
    from edgecodec.runtime.torch_backend import TorchBackend

    result = compare(
        TorchBackend(model.net), OnnxBackend(model, cache_dir=root, variant=variant), synthetic_frame(size)
    )
    print(
        f"check against eager torch on a synthetic {size[1]}x{size[0]} frame (qerr differs by at most "
        f"{result.qerr_max_diff:.2e}):"
    )
    print("\n".join("  " + line for line in result.lines()))

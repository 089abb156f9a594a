"""The `edgecodec` console script: dispatches to one `main(argv)` per subcommand.

Every subcommand lives in its own module and can be called in-process by tests. Any
:class:`~edgecodec.errors.EdgecodecError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("edgecodec.demo", "main", "loopback sender + receiver on the shipped sample clip"),
    "send": ("edgecodec.sender", "main", "encode a camera, video or image source and stream it over ZeroMQ"),
    "receive": ("edgecodec.receiver", "main", "receive, decode and display / record a stream"),
    "keygen": ("edgecodec.transport", "main_keygen", "make a CURVE key pair for encrypted streams"),
    "encode": ("edgecodec.filecodec", "main_encode", "encode an image or video into an .ecz file"),
    "decode": ("edgecodec.filecodec", "main_decode", "decode an .ecz file into an image or video"),
    "info": ("edgecodec.filecodec", "main_info", "describe an .ecz file"),
    "train": ("edgecodec.train", "main", "train an HQA model greedily, layer by layer"),
    "eval": ("edgecodec.evaluate", "main", "rate-distortion table of a model against JPEG and WebP"),
    "models": ("edgecodec.zoo", "main_models", "list the shipped models"),
    "export": ("edgecodec.export", "main", "export a model for ONNX Runtime or TensorRT into the artefact cache"),
    "profile": ("edgecodec.profiling", "main", "per-stage and glass-to-glass latency of the whole pipeline"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: edgecodec COMMAND [options]   (edgecodec COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from edgecodec import __version__
    from edgecodec.errors import EdgecodecError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        print(f"edgecodec {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"edgecodec: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    from edgecodec.cliutil import TERMINATED

    try:
        status = int(getattr(importlib.import_module(module), func)(rest) or 0)
    except EdgecodecError as exc:
        print(f"edgecodec {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgecodec {name}: interrupted", file=sys.stderr)
        status = 130
    except BrokenPipeError:  # the reader of our output went away (edgecodec info ... | head): nothing more to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 128 + TERMINATED.pop() if status == 130 and TERMINATED else status


if __name__ == "__main__":
    sys.exit(main())

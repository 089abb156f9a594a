"""How long ``edgecodec --help`` and each command's ``--help`` take: ``python tools/bench_help.py [--repeats 5]``.

Each is run as a new process (the console script of this environment), as a user types it; the median and the fastest
of ``--repeats`` runs are printed, with the load average (issue 14: ``--help`` within 0.5 s, torch and the models
imported only where they are used).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ["", "send", "receive", "demo", "encode", "decode", "info", "models", "keygen", "profile", "export",
            "eval", "train"]  # fmt: skip


def timed(argv: list[str], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    script = shutil.which("edgecodec", path=str(Path(sys.executable).parent)) or "edgecodec"
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.repeats} runs each (median / fastest)")
    print(f"{'command':<28} {'median s':>9} {'fastest s':>10}")
    for command in COMMANDS:
        argv = [script, *([command] if command else []), "--help"]
        median, fastest = timed(argv, args.repeats)
        print(f"{'edgecodec ' + (command + ' ' if command else '') + '--help':<28} {median:>9.3f} {fastest:>10.3f}")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

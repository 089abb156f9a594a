"""10^4 packets of tools/fuzz_receiver.py (the full run is 10^6, by hand): mutated packets with valid CRCs, header
extremes, decode bombs and P-frames through the receiver's parse, budget, entropy and neural decode."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_receiver", REPO / "tools" / "fuzz_receiver.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_receiver"] = module
    spec.loader.exec_module(module)
    return module


def test_ten_thousand_fuzzed_packets_raise_only_typed_errors() -> None:
    report = _fuzzer().run(10_000, seed=12)
    assert report.packets == 10_000
    assert report.untyped == [], "\n".join(report.lines())
    assert report.outcomes["decoded"] > 0 and report.outcomes["DecodeBudgetError"] > 0
    assert report.outcomes["MissingReferenceError"] < report.packets  # P-frames were resolved against references

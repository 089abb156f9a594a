"""Recount a model's integer id priors on training images and save it with the same weights.

``python tools/recount_priors.py hqa5 --data ../shared/data/train --exclude ../shared/data/train/bsds500/test
--out models/hqa5``

Every image is encoded (torch, CPU unless ``--device``) and every layer's ids are counted with
:func:`edgecodec.train.count_ids`: the unigram table (``prior.{l}``) and the context prior's tables (``prior_mode.{l}``,
``prior_new.{l}``, ``prior_param.{l}``). The weights are written back unchanged (checked), so only the priors and
hence the fingerprint change. The model card keeps its other fields and gains a ``priors`` entry saying what was
counted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from edgecodec.data import list_images, read_rgb
from edgecodec.train import count_ids
from edgecodec.zoo import export_tensors, load_model, save_model

_DERIVED_CARD_KEYS = ("name", "fingerprint", "architecture")  # save_model writes these itself


def _folders(files: list[Path], roots: list[Path]) -> list[str]:
    out = set()
    for f in files:
        parent = f.resolve().parent
        rel = [parent.relative_to(r.resolve()) for r in roots if parent.is_relative_to(r.resolve())]
        out.add(str(rel[0]) if rel else parent.name)
    return sorted(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model name or path")
    ap.add_argument("--data", nargs="+", required=True, help="image folders (searched recursively)")
    ap.add_argument("--exclude", nargs="*", default=[], help="folders to leave out (e.g. validation images)")
    ap.add_argument("--out", required=True, help="output path without suffix (may be the model's own path)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    files = list_images(args.data, exclude=args.exclude)

    def images() -> Iterator[np.ndarray]:
        for f in files:
            yield read_rgb(f)

    t0 = time.time()
    counters = count_ids(model.net, images(), torch.device(args.device), args.quiet)
    seconds = time.time() - t0
    card = {k: v for k, v in model.card.items() if k not in _DERIVED_CARD_KEYS}
    card["priors"] = {
        "note": "id priors recounted by tools/recount_priors.py: unigram counts (prior.L) and the context prior's "
        "mode and NEW tables (prior_mode.L, prior_new.L, prior_param.L); weights unchanged",
        "previous_fingerprint": model.fingerprint_hex,
        "images": len(files),
        "folders": _folders(files, [Path(d) for d in args.data]),
        "excluded": _folders([Path(e) / "x" for e in args.exclude], [Path(d) for d in args.data]),
    }
    old_weights = export_tensors(model.net.cpu(), None)
    new = save_model(
        model.net.cpu(),
        args.out,
        priors=[c.unigram for c in counters],
        card=card,
        prior_tables=[c.tensors() for c in counters],
    )
    new_weights = export_tensors(new.net, None)
    if old_weights.keys() != new_weights.keys() or any(
        not np.array_equal(old_weights[k], new_weights[k]) for k in old_weights
    ):
        raise SystemExit(f"{args.out}: the weights changed on saving; refusing to use the result")
    print(
        f"{len(files)} images in {seconds:.0f} s; saved {args.out} fingerprint {new.fingerprint_hex} "
        f"(was {model.fingerprint_hex})"
    )
    print(f"{'layer':>5} {'ids':>10} {'NEW %':>6} {'copy %':>6}")
    for layer, c in enumerate(counters, start=1):
        total = int(c.unigram.sum())
        new_ids = int(c.new.sum())
        print(f"{layer:>5} {total:>10} {100 * new_ids / total:6.1f} {100 * (total - new_ids) / total:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

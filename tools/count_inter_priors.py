"""Count a model's inter prior (P-frame) tables on video clips and save it with the same weights.

``python tools/count_inter_priors.py hqa5-cpu --out models/hqa5-cpu --clips
DATA/video_train/static_bottles_640x360_1189f.mp4@0:595 DATA/video_train/static_parking_768x432_377f.mp4@0:189
DATA/video/solidWhiteRight.mp4 DATA/video/multiscene_qcif_176x144_1700f.264
DATA/video/static_videoconf_1280x720_19f.264``
(DATA: the data folder, ``../shared/data`` in the development checkout).

Each clip (``PATH@START:STOP`` keeps frames START..STOP-1) is encoded at its native size through every layer. At each
layer the frames are chained as the sender chains them: a keyframe every ``--keyframe-seconds`` of video, P-frames
in between, each P-frame's ids chosen by conditional replenishment against the previous frame's ids with
``--lambda`` (the NEW-id rate it charges comes from the layer's intra unigram table, since the inter tables do not
exist yet). :class:`edgecodec.coding.inter.InterCounter` counts every P-frame. The tables are stored as
``prior_inter_mode.L``, ``prior_inter_new.L`` and ``prior_inter_param.L`` beside the model's other priors; the weights
are written back unchanged (checked), so only the priors and hence the fingerprint change. The card records the clips.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgecodec.capture import VideoSource
from edgecodec.codec import Codec
from edgecodec.coding.gop import InterSettings
from edgecodec.coding.inter import DEFAULT_NEAR, InterCounter, inter_tables, near_codes
from edgecodec.coding.replenish import LayerCodes, replenish
from edgecodec.entropy import smooth_counts
from edgecodec.zoo import export_tensors, save_model

_DERIVED_CARD_KEYS = ("name", "fingerprint", "architecture")  # save_model writes these itself


def parse_clip(text: str) -> tuple[Path, int, int | None]:
    """``PATH[@START:STOP]`` -> (path, start, stop or None)."""
    path, _, span = text.partition("@")
    if not span:
        return Path(path), 0, None
    start, _, stop = span.partition(":")
    return Path(path), int(start or 0), int(stop) if stop else None


def layer_codes(codec: Codec, layer: int) -> LayerCodes:
    """The replenishment inputs of ``layer`` with NEW-id bits from the intra unigram table."""
    lyr = codec.model.net.layers[layer - 1]
    freqs = smooth_counts(codec.model.priors[layer - 1]).astype(np.float64)
    bits = -np.log2(freqs / freqs.sum())
    return LayerCodes(
        lyr.quantizer.codes.detach().cpu().float().numpy(),
        (1.0 / lyr.ze_std.detach().cpu().float()).numpy(),
        lambda ref, new: bits[new],
        float(bits.min()),
    )


def count_clip(
    codec: Codec, clip: str, counters: list[InterCounter], settings: InterSettings, quiet: bool
) -> dict[str, object]:
    path, start, stop = parse_clip(clip)
    layers = tuple(range(1, codec.num_layers + 1))
    codes = [layer_codes(codec, layer) for layer in layers]
    refs: list[np.ndarray | None] = [None] * codec.num_layers
    last_key = -np.inf
    used = 0
    with VideoSource(path, frames=stop) as source:
        fps = source.native_fps or 25.0
        for frame in tqdm(source, total=source.frames, desc=path.name, disable=quiet or None, leave=False):
            if frame.index < start:
                continue
            now = frame.index / fps
            code = codec.encode(frame.rgb, latents=layers)
            key = now - last_key >= settings.keyframe_seconds
            last_key = now if key else last_key
            for i, layer in enumerate(layers):
                best = code.ids[i]
                if key or refs[i] is None:
                    refs[i] = best
                    continue
                ids = replenish(best, refs[i], code.latents[layer], codes[i], settings.layer_lambda(layer)).ids
                counters[i].add(ids, refs[i])
                refs[i] = ids
            used += 1
    return {"clip": path.name, "frames": f"{start}:{start + used}", "fps": round(fps, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model name or path")
    ap.add_argument("--clips", nargs="+", required=True, metavar="PATH[@START:STOP]", help="video clips to count on")
    ap.add_argument("--out", required=True, help="output path without suffix (may be the model's own path)")
    ap.add_argument("--backend", default="auto", help="encoder backend (default auto)")
    defaults = InterSettings()
    ap.add_argument("--lambda", dest="lam", type=float, default=defaults.lam, help="replenishment lambda")
    ap.add_argument("--keyframe-seconds", type=float, default=defaults.keyframe_seconds)
    ap.add_argument("--block", type=int, default=4, help="tile side of the changed-tile flags (default 4)")
    ap.add_argument("--near", type=int, default=DEFAULT_NEAR, help=f"near codes per code (default {DEFAULT_NEAR})")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    codec = Codec(args.model, backend=args.backend)
    model = codec.model
    settings = InterSettings(True, args.keyframe_seconds, args.lam)
    counters = [
        InterCounter(c.codebook_size, args.block, near_codes(layer_codes(codec, i).codes, args.near))
        for i, c in enumerate(model.net.config.layers, start=1)
    ]
    t0 = time.time()
    clips = [count_clip(codec, clip, counters, settings, args.quiet) for clip in args.clips]
    seconds = time.time() - t0
    card = {k: v for k, v in model.card.items() if k not in _DERIVED_CARD_KEYS}
    card["inter_priors"] = {
        "note": "P-frame tables counted by tools/count_inter_priors.py (prior_inter_mode.L, prior_inter_new.L, "
        "prior_inter_near.L, prior_inter_rank.L, prior_inter_param.L); weights and intra priors unchanged",
        "command": "python tools/count_inter_priors.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "previous_fingerprint": model.fingerprint_hex,
        "clips": clips,
        "lambda": args.lam,
        "keyframe_seconds": args.keyframe_seconds,
        "p_frames_per_layer": counters[0].frames,
    }
    intra = [inter_tables(t)[0] for t in model.prior_tables] if model.prior_tables else [{}] * model.num_layers
    tables = [{**t, **c.tensors()} for t, c in zip(intra, counters, strict=True)]
    old_weights = export_tensors(model.net.cpu(), None)
    new = save_model(model.net.cpu(), args.out, priors=model.priors, card=card, prior_tables=tables)
    new_weights = export_tensors(new.net, None)
    if old_weights.keys() != new_weights.keys() or any(
        not np.array_equal(old_weights[k], new_weights[k]) for k in old_weights
    ):
        raise SystemExit(f"{args.out}: the weights changed on saving; refusing to use the result")
    print(f"{sum(int(c['frames'].split(':')[1]) - int(c['frames'].split(':')[0]) for c in clips)} frames of "
          f"{len(clips)} clips in {seconds:.0f} s; saved {args.out} fingerprint {new.fingerprint_hex} "
          f"(was {model.fingerprint_hex})")  # fmt: skip
    print(f"{'layer':>5} {'P-frames':>8} {'changed %':>9} {'copy %':>7} {'ranked %':>8} {'in full %':>9}")
    for layer, c in enumerate(counters, start=1):
        changed = max(c.changed, 1)
        ranked, full = int(c.rank[:-1].sum()), int(c.rank[-1])
        print(f"{layer:>5} {c.frames:>8} {100 * c.changed / max(c.positions, 1):9.3f} "
              f"{100 * (changed - ranked - full) / changed:7.1f} {100 * ranked / changed:8.1f} "
              f"{100 * full / changed:9.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`edgecodec train`: greedy HQA training, one layer at a time with the layers below frozen.

Each layer trains in two phases:
  1. Gumbel-softmax quantisation with the temperature annealed from 1 towards 0.1, a KL term to the uniform prior,
     a commitment term and dead-code reset (an unused code is moved onto a busy one plus noise).
  2. Decoder fine-tuning on the argmin codes that the device path uses (encoder and codebook frozen).

Runs on the CPU, on a GPU, or on several processes with ``torchrun`` (DDP; gloo on CPUs, nccl on GPUs).
Checkpoints are plain tensors (loaded with ``weights_only=True``); ``--resume`` continues where one stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from edgecodec.cliutil import ArgumentParser
from edgecodec.data import CropSampler, list_images, read_rgb, to_tensor
from edgecodec.errors import ConfigError
from edgecodec.nn import ARCHITECTURES, HQAStack, ModelConfig
from edgecodec.priors import PriorCounter
from edgecodec.zoo import save_model

FINETUNE_FRACTION = 0.15
DEAD_CODE_EVERY = 100
KL_WEIGHT = 1e-3
COMMIT_WEIGHT = 0.25
PIXEL_WEIGHT = 1.0  # layers > 1: MSE of pixels decoded through the frozen layers below ...
Z_WEIGHT = 0.1  # ... plus this much of the MSE of the reconstructed normalised z_e of the layer below


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.clamp(0, 1), b).item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


class Dist:
    """Rank, world size and device, from torchrun's environment when present."""

    def __init__(self, device_arg: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() if device_arg == "auto" else device_arg.startswith("cuda")
        self.device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
        if self.world > 1:
            dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t


def layer_schedule(values: Sequence[int], n: int, what: str) -> list[int]:
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise ConfigError(f"--{what}: give one value or one per layer ({n})")
    return list(values)


@torch.no_grad()
def init_codebook(net: HQAStack, layer: int, x: torch.Tensor, gen: torch.Generator) -> None:
    """Start the codebook on encoder outputs of real data (random positions)."""
    lyr = net.layers[layer - 1]
    lyr.quantizer.init_from(lyr.encode_ze(net.layer_input(x, layer)), gen)


def reset_dead_codes(net: HQAStack, layer: int, usage: torch.Tensor, gen: torch.Generator) -> int:
    """Move codes used less than 3% of the mean usage onto busy codes plus noise; returns how many moved."""
    return net.layers[layer - 1].quantizer.reset_dead(usage, gen)


def checkpoint_path(out: Path) -> Path:
    return out.parent / f"{out.name}.ckpt.pt"


def save_checkpoint(path: Path, net: HQAStack, opt: torch.optim.Optimizer, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
    tmp.replace(path)


@torch.no_grad()
def validate(net: HQAStack, images: list[np.ndarray], layer: int, device: torch.device) -> float:
    """Mean PSNR (dB) over ``images`` of the device path through ``layer``."""
    net.eval()
    vals = []
    for im in images:
        x = to_tensor(im).to(device)
        y = net.reconstruct(pad_to(x, net.multiple), layer)[..., : x.shape[-2], : x.shape[-1]]
        vals.append(psnr((y * 255).round() / 255, x))
    return float(np.mean(vals))


@torch.no_grad()
def count_ids(
    net: HQAStack, images: Iterable[np.ndarray], device: torch.device, quiet: bool = False
) -> list[PriorCounter]:
    """Per-layer statistics of the ids over whole training images: the integer priors of the entropy coder.

    ``counter.unigram`` is the static prior's table, ``counter.tensors()`` the context prior's tables (space-to-depth
    layers get period-2 contexts).
    """
    net.eval()
    counters = [PriorCounter(c.codebook_size, 2 if c.space_to_depth else 1) for c in net.config.layers]
    for im in tqdm(images, desc="priors", leave=False, disable=quiet):
        enc = net.encode(pad_to(to_tensor(im).to(device), net.multiple))
        for counter, ids in zip(counters, enc.ids, strict=True):
            for grid in ids.cpu().numpy():
                counter.add(grid)
    return counters


def train_layer(  # noqa: C901
    net, layer, sampler, args, d: Dist, ckpt, start_step, opt_state, pbar_desc, history: list | None = None,
    start_frac: float = 0.0,
) -> dict:
    """Train ``layer``; mid-layer checkpoints carry ``history`` (the results of the layers before), so that a
    resumed run still reports them, and the fraction of the schedule done (``start_frac`` when resumed: a run with
    --time-budget goes on with the time left). Ctrl-C saves a checkpoint at the current step."""
    lyr = net.layers[layer - 1]
    steps, crop, batch = args.steps[layer - 1], args.crop[layer - 1], args.batch
    budget = args.time_budget * steps / sum(args.steps) if args.time_budget else 0.0
    t_start = time.time() - start_frac * budget

    def progress(step: int) -> float:
        """Fraction of this layer's schedule done: by steps, or by time when --time-budget is set."""
        p = step / steps
        if budget:
            p = max(p, (time.time() - t_start) / budget)
        return min(p, 1.0)
    gen = np.random.default_rng([args.seed, d.rank, layer, start_step])
    tgen = torch.Generator().manual_seed(args.seed * 1000 + layer)
    for p in net.parameters():
        p.requires_grad_(False)

    def make_opt(finetune: bool) -> torch.optim.Optimizer:
        mods = [lyr.decoder] if finetune else [lyr]
        params = [p for m in mods for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        return torch.optim.Adam(params, lr=args.lr)

    finetune = progress(start_step) >= 1 - FINETUNE_FRACTION
    opt = make_opt(finetune)
    if opt_state is not None:
        try:
            opt.load_state_dict(opt_state)
        except ValueError:  # saved in the other phase (a resume with other --steps): a fresh optimiser state
            pass
    if start_step == 0:
        x0 = sampler.sample(max(batch, 16), crop, gen).to(d.device)
        init_codebook(net, layer, x0, tgen)
        for _ in range(20):  # settle the running z_e statistics before they are used
            net.train()
            net(x0, layer)
    if d.world > 1:
        for t in list(lyr.parameters()) + list(lyr.buffers()):
            dist.broadcast(t.data, 0)
    usage = torch.zeros(lyr.quantizer.groups, lyr.quantizer.sub_size, device=d.device)
    pbar = tqdm(desc=pbar_desc, disable=not d.main or args.quiet, initial=start_step, total=steps,
                dynamic_ncols=True, mininterval=2.0)
    shown_psnr = float("nan")
    step = start_step
    try:
        while (frac := progress(step)) < 1.0:
            if d.world > 1:  # every rank follows rank 0's clock, so that all of them switch phase together
                t = torch.tensor([frac], device=d.device)
                dist.broadcast(t, 0)
                frac = float(t)
            main_frac = frac / (1 - FINETUNE_FRACTION)
            if main_frac >= 1 and not finetune:
                finetune = True
                opt = make_opt(True)
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            x = sampler.sample(batch, crop, gen).to(d.device)
            net.train()
            if finetune:
                lyr.encoder.eval()
                lyr.quantizer.eval()
            lyr.quantizer.temperature = max(0.1, 0.1 ** min(1.0, main_frac))
            target = net.layer_input(x, layer)
            recon, ids, losses = net(x, layer)
            rec = F.mse_loss(recon, target) / target.var().detach().clamp_min(1e-6)
            loss = rec
            if layer > 1:  # pixel loss through the frozen decoders below (the continuous decode path)
                below = net.layers[layer - 2]
                pix = net.decode_from(F.normalize(below.denormalize(recon), dim=1), layer - 1, requantize=False)
                loss = PIXEL_WEIGHT * F.mse_loss(pix, x) / x.var().detach().clamp_min(1e-6) + Z_WEIGHT * rec
            if not finetune:
                loss = loss + KL_WEIGHT * losses["kl"] + COMMIT_WEIGHT * losses["commit"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for g in opt.param_groups for p in g["params"]]
            if d.world > 1:
                for p in params:
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= d.world
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if not finetune:
                usage += lyr.quantizer.usage(ids)
                if (step + 1) % DEAD_CODE_EVERY == 0:
                    if main_frac < 0.8:
                        reset_dead_codes(net, layer, d.all_sum(usage), tgen)
                    usage.zero_()
            if d.main and step % 50 == 0:
                with torch.no_grad():
                    net.eval()
                    shown_psnr = psnr(net.reconstruct(x[:8], layer), x[:8])
                tau = lyr.quantizer.temperature
                pbar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{shown_psnr:.2f}", tau=f"{tau:.2f}")
            if d.main and ckpt is not None and (step + 1) % args.ckpt_every == 0:
                save_checkpoint(ckpt, net, opt, {"layer": layer, "step": step + 1, "frac": progress(step + 1),
                                             "history": json.dumps(history or [])})  # fmt: skip
            step += 1
            pbar.update(1)
    except KeyboardInterrupt:  # Ctrl-C: a resumable checkpoint, then the interrupt goes on (exit 130)
        if d.main and ckpt is not None:
            save_checkpoint(ckpt, net, opt, {"layer": layer, "step": step, "frac": progress(step),
                                             "history": json.dumps(history or [])})  # fmt: skip
            pbar.close()
            print(f"interrupted at layer {layer}, step {step}: saved {ckpt}; run the same command with --resume "
                  "to go on", file=sys.stderr)  # fmt: skip
        raise
    pbar.close()
    if step == start_step and d.main:
        print(f"warning: layer {layer} trained 0 steps (--time-budget too short for it): it keeps its initial "
              "weights", file=sys.stderr)  # fmt: skip
    return {"layer": layer, "steps": step, "train_psnr": None if math.isnan(shown_psnr) else shown_psnr}


def init_from(net: HQAStack, model: str, start_layer: int) -> None:
    """Copy the layers below ``start_layer`` from a saved model (their architectures must match)."""
    from edgecodec.zoo import load_model

    src = load_model(model).net
    for i in range(start_layer - 1):
        if i >= src.num_layers or src.config.layers[i] != net.config.layers[i]:
            raise ConfigError(f"--init {model}: layer {i + 1} does not match the architecture being trained")
        net.layers[i].load_state_dict(src.layers[i].state_dict())


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and the default of every option that has one in its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        has_default = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if has_default and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="edgecodec train", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of training images (recursive)")
    ap.add_argument("--val", nargs="*", default=[], metavar="DIR",
                    help="validation folders: excluded from training, used to report PSNR per layer")
    ap.add_argument("--out", required=True, help="output model path without suffix, e.g. models/mymodel")
    ap.add_argument("--arch", default="default",
                    help=f"{', '.join(ARCHITECTURES)}, or a JSON file with a model config")
    ap.add_argument("--steps", type=int, nargs="+", default=[4000], help="steps per layer (one value or one per layer)")
    ap.add_argument("--crop", type=int, nargs="+", default=[128, 128, 256, 256, 256], help="crop size per layer")
    ap.add_argument("--batch", type=int, default=16, help="batch per process")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine schedule down to 0.1x)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of crops, codebook init and dead-code resets")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--resume", action="store_true", help="continue from OUT.ckpt.pt")
    ap.add_argument("--time-budget", type=float, default=0.0, metavar="SECONDS",
                    help="train for about this many seconds in all; layers share it in proportion to --steps, and "
                         "schedules follow the clock")
    ap.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints (OUT.ckpt.pt; Ctrl-C "
                    "also saves one)")
    ap.add_argument("--init", metavar="MODEL", help="start from this model's weights (layers that fit)")
    ap.add_argument("--start-layer", type=int, default=1, help="train from this layer on (the ones below stay as "
                    "initialised by --init)")
    ap.add_argument("--max-images", type=int, default=0, help="use at most this many training images (0 = all)")
    ap.add_argument("--val-images", type=int, default=50, help="validation images used per layer")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def load_arch(spec: str) -> ModelConfig:
    if spec in ARCHITECTURES:
        return ARCHITECTURES[spec]()
    try:
        return ModelConfig.from_dict(json.loads(Path(spec).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--arch {spec!r}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_arch(args.arch)
    n = len(config.layers)
    args.steps = layer_schedule(args.steps, n, "steps")
    args.crop = layer_schedule(args.crop[:n] if len(args.crop) > n else args.crop, n, "crop")
    for c in args.crop:
        if c % 2**n:
            raise ConfigError(f"--crop {c} must be a multiple of {2**n} for a {n}-layer model")
    d = Dist(args.device)
    torch.manual_seed(args.seed)
    files = list_images(args.data, exclude=args.val)
    if args.max_images:
        files = files[: args.max_images]
    val_files = list_images(args.val)[: args.val_images] if args.val else []
    images = [read_rgb(p) for p in tqdm(files, desc="loading", disable=not d.main or args.quiet, leave=False)]
    val_images = [read_rgb(p) for p in val_files]
    sampler = CropSampler(images, d.device)
    net = HQAStack(config).to(d.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_path(out) if d.main else None
    start_layer, start_step, opt_state, history, start_frac = args.start_layer, 0, None, [], 0.0
    if args.init:
        init_from(net, args.init, args.start_layer)
    if args.resume and checkpoint_path(out).is_file():
        saved = torch.load(checkpoint_path(out), map_location=d.device, weights_only=True)
        net.load_state_dict(saved["model"])
        start_layer, start_step = saved["state"]["layer"], saved["state"]["step"]
        history = json.loads(saved["state"].get("history", "[]"))
        opt_state = saved["opt"] if start_step else None
        start_frac = float(saved["state"].get("frac", 0.0))
        if d.main:
            print(f"resuming at layer {start_layer}, step {start_step}")
    t0 = time.time()
    for layer in range(start_layer, n + 1):
        res = train_layer(net, layer, sampler, args, d, ckpt, start_step, opt_state, f"layer {layer}/{n}", history,
                          start_frac)  # fmt: skip
        start_step, opt_state, start_frac = 0, None, 0.0
        if val_images:
            res["val_psnr"] = validate(net, val_images, layer, d.device)
        history.append(res)
        if d.main:
            print(json.dumps(res))
            if ckpt is not None:
                save_checkpoint(ckpt, net, torch.optim.SGD([torch.zeros(1)]),
                                {"layer": layer + 1, "step": 0, "history": json.dumps(history)})
    if d.main:
        counters = count_ids(net, images, d.device, args.quiet)
        roots = [Path(p) for p in args.data]
        sources = sorted({str(f.parent.relative_to(r)) if f.is_relative_to(r) else f.parent.name
                          for f in files for r in roots if f.is_relative_to(r)} or {f.parent.name for f in files})
        card = {
            "training": {"images": len(files), "folders": sources, "validation_images": len(val_files),
                         "steps_per_layer": args.steps, "crop": args.crop, "batch": args.batch * d.world,
                         "seed": args.seed, "seconds": round(time.time() - t0, 1), "history": history},
        }
        model = save_model(net.cpu(), out, priors=[c.unigram for c in counters], card=card,
                           prior_tables=[c.tensors() for c in counters])
        print(f"saved {out}.safetensors  fingerprint {model.fingerprint_hex}")
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0

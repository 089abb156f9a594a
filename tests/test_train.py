"""Training: a short greedy run on CPU, checkpoints and resume, and the DDP path on 2 gloo processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import read_until

from edgecodec.errors import ConfigError
from edgecodec.train import main as train
from edgecodec.zoo import load_model

ARGS = ["--arch", "tiny", "--crop", "32", "--batch", "4", "--quiet", "--seed", "1"]


def test_tiny_training_run_writes_a_loadable_model_with_priors(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    assert train(["--data", str(image_dir), "--out", str(out), "--steps", "30", *ARGS]) == 0
    m = load_model(out.with_suffix(".safetensors"))
    assert m.num_layers == 3 and len(m.priors) == 3
    assert all(int(p.sum()) > 0 for p in m.priors)
    card = json.loads(out.with_suffix(".json").read_text())
    hist = card["training"]["history"]
    assert [h["layer"] for h in hist] == [1, 2, 3] and all(h["steps"] == 30 for h in hist)
    assert str(tmp_path) not in json.dumps(card), "no machine paths in the model card"


def test_training_improves_on_the_first_steps(image_dir: Path, tmp_path: Path) -> None:
    """PSNR through layer 1 on the validation folder rises with training (real learning, not a stub)."""
    short, longer = tmp_path / "a", tmp_path / "b"
    common = ["--data", str(image_dir), "--val", str(image_dir / "im0.png"), *ARGS, "--lr", "1e-2", "--batch", "8"]
    train([*common, "--out", str(short), "--steps", "2", "2", "2"])
    train([*common, "--out", str(longer), "--steps", "150", "2", "2"])
    hist_a = json.loads(short.with_suffix(".json").read_text())["training"]["history"]
    hist_b = json.loads(longer.with_suffix(".json").read_text())["training"]["history"]
    assert hist_b[0]["val_psnr"] > hist_a[0]["val_psnr"] + 2.0


def test_resume_continues_from_the_checkpoint(image_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    common = ["--data", str(image_dir), "--out", str(out), *ARGS, "--ckpt-every", "5"]
    train([*common, "--steps", "10"])
    ckpt = tmp_path / "r.ckpt.pt"
    assert ckpt.is_file()
    state = torch.load(ckpt, weights_only=True)["state"]
    assert state["layer"] == 4  # all three layers done
    capsys.readouterr()
    train([*common, "--steps", "10", "--resume"])
    assert "resuming at layer 4" in capsys.readouterr().out


def test_a_run_resumed_inside_a_layer_keeps_the_history_of_the_layers_before(
    image_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import edgecodec.train as train_mod

    class Stop(Exception):
        pass

    real_save = train_mod.save_checkpoint

    def save_then_stop(path, net, opt, state) -> None:  # noqa: ANN001
        real_save(path, net, opt, state)
        if state["layer"] == 2 and state["step"] == 5:  # killed inside layer 2
            raise Stop

    out = tmp_path / "h"
    common = ["--data", str(image_dir), "--out", str(out), *ARGS, "--ckpt-every", "5", "--steps", "8"]
    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_stop)
    with pytest.raises(Stop):
        train(common)
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    train([*common, "--resume"])
    hist = json.loads(out.with_suffix(".json").read_text())["training"]["history"]
    assert [h["layer"] for h in hist] == [1, 2, 3] and hist[0]["steps"] == 8


def test_bad_arguments_are_config_errors(image_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--steps"):
        train(["--data", str(image_dir), "--out", str(tmp_path / "x"), "--arch", "tiny", "--steps", "1", "2"])
    with pytest.raises(ConfigError, match="multiple of 8"):
        train(["--data", str(image_dir), "--out", str(tmp_path / "x"), "--arch", "tiny", "--crop", "30"])


def test_ddp_with_two_gloo_processes(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "edgecodec",
        "train",
        "--data",
        str(image_dir),
        "--out",
        str(out),
        "--steps",
        "8",
        "--device",
        "cpu",
        *ARGS,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    m = load_model(out.with_suffix(".safetensors"))
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["batch"] == 8  # 2 processes x 4
    assert m.num_layers == 3


def test_ctrl_c_saves_a_checkpoint_that_resume_goes_on_from(image_dir: Path, tmp_path: Path) -> None:
    """Issue 14: Ctrl-C during training saves a resumable checkpoint at the current step and exits 130."""
    import signal
    import time

    out = tmp_path / "c"
    argv = [sys.executable, "-m", "edgecodec", "train", "--data", str(image_dir), "--out", str(out), "--arch", "tiny",
            "--crop", "32", "--batch", "4", "--seed", "1", "--steps", "100000", "1", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        read_until(proc.stderr, "layer 1/3", lines=50)  # the first progress line: training has started
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at layer 1" in err and "--resume" in err
    state = torch.load(tmp_path / "c.ckpt.pt", weights_only=True)["state"]
    assert state["layer"] == 1 and state["step"] > 0
    resumed = subprocess.run([*argv[:-3], "1", "1", "1", "--resume", "--quiet"], capture_output=True, text=True,
                             timeout=300, env=env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at layer 1, step {state['step']}" in resumed.stdout
    assert load_model(out.with_suffix(".safetensors")).num_layers == 3

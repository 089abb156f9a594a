"""Model files: safetensors + card, fingerprints, lookup by name or path, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecodec.cli import main as cli
from edgecodec.errors import ModelError
from edgecodec.nn import HQAStack, tiny_config
from edgecodec.zoo import load_model, save_model


def _saved(tmp_path: Path):
    torch.manual_seed(0)
    net = HQAStack(tiny_config())
    priors = [np.arange(c.codebook_size, dtype=np.int64) for c in net.config.layers]
    return net, save_model(net, tmp_path / "m", priors=priors, card={"note": "test"})


def test_save_load_round_trip(tmp_path: Path) -> None:
    net, m = _saved(tmp_path)
    again = load_model(tmp_path / "m.safetensors")
    assert again.fingerprint == m.fingerprint and len(again.fingerprint) == 8
    assert [p.tolist() for p in again.priors] == [p.tolist() for p in m.priors]
    x = torch.rand(1, 3, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(m.net.encode(x).ids, again.net.encode(x).ids, strict=True))
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["fingerprint"] == m.fingerprint_hex and card["note"] == "test"
    assert card["architecture"]["layers"][0]["codebook_size"] == 64


def test_fingerprint_covers_weights_and_priors(tmp_path: Path) -> None:
    net, m = _saved(tmp_path)
    m2 = save_model(net, tmp_path / "m2", priors=[p + 1 for p in m.priors])
    assert m2.fingerprint != m.fingerprint
    with torch.no_grad():
        net.layers[0].quantizer.codebook[0, 0] += 1.0
    m3 = save_model(net, tmp_path / "m3", priors=m.priors)
    assert m3.fingerprint != m.fingerprint


def test_load_by_name_from_models_dir(tmp_path: Path, monkeypatch) -> None:
    _saved(tmp_path)
    monkeypatch.setenv("EDGECODEC_MODELS", str(tmp_path))
    assert load_model("m").name == "m"
    assert load_model("hqa5").num_layers >= 5


def test_missing_model_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="no model named 'nope'"):
        load_model("nope")


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    _saved(tmp_path)
    data = (tmp_path / "m.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError):
            load_model(bad)


def test_foreign_safetensors_file_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ModelError, match="not an edgecodec model"):
        load_model(tmp_path / "foreign.safetensors")


def test_tampered_weights_fail_the_fingerprint(tmp_path: Path) -> None:
    _saved(tmp_path)
    data = bytearray((tmp_path / "m.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "t.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="fingerprint mismatch"):
        load_model(tmp_path / "t.safetensors")


def test_models_command_lists_the_shipped_model(capsys) -> None:
    assert cli(["models"]) == 0
    out = capsys.readouterr().out
    assert "hqa5 " in out and "(default: files, eval, a GPU)" in out
    assert "hqa5-cpu" in out and "(default: streaming on a CPU)" in out


def test_cli_reports_bad_model_in_one_line(capsys, tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    assert cli(["eval", "--model", str(tmp_path / "x.safetensors"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err

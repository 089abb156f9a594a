"""Rate presets: shipped files load, bad files name the offending key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgecodec.config import RateConfig, load_rate_config, preset_names
from edgecodec.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "x.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", ["quality", "balanced", "low-bandwidth", "fixed"])
def test_shipped_presets_load_and_fit_5_and_6_layers(name: str) -> None:
    assert name in preset_names()
    config = load_rate_config(name)
    assert config.name == name and config.description
    for layers in (5, 6):
        finest, coarsest = config.check_layers(layers)
        assert 1 <= finest <= coarsest <= layers


def test_fixed_preset_is_one_layer() -> None:
    config = load_rate_config("fixed")
    assert config.fixed_layer is not None
    assert config.check_layers(6) == (config.fixed_layer, config.fixed_layer)


def test_kbps_override_and_unlimited() -> None:
    assert load_rate_config("quality").unlimited
    config = load_rate_config("quality", kbps=250)
    assert config.kbps == 250 and not config.unlimited
    with pytest.raises(ConfigError, match="'kbps' must be >= 0"):
        load_rate_config("balanced", kbps=-1)


def test_path_and_inf_thresholds(tmp_path: Path) -> None:
    config = load_rate_config(write(tmp_path, "qerr_thresholds = [inf, 0.1, 0.2]\nkbps = 100\nmax_layer = 4\n"))
    assert config.name == "x" and config.qerr_thresholds == (math.inf, 0.1, 0.2)
    assert config.check_layers(5) == (1, 4)
    assert config.threshold(4) == -math.inf  # no threshold: reached only under budget pressure


@pytest.mark.parametrize(
    "text, message",
    [
        ("qerr_thresholds = [0.1]\nfoo = 1\n", "rate config 'x.toml': unknown key 'foo'"),
        ("qerr_thresholds = [0.1]\nkbps = -5\n", "rate config 'x.toml': 'kbps' must be >= 0"),
        ("qerr_thresholds = [0.1]\nkbps = 'fast'\n", "'kbps' must be a number"),
        ("qerr_thresholds = [0.1]\nmin_layer = 0\n", "'min_layer' must be between 1 and 16"),
        ("qerr_thresholds = [0.1]\nmin_layer = 1.5\n", "'min_layer' must be an integer"),
        ("qerr_thresholds = [0.1]\nhold_frames = true\n", "'hold_frames' must be an integer"),
        ("qerr_thresholds = [0.1]\nmin_layer = 3\nmax_layer = 2\n", "'max_layer' \\(2\\) must be >= 'min_layer'"),
        ("qerr_thresholds = [0.1, -1]\n", "'qerr_thresholds' entry 2 must be >= 0"),
        ("qerr_thresholds = [0.1, nan]\n", "'qerr_thresholds' entry 2"),
        ("qerr_thresholds = 0.1\n", "'qerr_thresholds' must be a list"),
        ("kbps = 10\n", "'qerr_thresholds' is required"),
        ("qerr_thresholds = [0.1]\nbucket_seconds = 0\n", "'bucket_seconds' must be in"),
        ("qerr_thresholds = [0.1]\nqerr_margin = 1.0\n", "'qerr_margin' must be in"),
        ("fixed_layer = 3\nmax_layer = 2\n", "'fixed_layer' \\(3\\) lies outside"),
        ("qerr_thresholds = [0.1\n", "not valid TOML"),
        ("qerr_thresholds = [0.1]\nmodel_qerr_thresholds = 3\n", "'model_qerr_thresholds' must be a table"),
        ("qerr_thresholds = [0.1]\n[model_qerr_thresholds]\nm = 0.2\n", "'model_qerr_thresholds.m' must be a list"),
        ("qerr_thresholds = [0.1]\n[model_qerr_thresholds]\nm = [0.1, -2]\n", "'model_qerr_thresholds.m' entry 2"),
        ("fixed_layer = 3\ninter = 1\n", "'inter' must be true or false"),
        ("fixed_layer = 3\nkeyframe_seconds = 0\n", "'keyframe_seconds' must be in"),
        ("fixed_layer = 3\nkeyframe_seconds = inf\n", "'keyframe_seconds' must be in"),
        ("fixed_layer = 3\nreplenish_lambda = -0.1\n", "'replenish_lambda' must be in"),
        ("fixed_layer = 3\nreplenish_lambda = 'x'\n", "'replenish_lambda' must be a number"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_rate_config(write(tmp_path, text))


def test_thresholds_calibrated_for_another_model(tmp_path: Path) -> None:
    text = "qerr_thresholds = [inf, 0.1]\nkbps = 50\n[model_qerr_thresholds]\nsmall = [inf, 0.3, 0.4]\n"
    config = load_rate_config(write(tmp_path, text))
    small = config.for_model("small")
    assert small.qerr_thresholds == (math.inf, 0.3, 0.4) and small.kbps == 50
    assert config.for_model("other") is config  # no row of its own: the preset's thresholds


def test_unknown_preset_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown rate preset 'nope'.*balanced"):
        load_rate_config("nope")
    with pytest.raises(ConfigError, match="cannot read"):
        load_rate_config(str(tmp_path / "missing.toml"))


def test_check_layers_against_model() -> None:
    config = RateConfig(qerr_thresholds=(0.1,), min_layer=2, max_layer=6)
    assert config.check_layers(6) == (2, 6)
    with pytest.raises(ConfigError, match="'max_layer' is 6 but the model has only 5 layers"):
        config.check_layers(5)


def test_config_is_frozen() -> None:
    config = load_rate_config("balanced")
    with pytest.raises(AttributeError):
        config.kbps = 1  # type: ignore[misc]


def test_inter_settings(tmp_path: Path) -> None:
    config = load_rate_config(write(tmp_path, "fixed_layer = 2\nkeyframe_seconds = 0.5\nreplenish_lambda = 0.2\n"))
    settings = config.inter_settings()
    assert (settings.enabled, settings.keyframe_seconds, settings.lam) == (True, 0.5, 0.2)
    assert not config.inter_settings(intra_only=True).enabled
    assert not load_rate_config(write(tmp_path, "fixed_layer = 2\ninter = false\n")).inter_settings().enabled
    for name in preset_names():  # the shipped presets send P-frames, a keyframe at least every 2 s
        shipped = load_rate_config(name).inter_settings()
        assert shipped.enabled and shipped.keyframe_seconds <= 2.0

"""The configs/lightly training scripts run end to end on generated scenes (tiny settings)."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "lightly"


@pytest.fixture()
def configs_on_path():
    sys.path.insert(0, str(CONFIGS))
    try:
        yield
    finally:
        sys.path.remove(str(CONFIGS))


TINY = ["--generate", "16", "--epochs", "2", "--batch-size", "8", "--warmup-epochs", "1", "--interval", "1"]


@pytest.mark.parametrize("script", ["simclr_ccrop", "moco_v2_ccrop"])
def test_script_trains_and_refreshes(script, configs_on_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Lightning writes its logs to the working directory
    module = importlib.import_module(script)
    # The standard stem at 32 px leaves layer4 at 1 x 1: localize at layer3 (2 x 2), no warning.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*(1 x 1|1x1|never refreshes|fell back).*")
        result = module.main([str(tmp_path / "scenes"), *TINY, "--no-cifar-stem", "--input-size", "32",
                              "--stages", "layer3"])
    assert result["store_version"] == 1  # one refresh, after epoch 0 of 2
    assert result["loss"] == result["loss"]  # not NaN


def test_cifar10_preset_sets_the_papers_values_and_flags_win(configs_on_path):
    options = importlib.import_module("training_options")
    parser = options.build_parser("x", temperature=0.5)
    args = options.parse(parser, ["folder", "--preset", "cifar10", "--epochs", "3"])
    assert (args.batch_size, args.warmup_epochs, args.interval, args.threshold, args.alpha) == (512, 100, 100, 0.1, 0.1)
    assert (args.lr, args.weight_decay, args.cifar_stem, args.normalize) == (0.5, 1e-4, True, "cifar")
    assert args.epochs == 3
    assert (args.stages, args.heatmap) == (None, "channel_sum")  # the paper's: the last stage's channel sum


def test_small_image_defaults_are_the_measured_setting(configs_on_path):
    options = importlib.import_module("training_options")
    args = options.parse(options.build_parser("x", temperature=0.5), ["folder"])
    assert (args.stages, args.heatmap, args.threshold) == (["layer2"], "distinctiveness", "otsu")
    args = options.parse(options.build_parser("x", temperature=0.5), ["folder", "--stages", "last", "--threshold", "0.1"])
    assert (args.stages, args.threshold) == (None, 0.1)

"""``ccrop bench pairs --quick`` end to end: real SimCLR pre-training, figures in range, the goals."""

from __future__ import annotations

import json

import pytest

from ccrop_cli.main import main

FIGURES = ("false_positive_rate", "object_coverage", "pair_spread", "object_share")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "pairs.json"
    assert main(["bench", "pairs", "--quick", "--seed", "0", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_figure_is_a_fraction(quick_results):
    settings = quick_results["settings"]
    assert set(settings) == {"single-object, medium", "multi-object, small"}
    for entry in settings.values():
        sources = ["oracle", "model k=0.1", "model k=0.5"]
        assert set(sources) <= set(entry)
        for source in sources:
            assert set(entry[source]) == {"rrc", "paper", "multi", "multi-box"}
            for figures in entry[source].values():
                assert figures["pairs"] == entry["images"] * 4
                for name in FIGURES:
                    assert 0.0 <= figures[name] <= 1.0, (source, name, figures[name])
        for by_localizer in entry["model_boxes"].values():
            assert set(by_localizer) == {"bbox", "components"}
            for figures in by_localizer.values():
                assert 0.0 <= figures["box_recall@0.5"] <= 1.0
                assert 1.0 <= figures["mean_boxes"] <= 4.0


def test_goals_hold_on_multi_object_scenes_with_oracle_boxes(quick_results):
    oracle = quick_results["settings"]["multi-object, small"]["oracle"]
    fp = {name: figures["false_positive_rate"] for name, figures in oracle.items()}
    share = {name: figures["object_share"] for name, figures in oracle.items()}
    assert fp["multi"] <= fp["rrc"] / 2
    assert fp["multi"] < fp["paper"]
    assert share["multi-box"] >= 2 * share["rrc"]
    assert all(quick_results["goals"].values())


def test_rrc_does_not_depend_on_the_box_source(quick_results):
    # Same seed, boxes ignored: the oracle and model rows of RandomResizedCrop are the same pairs.
    for entry in quick_results["settings"].values():
        assert entry["oracle"]["rrc"] == entry["model k=0.1"]["rrc"]


def test_bad_threshold_is_rejected_before_any_work(capsys):
    assert main(["bench", "pairs", "--quick", "--thresholds", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == "ccrop bench pairs: error: --thresholds must lie in [0, 1); got [1.5]"


def test_quick_keeps_the_sizes_given_explicitly():
    # --quick --epochs 3 trained 1 epoch (and capped --images at 64, --pairs-per-image at 4, --batch-size at 32)
    # without a word; ccrop demo, study and bench localize keep an explicit size over --quick.
    import argparse

    from ccrop_cli.bench import pairs

    parser = argparse.ArgumentParser()
    pairs.add_arguments(parser)
    args = parser.parse_args(["--quick", "--epochs", "3", "--images", "100", "--pairs-per-image", "6"])
    pairs._check_arguments(args)
    assert (args.epochs, args.images, args.pairs_per_image, args.batch_size) == (3, 100, 6, 32)
    args = parser.parse_args([])
    pairs._check_arguments(args)
    assert (args.epochs, args.images, args.pairs_per_image, args.batch_size) == (4, 256, 8, 128)

"""``ccrop demo --quick`` end to end through the CLI entry point: pictures decode, numbers are sane."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from ccrop_cli.main import main
from ccrop_cli.output.image_folder import list_image_files

PICTURES = ("heatmaps.png", "box_sets.png", "paper_boxes.png", "view_pairs.png", "view_pairs_oracle.png")


def _fractions(report: dict) -> list[float]:
    values = [report["seconds"]["refresh_share"]]
    for refresh in report["refreshes"]:
        values += [
            refresh["box_recall"], refresh["box_precision"], refresh["mean_box_area"], refresh["fallback_fraction"]
        ]
    values += list(report["final_box_recall"].values())
    for strategy in report["pair_quality"].values():
        for source in ("oracle", "predicted"):
            values += [v for k, v in strategy[source].items() if k != "pairs"]
    return values


@pytest.mark.slow
def test_quick_demo_writes_pictures_and_a_sane_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    for name in PICTURES:
        with Image.open(out / name) as picture:
            picture.load()  # decodes the whole file
            assert picture.width > 200 and picture.height > 100
    report = json.loads((out / "report.json").read_text())
    assert report["framework"] == "lightly"
    # 2 epochs with 1 warm-up epoch: exactly one refresh, after epoch 1.
    assert [r["epoch"] for r in report["refreshes"]] == [1]
    fractions = _fractions(report)
    assert fractions and all(0.0 <= v <= 1.0 for v in fractions), fractions
    assert report["refreshes"][0]["mean_boxes"] >= 1.0
    seconds = report["seconds"]
    assert seconds["training"] > 0 and seconds["refreshes"] > 0 and math.isfinite(seconds["total"])
    assert set(report["pair_quality"]) == {"rrc", "paper", "multi", "multi-box"}
    # With ground-truth boxes the box sets make (almost) no false-positive pair; RRC makes some.
    quality = report["pair_quality"]
    assert quality["multi"]["oracle"]["false_positive_rate"] < quality["rrc"]["oracle"]["false_positive_rate"]
    markdown = (out / "report.md").read_text()
    assert "Box recall" in markdown and "Pair quality" in markdown
    assert "report" in capsys.readouterr().out
    # The final box store, keyed by file name in the store's index order (the folder's order), drawn by ccrop viz.
    boxes = json.loads((out / "boxes.json").read_text())
    assert list(boxes["samples"]) == list_image_files(out / "data" / "train") and boxes["store_version"] == 1
    assert main(["viz", str(out / "data" / "train"), "--boxes", str(out / "boxes.json"), "--out", str(out / "viz"),
                 "--images", "4", "--pair-images", "1", "--pairs", "1"]) == 0
    assert "ccrop viz: 64 images, box store version 1" in capsys.readouterr().out


def test_demo_rejects_a_schedule_without_a_refresh(tmp_path, capsys):
    assert main(["demo", "--quick", "--warmup-epochs", "2", "--out", str(tmp_path)]) == 2
    assert "ccrop demo: error: --epochs 2 must exceed --warmup-epochs 2" in capsys.readouterr().err


def test_demo_rejects_an_unknown_framework(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--framework", "keras", "--out", str(tmp_path)])
    assert "invalid choice: 'keras'" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_demo_through_the_mmengine_runner(tmp_path):
    out = tmp_path / "demo_mm"
    assert main(["demo", "--quick", "--framework", "mmpretrain", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["framework"] == "mmpretrain"
    assert [r["epoch"] for r in report["refreshes"]] == [1]  # the hook refreshed once, after epoch 1
    assert all(0.0 <= v <= 1.0 for v in _fractions(report))
    for name in PICTURES:
        with Image.open(out / name) as picture:
            picture.load()

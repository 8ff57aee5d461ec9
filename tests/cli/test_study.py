"""``ccrop study --quick``: every setting x strategy runs, is evaluated and reported."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ccrop_cli.main import main
from ccrop_cli.experiment.strategies import STRATEGIES


@pytest.mark.slow
def test_quick_study_runs_every_strategy_and_writes_table_and_plots(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "--quick", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert {(r["setting"], r["strategy"]) for r in runs} == {
        (setting, strategy) for setting in ("single", "multi-small") for strategy in STRATEGIES
    }
    for run in runs:
        assert 0.0 <= run["linear"] <= 1.0 and 0.0 <= run["knn"] <= 1.0
        assert run["train_seconds"] > 0
        # rrc never refreshes; the others refresh once (2 epochs, 1 warm-up epoch).
        assert len(run["refreshes"]) == (0 if run["strategy"] == "rrc" else 1)
        for refresh in run["refreshes"]:
            assert 0.0 <= refresh["box_recall"] <= 1.0 and 0.0 <= refresh["false_positive_rate"] <= 1.0
    table = (out / "results.md").read_text()
    # 4 strategies and the untrained backbone per setting.
    assert table.count("\n| single |") == 5 and table.count("\n| multi-small |") == 5
    assert "random init" in table and len(results["random_init"]) == 2
    for name in ("accuracy.png", "box_recall.png", "false_positive_rate.png"):
        with Image.open(out / name) as picture:
            picture.load()
    # A second call resumes: nothing is re-trained, the report is rewritten from results.json.
    (out / "results.md").unlink()
    assert main(["study", "--quick", "--out", str(out), "--report-only"]) == 0
    assert (out / "results.md").read_text() == table


def test_study_rejects_a_batch_larger_than_the_dataset(tmp_path):
    with pytest.raises(ValueError, match="--batch-size 64 exceeds --train-images 32"):
        main(["study", "--quick", "--batch-size", "64", "--out", str(tmp_path)])

"""Faults of the study, bench and viz commands found by probing main in session 23: each test fails on the code before.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

import ccrop_cli.main as ccrop_main
from ccrop_cli.main import main
from ccrop_cli.output.box_json import export_boxes
from ccrop_cli.output.image_folder import list_image_files
from ccrop_cli.study.command import add_arguments, config_from_args
from ccrop_cli.study.config import PRESETS, StudyConfig
from ccrop_cli.study.report import write_table
from ccrop_cli.study.results_file import save_results, saved_runs
from ccrop_plugins import BoxSets, BoxStore
from ccrop_scenes import generate_scenes, write_image_folder


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ccrop {command}: error: "), err
    return err[0]


@pytest.fixture
def d1(tmp_path) -> Path:
    """A small labelled folder with annotations.json, as ``python -m ccrop_scenes d1 --images 12 --size 48``."""
    return write_image_folder(generate_scenes(12, image_size=48, objects_per_image=(1, 2), seed=0), tmp_path / "d1")


# -- 1, 2: bench localize's outputs inside a --data folder ----------------------------------------------------------
LOCALIZE = ["bench", "localize", "--quick", "--settings", "--seeds", "0", "--rules", "channel_sum"]


def test_bench_localize_refuses_a_json_inside_the_data_folder(d1, capsys):
    # Before: d1/annotations.json, the folder's ground truth, was replaced by the bench's figures.
    truth = (d1 / "annotations.json").read_text()
    assert main([*LOCALIZE, "--data", str(d1), "--json", str(d1 / "annotations.json")]) == 2
    line = _one_error_line(capsys, "bench localize")
    assert f"--json {d1 / 'annotations.json'} lies inside --data {d1}: " in line
    assert line.endswith("the figures would replace or join the folder's files; choose a --json file outside the data "
                         "folder")
    assert (d1 / "annotations.json").read_text() == truth


def test_bench_localize_refuses_checkpoints_inside_the_data_folder_before_creating_them(d1, capsys):
    # Before: d1/ck was created, then the data was blamed ("1 class folder(s) hold no images: ck"), and d1/ck stayed.
    assert main([*LOCALIZE, "--data", str(d1), "--checkpoints", str(d1 / "ck")]) == 2
    line = _one_error_line(capsys, "bench localize")
    assert f"--checkpoints {d1 / 'ck'} lies inside --data {d1}: " in line and "hold no images" not in line
    assert not (d1 / "ck").exists()


# -- 3: a study of the same strategies in another order resumes; one starting afresh leaves no old report ----------
def _study_args(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--quick", *options])


def test_a_study_of_the_same_strategies_and_boxes_in_another_order_resumes(tmp_path, capsys):
    # Before: "holds a study with other strategies: starting afresh", and every run trained again.
    args = _study_args("--out", str(tmp_path), "--strategies", "rrc", "multi-box", "--boxes", "learned", "oracle")
    run = {"setting": "mixed-small", "strategy": "rrc", "boxes": "none", "seed": 0}
    save_results(tmp_path / "results.json", config_from_args(args), [run], {}, [], "ccrop study --quick")
    other = _study_args("--out", str(tmp_path), "--strategies", "multi-box", "rrc", "--boxes", "oracle", "learned")
    _, runs, _, _ = saved_runs(other, config_from_args(other), tmp_path / "results.json")
    assert runs == [run] and "resuming: 1 runs" in capsys.readouterr().out


@pytest.mark.parametrize("fresh", [False, True])
def test_a_study_starting_afresh_removes_the_old_report_before_training(tmp_path, monkeypatch, fresh):
    # Before: interrupted before its own report, the old results.md and plots stayed beside the new results.json.
    config = StudyConfig(**PRESETS["quick"])
    saved = replace(config, epochs=3) if not fresh else config
    save_results(tmp_path / "results.json", saved, [], {}, [], "ccrop study --quick --epochs 3")
    for name in ("results.md", "accuracy.png", "box_recall.png", "false_positive_rate.png"):
        (tmp_path / name).write_text("the old study's")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ccrop_cli.study.command.run_missing", interrupted)
    assert main(["study", "--quick", "--out", str(tmp_path), "--no-progress", *(["--fresh"] if fresh else [])]) == 130
    assert not any((tmp_path / name).exists()
                   for name in ("results.md", "accuracy.png", "box_recall.png", "false_positive_rate.png"))


# -- 4: an empty checkpoint -----------------------------------------------------------------------------------------
def test_viz_of_an_empty_checkpoint_is_one_line(d1, tmp_path, capsys):
    # Before: EOFError, then IndexError on its empty message: a traceback.
    (tmp_path / "empty.pt").write_bytes(b"")
    assert main(["viz", str(d1), "--checkpoint", str(tmp_path / "empty.pt"), "--out", str(tmp_path / "v")]) == 2
    line = _one_error_line(capsys, "viz")
    assert line.endswith(f"{tmp_path / 'empty.pt'} is not a readable torch checkpoint: EOFError (an empty or "
                         "cut-short file?)")


# -- 5: --report-only of a JSON object that is no study's results ---------------------------------------------------
def test_report_only_of_a_results_file_without_a_config_is_one_line(tmp_path, capsys):
    # Before: KeyError: 'config' traceback (a bench pairs --out file copied to results.json).
    (tmp_path / "results.json").write_text(json.dumps({"command": "ccrop bench pairs --quick", "settings": {}}))
    assert main(["study", "--out", str(tmp_path), "--report-only"]) == 2
    assert _one_error_line(capsys, "study").endswith(
        f"{tmp_path / 'results.json'} is not a study's results file (it has no 'config' of a study); remove it, or "
        "start afresh with --fresh")


# -- 6: bench pairs --no-model records a command line that runs again ----------------------------------------------
def test_bench_pairs_without_a_model_records_a_command_that_runs_again(tmp_path, capsys):
    # Before: the command named --thresholds 0.1 0.5 --workers 2, which --no-model refuses.
    out = tmp_path / "p.json"
    assert main(["bench", "pairs", "--quick", "--no-model", "--images", "1", "--pairs-per-image", "1",
                 "--out", str(out)]) == 0
    command = json.loads(out.read_text())["command"]
    assert "--thresholds" not in command and "--workers" not in command
    assert f"`{command}`" in capsys.readouterr().out
    assert main(shlex.split(command)[1:]) == 0


# -- 7: Ctrl-C while the command's module is imported ---------------------------------------------------------------
def test_an_interrupt_while_the_command_is_imported_is_one_line(monkeypatch, capsys):
    # Before: a KeyboardInterrupt traceback, and the process died by SIGINT.
    def interrupted(name: str):
        raise KeyboardInterrupt

    monkeypatch.setattr(ccrop_main.importlib, "import_module", interrupted)
    try:
        status = main(["plugins"])
    except KeyboardInterrupt:
        status = None
    assert status == 130
    assert capsys.readouterr().err.strip() == "ccrop plugins: interrupted"


# -- 8: one seed has no sample std ----------------------------------------------------------------------------------
def _run(seed: int, strategy: str, value: float, **extra) -> dict:
    return {"setting": "mixed-small", "strategy": strategy, "boxes": "none" if strategy == "rrc" else "learned",
            "seed": seed, "object": value, "map": value, "linear": value, "knn": value, "object_view": value,
            "refreshes": [], "warmup_false_positive_rate": 0.1, "train_seconds": 1.0, "refresh_seconds": 0.1, **extra}


def test_a_study_of_one_seed_prints_no_spread(tmp_path):
    # Before: "51.5 +- 0.0", a sample std over one value.
    config = replace(StudyConfig(**PRESETS["quick"]), strategies=("rrc",))
    baselines = [{"setting": "mixed-small", "seed": 0, "object": 0.2, "map": None, "linear": None, "knn": None,
                  "object_view": None}]
    text = write_table(tmp_path / "results.md", config, [_run(0, "rrc", 0.515)], {}, "ccrop study", baselines)
    assert "| 51.5 +- - |" in text and "random init, no pre-training | 20.0 +- - |" in text
    assert "+- 0.0" not in text and (tmp_path / "results.md").read_text() == text
    two = write_table(tmp_path / "results.md", replace(config, seeds=2),
                      [_run(0, "rrc", 0.5), _run(1, "rrc", 0.6)], {}, "ccrop study")
    assert "| 55.0 +- 7.1 |" in two


# -- 9: a box file's header fields ----------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, message", [
    ("format_version", 2, "'format_version' is 2; this ccrop reads box files of format_version 1"),
    ("num_samples", 5, "'num_samples' is 5, but the file holds boxes for 12 samples"),
    ("max_boxes", 0, "'max_boxes' is 0, but a sample holds 3 boxes"),
    ("keyed_by", "path", "'keyed_by' is 'path'; expected 'file_name' or 'index'"),
])
def test_viz_checks_a_box_files_header(d1, tmp_path, capsys, field, value, message):
    # Before: each was drawn without a word.
    files = list_image_files(d1)
    store = BoxStore(len(files), max_boxes=3)
    corners = torch.rand(len(files), 3, 2, generator=torch.Generator().manual_seed(0)) * 0.5
    store.update(list(range(len(files))), BoxSets.from_lists([torch.cat([c, c + 0.4], dim=1) for c in corners],
                                                             [torch.tensor([3.0, 2.0, 1.0])] * len(files)))
    path = export_boxes(store, files, tmp_path / "boxes.json")
    document = json.loads(path.read_text())
    assert main(["viz", str(d1), "--boxes", str(path), "--out", str(tmp_path / "ok"), "--pair-images", "1"]) == 0
    capsys.readouterr()
    path.write_text(json.dumps({**document, field: value}))
    assert main(["viz", str(d1), "--boxes", str(path), "--out", str(tmp_path / "v"), "--pair-images", "1"]) == 2
    assert f"ccrop viz: error: {path}: {message}" in _one_error_line(capsys, "viz")
    assert not (tmp_path / "v").exists()


# -- 10: one run twice in a merged results.json ---------------------------------------------------------------------
def _merged(tmp_path: Path, runs: list[dict]) -> None:
    config = replace(StudyConfig(**PRESETS["quick"]), strategies=("rrc",))
    document = {"command": "ccrop study --quick --strategies rrc", "config": asdict(config), "runs": runs,
                "random_init": [], "oracle_false_positive_rate": {"mixed-small": {"rrc": 0.1}}}
    (tmp_path / "results.json").write_text(json.dumps(document))


def test_a_run_copied_twice_into_results_is_counted_once(tmp_path, capsys):
    # Before: its seed counted twice in the mean and std ("1 seed(s)" in the header).
    _merged(tmp_path, [_run(0, "rrc", 0.5), _run(0, "rrc", 0.5)])
    assert main(["study", "--out", str(tmp_path), "--report-only"]) == 0
    assert "- mixed-small, rrc (none boxes): 50.0 / 50.0 / 50.0\n" in (tmp_path / "results.md").read_text()


def test_two_different_records_of_one_run_are_refused(tmp_path, capsys):
    # Before: both counted, as two seeds, under "1 seed(s)".
    _merged(tmp_path, [_run(0, "rrc", 0.5), _run(0, "rrc", 0.7)])
    assert main(["study", "--out", str(tmp_path), "--report-only"]) == 2
    assert _one_error_line(capsys, "study").endswith(
        f"{tmp_path / 'results.json'} holds two different records of one run (setting mixed-small, strategy rrc, "
        "boxes none, seed 0); a merge of parallel studies must keep each run once: remove one of them")
    assert not (tmp_path / "results.md").exists()

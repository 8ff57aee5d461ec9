"""Faults of the ``ccrop`` command line found by probe P5 (session 20), each tried as the probe tried it.

A refused run keeps the previous run's scenes and leaves no empty ``--out``; a resumed study reports the seeds it
says; saved localize backbones carry their training recipe; unreadable images, absurd counts, stale pictures and a
demo folder given to ``viz`` are one-line errors or cleaned up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from ccrop_cli.errors import UserError
from ccrop_cli.experiment import scene_settings
from ccrop_cli.experiment.scene_settings import get_scene_setting, write_split
from ccrop_cli.main import main
from ccrop_cli.output.box_json import export_boxes
from ccrop_cli.output.image_folder import list_image_files
from ccrop_plugins import BoxSets, BoxStore
from ccrop_scenes import generate_scenes, write_image_folder


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ccrop {command}: error: "), err
    return err[0]


def _usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


# -- F1: a run refused for memory keeps the previous run's scenes ---------------------------------------------------
def test_a_scene_write_refused_for_memory_keeps_the_previous_scenes(tmp_path, monkeypatch):
    # Before: the old folder was removed, then the memory check refused: `ccrop demo --images 99999999999` deleted
    # OUT/data/train while OUT/report.md still described it.
    setting = get_scene_setting("single")
    root = tmp_path / "data" / "train"
    write_split(setting, root, 12, 32, seed=0)
    recipe = (root / "scenes.json").read_text()
    images = sorted(p.relative_to(root) for p in root.rglob("*.png"))
    monkeypatch.setattr(scene_settings, "available_memory", lambda: 1024)
    with pytest.raises(UserError, match=r"13 scenes of 32 px need .* GiB of memory"):
        write_split(setting, root, 13, 32, seed=0)
    assert (root / "scenes.json").read_text() == recipe
    assert sorted(p.relative_to(root) for p in root.rglob("*.png")) == images
    monkeypatch.undo()
    assert write_split(setting, root, 13, 32, seed=0) == root  # other arguments: replaced once written
    assert json.loads((root / "scenes.json").read_text())["num_images"] == 13
    assert not root.with_name("train.partial").exists()


# -- F2: a resumed study reports the seeds it says ------------------------------------------------------------------
def _run(seed: int, strategy: str, value: float) -> dict:
    return {"setting": "mixed-small", "strategy": strategy, "boxes": "learned", "seed": seed, "object": value,
            "map": value, "linear": value, "knn": value, "object_view": value, "refreshes": [],
            "warmup_false_positive_rate": 0.1, "train_seconds": 1.0, "refresh_seconds": 0.1}


def test_a_study_report_counts_only_the_seeds_it_names(tmp_path):
    # Before: 'ccrop study --quick' into an --out of a '--seeds 7' study said "1 seed(s)" over the means, paired
    # t-tests and per-seed lists of seeds 0-6.
    from dataclasses import replace

    from ccrop_cli.study.config import PRESETS, StudyConfig
    from ccrop_cli.study.report import write_plots, write_table

    config = replace(StudyConfig(), **PRESETS["quick"], boxes=("learned",))  # 1 seed, strategies rrc and multi-box
    strategies = list(config.strategies)
    runs = [_run(seed, strategy, 0.5 + 0.05 * seed) for seed in range(7) for strategy in strategies]
    baselines = [{"setting": "mixed-small", "seed": seed, "object": 0.1 * seed, "map": None, "linear": None,
                  "knn": None, "object_view": None} for seed in range(7)]
    text = write_table(tmp_path / "results.md", config, runs, {}, command="ccrop study --quick", baselines=baselines)
    assert "1 seed(s)" in text
    assert "50.0 +- -" in text and "80.0" not in text  # seed 0 only (seed 6: 80.0)
    assert "random init, no pre-training | 0.0 +- -" in text
    per_seed = [line for line in text.splitlines() if line.startswith("- mixed-small, rrc")]
    assert per_seed == ["- mixed-small, rrc (none boxes): 50.0 / 50.0 / 50.0"]
    assert f"Left out: {len(runs) - len(strategies)} saved run(s) of seed 1 or above in results.json" in text
    assert len(write_plots(tmp_path, config, runs, {})) == 3
    assert len(runs) == 7 * len(strategies)  # the caller's list (saved to results.json) keeps every seed


# -- F3: saved localize backbones carry their training recipe -------------------------------------------------------
def _localize(*options: str) -> int:
    return main(["bench", "localize", "--quick", "--rules", "channel_sum", "--settings", "single", "--seeds", "0",
                 "--top", "1", *options])


def test_bench_localize_refuses_a_checkpoint_of_another_recipe(tmp_path, capsys):
    # Before: the 1-epoch backbone was reused by a '--epochs 2' run, its figures printed as that run's, silently.
    checkpoints = tmp_path / "ck"
    assert _localize("--checkpoints", str(checkpoints)) == 0
    saved = torch.load(checkpoints / "single_s0.pt", weights_only=True)
    assert saved["recipe"] == {"backbone": "convnet", "epochs": 1, "images": 24, "scene_size": 32, "view_size": 32,
                               "batch_size": 12}
    capsys.readouterr()
    assert _localize("--checkpoints", str(checkpoints)) == 0  # the same recipe: loaded
    capsys.readouterr()
    assert _localize("--checkpoints", str(checkpoints), "--epochs", "2") == 2
    line = _one_error_line(capsys, "bench localize")
    assert (f"--checkpoints: {checkpoints / 'single_s0.pt'} was trained with backbone convnet, epochs 1, images 24, "
            "scene_size 32, view_size 32, batch_size 12; this run trains with backbone convnet, epochs 2, images 24"
            in line)
    # A checkpoint of an older ccrop (a bare state_dict): its epochs and sizes are unknown.
    torch.save(saved["state_dict"], checkpoints / "single_s0.pt")
    assert _localize("--checkpoints", str(checkpoints)) == 2
    line = _one_error_line(capsys, "bench localize")
    assert f"{checkpoints / 'single_s0.pt'} holds no training recipe (saved by an older ccrop)" in line
    assert "this run trains with backbone convnet, epochs 1, images 24" in line


# -- F4: bench lightly checks its --folder's images first ----------------------------------------------------------
def test_bench_lightly_names_an_unreadable_image_of_its_folder(tmp_path, capsys):
    # Before: the collate timing ran, then a DataLoader worker's 40-line traceback ending 'image file is truncated'.
    folder = tmp_path / "imgs"
    (folder / "cats").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(folder / "cats" / f"{i}.png")
    data = (folder / "cats" / "0.png").read_bytes()
    (folder / "cats" / "corrupt.png").write_bytes(data[: len(data) // 2])
    assert main(["bench", "lightly", "--folder", str(folder), "--repeats", "1", "--batch-size", "2",
                 "--workers", "0"]) == 2
    line = _one_error_line(capsys, "bench lightly")
    assert f"--folder {folder}: 1 file(s) cannot be read as images: cats/corrupt.png" in line


# -- F5: absurd counts are one line ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "speed", "--crops", "10001"], "argument --crops: expected an integer from 1 to 10000; got 10001"),
        (["bench", "localize", "--quick", "--epochs", "99999999999"],
         "argument --epochs: expected an integer from 1 to 10000; got 99999999999"),
    ],
)
def test_bench_counts_beyond_their_bound_are_usage_errors(capsys, argv, message):
    # Before: accepted; --crops 999999999 filled the memory, --epochs 99999999999 ran silently until killed.
    assert message in _usage_error(capsys, argv)


@pytest.mark.parametrize(
    ("argv", "command", "message"),
    [
        (["bench", "pairs", "--quick", "--no-model", "--pairs-per-image", "100000000"], "bench pairs",
         "--pairs-per-image must be an integer from 1 to 1000; got 100000000"),
        (["bench", "pairs", "--quick", "--epochs", "99999999999"], "bench pairs",
         "--epochs must be an integer from 1 to 10000; got 99999999999"),
        (["study", "--quick", "--seeds", "1000000"], "study", "--seeds must be an integer from 1 to 100; got 1000000"),
    ],
)
def test_counts_beyond_their_bound_are_one_line(tmp_path, capsys, argv, command, message):
    # Before: accepted, then silent for hours (study: about a year at 45 s a seed).
    assert main([*argv, "--out", str(tmp_path / ("o.json" if command != "study" else "o"))]) == 2
    assert _one_error_line(capsys, command).endswith(message)
    assert not (tmp_path / "o").exists()


def test_the_bounds_are_stated_in_the_help(capsys):
    for argv, text in ((["bench", "speed"], "1 to 10000"), (["bench", "pairs"], "1 to 1000 (default 8"),
                       (["bench", "localize"], "1 to 10000 (default 10)"), (["study"], "1 to 100 (default 5)")):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        assert text in " ".join(capsys.readouterr().out.split()), argv


# -- F6/F7: stale pictures, a demo's folder, empty --out folders -----------------------------------------------------
@pytest.fixture(scope="module")
def folder_and_boxes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("viz")
    scenes = generate_scenes(6, image_size=32, objects_per_image=(1, 2), object_area=(0.05, 0.15), seed=3)
    root = write_image_folder(scenes, tmp / "scenes")
    files = list_image_files(root)
    store = BoxStore(len(files), max_boxes=2)
    store.update(list(range(len(files))),
                 BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.6, 0.7]]) for _ in files]))
    export_boxes(store, files, tmp / "boxes.json")
    return root, tmp / "boxes.json"


def _viz(folder: Path, boxes: Path, out: Path, pair_images: int) -> int:
    return main(["viz", str(folder), "--boxes", str(boxes), "--out", str(out), "--pairs", "1", "--images", "2",
                 "--pair-images", str(pair_images)])


def test_viz_rerun_with_fewer_pair_images_removes_the_earlier_pairs(folder_and_boxes, tmp_path):
    # Before: pairs_1..3.png of the earlier run stayed beside the new pairs_0.png.
    folder, boxes = folder_and_boxes
    out = tmp_path / "v"
    assert _viz(folder, boxes, out, 3) == 0
    (out / "notes_pairs.png").write_bytes(b"")  # not of viz's naming: kept
    assert _viz(folder, boxes, out, 1) == 0
    assert sorted(p.name for p in out.iterdir()) == ["box_sets.png", "notes_pairs.png", "pairs_0.png"]


def test_viz_refuses_a_demo_output_folder(folder_and_boxes, tmp_path, capsys):
    # Before: the demo's box_sets.png was replaced, exit 0, while its report.md still named it.
    folder, boxes = folder_and_boxes
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "box_sets.png").write_bytes(b"the demo's")
    assert _viz(folder, boxes, out, 1) == 2
    assert _one_error_line(capsys, "viz").endswith(
        f"--out {out} holds a ccrop demo's output ({out / 'report.json'}); ccrop viz would overwrite its "
        "box_sets.png: choose another --out")
    assert (out / "box_sets.png").read_bytes() == b"the demo's"


def test_refused_viz_and_study_report_only_leave_no_out_folder(folder_and_boxes, tmp_path, capsys):
    # Before: both errors were right, but the --out folder they had created stayed behind, empty.
    folder, _ = folder_and_boxes
    other = tmp_path / "other.json"
    export_boxes(BoxStore(2, max_boxes=1), ["a/x.png", "a/y.png"], other)
    assert _viz(folder, other, tmp_path / "v2", 1) == 2
    capsys.readouterr()
    assert not (tmp_path / "v2").exists()
    assert main(["study", "--report-only", "--out", str(tmp_path / "new" / "s")]) == 2
    assert _one_error_line(capsys, "study").endswith(f"--report-only needs {tmp_path / 'new' / 's' / 'results.json'}"
                                                     "; run the study first")
    assert not (tmp_path / "new").exists()


def test_a_demo_rerun_removes_the_pictures_it_does_not_draw(tmp_path):
    # Before: view_pairs_oracle.png of a run with ground truth stayed beside a rerun's without it.
    data = write_image_folder(generate_scenes(24, image_size=32, objects_per_image=(1, 2), object_area=(0.05, 0.15),
                                              seed=1), tmp_path / "data")
    (data / "annotations.json").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "view_pairs_oracle.png").write_bytes(b"an earlier run's")
    assert main(["demo", "--quick", "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    assert not (out / "view_pairs_oracle.png").exists()
    assert (out / "view_pairs.png").is_file()


# -- D3: bench pairs takes otsu and mean ---------------------------------------------------------------------------
def test_bench_pairs_takes_otsu_and_mean_thresholds(tmp_path):
    # Before: "argument --thresholds: invalid float value: 'otsu'", though every other command takes them.
    out = tmp_path / "pairs.json"
    assert main(["bench", "pairs", "--quick", "--images", "10", "--pairs-per-image", "1", "--thresholds", "otsu",
                 "mean", "0.1", "--out", str(out)]) == 0
    sources = json.loads(out.read_text())["settings"]["single-object, medium"]
    assert {"model k=otsu", "model k=mean", "model k=0.1"} <= set(sources)

"""Odd option values and interrupted runs of the ``ccrop`` commands, tried as a new user would (session 12).

Each ends as one line ``ccrop <cmd>: error: ...`` (or argparse's usage line) before any work, or, for a run
stopped while it wrote its scenes, in a clean restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ccrop_cli.errors import UserError
from ccrop_cli.experiment import scene_settings
from ccrop_cli.experiment.scene_settings import get_scene_setting, write_split
from ccrop_cli.main import main


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ccrop {command}: error: "), err
    return err[0]


@pytest.mark.parametrize("value", ["99999999999999999999", str(2**32)])
def test_demo_seed_beyond_the_generators_is_one_line(tmp_path, capsys, value):
    # Before: torch's 'Overflow when unpacking long long' (or NumPy's 'Seed must be between 0 and 2**32 - 1' under
    # --framework mmpretrain) as a traceback, after the scenes were written.
    assert main(["demo", "--quick", "--seed", value, "--out", str(tmp_path / "demo")]) == 2
    line = _one_error_line(capsys, "demo")
    assert f"--seed must be an integer in [0, 2**31)" in line and value in line
    assert not (tmp_path / "demo" / "data").exists()


def test_bench_mm_seed_numpy_cannot_take_is_a_usage_line(capsys):
    # Before: accepted up to 2**63, then np.random.seed's 'Seed must be between 0 and 2**32 - 1' traceback.
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "mm", "--seed", str(2**32)])
    assert stopped.value.code == 2
    assert f"argument --seed: expected an integer in [0, 2**31)" in capsys.readouterr().err


def test_scene_write_stopped_midway_is_written_again(tmp_path, monkeypatch):
    setting = get_scene_setting("multi-small")
    root = tmp_path / "data" / "train"
    real_write = scene_settings.write_image_folder

    def write_then_stop(*args, **kwargs):  # every image written, then Ctrl-C before the recipe
        real_write(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(scene_settings, "write_image_folder", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        write_split(setting, root, 12, 32, seed=0)
    monkeypatch.setattr(scene_settings, "write_image_folder", real_write)
    # Before: FileExistsError 'holds files not written by ccrop' on every later run with this --out.
    assert write_split(setting, root, 12, 32, seed=0) == root
    assert json.loads((root / "scenes.json").read_text())["num_images"] == 12
    assert len(json.loads((root / "annotations.json").read_text())["images"]) == 12
    assert not (tmp_path / "data" / "train.partial").exists()


def test_demo_out_whose_scene_folder_holds_other_files_is_one_line(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "data" / "train").mkdir(parents=True)
    (out / "data" / "train" / "notes.txt").write_text("mine")
    # Before: FileExistsError traceback.
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 2
    line = _one_error_line(capsys, "demo")
    assert f"{out / 'data' / 'train'} holds files that ccrop did not write" in line
    assert (out / "data" / "train" / "notes.txt").read_text() == "mine"


def test_scene_folder_under_a_file_is_a_user_error(tmp_path):
    (tmp_path / "data").write_text("a file where the demo puts its folder")
    with pytest.raises(UserError, match="cannot write the generated scenes to"):
        write_split(get_scene_setting("single"), tmp_path / "data" / "train", 12, 32, seed=0)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--box-scale", "1", "inf"], "--box-scale must be finite"),
        (["--cj-strength", "inf"], "--cj-strength must be a finite number >= 0 "),  # 0a7d25f: named as typed
        (["--cj-strength", "3"], "--cj-strength 3.0 makes no valid view steps: cj_strength * cj_hue must be at most"),
        (["--alpha", "inf"], "--alpha must be a finite number > 0 "),
    ],
)
def test_study_options_the_crop_or_views_refuse_are_one_line_before_any_work(tmp_path, capsys, option, message):
    # Before: the core's ValueError traceback, after the scenes were written (box scale: while measuring the
    # oracle pairs; colour jitter: when the first run built its views).
    out = tmp_path / "study"
    assert main(["study", "--quick", "--no-progress", "--out", str(out), *option]) == 2
    assert message in _one_error_line(capsys, "study")
    assert not (out / "data").exists()


@pytest.mark.parametrize(("argv", "named"), [(["demoo", "--quick"], "'demoo'"), (["bench", "sped"], "'bench sped'")])
def test_unknown_command_names_only_the_command(capsys, argv, named):
    # Before: "unknown command 'demoo --quick'", the option taken for part of the command.
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"ccrop: unknown command {named}; available: plugins, demo")


def _localize(*options: str) -> int:
    return main(["bench", "localize", "--quick", "--rules", "channel_sum", "--settings", "single", "--seeds", "0",
                 *options])


def test_bench_localize_checkpoint_of_another_backbone_or_damaged_is_one_line(tmp_path, capsys):
    from ccrop_cli.experiment.backbones import build_backbone

    checkpoints = tmp_path / "ck"
    checkpoints.mkdir()
    recipe = {"backbone": "convnet", "epochs": 1, "images": 24, "scene_size": 32, "view_size": 32, "batch_size": 12}
    torch.save({"recipe": recipe, "state_dict": build_backbone("convnet", 0)[0].state_dict()},
               checkpoints / "single_s0.pt")
    # Before: load_state_dict's 'Missing key(s) ...' traceback (the file name holds no backbone); now the recipe
    # saved beside the weights names the other backbone.
    assert _localize("--checkpoints", str(checkpoints), "--backbone", "resnet18") == 2
    line = _one_error_line(capsys, "bench localize")
    assert f"--checkpoints: {checkpoints / 'single_s0.pt'} was trained with backbone convnet, epochs 1" in line
    assert "this run trains with backbone resnet18, epochs 1" in line
    recipe["backbone"] = "resnet18"  # a recipe that matches, weights that do not: load_state_dict's reason
    torch.save({"recipe": recipe, "state_dict": build_backbone("convnet", 0)[0].state_dict()},
               checkpoints / "single_s0.pt")
    assert _localize("--checkpoints", str(checkpoints), "--backbone", "resnet18") == 2
    line = _one_error_line(capsys, "bench localize")
    assert f"--checkpoints: {checkpoints / 'single_s0.pt'} is no resnet18 backbone's state_dict" in line
    assert "Missing key(s)" in line
    (checkpoints / "single_s0.pt").write_bytes(b"PK\x03\x04 cut short")  # a save stopped midway
    assert _localize("--checkpoints", str(checkpoints)) == 2  # before: PytorchStreamReader's traceback
    assert "is no convnet backbone's state_dict" in _one_error_line(capsys, "bench localize")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--seeds", "1", "0", "1"], "--seeds lists 1 more than once; give each seed once"),
        (["--settings"], "nothing to measure: --settings is empty and no --data is given"),
        (["--checkpoints", "FILE"], "--checkpoints FILE is not a writable folder"),
    ],
)
def test_bench_localize_options_that_measure_wrongly_or_nothing_are_one_line(tmp_path, capsys, options, message):
    # Before: seed 1 measured twice and counted as two seeds (spread 0.00); an empty --settings printed nothing and
    # exited 0; a --checkpoints file: mkdir's FileExistsError traceback after the first model was trained.
    (tmp_path / "FILE").write_text("not a folder")
    options = [str(tmp_path / "FILE") if option == "FILE" else option for option in options]
    assert main(["bench", "localize", "--quick", "--rules", "channel_sum", *options]) == 2
    assert message.replace("FILE", str(tmp_path / "FILE")) in _one_error_line(capsys, "bench localize")


def test_bench_pairs_infinite_box_scale_is_one_line_before_any_work(capsys):
    # Before: the core crop's 'scale must be an increasing pair ...' traceback, after the first scenes were drawn.
    assert main(["bench", "pairs", "--no-model", "--images", "16", "--box-scales", "1,inf"]) == 2
    assert "--box-scales range '1,inf' must be finite" in _one_error_line(capsys, "bench pairs")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--image-size", "8"], "--image-size 8: image_size must be >= 16"),
        (["--folder", "FOLDER", "--images", "5"], "--images and --image-size size the generated scenes; they do not "
                                                  "apply with --folder"),
    ],
)
def test_bench_lightly_scene_sizes_are_checked_before_any_work(tmp_path, capsys, options, message):
    # Before: the scene generator's 'image_size must be >= 16' traceback; --images silently ignored with --folder.
    from ccrop_scenes import generate_scenes, write_image_folder

    folder = write_image_folder(generate_scenes(4, image_size=32, seed=0), tmp_path / "folder")
    options = [str(folder) if option == "FOLDER" else option for option in options]
    assert main(["bench", "lightly", "--repeats", "1", "--workers", "0", *options]) == 2
    assert message in _one_error_line(capsys, "bench lightly")


@pytest.mark.parametrize("argv", [
    ["bench", "lightly", "--input-size", "1", "--repeats", "1", "--workers", "0", "--images", "8", "--batch-size", "4"],
    ["bench", "mm", "--crop-size", "1", "--only", "pipeline", "--samples", "2", "--rounds", "1", "--images", "2"],
    ["bench", "mm", "--refresh-size", "8", "--only", "refresh", "--refresh-images", "4", "--batch-size", "2",
     "--rounds", "1"],
    ["bench", "mm", "--image-size", "15", "500", "--only", "pipeline", "--samples", "2", "--rounds", "1",
     "--images", "2"],
])
def test_bench_views_under_16_px_are_one_usage_line(capsys, argv):
    # Before: 1-pixel views (1-pixel refresh images) were timed and their ratios printed without a word, while the
    # demo and bench localize refuse images under 16 px.
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    option, value = next((a, b) for a, b in zip(argv, argv[1:]) if a.endswith("-size"))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (f"ccrop {' '.join(argv[:2])}: error: argument {option}: expected a side in pixels from 16 to 1024 "
                    f"(under 16 px, the smallest image the commands read, a view holds no object); got {value}")


def test_demo_images_beyond_the_memory_is_one_line_before_generating(tmp_path, capsys):
    # Before: the scenes were allocated lazily (12 TB for 10**9 scenes of 64 px) and rendered until the system ran
    # out of memory, or a MemoryError traceback.
    assert main(["demo", "--images", str(10**9), "--no-progress", "--out", str(tmp_path / "demo")]) == 2
    line = _one_error_line(capsys, "demo")
    assert "1000000000 scenes of 64 px need 15258.8 GiB of memory while they are generated, more than the" in line
    assert not (tmp_path / "demo" / "data" / "train").exists()


def test_study_stopped_while_saving_keeps_its_results(tmp_path, monkeypatch):
    from ccrop_cli.study.config import QUICK, StudyConfig
    from ccrop_cli.study.results_file import save_results

    results = tmp_path / "results.json"
    config = StudyConfig(**QUICK)
    save_results(results, config, [{"seed": 0}], {}, [], "ccrop study --quick")
    real_write = Path.write_text

    def write_half_then_stop(self, text, *args, **kwargs):  # Ctrl-C in the middle of the write
        real_write(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", write_half_then_stop)
    with pytest.raises(KeyboardInterrupt):
        save_results(results, config, [{"seed": 0}, {"seed": 1}], {}, [], "ccrop study --quick")
    monkeypatch.setattr(Path, "write_text", real_write)
    # Before: results.json cut in half, so the next run stopped with 'is not valid JSON ... start afresh with --fresh'
    # and every finished run was lost.
    assert json.loads(results.read_text())["runs"] == [{"seed": 0}]


def test_study_report_only_generates_no_scenes(tmp_path, capsys):
    # docs/results.md: copy a study's JSON to DIR/results.json, then `ccrop study --out DIR --report-only`. Before:
    # it generated the study's 900 scenes into DIR/data to measure the oracle pair rates that results.json holds.
    saved = json.loads((Path(__file__).parents[2] / "docs" / "study_results_ceiling_final.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps(saved))
    assert main(["study", "--out", str(tmp_path), "--report-only"]) == 0
    assert not (tmp_path / "data").exists()
    table = (tmp_path / "results.md").read_text()
    assert "| mixed-small | RandomResizedCrop | 71.0 +- 2.2 | 40.4 +- 1.3 |" in table
    assert json.loads((tmp_path / "results.json").read_text())["oracle_false_positive_rate"] == \
        saved["oracle_false_positive_rate"]


def test_ctrl_c_is_one_line_with_the_shells_status(monkeypatch, capsys):
    def run(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("ccrop_cli.plugins_command.run", run)
    try:
        status = main(["plugins"])
    except KeyboardInterrupt:  # the old code: its traceback through ccrop_cli.main
        pytest.fail("KeyboardInterrupt escaped ccrop's main")
    assert status == 130
    assert capsys.readouterr().err == "\nccrop plugins: interrupted\n"


def test_study_settings_and_strategies_named_twice_count_once():
    import argparse

    from ccrop_cli.study import command as study

    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    config = study.config_from_args(parser.parse_args(
        ["--quick", "--settings", "single", "single", "--strategies", "rrc", "multi-box", "rrc"]))
    # Before: ('single', 'single') and ('rrc', 'multi-box', 'rrc'): each run trained once, but results.md printed
    # the RandomResizedCrop row 4 times per setting, and the setting's block twice.
    assert config.settings == ("single",) and config.strategies == ("rrc", "multi-box")


def test_bench_localize_names_given_twice_are_measured_once(capsys):
    assert main(["bench", "localize", "--quick", "--seeds", "0", "--settings", "single", "single", "--rules",
                 "channel_sum", "channel_sum", "--thresholds", "0.1", "0.1"]) == 0
    out = capsys.readouterr().out
    # Before: the setting was trained on, measured and printed twice (10 rows, not 5); each rule twice per table.
    assert out.count("### single") == 1
    assert len([line for line in out.splitlines() if line.startswith("| channel_sum |")]) == 5  # one per stage


@pytest.mark.parametrize("argv", [
    ["study", "--quick", "--num-workers", "1000"],
    ["bench", "pairs", "--quick", "--workers", "1000"],
    ["bench", "lightly", "--repeats", "1", "--workers", "1000"],
    ["bench", "pairs", "--quick", "--workers", "-1"],  # was a UserError after parsing (tests/cli/test_user_errors)
])
def test_a_thousand_dataloader_workers_is_a_usage_line(tmp_path, capsys, argv):
    # Before: accepted; torch only warned that 1000 worker processes 'may make the DataLoader slow or freeze' and
    # started them (each a process with its copy of the scenes) on a machine of 2 cores.
    from ccrop_cli.option_types import max_workers

    with pytest.raises(SystemExit) as stopped:
        main([*argv, *(["--out", str(tmp_path / "out")] if argv[0] == "study" else [])])
    assert stopped.value.code == 2
    option = argv[-2]
    assert (f"argument {option}: expected an integer from 0 (load in the main process) to {max_workers()} (4 per CPU "
            f"core of this machine, at least 8; more only compete for the cores); got {argv[-1]}"
            ) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module", ["ccrop_cli.bench.speed", "ccrop_cli.bench.lightly", "ccrop_cli.bench.mm"])
def test_more_torch_threads_than_cores_is_a_usage_line(module, capsys):
    # Before: --threads 2000 was taken: bench speed ran with 4,001 threads on 2 cores, timing their contention.
    import argparse
    import importlib
    import os

    parser = argparse.ArgumentParser(prog="ccrop bench")
    importlib.import_module(module).add_arguments(parser)
    cores = os.cpu_count()
    assert parser.parse_args(["--threads", str(cores)]).threads == cores
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(["--threads", str(cores + 1)])
    assert stopped.value.code == 2
    assert (f"argument --threads: expected an integer from 1 to {cores} (the CPU cores of this machine; more threads "
            f"only contend for them); got {cores + 1}") in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_is_printed_not_an_unknown_command(flag, capsys):
    # Before: "ccrop: unknown command '--version'; available: plugins, demo, ..." and exit status 2.
    from importlib.metadata import version

    assert main([flag]) == 0
    assert capsys.readouterr().out.startswith(f"ccrop {version('ccrop-plugins')} (ccrop-plugins; Python ")


@pytest.mark.parametrize("argv", [
    ["demo", "--quick", "--out", "FILE"],
    ["viz", "IMAGES", "--boxes", "BOXES", "--out", "FILE"],
    ["study", "--quick", "--out", "FILE"],
])
def test_an_out_that_is_a_file_says_so(tmp_path, capsys, argv):
    # Before: '--out F is not a writable folder: File exists' (mkdir's reason), which reads as if the folder were fine.
    (tmp_path / "file").write_text("x")
    (tmp_path / "images").mkdir()
    names = {"FILE": str(tmp_path / "file"), "IMAGES": str(tmp_path / "images"), "BOXES": str(tmp_path / "b.json")}
    assert main([names.get(item, item) for item in argv]) == 2
    line = _one_error_line(capsys, argv[0])
    assert (f"--out {tmp_path / 'file'} is not a writable folder: it is a file; give a folder (created if missing)"
            in line)


@pytest.mark.parametrize("argv, message", [
    # torchvision's 'FileNotFoundError: Found no valid file for the classes 02_triangle, ...' traceback
    (["--images", "9", "--settings", "single"], "--images 9 is fewer than the generated scenes' 10 classes: every "
                                                "class folder needs an image"),
    # pretrain_simclr's 'ValueError: batch_size must be at least 2' traceback
    (["--images", "1", "--settings", "--data", "DATA"], "1 image to pre-train on and measure (--images 1); SimCLR "
                                                        "contrasts each view pair with the rest of a batch"),
])
def test_bench_localize_too_few_images_is_one_line_before_any_work(tmp_path, capsys, argv, message):
    from ccrop_scenes import generate_scenes, write_image_folder

    data = write_image_folder(generate_scenes(3, image_size=32, num_classes=3, seed=0), tmp_path / "data")
    argv = [str(data) if item == "DATA" else item for item in argv]
    assert main(["bench", "localize", "--quick", "--seeds", "0", "--rules", "channel_sum", *argv]) == 2
    assert message in _one_error_line(capsys, "bench localize")


@pytest.mark.parametrize("images", ["1", "9"])
def test_bench_pairs_fewer_images_than_classes_is_one_line_before_any_work(capsys, images):
    # Before: pretrain's 'batch_size must be at least 2' (1) and torchvision's 'Found no valid file for the classes
    # 03_ring, ...' (3, 9) tracebacks, after the oracle boxes were measured. --no-model needs no class folders.
    assert main(["bench", "pairs", "--quick", "--images", images]) == 2
    assert (f"--images {images} is fewer than the scenes' 10 classes: pre-training reads them as an image folder"
            in _one_error_line(capsys, "bench pairs"))

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
    args = options.parse(
        options.build_parser("x", temperature=0.5), ["folder", "--stages", "last", "--threshold", "0.1"]
    )
    assert (args.stages, args.threshold) == (None, 0.1)


@pytest.mark.parametrize("argv, message", [
    # were tracebacks from torch / torchvision / lightly, some after the first epoch (--batch-size 1: BatchNorm's
    # "Expected more than 1 value per channel"), --checkpoint after the whole run
    (["--batch-size", "1"], "--batch-size must be an integer >= 2"),
    (["--epochs", "0"], "--epochs must be an integer >= 1; got 0"),
    (["--cj-strength", "-1"], "--cj-strength must be a finite number >= 0; got -1.0"),
    (["--temperature", "0"], "--temperature must be a finite number > 0; got 0.0"),
    (["--gaussian-blur", "2"], "--gaussian-blur must be a probability in [0, 1]; got 2.0"),
    (["--threshold", "x"], "argument --threshold: expected a number in [0, 1), mean or otsu; got 'x'"),
    (["--threshold", "1"], "--threshold must be a number in [0, 1), or mean / otsu; got 1.0"),
    (["--checkpoint", "."], "--checkpoint . is a folder; give a file name"),
    (["--seed", "-1"], "--seed must be an integer in [0, 4294967295] (numpy's seed range; Lightning seeds numpy); "
                       "got -1"),  # was numpy's "ValueError: -1 is not in bounds" traceback from seed_everything
    (["--seed", "4294967296"], "--seed must be an integer in [0, 4294967295]"),
    # were taken: SGD with momentum 5 (the loss rose), 5000 px views of 32 px images (ran past minutes)
    (["--momentum", "5"], "--momentum must be a number in [0, 1) (SGD's momentum; 1 or more diverges); got 5.0"),
    (["--input-size", "5000"], "--input-size must be an integer from 1 to 1024 (as the ccrop commands' sizes); got "
                               "5000"),
])
def test_bad_options_are_usage_lines_before_any_work(configs_on_path, tmp_path, capsys, argv, message):
    options = importlib.import_module("training_options")
    with pytest.raises(SystemExit) as exit_info:
        options.parse(options.build_parser("x", temperature=0.5), [str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("script", ["simclr_ccrop", "moco_v2_ccrop"])
def test_a_folder_smaller_than_one_batch_or_missing_is_a_usage_line(script, configs_on_path, tmp_path, capsys,
                                                                     monkeypatch):
    # was silent: drop_last left 0 batches, SimCLR printed "loss: 0.00000" each epoch, Lightning "No training batches"
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as exit_info:
        module.main([str(tmp_path / "scenes"), "--generate", "6", "--batch-size", "8", "--epochs", "1"])
    assert exit_info.value.code == 2
    assert "holds 6 images, fewer than --batch-size 8: the incomplete last batch is dropped" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # was lightly's "The input directory ... does not exist!" traceback
        module.main([str(tmp_path / "missing")])
    assert "missing does not exist; give an image folder, or --generate N" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["simclr_ccrop", "moco_v2_ccrop"])
def test_generate_into_a_folder_holding_other_files_is_a_usage_line(script, configs_on_path, tmp_path, capsys,
                                                                      monkeypatch):
    # --generate N into a folder holding files trained on them as they were, without a word: another count's scenes
    # (here 16 for --generate 24), a user's images, a run stopped while it wrote its scenes.
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(script)
    folder = tmp_path / "scenes"
    importlib.import_module("training_options").write_generated_scenes(folder, 16)
    with pytest.raises(SystemExit) as exit_info:
        module.main([str(folder), "--generate", "24", "--batch-size", "8", "--epochs", "1", "--workers", "0"])
    assert exit_info.value.code == 2
    assert (f"--generate 24: FOLDER {folder} is not empty: it holds 16 file(s), not the 24 scenes --generate 24 "
            "writes, and training would read them; give a new or empty folder, or leave out --generate"
            in capsys.readouterr().err)


def test_generate_keeps_its_own_scenes_and_refuses_any_other_file(configs_on_path, tmp_path, capsys):
    """The same --generate N again (a --resume) keeps the N scenes it wrote, untouched; one more file, or one
    missing, is the usage line."""
    options = importlib.import_module("training_options")
    parser = options.build_parser("x", temperature=0.5)
    folder = tmp_path / "scenes"
    folder.mkdir()  # an empty folder is written into
    args = options.parse(parser, [str(folder), "--generate", "4"])
    options.generate_if_asked(parser, args)
    written = {path: path.stat().st_mtime_ns for path in folder.rglob("*.png")}
    assert len(written) == 4
    options.generate_if_asked(parser, args)
    assert {path: path.stat().st_mtime_ns for path in folder.rglob("*.png")} == written
    extra = folder / "notes.txt"
    extra.write_text("mine")
    with pytest.raises(SystemExit):
        options.generate_if_asked(parser, args)
    assert f"FOLDER {folder} is not empty: it holds 5 file(s), not the 4 scenes" in capsys.readouterr().err
    extra.unlink()
    next(iter(written)).unlink()  # a run stopped while it wrote them
    with pytest.raises(SystemExit):
        options.generate_if_asked(parser, args)
    assert "it holds 3 file(s), not the 4 scenes" in capsys.readouterr().err


def test_moco_checkpoint_is_the_named_file_and_resumes_with_its_boxes(configs_on_path, tmp_path, capsys, monkeypatch):
    """--checkpoint run/ck.pt wrote run/ck.ckpt (Lightning's extension), so --resume run/ck.pt, the name given,
    failed with Lightning's FileNotFoundError traceback after the whole set-up; a missing --resume file is a usage
    line now, and the checkpoint written is the file named, resumed with its boxes."""
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module("moco_v2_ccrop")
    checkpoint = tmp_path / "run" / "ck.pt"
    tiny = [str(tmp_path / "scenes"), *TINY, "--workers", "0", "--no-cifar-stem", "--stages", "layer3"]
    with pytest.raises(SystemExit) as exit_info:
        module.main([*tiny, "--resume", str(checkpoint)])
    assert exit_info.value.code == 2 and f"--resume {checkpoint}: no such checkpoint file" in capsys.readouterr().err

    assert module.main([*tiny, "--checkpoint", str(checkpoint)])["store_version"] == 1
    assert [p.name for p in checkpoint.parent.iterdir()] == ["ck.pt"]
    # --epochs at or below the checkpoint's: Lightning loaded it and stopped at once, without a word.
    for epochs in ("2", "1"):
        with pytest.raises(SystemExit) as exit_info:
            module.main([*tiny[:4], epochs, *tiny[5:], "--resume", str(checkpoint)])
        said = f"--resume {checkpoint}: its run has done 2 epochs (checkpoint epoch 1, 0-based), so --epochs {epochs}"
        assert exit_info.value.code == 2 and f"{said} trains none more" in capsys.readouterr().err
    # A --checkpoint file of the SimCLR script: Lightning's KeyError after the whole set-up.
    import torch

    simclr = tmp_path / "simclr.pt"
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 2, "box_store": {}}, simclr)
    with pytest.raises(SystemExit) as exit_info:
        module.main([*tiny, "--resume", str(simclr)])
    assert exit_info.value.code == 2 and (f"--resume {simclr}: not a Lightning checkpoint of this script (it lacks "
                                          "state_dict, loops") in capsys.readouterr().err
    resumed = module.main([*tiny[:4], "3", *tiny[5:], "--checkpoint", str(checkpoint), "--resume", str(checkpoint)])
    assert resumed["store_version"] == 2  # the restored refresh of epoch 0, and the one after epoch 1

"""``ccrop study``: the quick study runs, evaluates and reports; oracle boxes fill the store."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from PIL import Image

from ccrop_cli.experiment.pretrain import pretrain_simclr
from ccrop_cli.main import main
from ccrop_cli.study.command import PRESETS, StudyConfig, add_arguments, config_from_args
from ccrop_cli.study.results_file import saved_runs
from ccrop_cli.study.report import paired_difference
from ccrop_scenes import generate_scenes, load_annotations, write_image_folder


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    scenes = generate_scenes(
        24, image_size=32, objects_per_image=(2, 3), object_area=(0.05, 0.1), mixed_classes=True, seed=1
    )
    return write_image_folder(scenes, tmp_path_factory.mktemp("mixed"))


@pytest.mark.slow
def test_quick_study_runs_every_variant_and_writes_table_and_plots(tmp_path):
    out = tmp_path / "study"
    argv = [
        "study", "--quick", "--out", str(out), "--no-progress", "--settings", "single", "mixed-small",
        "--strategies", "rrc", "multi-box", "--boxes", "learned", "oracle",
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert {(r["setting"], r["strategy"], r["boxes"]) for r in runs} == {
        (setting, strategy, boxes)
        for setting in ("single", "mixed-small")
        for strategy, boxes in (("rrc", "none"), ("multi-box", "learned"), ("multi-box", "oracle"))
    }
    for run in runs:
        for key in ("linear", "knn", "object", "map", "object_view"):
            assert 0.0 <= run[key] <= 1.0, key
        assert run["train_seconds"] > 0
        # rrc never refreshes; the others refresh once (2 epochs, 1 warm-up epoch).
        assert len(run["refreshes"]) == (0 if run["strategy"] == "rrc" else 1)
        if run["boxes"] == "oracle" and run["strategy"] == "multi-box":
            assert run["refreshes"][0]["box_recall"] == 1.0  # the store holds the ground truth
    table = (out / "results.md").read_text()
    # rrc, 2 box variants and the untrained backbone per setting; paired differences for 2 variants.
    assert table.count("\n| single |") == 4 + 2 and table.count("\n| mixed-small |") == 4 + 2
    assert "oracle boxes" in table and "random init" in table and len(results["random_init"]) == 2
    for name in ("accuracy.png", "box_recall.png", "false_positive_rate.png"):
        with Image.open(out / name) as picture:
            picture.load()
    # A second call resumes: nothing is re-trained, the report is rewritten from results.json.
    (out / "results.md").unlink()
    assert main(argv[:4] + ["--report-only"]) == 0
    assert (out / "results.md").read_text() == table


@pytest.mark.slow
def test_a_study_with_more_seeds_resumes_from_the_runs_it_has(tmp_path):
    argv = ["study", "--quick", "--out", str(tmp_path), "--no-progress", "--settings", "mixed-small",
            "--strategies", "rrc"]
    assert main(argv) == 0
    first = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert main([*argv, "--seeds", "2"]) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and runs[0] == first[0]  # seed 0 kept, not re-trained


@pytest.mark.slow
def test_oracle_boxes_fill_the_store_with_the_ground_truth_at_each_refresh(mixed_folder):
    kwargs = dict(image_size=32, epochs=3, batch_size=8, warmup_epochs=1, interval=1, progress=False, num_workers=0)
    result = pretrain_simclr(mixed_folder, "multi-box", box_source="oracle", seed=0, **kwargs)
    # The learned refresh's schedule (after 0-based epochs 0 and 1), with the ground truth instead.
    assert [r.epoch for r in result.refreshes] == [0, 1]
    truth = load_annotations(mixed_folder)
    for record in result.refreshes:
        for index, name in enumerate(result.filenames):
            boxes, scores = record.box_sets[index]
            assert torch.allclose(boxes, torch.as_tensor(truth[name]))
            areas = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
            assert torch.allclose(scores, areas)  # scored by area, as components scores by heat mass
    paper = pretrain_simclr(mixed_folder, "paper", box_source="oracle", seed=0, **kwargs)
    boxes, _ = paper.refreshes[0].box_sets[0]
    expected = truth[paper.filenames[0]]
    assert boxes.tolist() == [[*expected[:, :2].min(0).tolist(), *expected[:, 2:].max(0).tolist()]]
    # RandomResizedCrop has no boxes to take: the source changes nothing.
    plain = pretrain_simclr(mixed_folder, "rrc", box_source="oracle", seed=0, **kwargs)
    again = pretrain_simclr(mixed_folder, "rrc", seed=0, **kwargs)
    assert plain.refreshes == [] and plain.epoch_losses == again.epoch_losses


def test_oracle_boxes_need_annotations_and_a_known_source(tmp_path, mixed_folder):
    folder = tmp_path / "plain" / "a"
    folder.mkdir(parents=True)
    for i in range(8):
        Image.fromarray(np.full((32, 32, 3), 40 * (i % 5), np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(ValueError, match="annotations.json"):
        pretrain_simclr(tmp_path / "plain", "multi", box_source="oracle", epochs=1, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="unknown box source 'gt'; available: learned, oracle"):
        pretrain_simclr(mixed_folder, "multi", box_source="gt", epochs=1, batch_size=4, progress=False)


def test_paired_difference_gives_per_seed_differences_and_a_paired_t_test():
    runs = [
        {"setting": "s", "strategy": "rrc", "seed": seed, "object": base}
        for seed, base in enumerate((0.50, 0.52, 0.47, 0.55))
    ] + [
        {"setting": "s", "strategy": "multi-box", "boxes": "oracle", "seed": seed, "object": base + gain}
        for seed, (base, gain) in enumerate(zip((0.50, 0.52, 0.47, 0.55), (0.03, 0.04, 0.035, 0.045)))
    ]
    diff = paired_difference(runs, "s", ("multi-box", "oracle"), "object")
    assert diff["seeds"] == [0, 1, 2, 3]
    np.testing.assert_allclose(diff["differences"], [3.0, 4.0, 3.5, 4.5])
    assert diff["mean"] == pytest.approx(3.75)
    # t = mean / (sd / sqrt(n)) with sd = 0.645 -> t = 11.6 on 3 degrees of freedom, p ~ 0.0014.
    assert diff["p"] == pytest.approx(0.00137, rel=0.05)
    assert paired_difference(runs, "s", ("multi-box", "learned"), "object") is None


def test_presets_and_options_are_validated(tmp_path, capsys):
    gpu = StudyConfig(**PRESETS["gpu"])
    assert gpu.backbone == "resnet18" and gpu.epochs >= 100 and gpu.device == "cuda"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--threshold", "otsu", "--heatmap", "distinctiveness", "--stages", "5",
                              "--boxes", "oracle"])
    config = config_from_args(args)
    assert (config.threshold, config.heatmap, config.stages, config.boxes) == ("otsu", "distinctiveness", ("5",),
                                                                               ("oracle",))
    assert config.pretrain_config(0, "oracle").box_source == "oracle"
    # bad option values end as one line `ccrop study: error: ...` with exit status 2
    assert main(["study", "--quick", "--batch-size", "64", "--out", str(tmp_path)]) == 2
    assert "--batch-size 64 exceeds --train-images 32" in capsys.readouterr().err
    assert main(["study", "--quick", "--box-scale", "4", "1", "--out", str(tmp_path)]) == 2
    assert "--box-scale must be 0 < min <= max" in capsys.readouterr().err
    for option, message in ((["--stages", "99"], "unknown stage '99'"), (["--heatmap", "foo"], "--heatmap: unknown")):
        assert main(["study", "--quick", *option, "--out", str(tmp_path / "never")]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "never").exists()  # before any work
    with pytest.raises(SystemExit):  # argparse's usage error for counts
        main(["study", "--quick", "--epochs", "0", "--out", str(tmp_path)])
    assert "--epochs: expected a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # was "invalid _threshold value: 'foo'"
        main(["study", "--quick", "--threshold", "foo", "--out", str(tmp_path)])
    assert "--threshold: expected a number in [0, 1), otsu or mean; got 'foo'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["study", "--quick", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "no CUDA device is available" in capsys.readouterr().err


def test_a_saved_study_of_other_sizes_is_named_and_not_resumed(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--quick", "--out", str(tmp_path)])
    config = config_from_args(args)
    saved = {"config": asdict(replace(config, epochs=7)), "runs": [{"seed": 0}], "random_init": []}
    (tmp_path / "results.json").write_text(json.dumps(saved))
    _, runs, _, _ = saved_runs(args, config, tmp_path / "results.json")
    assert runs == [] and "holds a study with other epochs: starting afresh" in capsys.readouterr().out
    saved["config"] = asdict(replace(config, seeds=3))  # only the number of seeds differs: resumed
    (tmp_path / "results.json").write_text(json.dumps(saved))
    assert saved_runs(args, config, tmp_path / "results.json")[1] == [{"seed": 0}]


@pytest.mark.parametrize(
    "options, message",
    [
        # a whole study of box strategies that never refresh: every run was RandomResizedCrop's
        (["--warmup-epochs", "2"],
         "--epochs 2 and --warmup-epochs 2, interval 1: the box strategies (multi-box) never refresh"),
        # BatchNorm's "Expected more than 1 value per channel when training" traceback in the first step
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        # a class folder without images: torchvision's "Found no valid file for the classes ..." traceback
        (["--test-images", "4"], "--test-images 4 is fewer than the scenes' 10 classes"),
        # the scene generator's ValueError traceback after the option checks
        (["--scene-size", "20"],
         "--scene-size 20 is too small for the mixed-small scenes (object_area[0] * image_size**2"),
        # torchvision's "If brightness is a single number, it must be non negative" traceback
        (["--cj-strength", "-1"], "--cj-strength must be a finite number >= 0 (the colour jitter of the SimCLR views"),
        # the pieces' words, not the options': 'cj_strength ...', 'strategy rrc: alpha ...', 'threshold ...'
        (["--cj-strength", "inf"], "--cj-strength must be a finite number >= 0 (the colour jitter of the SimCLR views"),
        (["--cj-strength", "3"], "--cj-strength 3.0 makes no valid view steps"),
        (["--alpha", "inf"], "--alpha must be a finite number > 0 (Beta(alpha, alpha) of the crop centre"),
        (["--threshold", "1.5"], "--threshold must lie in [0, 1) (or be otsu/mean); got 1.5"),
        # trained on 1-pixel views (or refreshed / evaluated at 8 px) and reported the accuracies without a word
        (["--image-size", "1"], "--image-size must be at least 16 px (the generated scenes' smallest side; "),
        (["--refresh-size", "8"], "--refresh-size must be at least 16 px"),
        (["--eval-size", "15"], "--eval-size must be at least 16 px"),
        # the core's "a stage name must be a non-empty dotted module name; got ''": neither the option nor the names
        (["--stages", ""], "--stages: an empty stage name (''); the convnet backbone's stages are 0, 1, 2, 3, 4, 5,"),
        (["--stages", "99"], "--stages: unknown stage '99'; the convnet backbone's stages are 0, 1, 2,"),
    ],
)
def test_option_values_that_used_to_fail_late_are_one_line_before_any_work(tmp_path, capsys, options, message):
    assert main(["study", "--quick", *options, "--out", str(tmp_path / "never")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_an_out_that_is_a_file_is_one_line(tmp_path, capsys):
    # was "FileExistsError: [Errno 17] File exists" from mkdir, as a traceback
    (tmp_path / "taken").write_text("x")
    assert main(["study", "--quick", "--out", str(tmp_path / "taken")]) == 2
    assert "--out " in capsys.readouterr().err


def test_report_only_without_results_and_a_corrupt_results_file_are_one_line(tmp_path, capsys):
    # were a ValueError and a JSONDecodeError traceback
    assert main(["study", "--quick", "--report-only", "--out", str(tmp_path / "none")]) == 2
    assert "--report-only needs" in capsys.readouterr().err
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "results.json").write_text('{"config": {"seeds": 1}, "runs": [')  # an interrupted write
    assert main(["study", "--quick", "--out", str(tmp_path / "cut")]) == 2
    err = capsys.readouterr().err
    assert "results.json is not valid JSON" in err and "start afresh with --fresh" in err

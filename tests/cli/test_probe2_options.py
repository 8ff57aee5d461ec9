"""Options the probe found silently ignored or unbounded: each is one line before any work (session 17, probe 2)."""

from __future__ import annotations

import argparse
import json

import pytest

from ccrop_cli.demo.command import add_arguments, config_from_args
from ccrop_cli.main import main
from ccrop_scenes import generate_scenes, write_image_folder


def test_study_boxes_without_a_box_strategy_is_refused(tmp_path, capsys):
    # --boxes oracle was ignored: the only run was rrc, its row said "rrc (none boxes)".
    assert main(["study", "--quick", "--strategies", "rrc", "--boxes", "oracle", "--out", str(tmp_path / "n")]) == 2
    assert ("--boxes applies to the box strategies (paper, multi, multi-box); --strategies rrc has none"
            in capsys.readouterr().err)
    assert not (tmp_path / "n").exists()


def test_study_report_only_refuses_the_options_it_ignores(tmp_path, capsys):
    # They were ignored: the report is results.json's. A gpu preset needed a CUDA device to rewrite a report.
    argv = ["study", "--quick", "--report-only", "--settings", "single", "--epochs", "3", "--fresh"]
    assert main([*argv, "--out", str(tmp_path / "n")]) == 2
    assert ("--epochs, --fresh, --settings do not apply with --report-only (it rewrites the report of results.json, "
            "with that study's options); leave them out" in capsys.readouterr().err)
    assert main(["study", "--preset", "gpu", "--report-only", "--out", str(tmp_path / "none")]) == 2
    assert "--report-only needs" in capsys.readouterr().err  # not "no CUDA device is available here"


@pytest.mark.parametrize("command", [["demo", "--quick"], ["study", "--quick"]])
def test_epochs_are_bounded(tmp_path, capsys, command):
    # --epochs 99999999999999999999 ran for ever without output.
    assert main([*command, "--epochs", "99999999999999999999", "--out", str(tmp_path / "n")]) == 2
    assert "--epochs must be an integer from 1 to 10000; got 99999999999999999999" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("framework, shown", [("lightly", "the convnet backbone's stages are 0, 1,"),
                                               ("mmpretrain", "backbone's stages are backbone.conv1,")])
@pytest.mark.parametrize("stage, said", [("99", "--stages: unknown stage '99'; "),
                                         ("", "--stages: an empty stage name (''); ")])
def test_demo_stages_are_named_before_any_work(tmp_path, capsys, framework, shown, stage, said):
    # The core's words without the option ("unknown stage '99' of Sequential"); mmpretrain's after the scenes.
    argv = ["demo", "--quick", "--framework", framework, "--stages", stage, "--out", str(tmp_path / "n")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and shown in err
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("given, taken", [(["layer3"], ("backbone.layer3",)),
                                          (["layer1", "backbone.layer2"], ("backbone.layer1", "backbone.layer2")),
                                          (["backbone.layer1.0"], ("backbone.layer1.0",))])
def test_mmpretrain_demo_takes_backbone_stages_without_the_prefix(given, taken):
    # `--stages layer3`, as the Lightly scripts take it, was "unknown stage 'layer3'" with mmpretrain.
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--quick", "--framework", "mmpretrain", "--stages", *given])
    assert config_from_args(args).stages == taken


def test_viz_names_images_without_an_entry_in_the_box_file(tmp_path, capsys):
    # Drawn without boxes, as if the localizer had found none, and nothing said.
    write_image_folder(generate_scenes(3, image_size=32, objects_per_image=(1, 1), seed=1), tmp_path / "imgs")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"format": "ccrop-boxes", "format_version": 1, "num_samples": 3, "max_boxes": 1,
                                 "samples": {}}))
    assert main(["viz", str(tmp_path / "imgs"), "--boxes", str(boxes), "--out", str(tmp_path / "o"),
                 "--pairs", "1", "--pair-images", "1", "--images", "3"]) == 0
    assert f"ccrop viz: 3 of 3 images have no entry in {boxes} (drawn without boxes)" in capsys.readouterr().out

"""``python -m ccrop_scenes OUT``: the demo's scenes as a labelled image folder (docs/index.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from ccrop_cli.experiment.scene_settings import get_scene_setting
from ccrop_scenes import load_annotations
from ccrop_scenes.__main__ import MULTI_SMALL, main


def test_writes_the_demos_scenes_with_their_boxes(tmp_path):
    assert main([str(tmp_path / "scenes"), "--images", "12", "--size", "48", "--seed", "1"]) == 0
    coco = json.loads((tmp_path / "scenes" / "annotations.json").read_text())
    assert len(coco["images"]) == 12 and {image["width"] for image in coco["images"]} == {48}
    per_image = Counter(annotation["image_id"] for annotation in coco["annotations"])
    assert set(per_image.values()) <= {2, 3, 4} and len(per_image) == 12
    setting = get_scene_setting("multi-small")  # the demo's default, kept in step
    assert MULTI_SMALL == dict(objects_per_image=setting.objects_per_image, object_area=setting.object_area)


def test_module_runs_and_bad_values_are_one_usage_line(tmp_path):
    # Before: 'No module named ccrop_scenes.__main__; 'ccrop_scenes' is a package and cannot be directly executed'.
    done = subprocess.run([sys.executable, "-m", "ccrop_scenes", str(tmp_path / "s"), "--size", "16"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("python -m ccrop_scenes: error: --size 16 is too small")


@pytest.mark.parametrize("argv, message", [
    # a script's "$OUT" with OUT unset: Path("") is the current folder, which --overwrite filled with class folders
    (["", "--images", "2", "--overwrite"], 'argument out: empty path (an unset variable in "$OUT"?)'),
    (["OUT", "--images", "-3"], "argument --images: expected a positive integer; got -3"),  # was 'num_images ...'
    (["OUT", "--images", "2", "--seed", "-1"], "argument --seed: expected an integer >= 0; got -1"),
    (["OUT", "--size", "4000"], "argument --size: expected an image side in pixels from 16 to 1024; got 4000"),
    # was 'object_area[0] * image_size**2 must be >= 16 pixels ...; raise object_area[0] ... or image_size'
    (["OUT", "--size", "17"], "--size 17 is too small for these scenes' smallest objects; the smallest --size taken "
                              "is 24"),
])
def test_usage_errors_name_the_command_line_option(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "out") if item == "OUT" else item for item in argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_quoted_tilde_is_the_home_folder(tmp_path, monkeypatch):
    # The shell expands ~/scenes, not "~/scenes" nor OUT=~/scenes in a script's "$OUT": a folder named '~' was made.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["~/scenes", "--images", "2", "--size", "24"]) == 0
    assert len(load_annotations(tmp_path / "home" / "scenes")) == 2 and not (tmp_path / "~").exists()


def test_classes_that_drew_no_image_get_no_empty_folder(tmp_path, capsys):
    # --images 6 of 10 classes: four empty class folders were written, which the folder's own next step refused
    # (ccrop demo --data: 'class folder(s) hold no images'; torchvision's ImageFolder: 'Found no valid file').
    from ccrop_cli.demo.user_data import list_images

    assert main([str(tmp_path / "s"), "--images", "6", "--size", "32", "--seed", "0"]) == 0
    folders = [path for path in (tmp_path / "s").iterdir() if path.is_dir()]
    assert 0 < len(folders) < 10 and all(any(folder.iterdir()) for folder in folders)
    assert len(list_images(tmp_path / "s")) == 6 and len(load_annotations(tmp_path / "s")) == 6
    assert f"note: {10 - len(folders)} of 10 classes drew no image" in capsys.readouterr().out


def test_images_beyond_the_memory_are_one_usage_line_before_generating(tmp_path, monkeypatch, capsys):
    # Before: the arrays were granted lazily (np.empty) and filled until the system killed the process (7000 images
    # of 1024 px need 27 GiB); only a count beyond the whole address space was a MemoryError line.
    from ccrop_scenes import export

    monkeypatch.setattr(export, "available_memory", lambda: 2**20)  # this machine with 1 MiB free
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "s"), "--images", "100", "--size", "64"])
    assert exit_info.value.code == 2
    assert ("100 images of 64 px need 0.0 GiB of memory while they are generated, more than the 0.0 GiB available "
            "here; use fewer --images or a smaller --size") in capsys.readouterr().err
    assert not (tmp_path / "s").exists()

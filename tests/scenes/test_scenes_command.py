"""``python -m ccrop_scenes OUT``: the demo's scenes as a labelled image folder (docs/index.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from ccrop_cli.experiment.scene_settings import get_scene_setting
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
    assert done.stderr.strip().splitlines()[-1].startswith("python -m ccrop_scenes: error: object_area[0]")

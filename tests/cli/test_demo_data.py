"""``ccrop demo --data``: the user's folder (flat or by class) and its optional annotations.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ccrop_cli.demo.user_data import list_images, load_user_annotations
from ccrop_cli.errors import UserError


def _folder(root, names, size=(40, 20)):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (120, 30, 200)).save(root / name)
    return root


def test_lists_flat_and_class_folders(tmp_path):
    _folder(tmp_path, ["b.png", "a.jpg", "cats/c.png"])
    (tmp_path / "notes.txt").write_text("x")
    assert list_images(tmp_path) == ["a.jpg", "b.png", "cats/c.png"]


def test_no_images_or_no_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_annotations_are_normalised_and_sizes_read_from_files(tmp_path):
    _folder(tmp_path, ["cats/a.png", "b.png"])
    coco = {"images": [{"id": 7, "file_name": "cats/a.png"}, {"id": "b", "file_name": "b.png", "width": 40, "height": 20}],
            "annotations": [{"image_id": 7, "bbox": [10, 5, 20, 10]}, {"image_id": 7, "bbox": [30, 10, 20, 20]}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    boxes = load_user_annotations(tmp_path, list_images(tmp_path))
    assert boxes["cats/a.png"] == pytest.approx(np.array([[0.25, 0.25, 0.75, 0.75], [0.75, 0.5, 1.0, 1.0]]))
    assert boxes["b.png"].shape == (0, 4)


def test_without_annotations_gives_none(tmp_path):
    _folder(tmp_path, ["a.png"])
    assert load_user_annotations(tmp_path, ["a.png"]) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected an object"),
        ('{"images": [], "annotations": {}}', "'annotations' must be a list"),
        ('{"images": [{"file_name": "a.png"}], "annotations": []}', r"images\[0\] must be an object with 'id'"),
        ('{"images": [{"id": 1, "file_name": "zz.png"}], "annotations": []}', "'zz.png' is not an image"),
        ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "bbox": [0, 0, 1, 1]}]}',
         "image_id 2 is not the id"),
        ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [0, 0, 1]}]}',
         r"annotations\[0\]: 'bbox' must be \[x, y, w, h\]"),
        ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [0, 0, -1, 3]}]}',
         "w > 0 and h > 0"),
    ],
)
def test_malformed_annotations_name_the_file_and_the_problem(tmp_path, text, message):
    _folder(tmp_path, ["a.png"])
    (tmp_path / "annotations.json").write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        load_user_annotations(tmp_path, ["a.png"])
    assert "annotations.json" in str(caught.value)

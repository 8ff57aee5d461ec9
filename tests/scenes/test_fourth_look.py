"""The fourth look: seeded, boxes tight around each object's visible pixels, a flat folder of mixed
sizes, modes and formats whose annotations.json round-trips."""

import json

import numpy as np
import pytest
from PIL import Image

from ccrop_scenes import load_annotations
from ccrop_scenes.fourth_look import FOURTH_LOOK_KINDS, generate_fourth_look, main, write_fourth_look


@pytest.fixture(scope="module")
def pictures():
    return generate_fourth_look(30, sides=(40, 64), seed=5)


def test_seeded(pictures):
    again = generate_fourth_look(10, sides=(40, 64), seed=5)
    assert all(a.encoded == b.encoded and np.array_equal(a.boxes, b.boxes) for a, b in zip(pictures, again))
    other = generate_fourth_look(3, sides=(40, 64), seed=6)
    assert any(a.encoded != b.encoded for a, b in zip(pictures, other))


def test_boxes_are_tight_boxes_of_the_visible_masks(pictures):
    for picture in pictures:
        height, width = picture.mask.shape
        assert (picture.image.width, picture.image.height) == (width, height)
        assert 1 <= len(picture.boxes) == len(picture.categories) <= 6
        assert set(picture.categories.tolist()) <= set(range(len(FOURTH_LOOK_KINDS)))
        assert (picture.boxes[:, :2] >= 0).all() and (picture.boxes[:, 2] <= width).all()
        assert (picture.boxes[:, 3] <= height).all()
        for slot, (x0, y0, x1, y1) in enumerate(picture.boxes.tolist()):
            rows, cols = np.nonzero(picture.mask == slot + 1)
            assert len(rows) >= 10
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)


def test_mixes_sizes_modes_and_formats(pictures):
    sizes = {p.image.size for p in pictures}
    assert len(sizes) > 10 and any(w != h for w, h in sizes)
    assert all(40 <= side <= 64 for size in sizes for side in size)
    kinds = {(p.image.mode, p.extension) for p in pictures}
    assert {("RGB", "png"), ("RGBA", "png"), ("RGB", "jpg")} <= kinds and {"L"} <= {mode for mode, _ in kinds}
    assert len({int(c) for p in pictures for c in p.categories}) == len(FOURTH_LOOK_KINDS)


def test_the_objects_are_not_the_only_contrast(pictures):
    # Background structure: the gradient energy outside the objects is a large part of the total.
    outside = []
    for picture in pictures:
        gray = np.asarray(picture.image.convert("L"), dtype=np.float64)
        edges = np.abs(np.diff(gray, axis=1))
        background = picture.mask[:, 1:] == 0
        outside.append(edges[background].mean() / max(edges.mean(), 1e-9))
    assert np.median(outside) > 0.5


def test_folder_round_trip_and_command(tmp_path, pictures):
    root = write_fourth_look(pictures[:8], tmp_path / "a")
    boxes = load_annotations(root)
    coco = json.loads((root / "annotations.json").read_text())
    assert len(coco["images"]) == 8 and len(boxes) == 8
    for entry, picture in zip(coco["images"], pictures):
        stored = Image.open(root / entry["file_name"])
        assert stored.size == (entry["width"], entry["height"]) == picture.image.size
        assert stored.mode == picture.image.mode
        assert np.array_equal(np.asarray(stored), np.asarray(picture.image))
        expected = picture.boxes / np.array([entry["width"], entry["height"]] * 2, dtype=np.float64)
        assert np.allclose(boxes[entry["file_name"]], expected, atol=1e-6)
    assert {a["category_id"] for a in coco["annotations"]} <= set(range(len(FOURTH_LOOK_KINDS)))
    assert main([str(tmp_path / "b"), "--images", "3", "--seed", "1"]) == 0
    assert len(load_annotations(tmp_path / "b")) == 3


@pytest.mark.parametrize("kwargs, word", [({"sides": (8, 64)}, "sides"), ({"object_area": (0.0, 0.1)}, "object_area")])
def test_bad_arguments_name_the_value(kwargs, word):
    with pytest.raises(ValueError, match=word):
        generate_fourth_look(2, **kwargs)


@pytest.mark.parametrize("argv, message", [
    (["--images", "0"], "argument --images: expected a positive integer; got 0"),  # was a ValueError traceback
    (["--seed", "-1"], "seed"),
])
def test_command_bad_values_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "out"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_command_out_a_file_or_full_folder(tmp_path, capsys):
    # were a NotADirectoryError traceback, and "is not empty" without a way to write into it
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "a.txt"), "--images", "2"])
    assert exit_info.value.code == 2 and "a.txt is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--images", "2"])
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([str(tmp_path), "--images", "2", "--overwrite"]) == 0
    assert len(load_annotations(tmp_path)) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"num_images": True}, "num_images must be an integer, got True"),  # was one picture, silently
    ({"num_images": 2, "seed": "a"}, "seed must be an integer, got 'a'"),  # was int()'s "invalid literal"
    ({"num_images": 2, "objects_per_image": 3}, r"objects_per_image must be a \(min, max\) pair, got 3"),
    ({"num_images": 2, "sides": 64}, r"sides must be a \(min, max\) pair, got 64"),
])
def test_arguments_that_are_not_numbers_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_fourth_look(**kwargs)


def test_images_beyond_the_memory_are_one_usage_line_before_generating(tmp_path, monkeypatch, capsys):
    # Before: no check, unlike the other looks' commands; every picture is held until the folder is written, so a
    # count beyond the memory grew the list until the system killed the process.
    from ccrop_scenes import export

    monkeypatch.setattr(export, "available_memory", lambda: 2**20)  # this machine with 1 MiB free
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "s"), "--images", "100"])
    assert exit_info.value.code == 2
    assert ("100 images of up to 128 px need 0.0 GiB of memory while they are generated, more than the 0.0 GiB "
            "available here; use fewer --images") in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    monkeypatch.setattr(export, "available_memory", lambda: None)  # unknown (no /proc/meminfo): no check
    assert main([str(tmp_path / "t"), "--images", "2"]) == 0

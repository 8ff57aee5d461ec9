"""The second look: seeded, COCO export round-trips, boxes tight around each object's pixels."""

import numpy as np
import pytest

from ccrop_scenes import load_annotations, write_image_folder
from ccrop_scenes.second_look import SECOND_LOOK_CLASSES, generate_second_look, main


def test_seeded_and_shaped():
    a = generate_second_look(6, image_size=32, seed=3)
    b = generate_second_look(6, image_size=32, seed=3)
    assert a.images.shape == (6, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, generate_second_look(6, image_size=32, seed=4).images)
    assert set(a.labels.tolist()) <= set(range(len(SECOND_LOOK_CLASSES)))


def test_boxes_are_tight_boxes_of_the_masks():
    scenes = generate_second_look(10, image_size=48, objects_per_image=(1, 3), seed=0)
    for boxes, mask in zip(scenes.boxes, scenes.masks):
        assert 1 <= len(boxes) <= 3
        assert (boxes[:, :2] < boxes[:, 2:]).all() and (boxes >= 0).all() and (boxes <= 1).all()
        for slot, box in enumerate(boxes):
            rows, cols = np.nonzero(mask == slot + 1)
            if len(rows):  # a later object may cover an earlier one's pixels
                assert cols.min() >= round(box[0] * 48) and cols.max() < round(box[2] * 48)
                assert rows.min() >= round(box[1] * 48) and rows.max() < round(box[3] * 48)


def test_image_folder_round_trip(tmp_path):
    scenes = generate_second_look(5, image_size=32, seed=1)
    write_image_folder(scenes, tmp_path)
    boxes = load_annotations(tmp_path)
    assert len(boxes) == 5
    assert sum(len(b) for b in boxes.values()) == sum(len(b) for b in scenes.boxes)


@pytest.mark.parametrize(
    "kwargs, word",
    [({"image_size": 8}, "image_size"), ({"objects_per_image": (3, 2)}, "objects_per_image"),
     ({"object_area": (0.0, 0.1)}, "object_area"), ({"seed": -1}, "seed")],
)
def test_bad_arguments_name_the_value(kwargs, word):
    with pytest.raises(ValueError, match=word):
        generate_second_look(2, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    # were int()'s "invalid literal", "int() argument must be ... not 'NoneType'", "an integer is required",
    # "cannot unpack non-iterable int object"
    ({"num_images": None}, "num_images must be an integer, got None"),
    ({"num_images": True}, "num_images must be an integer, got True"),
    ({"num_images": 2, "seed": "a"}, "seed must be an integer, got 'a'"),
    ({"num_images": 2, "objects_per_image": 3}, r"objects_per_image must be a \(min, max\) pair, got 3"),
    ({"num_images": 2, "object_area": ("a", 0.1)}, "object_area must hold two numbers"),
])
def test_arguments_that_are_not_numbers_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_second_look(**kwargs)


def test_command_writes_a_folder(tmp_path):
    from ccrop_scenes.second_look import main

    assert main([str(tmp_path / "out"), "--images", "3", "--size", "24"]) == 0
    assert len(load_annotations(tmp_path / "out")) == 3


@pytest.mark.parametrize("argv, message", [
    (["--images", "0"], "argument --images: expected a positive integer; got 0"),
    (["--size", "8"], "argument --size: expected an image side in pixels from 16 to 1024; got 8"),
    (["--images", "2", "--size", "10000000"], "argument --size: expected an image side in pixels from 16 to 1024; "
                                              "got 10000000"),  # was numpy's MemoryError traceback
])
def test_command_bad_values_are_usage_errors(tmp_path, capsys, argv, message):
    # were ValueError tracebacks from the generator
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "out"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_command_into_a_folder_of_other_files_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--images", "2", "--size", "24"])
    assert exit_info.value.code == 2 and "is not empty" in capsys.readouterr().err


def test_command_out_a_file_or_full_folder_names_the_command_line_flag(tmp_path, capsys):
    # were a NotADirectoryError traceback, and "pass overwrite=True" (a Python argument) to a shell user
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "a.txt"), "--images", "2", "--size", "24"])
    assert exit_info.value.code == 2 and "a.txt is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--images", "2", "--size", "24"])
    err = capsys.readouterr().err
    assert "pass --overwrite" in err and "overwrite=True" not in err
    assert main([str(tmp_path), "--images", "2", "--size", "24", "--overwrite"]) == 0
    assert len(load_annotations(tmp_path)) == 2 and (tmp_path / "a.txt").read_text() == "x"

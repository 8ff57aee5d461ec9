"""The third look: seeded, COCO export round-trips, boxes tight around each object's visible pixels."""

import numpy as np
import pytest

from ccrop_scenes import load_annotations, write_image_folder
from ccrop_scenes.third_look import THIRD_LOOK_CLASSES, generate_third_look, main


def test_seeded_and_shaped():
    a = generate_third_look(6, image_size=32, seed=3)
    b = generate_third_look(6, image_size=32, seed=3)
    assert a.images.shape == (6, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, generate_third_look(6, image_size=32, seed=4).images)
    assert set(a.labels.tolist()) <= set(range(len(THIRD_LOOK_CLASSES)))


def test_boxes_are_tight_boxes_of_the_visible_masks():
    scenes = generate_third_look(12, image_size=48, objects_per_image=(1, 3), seed=0)
    for boxes, mask in zip(scenes.boxes, scenes.masks):
        assert 1 <= len(boxes) <= 3
        assert (boxes[:, :2] < boxes[:, 2:]).all() and (boxes >= 0).all() and (boxes <= 1).all()
        for slot, box in enumerate(boxes):
            rows, cols = np.nonzero(mask == slot + 1)
            assert len(rows) and cols.min() == round(box[0] * 48) and cols.max() + 1 == round(box[2] * 48)
            assert rows.min() == round(box[1] * 48) and rows.max() + 1 == round(box[3] * 48)


def test_some_images_are_grayscale():
    images = generate_third_look(24, image_size=24, seed=0).images.astype(int)
    gray = [(np.abs(im[..., 0] - im[..., 1]).max() <= 3) and (np.abs(im[..., 1] - im[..., 2]).max() <= 3)
            for im in images]
    assert 0 < sum(gray) < len(gray)


def test_image_folder_round_trip_and_command(tmp_path):
    scenes = generate_third_look(5, image_size=32, seed=1)
    write_image_folder(scenes, tmp_path / "a")
    boxes = load_annotations(tmp_path / "a")
    assert sum(len(b) for b in boxes.values()) == sum(len(b) for b in scenes.boxes)
    assert main([str(tmp_path / "b"), "--images", "3", "--size", "24"]) == 0
    assert len(load_annotations(tmp_path / "b")) == 3


@pytest.mark.parametrize("kwargs, word", [({"image_size": 8}, "image_size"),
                                          ({"object_area": (0.0, 0.1)}, "object_area")])
def test_bad_arguments_name_the_value(kwargs, word):
    with pytest.raises(ValueError, match=word):
        generate_third_look(2, **kwargs)

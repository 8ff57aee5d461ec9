"""``generate_scenes(mixed_classes=True)``: objects of different classes, labelled per object."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ccrop_scenes import ANNOTATIONS_FILE, generate_scenes, generator, write_image_folder

MIXED = dict(objects_per_image=(2, 4), object_area=(0.03, 0.08), mixed_classes=True)


@pytest.fixture(scope="module")
def mixed():
    return generate_scenes(120, image_size=48, seed=7, **MIXED)


def test_objects_of_an_image_have_distinct_classes_and_the_largest_carries_the_image_label(mixed):
    assert len(mixed.object_labels) == len(mixed.boxes) == len(mixed)
    for label, classes, boxes in zip(mixed.labels, mixed.object_labels, mixed.boxes):
        assert classes.dtype == np.int64 and classes.shape == (len(boxes),)
        assert len(set(classes.tolist())) == len(classes)  # no class twice in one image
        assert label in classes
        # The image label is the class of the largest layout box; the tight box of the drawn
        # shape may lose a thin tip, hence the tolerance.
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert areas[list(classes).index(label)] >= 0.8 * areas.max()
    # Every class appears as a non-image-label object somewhere (the others are drawn at random).
    others = np.concatenate([c[c != label] for label, c in zip(mixed.labels, mixed.object_labels)])
    assert set(others.tolist()) == set(range(10))


def test_the_largest_layout_box_keeps_the_image_label_and_ties_go_to_the_first_slot():
    rng = np.random.default_rng(0)
    labels = np.array([3, 5])
    image, slot = np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 0, 1])
    box = np.array([[0, 0, 4, 4], [0, 0, 6, 5], [0, 0, 3, 3], [0, 0, 5, 5], [0, 0, 5, 5]])
    classes = generator._mixed_labels(rng, labels, image, slot, box, num_classes=10)
    assert classes[1] == 3 and classes[3] == 5
    assert len({*classes[:3].tolist()}) == 3 and classes[4] != 5


def test_mixed_scenes_are_seeded(mixed):
    again = generate_scenes(120, image_size=48, seed=7, **MIXED)
    other = generate_scenes(120, image_size=48, seed=8, **MIXED)
    assert again.images.tobytes() == mixed.images.tobytes()
    assert all(np.array_equal(a, b) for a, b in zip(again.object_labels, mixed.object_labels))
    assert not all(np.array_equal(a, b) for a, b in zip(other.object_labels, mixed.object_labels))


def test_default_scenes_label_every_object_with_the_image_label():
    scenes = generate_scenes(30, image_size=32, objects_per_image=(1, 3), object_area=(0.05, 0.1), seed=2)
    for label, classes, boxes in zip(scenes.labels, scenes.object_labels, scenes.boxes):
        assert classes.tolist() == [label] * len(boxes)


def test_object_colours_follow_the_object_class_not_the_image_label(mixed):
    # Class c has mean hue c / 10: the hue of each object's pixels must match its own class
    # (within the +-0.15 jitter plus shading), which separates it from the image label's hue.
    import colorsys

    misses = 0
    for image, mask, classes in zip(mixed.images[:40], mixed.masks[:40], mixed.object_labels[:40]):
        for slot, c in enumerate(classes):
            pixel = image[mask == slot + 1].astype(np.float64).mean(axis=0) / 255
            hue = colorsys.rgb_to_hsv(*pixel)[0]
            distance = min(abs(hue - c / 10), 1 - abs(hue - c / 10))
            misses += distance > 0.25
    assert misses <= 5


def test_annotations_carry_each_object_class(mixed, tmp_path):
    write_image_folder(mixed, tmp_path)
    coco = json.loads((tmp_path / ANNOTATIONS_FILE).read_text())
    by_image: dict[int, list[int]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["category_id"])
    assert all(by_image[i] == mixed.object_labels[i].tolist() for i in range(len(mixed)))
    assert all(image["label"] == int(mixed.labels[image["id"]]) for image in coco["images"])


def test_more_objects_than_classes_is_rejected():
    with pytest.raises(ValueError, match="objects_per_image\\[1\\] = 4 exceeds num_classes = 3"):
        generate_scenes(4, num_classes=3, **MIXED)
    with pytest.raises(ValueError, match="mixed_classes must be True or False"):
        generate_scenes(4, mixed_classes="yes")

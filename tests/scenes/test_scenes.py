"""Tests for the synthetic scene generator and its image-folder export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccrop_scenes import (
    ANNOTATIONS_FILE,
    CLASS_NAMES,
    Scenes,
    generate_scenes,
    load_annotations,
    load_labels,
    write_image_folder,
)
from ccrop_scenes import generator

SMALL = {"objects_per_image": (2, 4), "object_area": (0.02, 0.08)}


@pytest.fixture(scope="module")
def single() -> Scenes:
    """One medium-sized object per image (the defaults)."""
    return generate_scenes(200, seed=3)


@pytest.fixture(scope="module")
def multi() -> Scenes:
    """Two to four small objects per image."""
    return generate_scenes(200, seed=4, **SMALL)


def _box_pixels(scenes: Scenes, index: int) -> np.ndarray:
    """Integer pixel boxes ``[x0, y0, x1, y1]`` of image ``index``."""
    size = scenes.images.shape[1]
    return np.rint(scenes.boxes[index] * size).astype(np.int64)


def test_same_seed_gives_identical_bytes() -> None:
    first = generate_scenes(40, seed=11, **SMALL)
    second = generate_scenes(40, seed=11, **SMALL)
    assert first.images.tobytes() == second.images.tobytes()
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.masks, second.masks)
    assert all(np.array_equal(a, b) for a, b in zip(first.boxes, second.boxes))


def test_different_seeds_differ() -> None:
    first = generate_scenes(40, seed=1)
    second = generate_scenes(40, seed=2)
    assert not np.array_equal(first.images, second.images)
    assert not np.array_equal(first.labels, second.labels)
    # nearly every image differs, not just a few pixels
    differs = (first.images != second.images).mean(axis=(1, 2, 3))
    assert (differs > 0.5).all()


@pytest.mark.parametrize("fixture", ["single", "multi"])
def test_shapes_and_dtypes(fixture: str, request: pytest.FixtureRequest) -> None:
    scenes: Scenes = request.getfixturevalue(fixture)
    assert len(scenes) == 200
    assert scenes.images.shape == (200, 64, 64, 3) and scenes.images.dtype == np.uint8
    assert scenes.labels.shape == (200,) and scenes.labels.dtype == np.int64
    assert scenes.masks.shape == (200, 64, 64) and scenes.masks.dtype == np.uint8
    assert scenes.class_names == list(CLASS_NAMES)
    assert len(scenes.boxes) == 200
    for boxes in scenes.boxes:
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4


def test_class_names_sort_in_label_order() -> None:
    assert sorted(CLASS_NAMES) == list(CLASS_NAMES)
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES) == 10


@pytest.mark.parametrize("fixture", ["single", "multi"])
def test_boxes_are_valid_and_pixel_aligned(fixture: str, request: pytest.FixtureRequest) -> None:
    scenes: Scenes = request.getfixturevalue(fixture)
    boxes = np.concatenate(scenes.boxes)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    np.testing.assert_allclose(boxes * 64, np.rint(boxes * 64), atol=1e-4)


def test_object_counts_within_range(single: Scenes, multi: Scenes) -> None:
    assert all(len(b) == 1 for b in single.boxes)
    counts = np.array([len(b) for b in multi.boxes])
    assert counts.min() >= 2 and counts.max() <= 4
    assert set(counts.tolist()) == {2, 3, 4}  # uniform over the inclusive range


@pytest.mark.parametrize(
    ("objects", "area"), [((1, 1), (0.10, 0.30)), ((2, 4), (0.02, 0.08)), ((3, 3), (0.05, 0.10))]
)
def test_tight_box_area_within_guaranteed_range(objects: tuple, area: tuple) -> None:
    # Layout boxes are drawn with area in `area` (up to whole-pixel rounding);
    # the tight box of the shape lies inside and covers at least half of it.
    scenes = generate_scenes(150, objects_per_image=objects, object_area=area, seed=5)
    boxes = np.concatenate(scenes.boxes)
    frac = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert frac.min() >= 0.5 * area[0]
    assert frac.max() <= 1.05 * area[1]
    # and the sizes spread over the range rather than collapsing to one end
    assert frac.max() > area[0] + 0.6 * (area[1] - area[0])


@pytest.mark.parametrize("fixture", ["single", "multi"])
def test_instances_of_an_image_barely_overlap(fixture: str, request: pytest.FixtureRequest) -> None:
    scenes: Scenes = request.getfixturevalue(fixture)
    for boxes in scenes.boxes:
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
                ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
                inter = iw * ih
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                assert inter / union < 0.1


def test_labels_are_balanced_and_shuffled() -> None:
    scenes = generate_scenes(205, num_classes=10, seed=0)
    counts = np.bincount(scenes.labels, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 205
    assert not np.array_equal(scenes.labels, np.arange(205) % 10)

    three = generate_scenes(30, num_classes=3, seed=0)
    assert three.class_names == list(CLASS_NAMES[:3])
    assert np.bincount(three.labels).tolist() == [10, 10, 10]


@pytest.mark.parametrize("kwargs", [{}, SMALL])
def test_boxes_contain_exactly_the_object_pixels(kwargs: dict) -> None:
    """Compare with the same scenes rendered without objects (same random stream)."""
    n, seed = 60, 9
    full = generate_scenes(n, seed=seed, **kwargs)
    config = generator._validate(n, 64, kwargs.get("objects_per_image", (1, 1)),
                                 kwargs.get("object_area", (0.1, 0.3)), 10, seed)
    background, labels, _, empty_masks, _ = generator._generate(n, config, seed, draw_objects=False)
    assert np.array_equal(labels, full.labels) and not empty_masks.any()

    changed = (full.images != background).any(axis=-1)  # (n, H, W)
    for i in range(n):
        boxes = _box_pixels(full, i)
        in_any_box = np.zeros((64, 64), dtype=bool)
        for j, (x0, y0, x1, y1) in enumerate(boxes):
            in_any_box[y0:y1, x0:x1] = True
            instance = full.masks[i] == j + 1
            rows, cols = np.nonzero(instance)
            # the box is the tight box of the instance's pixels
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)
            # the instance's pixels really were painted over the background
            assert changed[i][instance].mean() > 0.9
        # nothing outside the boxes differs from the object-free rendering
        assert not changed[i][~in_any_box].any()
        assert not full.masks[i][~in_any_box].any()


def test_background_does_not_depend_on_label() -> None:
    scenes = generate_scenes(600, seed=2)
    background = scenes.masks == 0  # (n, H, W)
    pixels = scenes.images.astype(np.float64) / 255.0
    per_image = (pixels * background[..., None]).sum(axis=(1, 2)) / background.sum(axis=(1, 2))[:, None]
    overall = per_image.mean(axis=0)
    for label in range(10):
        class_mean = per_image[scenes.labels == label].mean(axis=0)
        assert np.abs(class_mean - overall).max() < 0.06

    # whereas object colour does carry class information
    obj = ~background
    obj_mean = (pixels * obj[..., None]).sum(axis=(1, 2)) / obj.sum(axis=(1, 2))[:, None]
    class_obj = np.stack([obj_mean[scenes.labels == c].mean(axis=0) for c in range(10)])
    assert np.abs(class_obj - obj_mean.mean(axis=0)).max() > 0.1


def test_other_image_sizes_and_multiple_batches() -> None:
    n = generator._CHUNK + 3  # crosses a batch boundary
    scenes = generate_scenes(n, image_size=16, seed=1)
    assert scenes.images.shape == (n, 16, 16, 3) and len(scenes.boxes) == n
    boxes = np.concatenate(scenes.boxes)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    big = generate_scenes(4, image_size=96, seed=1, **SMALL)
    assert big.images.shape == (4, 96, 96, 3)


def test_crowded_setting_still_places_every_object() -> None:
    scenes = generate_scenes(100, objects_per_image=(5, 5), object_area=(0.1, 0.1), seed=0)
    assert all(len(b) == 5 for b in scenes.boxes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_images": 0}, "num_images"),
        ({"image_size": 8}, "image_size must be >= 16, got 8"),
        ({"objects_per_image": (3, 1)}, r"objects_per_image .*\(3, 1\)"),
        ({"objects_per_image": (0, 2)}, "objects_per_image"),
        ({"objects_per_image": (1, 17)}, "objects_per_image"),
        ({"objects_per_image": 2}, "objects_per_image"),
        ({"object_area": (0.0, 0.2)}, r"object_area .*0 < min <= max <= 1.*\(0\.0, 0\.2\)"),
        ({"object_area": (0.2, 1.5)}, r"object_area .*1\.5"),
        ({"object_area": (0.3, 0.1)}, r"object_area .*\(0\.3, 0\.1\)"),
        ({"object_area": (0.001, 0.1)}, "object_area\\[0\\]"),
        ({"objects_per_image": (4, 8), "object_area": (0.1, 0.2)}, "do not fit"),
        ({"num_classes": 0}, r"num_classes must be in \[1, 10\], got 0"),
        ({"num_classes": 11}, r"num_classes must be in \[1, 10\], got 11"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, message: str) -> None:
    args = {"num_images": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_scenes(args.pop("num_images"), **args)


def test_write_image_folder_round_trip(tmp_path: Path) -> None:
    scenes = generate_scenes(30, seed=6, objects_per_image=(1, 3), object_area=(0.05, 0.15))
    root = write_image_folder(scenes, tmp_path / "data")
    assert root == tmp_path / "data"

    # class folders sorted alphabetically (as ImageFolder does) index the labels
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert folders == scenes.class_names
    seen = 0
    for class_index, folder in enumerate(folders):
        for path in sorted((root / folder).glob("*.png")):
            index = int(path.stem)
            assert scenes.labels[index] == class_index
            with Image.open(path) as img:
                assert img.mode == "RGB"
                assert np.array_equal(np.asarray(img), scenes.images[index])
            seen += 1
    assert seen == len(scenes)

    boxes = load_annotations(root)
    labels = load_labels(root)
    assert len(boxes) == len(labels) == len(scenes)
    for index in range(len(scenes)):
        name = f"{scenes.class_names[scenes.labels[index]]}/{index:05d}.png"
        assert labels[name] == scenes.labels[index]
        np.testing.assert_allclose(boxes[name], scenes.boxes[index], atol=1.0 / 64)

    coco = json.loads((root / ANNOTATIONS_FILE).read_text())
    assert [c["name"] for c in coco["categories"]] == scenes.class_names
    ann = coco["annotations"][0]
    image = coco["images"][ann["image_id"]]
    assert (image["width"], image["height"]) == (64, 64)
    x, y, w, h = ann["bbox"]
    assert 0 < ann["area"] <= w * h
    assert ann["category_id"] == scenes.labels[ann["image_id"]]


def test_write_image_folder_refuses_non_empty_root(tmp_path: Path) -> None:
    scenes = generate_scenes(3, seed=0)
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(FileExistsError):
        write_image_folder(scenes, tmp_path)
    write_image_folder(scenes, tmp_path, overwrite=True)
    assert (tmp_path / ANNOTATIONS_FILE).exists()
    with pytest.raises(ValueError, match="image_format"):
        write_image_folder(scenes, tmp_path / "other", image_format="gif")


def test_torchvision_image_folder_index_equals_label(tmp_path: Path) -> None:
    from torchvision import datasets
    scenes = generate_scenes(20, seed=8)
    root = write_image_folder(scenes, tmp_path)
    folder = datasets.ImageFolder(str(root))
    assert folder.classes == scenes.class_names
    assert len(folder) == len(scenes)
    for path, target in folder.samples:
        assert target == scenes.labels[int(Path(path).stem)]


def test_load_annotations_of_another_coco_file_says_which_reader_to_use(tmp_path):
    # a user's COCO file without width/height was a bare KeyError: 'width'
    import json as json_module

    coco = {"images": [{"id": 0, "file_name": "./a.png"}], "annotations": [{"image_id": 0, "bbox": [1, 1, 4, 4]}]}
    (tmp_path / "annotations.json").write_text(json_module.dumps(coco))
    with pytest.raises(ValueError, match=r"annotations.json is not a file write_image_folder wrote "
                                         r"\(KeyError: 'width'\); for other COCO files .*load_user_annotations"):
        load_annotations(tmp_path)

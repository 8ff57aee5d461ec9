"""Linear probe and kNN, object probe and multi-label mAP: known answers on constructed features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from ccrop_cli.experiment.evaluation import (
    evaluate_backbone,
    knn_accuracy,
    linear_probe_accuracy,
    mean_average_precision,
    object_features,
    read_object_annotations,
)

CLASSES = 5


def _clusters(seed: int, per_class: int = 40, dim: int = 16, spread: float = 0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, dim))
    labels = np.repeat(np.arange(CLASSES), per_class)
    features = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    return features.astype(np.float32), labels


def test_separable_clusters_are_classified_almost_perfectly():
    train_x, train_y = _clusters(seed=0)
    test_x, test_y = _clusters(seed=0, per_class=20)  # same centres: same seed draws them first
    test_x = test_x + np.random.default_rng(1).normal(scale=0.3, size=test_x.shape).astype(np.float32)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) >= 0.95
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=10) >= 0.95


def test_random_labels_give_chance_accuracy():
    rng = np.random.default_rng(2)
    train_x, test_x = rng.normal(size=(200, 16)), rng.normal(size=(400, 16))
    train_y, test_y = rng.integers(0, CLASSES, 200), rng.integers(0, CLASSES, 400)
    for accuracy in (
        linear_probe_accuracy(train_x, train_y, test_x, test_y),
        knn_accuracy(train_x, train_y, test_x, test_y),
    ):
        # Correct predictions ~ Binomial(400, 1/5) under chance: a two-sided test must not reject it.
        correct = round(accuracy * len(test_y))
        assert stats.binomtest(correct, len(test_y), 1 / CLASSES).pvalue > 0.001, accuracy


def test_knn_uses_cosine_similarity_so_feature_scale_does_not_matter():
    train_x, train_y = _clusters(seed=3)
    test_x, test_y = _clusters(seed=3, per_class=10)
    scaled = train_x * np.random.default_rng(4).uniform(0.1, 10.0, size=(len(train_x), 1)).astype(np.float32)
    assert knn_accuracy(scaled, train_y, test_x, test_y) == knn_accuracy(train_x, train_y, test_x, test_y)


def test_mismatched_shapes_are_rejected_with_the_sizes():
    x, y = _clusters(seed=5)
    with pytest.raises(ValueError, match="same D"):
        linear_probe_accuracy(x, y, x[:, :3], y)
    with pytest.raises(ValueError, match="labels"):
        knn_accuracy(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn_accuracy(x, y, x, y, k=0)


def test_map_is_one_when_each_class_has_its_own_feature_and_chance_without_one():
    rng = np.random.default_rng(6)
    targets = rng.integers(0, 2, size=(300, 4))
    features = targets + 0.1 * rng.normal(size=targets.shape)  # feature c says whether class c is present
    assert mean_average_precision(features[:200], targets[:200], features[200:], targets[200:]) == 1.0
    noise = rng.normal(size=(300, 4))
    assert mean_average_precision(noise[:200], targets[:200], noise[200:], targets[200:]) < 0.7


def test_map_of_a_class_never_seen_in_training_is_its_test_prevalence():
    # Class 1 is present in every training image: nothing to learn, a constant score, AP = prevalence.
    features = np.arange(8, dtype=np.float64)[:, None]
    train = np.array([[0, 1], [0, 1], [1, 1], [1, 1]])
    test = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
    value = mean_average_precision(features[:4], train, features[4:], test)
    # Class 0 comes with large features in both splits: test images 6 and 7 rank first, AP 1.
    assert value == pytest.approx((1.0 + 0.5) / 2)


class _MeanColour(torch.nn.Module):
    """A 'backbone' whose features are the crop's mean colour and its height and width."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, images):
        size = torch.tensor(images.shape[2:], dtype=torch.float32).expand(len(images), 2)
        return torch.cat([images.mean(dim=(2, 3)), size], dim=1)


def _folder(tmp_path, images):
    """Write ``images`` (list of (class, array, [(box, class), ...])) as an annotated image folder."""
    from PIL import Image

    coco = {"images": [], "annotations": [], "categories": [{"id": c, "name": f"c{c}"} for c in range(3)]}
    for index, (label, array, objects) in enumerate(images):
        name = f"c{label}/{index:03d}.png"
        (tmp_path / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(tmp_path / name)
        coco["images"].append({"id": index, "file_name": name, "width": array.shape[1], "height": array.shape[0]})
        for (x0, y0, x1, y1), c in objects:
            coco["annotations"].append(
                {"id": len(coco["annotations"]), "image_id": index, "category_id": c,
                 "bbox": [x0, y0, x1 - x0, y1 - y0]}
            )
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    return tmp_path


COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)


def _scenes(seed, count):
    """Grey 24 px images with 2 rectangles of distinct classes, each class painted its colour."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        array = np.full((24, 24, 3), 128, dtype=np.uint8)
        classes = rng.choice(3, size=2, replace=False)
        objects = []
        for slot, c in enumerate(classes):
            w, h = rng.integers(3, 8, size=2)
            x0, y0 = 12 * slot + rng.integers(0, 12 - w), rng.integers(0, 24 - h)
            array[y0 : y0 + h, x0 : x0 + w] = COLOURS[c]
            objects.append(((int(x0), int(y0), int(x0 + w), int(y0 + h)), int(c)))
        images.append((int(classes[0]), array, objects))
    return images


def test_object_features_come_from_each_box_at_its_native_size(tmp_path):
    images = _scenes(seed=7, count=6)
    root = _folder(tmp_path, images)
    annotations = read_object_annotations(root)
    features, classes = object_features(_MeanColour(), root, annotations)
    # Dataset order sorts by file name, i.e. by class folder: rebuild the expected rows in that order.
    expected = [(box, c) for name in annotations.filenames for box, c in images[int(name[-7:-4])][2]]
    assert classes.tolist() == [c for _, c in expected]
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    for row, ((x0, y0, x1, y1), c) in zip(features, expected):
        np.testing.assert_allclose(row[:3], (COLOURS[c] / 255 - mean) / std, atol=1e-5)  # only the object's pixels
        assert row[3:].tolist() == [y1 - y0, x1 - x0]  # not resampled
    resized, _ = object_features(_MeanColour(), root, annotations, object_size=16)
    assert (resized[:, 3:] == 16).all()


def test_evaluate_backbone_asks_about_each_object_and_every_class_of_the_image(tmp_path):
    train = _folder(tmp_path / "train", _scenes(seed=1, count=30))
    test = _folder(tmp_path / "test", _scenes(seed=2, count=30))
    accuracy = evaluate_backbone(_MeanColour(), train, test, image_size=None, object_view_size=12)
    # The colour of a crop names its class, and the mean colour of an image which two of the three
    # classes it holds; the image label (the first object's class) it cannot tell apart as well.
    assert accuracy.object == 1.0
    assert accuracy.map == pytest.approx(1.0)
    assert accuracy.linear < 0.9
    assert accuracy.object_view == 1.0  # resizing a flat-coloured crop keeps its colour
    assert set(accuracy.as_dict()) == {"linear", "knn", "object", "map", "object_view"}

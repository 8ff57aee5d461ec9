"""Frozen-backbone evaluation on a held-out split: about the image and about each object.

The backbone is never updated here. Three questions, each fit on the training split's
features and scored on the held-out split's:

- **image label**: linear probe and kNN top-1 on the pooled features ``(N, D)`` of the
  un-augmented images (the folder's class, i.e. the label of every object, or of the
  largest one in mixed-class scenes);
- **each object**: linear-probe top-1 on the features of every ground-truth object's crop
  (``annotations.json``: box and ``category_id``), cut from the image at its own pixels;
- **every class in the image**: multi-label mean average precision of one-vs-rest linear
  probes on the image features, targets = the classes of the image's objects.

Images are normalised with ImageNet statistics, as the training views are; ``image_size``
``None`` keeps each image (and each object crop) at its native resolution.
"""

from __future__ import annotations

import json
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from lightly.data import LightlyDataset
from lightly.transforms.utils import IMAGENET_NORMALIZE
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2 as T

ANNOTATIONS_FILE = "annotations.json"


@dataclass(frozen=True)
class Accuracy:
    """Held-out figures in ``[0, 1]``.

    Attributes:
        linear: image label, logistic regression on standardised features.
        knn: image label, ``k``-nearest-neighbour vote with cosine similarity.
        object: object class, logistic regression on the features of each ground-truth
            object's crop (``None`` without ``annotations.json``).
        map: mean over classes of the average precision of one-vs-rest logistic
            regressions predicting which classes the image holds (``None`` without
            ``annotations.json``).
        object_view: the object probe with every crop resized to the training view size,
            the scale at which box-scale crops show objects (``None`` unless asked for).
    """

    linear: float
    knn: float
    object: float | None = None
    map: float | None = None
    object_view: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class ObjectAnnotations:
    """Ground-truth objects of an image folder, in ``LightlyDataset`` filename order.

    Attributes:
        filenames: the images (relative to the root), in dataset-index order.
        boxes: per image, ``(k_i, 4)`` int64 pixel boxes ``[x0, y0, x1, y1]`` (end exclusive).
        classes: per image, ``(k_i,)`` int64 object classes (``category_id``).
        num_classes: number of categories.
    """

    filenames: list[str]
    boxes: list[np.ndarray]
    classes: list[np.ndarray]
    num_classes: int

    def multi_hot(self) -> np.ndarray:
        """``(N, num_classes)`` int64: 1 where the image holds an object of that class."""
        targets = np.zeros((len(self.classes), self.num_classes), dtype=np.int64)
        for row, classes in enumerate(self.classes):
            targets[row, classes] = 1
        return targets


def read_object_annotations(data_root: str | Path) -> ObjectAnnotations:
    """Boxes and classes of every object in ``data_root/annotations.json``.

    The file is COCO-style (``images``: ``id``, ``file_name``; ``annotations``:
    ``image_id``, ``bbox`` ``[x, y, w, h]`` in pixels, ``category_id``), as
    ``ccrop_scenes.write_image_folder`` writes it. Images of the folder that the file does
    not list get no objects.

    Raises:
        FileNotFoundError: without ``annotations.json``.
    """
    root = Path(data_root)
    path = root / ANNOTATIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; object-level evaluation needs ground-truth boxes")
    coco = json.loads(path.read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    boxes: dict[str, list[list[int]]] = defaultdict(list)
    classes: dict[str, list[int]] = defaultdict(list)
    for ann in coco["annotations"]:
        x, y, w, h = (int(round(v)) for v in ann["bbox"])
        boxes[names[ann["image_id"]]].append([x, y, x + w, y + h])
        classes[names[ann["image_id"]]].append(int(ann["category_id"]))
    categories = [int(c["id"]) for c in coco.get("categories", [])]
    found = [c for values in classes.values() for c in values]
    num_classes = max(categories + found, default=-1) + 1
    filenames = LightlyDataset(str(root)).get_filenames()
    return ObjectAnnotations(
        filenames=filenames,
        boxes=[np.asarray(boxes[name], dtype=np.int64).reshape(-1, 4) for name in filenames],
        classes=[np.asarray(classes[name], dtype=np.int64) for name in filenames],
        num_classes=num_classes,
    )


def _normalise() -> T.Compose:
    return T.Compose(
        [
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=IMAGENET_NORMALIZE["mean"], std=IMAGENET_NORMALIZE["std"]),
        ]
    )


@contextmanager
def _frozen(backbone: nn.Module) -> Iterator[None]:
    """Eval mode and ``no_grad``; the backbone's previous train/eval mode is restored."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        backbone.train(was_training)


def _device_of(backbone: nn.Module) -> torch.device:
    parameter = next(backbone.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _forward(backbone: nn.Module, images: torch.Tensor, device: torch.device) -> np.ndarray:
    images = images.to(device, non_blocking=True)
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return backbone(images).flatten(start_dim=1).float().cpu().numpy()
    return backbone(images).flatten(start_dim=1).float().cpu().numpy()


def extract_features(
    backbone: nn.Module, data_root: str | Path, image_size: int | None = None, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features ``(N, D)`` float32 and labels ``(N,)`` int64 of an image folder.

    The folder is read with lightly's ``LightlyDataset`` (class folders give the labels);
    images are resized to ``image_size`` (``None``: kept at their native size, which must
    then be the same for all) and normalised with ImageNet statistics, as the training
    views are. The backbone runs on its own device, in eval mode under ``no_grad``, and
    its previous mode is restored.
    """
    steps = [T.Resize((image_size, image_size), antialias=True)] if image_size is not None else []
    transform = T.Compose([*steps, _normalise()])
    dataset = LightlyDataset(str(data_root), transform=transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    device = _device_of(backbone)
    features, labels = [], []
    with _frozen(backbone):
        for images, targets, _ in loader:
            features.append(_forward(backbone, images, device))
            labels.append(np.asarray(targets, dtype=np.int64))
    return np.concatenate(features), np.concatenate(labels)


def object_features(
    backbone: nn.Module,
    data_root: str | Path,
    annotations: ObjectAnnotations | None = None,
    object_size: int | None = None,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(M, D)`` float32 and classes ``(M,)`` int64 of every ground-truth object.

    Each object's box is cut from its image (pixels ``x0 <= col < x1``, ``y0 <= row < y1``)
    and, with ``object_size`` ``None``, fed at its native resolution: crops of the same
    height and width go through the backbone together, so no object is resampled. With
    ``object_size`` the crops are resized to ``object_size`` squared first.
    Objects are ordered by image (dataset order), then annotation order.
    """
    annotations = annotations or read_object_annotations(data_root)
    root = Path(data_root)
    normalise = _normalise()
    resize = T.Resize((object_size, object_size), antialias=True) if object_size is not None else None
    crops: list[torch.Tensor] = []
    classes: list[int] = []
    for name, boxes, labels in zip(annotations.filenames, annotations.boxes, annotations.classes):
        if not len(boxes):
            continue
        with Image.open(root / name) as picture:
            image = normalise(picture.convert("RGB"))
        height, width = image.shape[1:]
        for (x0, y0, x1, y1), label in zip(boxes.tolist(), labels.tolist()):
            x0, y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
            x1, y1 = max(min(x1, width), x0 + 1), max(min(y1, height), y0 + 1)
            crop = image[:, y0:y1, x0:x1]
            crops.append(resize(crop) if resize is not None else crop)
            classes.append(label)
    if not crops:
        raise ValueError(f"{root} has no annotated objects to evaluate")
    # Group crops by shape: one batch per shape keeps every object at its own resolution.
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, crop in enumerate(crops):
        groups[tuple(crop.shape)].append(index)
    device = _device_of(backbone)
    features: list[np.ndarray | None] = [None] * len(crops)
    with _frozen(backbone):
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                part = members[start : start + batch_size]
                out = _forward(backbone, torch.stack([crops[i] for i in part]), device)
                for i, row in zip(part, out):
                    features[i] = row
    return np.stack(features).astype(np.float32), np.asarray(classes, dtype=np.int64)


def linear_probe_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    max_iter: int = 1000,
    regularization: float = 1.0,
) -> float:
    """Top-1 accuracy of a multinomial logistic regression fit on standardised train features.

    Args:
        train_features, test_features: ``(N, D)`` and ``(M, D)``.
        train_labels, test_labels: ``(N,)`` and ``(M,)`` integer classes.
        max_iter: L-BFGS iterations.
        regularization: inverse L2 strength ``C`` of scikit-learn's ``LogisticRegression``.
    """
    _check_split(train_features, train_labels, test_features, test_labels)
    scaler = StandardScaler().fit(train_features)
    classifier = LogisticRegression(max_iter=max_iter, C=regularization)
    classifier.fit(scaler.transform(train_features), train_labels)
    return float((classifier.predict(scaler.transform(test_features)) == test_labels).mean())


def knn_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    k: int = 20,
    temperature: float = 0.1,
) -> float:
    """Top-1 accuracy of a weighted kNN classifier with cosine similarity.

    Each test sample's ``k`` most similar train samples vote with weight
    ``exp(similarity / temperature)`` (the instance-discrimination kNN monitor used in
    SSL papers); ``k`` is capped at the train size.
    """
    _check_split(train_features, train_labels, test_features, test_labels)
    if int(k) < 1:
        raise ValueError(f"k must be a positive integer; got {k}")
    train = torch.nn.functional.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1)
    test = torch.nn.functional.normalize(torch.as_tensor(test_features, dtype=torch.float32), dim=1)
    labels = torch.as_tensor(train_labels, dtype=torch.int64)
    classes = int(max(labels.max(), int(np.max(test_labels)))) + 1
    similarity = test @ train.T  # (M, N)
    top, index = similarity.topk(min(int(k), len(train)), dim=1)
    votes = torch.zeros(len(test), classes)
    votes.scatter_add_(1, labels[index], (top / temperature).exp())
    predicted = votes.argmax(dim=1).numpy()
    return float((predicted == np.asarray(test_labels)).mean())


def mean_average_precision(
    train_features: np.ndarray,
    train_targets: np.ndarray,
    test_features: np.ndarray,
    test_targets: np.ndarray,
    *,
    max_iter: int = 1000,
    regularization: float = 1.0,
) -> float:
    """Multi-label mAP of one-vs-rest logistic regressions on standardised features.

    For every class one binary logistic regression is fit on the train features; its
    probabilities rank the test images, and the class's average precision
    (``sklearn.metrics.average_precision_score``) is taken over the test images. The
    result is the mean over the classes that occur in the test split; a class that is
    always or never present in the train split gets a constant score (its AP is then its
    test prevalence, chance level).

    Args:
        train_features, test_features: ``(N, D)`` and ``(M, D)``.
        train_targets, test_targets: ``(N, C)`` and ``(M, C)`` multi-hot 0/1.
    """
    train_targets, test_targets = np.asarray(train_targets), np.asarray(test_targets)
    _check_split(train_features, train_targets, test_features, test_targets)
    if train_targets.ndim != 2 or test_targets.ndim != 2 or train_targets.shape[1] != test_targets.shape[1]:
        raise ValueError(
            f"targets must be multi-hot (N, C) and (M, C) with the same C; got "
            f"{train_targets.shape} and {test_targets.shape}"
        )
    scaler = StandardScaler().fit(train_features)
    train_x, test_x = scaler.transform(train_features), scaler.transform(test_features)
    precisions = []
    for c in range(train_targets.shape[1]):
        truth = test_targets[:, c] > 0
        if not truth.any():
            continue  # AP is undefined for a class the test split never shows
        seen = train_targets[:, c] > 0
        if seen.all() or not seen.any():
            scores = np.zeros(len(test_x))
        else:
            # liblinear: the same fit as lbfgs here, and far faster on separable binary problems.
            classifier = LogisticRegression(solver="liblinear", max_iter=max_iter, C=regularization).fit(train_x, seen)
            scores = classifier.decision_function(test_x)
        precisions.append(average_precision_score(truth, scores))
    if not precisions:
        raise ValueError("no class occurs in the test targets; mAP is undefined")
    return float(np.mean(precisions))


def evaluate_backbone(
    backbone: nn.Module,
    train_root: str | Path,
    test_root: str | Path,
    image_size: int | None = None,
    *,
    objects: bool = True,
    object_size: int | None = None,
    object_view_size: int | None = None,
) -> Accuracy:
    """All figures of :class:`Accuracy`: fit on ``train_root``'s features, score on ``test_root``'s.

    Args:
        image_size: side the whole images are resized to (``None``: native resolution).
        objects: also the object probe and the multi-label mAP (needs ``annotations.json``
            in both folders; skipped without it).
        object_size: side object crops are resized to (``None``: native resolution).
        object_view_size: also the object probe on crops resized to this side (``object_view``).
    """
    train_x, train_y = extract_features(backbone, train_root, image_size)
    test_x, test_y = extract_features(backbone, test_root, image_size)
    object_accuracy = average_precision = object_view = None
    if objects and all((Path(root) / ANNOTATIONS_FILE).is_file() for root in (train_root, test_root)):
        train_objects, test_objects = read_object_annotations(train_root), read_object_annotations(test_root)
        train_ox, train_oy = object_features(backbone, train_root, train_objects, object_size)
        test_ox, test_oy = object_features(backbone, test_root, test_objects, object_size)
        object_accuracy = linear_probe_accuracy(train_ox, train_oy, test_ox, test_oy)
        if object_view_size is not None:
            train_vx, _ = object_features(backbone, train_root, train_objects, object_view_size)
            test_vx, _ = object_features(backbone, test_root, test_objects, object_view_size)
            object_view = linear_probe_accuracy(train_vx, train_oy, test_vx, test_oy)
        classes = max(train_objects.num_classes, test_objects.num_classes)
        train_objects = replace(train_objects, num_classes=classes)
        test_objects = replace(test_objects, num_classes=classes)
        average_precision = mean_average_precision(train_x, train_objects.multi_hot(), test_x, test_objects.multi_hot())
    return Accuracy(
        linear=linear_probe_accuracy(train_x, train_y, test_x, test_y),
        knn=knn_accuracy(train_x, train_y, test_x, test_y),
        object=object_accuracy,
        map=average_precision,
        object_view=object_view,
    )


def _check_split(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> None:
    train_x, test_x = np.asarray(train_x), np.asarray(test_x)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"features must be (N, D) and (M, D) with the same D; got {train_x.shape} and {test_x.shape}"
        )
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError(
            f"got {len(train_x)} train features for {len(train_y)} labels and "
            f"{len(test_x)} test features for {len(test_y)} labels"
        )
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("train and test splits must both be non-empty")

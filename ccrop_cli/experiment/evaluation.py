"""Frozen-backbone evaluation: linear probe and kNN top-1 accuracy on a held-out split.

The backbone is never updated here. Features are the pooled outputs ``(N, D)`` of the
un-augmented images (resized to the training resolution, normalised as in training).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from lightly.data import LightlyDataset
from lightly.transforms.utils import IMAGENET_NORMALIZE
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2 as T


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracies in ``[0, 1]`` on the held-out split.

    Attributes:
        linear: logistic regression on standardised features.
        knn: ``k``-nearest-neighbour vote with cosine similarity.
    """

    linear: float
    knn: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def extract_features(
    backbone: nn.Module, data_root: str | Path, image_size: int, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features ``(N, D)`` float32 and labels ``(N,)`` int64 of an image folder.

    The folder is read with lightly's ``LightlyDataset`` (class folders give the labels);
    images are resized to ``image_size`` and normalised with ImageNet statistics, as the
    training views are. The backbone runs in eval mode under ``no_grad`` and its previous
    mode is restored.
    """
    transform = T.Compose(
        [
            T.ToImage(),
            T.Resize((image_size, image_size), antialias=True),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=IMAGENET_NORMALIZE["mean"], std=IMAGENET_NORMALIZE["std"]),
        ]
    )
    dataset = LightlyDataset(str(data_root), transform=transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    try:
        with torch.no_grad():
            for images, targets, _ in loader:
                features.append(backbone(images).flatten(start_dim=1).float().numpy())
                labels.append(np.asarray(targets, dtype=np.int64))
    finally:
        backbone.train(was_training)
    return np.concatenate(features), np.concatenate(labels)


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


def evaluate_backbone(
    backbone: nn.Module, train_root: str | Path, test_root: str | Path, image_size: int
) -> Accuracy:
    """Linear-probe and kNN accuracy: fit on ``train_root``'s features, score on ``test_root``'s."""
    train_x, train_y = extract_features(backbone, train_root, image_size)
    test_x, test_y = extract_features(backbone, test_root, image_size)
    return Accuracy(
        linear=linear_probe_accuracy(train_x, train_y, test_x, test_y),
        knn=knn_accuracy(train_x, train_y, test_x, test_y),
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

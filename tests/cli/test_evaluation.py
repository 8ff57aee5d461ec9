"""Linear probe and kNN: high accuracy on separable features, chance on random labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ccrop_cli.experiment.evaluation import knn_accuracy, linear_probe_accuracy

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

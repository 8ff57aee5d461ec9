"""IndexedDataset: (image, target) -> (image, target, index)."""

from __future__ import annotations

import pytest
from torchvision.datasets import ImageFolder

from ccrop_lightly import IndexedDataset


def test_adds_the_index(quadrant_folder):
    base = ImageFolder(str(quadrant_folder))
    dataset = IndexedDataset(base)
    assert len(dataset) == len(base) == 16
    image, target, index = dataset[5]
    assert index == 5 and target == base[5][1] and image.size == (48, 48)


def test_bad_datasets_and_items():
    with pytest.raises(TypeError, match="map-style dataset.*got int"):
        IndexedDataset(3)
    with pytest.raises(ValueError, match=r"item 1 of list is a tuple of 3 items; IndexedDataset expects \(image, target\) pairs"):
        IndexedDataset([("a", 0), ("b", 0, "x")])[1]

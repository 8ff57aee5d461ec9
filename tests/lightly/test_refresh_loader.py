"""The refresh loader: un-augmented, resized, RGB images with their dataset index."""

from __future__ import annotations

import pytest
import torch
from lightly.data import LightlyDataset
from lightly.transforms import SimCLRTransform
from PIL import Image
from torch.utils.data import SequentialSampler

from ccrop_lightly import IndexedDataset, RefreshImages, make_refresh_loader


def test_items_of_lightly_indexed_and_bare_datasets(quadrant_folder):
    lightly_dataset = LightlyDataset(str(quadrant_folder))
    image, index = RefreshImages(lightly_dataset, 16, normalize=None)[3]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and index == 3
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    # Red top-left quadrant survives the resize: no augmentation.
    assert image[0, :7, :7].min() > 0.99 and image[1:, :7, :7].max() < 0.01
    gray = Image.new("L", (10, 20), 128)
    for dataset in (IndexedDataset([(gray, 0)]), [gray], [(gray, 1)]):
        image, index = RefreshImages(dataset, 8)[0]
        assert image.shape == (3, 8, 8) and index == 0


def test_loader_covers_the_dataset_in_order(quadrant_folder):
    loader = make_refresh_loader(LightlyDataset(str(quadrant_folder)), 16, batch_size=5, num_workers=2)
    assert isinstance(loader.sampler, SequentialSampler)  # no process group: no sharding
    indices = torch.cat([batch[1] for batch in loader])
    assert indices.tolist() == list(range(16))


def test_bad_inputs_are_named(quadrant_folder):
    transformed = LightlyDataset(str(quadrant_folder), transform=SimCLRTransform(input_size=8))
    with pytest.raises(ValueError, match="item 0 of LightlyDataset holds 2 images: the dataset applies a multi-view transform"):
        RefreshImages(transformed, 8)[0]
    with pytest.raises(ValueError, match="input_size must be a positive int; got 0"):
        RefreshImages([], 0)
    with pytest.raises(TypeError, match="map-style"):
        RefreshImages(iter([]), 8)

"""BoxRefresher refuses a refresh loader with drop_last=True when it is built (its last partial batch would never be
localized: those images would keep the warm-up's whole-image crops for the whole run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefresher, IndexedDataset, make_refresh_loader
from ccrop_plugins import BoxStore


def _loader(n: int, **options) -> DataLoader:
    """A DataLoader of one's own over make_refresh_loader's dataset of ``n`` seeded 16 px images."""
    generator = np.random.default_rng(0)
    items = [(Image.fromarray(generator.integers(0, 256, (16, 16, 3), dtype=np.uint8)), 0) for _ in range(n)]
    images = make_refresh_loader(IndexedDataset(items), 16, normalize=None).dataset
    return DataLoader(images, **options)


def _refresher(loader: DataLoader, n: int) -> BoxRefresher:
    torch.manual_seed(0)
    return BoxRefresher(BoxStore(n), nn.Conv2d(3, 4, 3, stride=4), loader, warmup_epochs=1, interval=1, max_epochs=3)


@pytest.mark.parametrize("batch_size", [3, 5])  # drops 2 images, and none: refused alike (the same on every rank)
def test_a_refresh_loader_with_drop_last_is_refused_naming_the_value(batch_size):
    with pytest.raises(ValueError, match=r"the refresh loader has drop_last=True: each refresh would skip its last "
                                         r"partial batch.*build it with drop_last=False"):
        _refresher(_loader(5, batch_size=batch_size, drop_last=True), 5)


def test_the_same_loader_without_drop_last_refreshes_every_image():
    refresher = _refresher(_loader(5, batch_size=3), 5)
    refresher.refresh()
    assert refresher.last_stats.images == 5 and all(refresher.store.get(i) is not None for i in range(5))

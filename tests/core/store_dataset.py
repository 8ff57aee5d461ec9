"""A dataset that reads a BoxStore in DataLoader workers (importable, so it also works under spawn).

test_box_store.py puts this folder on ``sys.path``; spawned workers inherit that path.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

from ccrop_plugins import BoxStore


class StoreReadingDataset(Dataset):
    """Item ``i``: what a worker sees of sample ``i`` in the store, and which process looked."""

    def __init__(self, store: BoxStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        found = self.store.get(index)
        boxes = torch.zeros(self.store.max_boxes, 4)
        count = 0
        if found is not None:
            count = len(found[0])
            boxes[:count] = found[0]
        return {
            "index": torch.tensor(index),
            "version": torch.tensor(self.store.version),
            "count": torch.tensor(count),
            "boxes": boxes,
            "pid": torch.tensor(os.getpid()),
            "shared": torch.tensor(self.store.boxes.is_shared() and self.store.counts.is_shared()),
        }

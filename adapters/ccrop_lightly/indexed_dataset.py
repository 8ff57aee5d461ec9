"""Give any map-style dataset the sample index that the box store is keyed by."""

from __future__ import annotations

from typing import Any, Sized

from torch.utils.data import Dataset

from .image_mode import read_item


class IndexedDataset(Dataset):
    """Wrap a dataset whose items are ``(image, target)`` so they become ``(image, target, index)``.

    Use it for torchvision datasets such as ``ImageFolder`` or ``CIFAR10`` (built without a
    transform: :class:`~ccrop_lightly.CCropCollate` applies the views), so that the collate
    function knows which sample, hence which box set, each item is. Items of lightly's
    ``LightlyDataset``, ``(image, target, filename)``, become ``(image, target, index)`` too.

    An image that cannot be decoded (a truncated JPEG) raises an ``OSError`` naming its file
    (``ImageFolder``, ``LightlyDataset``) or its index, instead of PIL's bare message.

    Args:
        dataset: a map-style dataset with ``__len__`` and ``__getitem__``; each item must be
            ``(image, target)`` or ``(image, target, filename)``.
    """

    def __init__(self, dataset: Any) -> None:
        if not (isinstance(dataset, Sized) and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"IndexedDataset needs a map-style dataset (with __len__ and __getitem__); got {type(dataset).__name__}"
            )
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        item = read_item(self.dataset, index)
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            size = (
                f"a {type(item).__name__} of {len(item)} items"
                if isinstance(item, (tuple, list))
                else type(item).__name__
            )
            raise ValueError(
                f"item {index} of {type(self.dataset).__name__} is {size}; IndexedDataset expects (image, target) pairs"
            )
        image, target = item[0], item[1]
        return image, target, int(index)

    def __repr__(self) -> str:
        return f"IndexedDataset({type(self.dataset).__name__}, {len(self)} samples)"

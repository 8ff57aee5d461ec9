"""Give any map-style dataset the sample index that the box store is keyed by."""

from __future__ import annotations

import numbers
from typing import Any, Callable, Sized

from PIL.Image import Image
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset, Subset

from .image_mode import FileNamingLoader, read_item


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
            ``(image, target)``, ``(image, target, filename)`` or a bare image (target 0, as ``LightlyDataset``
            gives unlabelled images).
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
        if isinstance(item, (Image, Tensor)):  # an unlabelled dataset's bare image: target 0, as LightlyDataset's
            return item, 0, int(index)
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            size = (
                f"a {type(item).__name__} of {len(item)} items"
                if isinstance(item, (tuple, list))
                else f"a dict with keys {sorted(map(str, item))}" if isinstance(item, dict)
                else type(item).__name__
            )
            raise ValueError(
                f"item {index} of {type(self.dataset).__name__} is {size}; IndexedDataset expects (image, target) "
                "pairs (or a bare image): return (image, label) from the dataset's __getitem__"
            )
        image, target = item[0], item[1]
        return image, target, int(index)

    def __repr__(self) -> str:
        return f"IndexedDataset({type(self.dataset).__name__}, {len(self)} samples)"


def check_index_keys(dataset: Any, owner: str) -> None:
    """Refuse an :class:`IndexedDataset` inside a ``Subset`` or ``ConcatDataset``: it keys each item by its own index,
    not the outer dataset's, so the store's entries would not be the images' (a ``ConcatDataset`` keys two images 0).
    """
    found = _indexed_inside(dataset)
    if found is not None:
        raise ValueError(
            f"{owner}: the dataset is a {found} of IndexedDataset, whose keys are the inner dataset's indices, not "
            f"the {found}'s (a ConcatDataset gives two images key 0; a Subset keys past its length), so images would "
            f"get other images' boxes; wrap the outer dataset instead: IndexedDataset({found}(...))"
        )


def _indexed_inside(dataset: Any) -> str | None:
    """The name of the ``Subset`` / ``ConcatDataset`` above an ``IndexedDataset`` in ``dataset``, or ``None``."""
    if not isinstance(dataset, (Subset, ConcatDataset)):
        return None
    children = [dataset.dataset] if isinstance(dataset, Subset) else dataset.datasets
    for child in children:
        if isinstance(child, IndexedDataset) or _indexed_inside(child) is not None:
            return type(dataset).__name__
    return None


def check_item_key(item: Any, index: int, dataset: Any) -> None:
    """An item ``(image, target, key)`` with an integer ``key`` must be sample ``index``: the collate function keys
    the store by ``key``, the refresh pass by the position ``index``; a mismatch gives images other images' boxes."""
    key = item[2] if isinstance(item, (tuple, list)) and len(item) == 3 else None
    if isinstance(key, numbers.Integral) and not isinstance(key, bool) and int(key) != index:
        raise ValueError(
            f"item {index} of {type(dataset).__name__} carries index {int(key)}: CCropCollate keys the box store by "
            f"the item's index, the refresh by its position {index}, so images would get other images' boxes; the "
            "third item must be the sample's position in this dataset (wrap the outermost dataset in IndexedDataset)"
        )


def name_unreadable_files(dataset: Any) -> None:
    """Make the image folders in ``dataset`` name a file they cannot decode (a truncated JPEG), in place.

    A plain ``LightlyDataset`` reads its images in the DataLoader worker before the collate
    function sees them, and PIL's message (``image file is truncated``) names no file. This wraps
    the ``loader`` of each image folder found (``LightlyDataset``'s folder, torchvision's
    ``ImageFolder``; also inside ``Subset`` / ``ConcatDataset``) in :class:`~ccrop_lightly.image_mode.FileNamingLoader`;
    the images are read as before. ``IndexedDataset`` names the file itself and is left as is.
    """
    if isinstance(dataset, IndexedDataset):
        return
    if isinstance(dataset, ConcatDataset):
        for part in dataset.datasets:
            name_unreadable_files(part)
        return
    loader = getattr(dataset, "loader", None)
    if callable(loader) and hasattr(dataset, "samples"):  # torchvision's / lightly's DatasetFolder
        if not isinstance(loader, FileNamingLoader):
            dataset.loader = FileNamingLoader(loader)
        return
    inner = getattr(dataset, "dataset", None)  # LightlyDataset's folder, a Subset's dataset
    if inner is not None and inner is not dataset:
        name_unreadable_files(inner)


def names_in_order(dataset: Any, leaf: Callable[[Any], list[str] | None]) -> list[str] | None:
    """The names of ``dataset``'s items in index order: ``leaf(dataset)`` for a plain dataset, through ``Subset`` (its
    indices' names, in its order) and ``ConcatDataset`` (its parts' names, one after another); ``None`` when a part
    has none."""
    if isinstance(dataset, Subset):
        inner = names_in_order(dataset.dataset, leaf)
        return None if inner is None else [inner[int(i)] for i in dataset.indices]
    if isinstance(dataset, ConcatDataset):
        parts = [names_in_order(part, leaf) for part in dataset.datasets]
        return None if any(part is None for part in parts) else [name for part in parts for name in part]
    return leaf(dataset)

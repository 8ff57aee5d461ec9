"""A batch item of the collate function and what is wrong with it, named by its position and key: an item that
is not ``(image, target, key)``, views that do not stack into one tensor, targets that are no class index."""

from __future__ import annotations

import numbers
from typing import Any

from torch import Tensor


def unpack_item(item: Any, position: int) -> tuple[Any, Any, Any]:
    """``(image, target, key)`` of batch item ``position``; a ``ValueError`` naming what it is instead."""
    if not isinstance(item, (tuple, list)) or len(item) != 3:
        got = f"{type(item).__name__} of {len(item)} items" if isinstance(item, (tuple, list)) else type(item).__name__
        raise ValueError(
            f"batch item {position} is a {got}; expected (image, target, index or filename): "
            "use lightly's LightlyDataset, or wrap the dataset in ccrop_lightly.IndexedDataset"
        )
    image, target, key = item
    if isinstance(image, (tuple, list)):
        raise ValueError(
            f"batch item {position} (key {key!r}) holds {len(image)} images, not one: the dataset already "
            "applies a multi-view transform; build it without a transform, CCropCollate makes the views"
        )
    return image, target, key


def raise_for_one_sample(batch: Any) -> None:
    """Raise when ``batch`` is one ``(image, target, key)`` sample, not a list of them (a DataLoader with
    ``batch_size=None`` hands the collate function each sample alone); else return, for :func:`unpack_item`."""
    if isinstance(batch, (tuple, list)) and len(batch) == 3 and isinstance(batch[2], (str, numbers.Integral, Tensor)):
        raise ValueError(
            f"CCropCollate got one sample (image of type {type(batch[0]).__name__}, target {batch[1]!r}, key "
            f"{batch[2]!r}), not a list of samples: the DataLoader has batch_size=None (automatic batching off)? give "
            "it a batch_size: DataLoader(dataset, batch_size=..., collate_fn=CCropCollate(...))"
        )


def raise_for_views(views_of_batch: list[list[Any]], keys: list[Any]) -> None:
    """Raise naming the first view that is not a tensor, or of another shape than the same view of item 0."""
    for position, (views, key) in enumerate(zip(views_of_batch, keys)):
        for v, view in enumerate(views):
            if not isinstance(view, Tensor):
                raise TypeError(
                    f"view {v} of batch item {position} (key {key!r}) is of type {type(view).__name__}, not a tensor: "
                    "end each view's transform with ToTensor() (as CCropSimCLRTransform does), so the views can be "
                    "batched"
                )
            first = views_of_batch[0][v]
            if view.shape != first.shape:
                raise ValueError(
                    f"view {v} of batch item {position} (key {key!r}) has shape {tuple(view.shape)} but item 0's has "
                    f"{tuple(first.shape)}: every item's view {v} must have the same size and channels"
                )


def raise_for_targets(targets: list[Any], keys: list[Any]) -> Tensor:
    """Raise naming the first target that is not an integer class index (the batch's targets tensor failed)."""
    for position, (target, key) in enumerate(zip(targets, keys)):
        if isinstance(target, Tensor) and target.numel() == 1 and not target.is_floating_point():
            continue
        if isinstance(target, bool) or not isinstance(target, numbers.Integral):
            raise TypeError(
                f"batch item {position} (key {key!r}) has target {target!r} of type {type(target).__name__}; expected "
                "an integer class index (as lightly's MultiViewCollate; use -1 or 0 for unlabelled images)"
            )
    raise TypeError(f"the batch's targets {targets[:4]!r}... are not integer class indices")


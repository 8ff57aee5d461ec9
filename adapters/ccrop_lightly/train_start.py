"""What the Lightning callback looks up when training starts: the training DataLoader's ``CCropCollate`` (checked
against the callback's store and dataset) and the module's backbone to localize with."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sized

import pytorch_lightning as pl
from torch import nn

from ccrop_plugins import BoxStore

from .checkpoint_boxes import image_list_digest
from .collate import CCropCollate
from .features import feature_extractor


def training_collate(trainer: pl.Trainer, dataset: Sized, store: BoxStore) -> CCropCollate | None:
    """The ``CCropCollate`` of the trainer's training DataLoader (or ``None``), after checking that it reads ``store``
    and a dataset of the size of ``dataset``: else the refreshed boxes would never reach the views, or crop other
    images."""
    train_loader = _training_loader(trainer)
    train_set = getattr(train_loader, "dataset", None)
    if isinstance(train_set, Sized) and len(train_set) != len(dataset):
        raise ValueError(
            f"BoxRefreshCallback localizes a dataset of {len(dataset)} images but the training DataLoader's "
            f"dataset has {len(train_set)}: pass the callback the images the training DataLoader reads (without a "
            "transform), in the same order, and a BoxStore of that size"
        )
    ours = image_list_digest(dataset)
    if isinstance(train_set, Sized) and ours is not None and image_list_digest(train_set) not in (None, ours):
        raise ValueError(
            f"BoxRefreshCallback localizes other files than the training DataLoader reads (the same count, "
            f"{len(dataset)}, but other names or another order), so every view would be cut around another image's "
            "boxes: pass the callback the images the training DataLoader reads (without a transform), in the same order"
        )
    if train_loader is None:  # the refreshed boxes would reach no view, silently
        found = sorted({_name(getattr(loader, "collate_fn", None)) for loader in _loaders(trainer)}) or ["no loader"]
        warnings.warn(
            f"BoxRefreshCallback: the training DataLoader's collate_fn is not a CCropCollate (got {', '.join(found)}), "
            "so no view reads the boxes it refreshes: every view is the dataset transform's own crop (ContrastiveCrop "
            "inactive, unless that collate_fn calls a CCropCollate of this store); build the dataset without a "
            "transform and pass collate_fn=CCropCollate(<a CCrop transform>, store, dataset=dataset)",
            UserWarning, stacklevel=3)
    collate = None if train_loader is None else train_loader.collate_fn
    if collate is not None and not _same_store(collate.store, store):
        raise ValueError(
            f"BoxRefreshCallback refreshes another box store than the one the training DataLoader's CCropCollate "
            f"reads ({store!r} and {collate.store!r}: BoxStore made twice?), so the refreshed boxes would "
            "never reach the views; give both the same store"
        )
    return collate


def module_feature_fn(pl_module: pl.LightningModule, backbone: str | Callable[[pl.LightningModule], Any],
                      layer: str | None, stages: Any) -> Any:
    """The feature function of ``pl_module``: ``backbone(pl_module)``, or the feature maps of its attribute
    ``backbone`` (:func:`~ccrop_lightly.feature_extractor` with ``layer`` or ``stages``); a ``ValueError`` naming its
    submodules when it has no such ``nn.Module``."""
    if callable(backbone):
        return backbone(pl_module)
    module = getattr(pl_module, backbone, None)
    if not isinstance(module, nn.Module):
        children = ", ".join(name for name, _ in pl_module.named_children()) or "none"
        raise ValueError(
            f"{type(pl_module).__name__} has no nn.Module attribute {backbone!r} to localize with; "
            f"its submodules: {children}; pass backbone=<attribute name> or a function of the module"
        )
    return feature_extractor(module, layer, stages)


def _same_store(a: BoxStore, b: BoxStore) -> bool:
    """The same store, or two handles of its shared memory (a store pickled into a spawned process)."""
    return a is b or a.counts.untyped_storage().data_ptr() == b.counts.untyped_storage().data_ptr()


def _loaders(trainer: pl.Trainer) -> list[Any]:
    loaders = trainer.train_dataloader
    return (list(loaders.values()) if isinstance(loaders, dict) else list(loaders) if isinstance(loaders, (list, tuple))
            else [] if loaders is None else [loaders])


def _name(function: Any) -> str:
    return getattr(function, "__name__", type(function).__name__)


def _training_loader(trainer: pl.Trainer) -> Any:
    """The trainer's training DataLoader (or one of several) whose collate function is a ``CCropCollate``, if any."""
    for loader in _loaders(trainer):
        if isinstance(getattr(loader, "collate_fn", None), CCropCollate):
            return loader
    return None

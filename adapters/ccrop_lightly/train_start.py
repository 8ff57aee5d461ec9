"""What the Lightning callback looks up when training starts: the training DataLoader's ``CCropCollate`` (checked
against the callback's store and dataset) and the module's backbone to localize with."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Sized

import pytorch_lightning as pl
from torch import nn

from ccrop_plugins import BoxStore

from .checkpoint_boxes import image_list_digest, same_image_list
from .collate import CCropCollate
from .features import feature_extractor


def training_collate(trainer: pl.Trainer, dataset: Sized, store: BoxStore,
                     digest: Callable[[], str | None] | None = None) -> tuple[Any, CCropCollate | None]:
    """The trainer's training DataLoader and its ``CCropCollate`` (``None`` for either; of several, the one reading
    ``store``: :func:`_training_loader`), after checking that it reads ``store`` and a dataset of the size and files
    of ``dataset``: else the refreshed boxes would never reach the views, or crop other images. ``digest()`` gives
    ``image_list_digest(dataset)`` (the callback's, computed once per fit and kept for its checkpoints; default:
    computed here); the training set's files are listed only when it is not the same dataset object
    (:func:`~ccrop_lightly.checkpoint_boxes.same_image_list`). A ``collate_fn`` of one's own that calls a
    ``CCropCollate`` counts as that ``CCropCollate`` when it holds it one level down (:func:`_held_collates`)."""
    train_loader, collate = _training_loader(trainer, store)
    train_set = getattr(train_loader, "dataset", None)
    if isinstance(train_set, Sized) and len(train_set) != len(dataset):
        raise ValueError(
            f"BoxRefreshCallback localizes a dataset of {len(dataset)} images but the training DataLoader's "
            f"dataset has {len(train_set)}: pass the callback the images the training DataLoader reads (without a "
            "transform), in the same order, and a BoxStore of that size"
        )
    if isinstance(train_set, Sized) and not same_image_list(train_set, dataset):
        _check_same_files(dataset, train_set, digest() if digest is not None else image_list_digest(dataset))
    if train_loader is None:  # the refreshed boxes would reach no view, silently
        found = sorted({_name(getattr(loader, "collate_fn", None)) for loader in _loaders(trainer)}) or ["no loader"]
        warnings.warn(
            f"BoxRefreshCallback: the training DataLoader's collate_fn is not a CCropCollate (got {', '.join(found)}), "
            "so no view reads the boxes it refreshes: every view is the dataset transform's own crop (ContrastiveCrop "
            "inactive, unless that collate_fn calls a CCropCollate of this store that the callback did not find in "
            "its attributes, functools.partial arguments, closure or the globals it names); build the dataset "
            "without a transform and pass collate_fn=CCropCollate(<a CCrop transform>, store, dataset=dataset), or "
            "keep that CCropCollate as an attribute of your own collate_fn",
            UserWarning, stacklevel=3)
    if collate is not None and not _same_store(collate.store, store):
        raise ValueError(
            f"BoxRefreshCallback refreshes another box store than the one the training DataLoader's CCropCollate "
            f"reads ({store!r} and {collate.store!r}: BoxStore made twice?), so the refreshed boxes would "
            "never reach the views; give both the same store"
        )
    return train_loader, collate


def training_workers(trainer: pl.Trainer, train_loader: Any) -> int | None:
    """The ``num_workers`` of ``train_loader`` (the training DataLoader :func:`training_collate` found, else the
    trainer's first); ``None`` when there is none or it has no such integer attribute."""
    loaders = [train_loader] if train_loader is not None else _loaders(trainer)[:1]
    workers = getattr(loaders[0], "num_workers", None) if loaders else None
    return workers if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 0 else None


def _check_same_files(dataset: Sized, train_set: Sized, ours: str | None) -> None:
    """Refuse a training set of other files, or another order, than the callback's ``dataset`` (digest ``ours``;
    ``None``: no file names to compare)."""
    if ours is None or image_list_digest(train_set) in (None, ours):
        return
    raise ValueError(
        f"BoxRefreshCallback localizes other files than the training DataLoader reads (the same count, "
        f"{len(dataset)}, but other names or another order), so every view would be cut around another image's "
        "boxes: pass the callback the images the training DataLoader reads (without a transform), in the same order"
    )


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


def _training_loader(trainer: pl.Trainer, store: BoxStore) -> tuple[Any, CCropCollate | None]:
    """The trainer's training DataLoader whose collate function is, or holds, a ``CCropCollate`` of ``store``, with
    that ``CCropCollate``: with several training DataLoaders (a dict, a ``CombinedLoader``), each with a store of its
    own and a callback per store, each callback takes its own. When none reads ``store``: the first whose collate
    function is or holds any ``CCropCollate``, with its first (another store: refused by :func:`training_collate`);
    ``(None, None)`` if none holds one."""
    first: tuple[Any, CCropCollate | None] = (None, None)
    for loader in _loaders(trainer):
        function = getattr(loader, "collate_fn", None)
        found = [function] if isinstance(function, CCropCollate) else _held_collates(function)
        ours = next((collate for collate in found if _same_store(collate.store, store)), None)
        if ours is not None:
            return loader, ours
        if found and first[0] is None:
            first = (loader, found[0])
    return first


def _held_collates(function: Any) -> list[CCropCollate]:
    """The ``CCropCollate`` objects that ``function``, a collate function of one's own, holds one level down: the
    arguments of a ``functools.partial``, the object of a bound method, an object's instance attributes
    (``vars``), a function's closure variables and the module globals it names. The documented way to reshape
    the batch is such a wrapper; a ``CCropCollate`` held deeper (in a list, in an attribute's attribute) is not
    looked for."""
    if function is None:
        return []
    held: list[Any] = []
    if isinstance(function, functools.partial):
        held += [function.func, *function.args, *function.keywords.values()]
    held.append(getattr(function, "__self__", None))
    try:
        held += list(vars(function).values())
    except TypeError:  # no __dict__ (a builtin, an object with __slots__)
        pass
    for cell in getattr(function, "__closure__", None) or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:  # a closure variable not yet assigned
            pass
    names = getattr(getattr(function, "__code__", None), "co_names", ())
    module_globals = getattr(function, "__globals__", None) or {}
    held += [module_globals[name] for name in names if name in module_globals]  # a script's ccrop = CCropCollate(...)
    found: list[CCropCollate] = []
    for item in held:
        if isinstance(item, CCropCollate) and all(item is not other for other in found):
            found.append(item)
    return found

"""The DataLoader collate function that crops every sample around its own boxes.

A lightly transform receives only the image; the box set needs the sample's identity.
Lightly's datasets already yield it (``LightlyDataset`` items are ``(image, target,
filename)``), so the views are made here, in the collate function, which runs in the
DataLoader workers exactly where a dataset transform would.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence, Sized
from warnings import warn

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Subset

from ccrop_plugins import BoxStore

from .batch_items import raise_for_one_sample, raise_for_targets, raise_for_views, unpack_item
from .filename_index import FilenameIndex
from .image_mode import to_rgb
from .indexed_dataset import check_index_keys, name_unreadable_files, names_in_order
from .multi_view import CCropMultiViewTransform
from .transform_walk import check_dataset_transform
from .view_settings import instead_of

SampleKey = int | str
"""What identifies a sample: its dataset index, or its filename as ``LightlyDataset`` gives it."""


class CCropCollate:
    """Collate ``(image, target, index or filename)`` items into lightly's multi-view batch.

    For every item: the image is brought to RGB (see :func:`~ccrop_lightly.image_mode.to_rgb`:
    grayscale is repeated, an alpha channel is dropped), the sample's box set is read from
    ``store``, *one* box is drawn for the sample (weighted by its score) and every view is
    cropped around that box, so the views of a pair show the same object. Before the first
    refresh the store is empty and the views are plain ``RandomResizedCrop`` views.

    Input to this collate function:
        A list of ``(image, target, key)``: ``image`` a PIL image or ``(C, H, W)`` tensor
        *without* augmentation (build the dataset without a transform), ``target`` an int,
        ``key`` the dataset index (int; see :class:`~ccrop_lightly.IndexedDataset`) or the
        filename given by ``LightlyDataset``.

    Output of this collate function:
        Exactly what ``lightly.data.MultiViewCollate`` returns: ``(views, targets, keys)``
        with ``views`` a list of one ``(B, C, H, W)`` tensor per view, ``targets`` a
        ``(B,)`` int64 tensor, ``keys`` the list of filenames or indices as given.

    Args:
        transform: the views, e.g. :class:`~ccrop_lightly.CCropSimCLRTransform`.
        store: the box store, sized to the dataset (``BoxStore(len(dataset))``).
        dataset: the training dataset; checked against the store size, and, when it has
            ``get_filenames()`` (``LightlyDataset``, also inside a ``Subset`` or ``ConcatDataset``), used for the
            filename -> index map (filename ``i`` of that list is dataset index ``i``). Its image folders'
            loaders are wrapped so that a file they cannot decode is named
            (:func:`~ccrop_lightly.indexed_dataset.name_unreadable_files`; the dataset reads before the collate).
        filenames: the dataset's filenames in index order, if ``dataset`` does not give them.

    Raises:
        TypeError / ValueError: at construction, for a wrong transform or store, a store
            of another size than the dataset, duplicate filenames, or a dataset whose own transform moves image
            content at random (:func:`~ccrop_lightly.transform_walk.check_dataset_transform`); while collating (in the
            worker; the DataLoader re-raises it with this message), for an item without a
            key the store knows, naming the item.
    """

    def __init__(
        self,
        transform: CCropMultiViewTransform,
        store: BoxStore,
        *,
        dataset: Sized | None = None,
        filenames: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(transform, CCropMultiViewTransform):
            raise TypeError(
                "transform must be a CCropMultiViewTransform (CCropSimCLRTransform, CCropMoCoV2Transform, ...); "
                f"got {type(transform).__name__}{instead_of(transform)}"
            )
        if not isinstance(store, BoxStore):
            raise TypeError(f"store must be a ccrop_plugins.BoxStore; got {type(store).__name__}")
        self.transform = transform
        self.store = store
        if dataset is not None:
            if not isinstance(dataset, Sized):
                raise TypeError(f"dataset must be the training dataset (with __len__); got {type(dataset).__name__}")
            _check_store_size(store, len(dataset), f"the dataset ({type(dataset).__name__})")
            check_index_keys(dataset, "CCropCollate")
            _refuse_unkeyed(dataset)
            check_dataset_transform(dataset, "CCropCollate")
            name_unreadable_files(dataset)  # LightlyDataset reads before the collate: its worker error names no file
            own = _dataset_filenames(dataset)
            if filenames is not None and own is not None:
                _check_same_filenames(_filename_list(filenames), own, dataset)
            filenames = own if filenames is None else filenames
        # Not a dict: the collate is copied into every DataLoader worker (FilenameIndex: 12 bytes per name).
        self.filename_index: FilenameIndex | None = None
        if filenames is not None:
            filenames = _filename_list(filenames)
            _check_store_size(store, len(filenames), "the list of filenames")
            self.filename_index = FilenameIndex(filenames)  # a name listed twice: ValueError naming both indices

    def index_of(self, key: Any, position: int = 0) -> int:
        """The store index of a sample ``key`` (index or filename); ``position`` names the item in errors."""
        if isinstance(key, str):
            if self.filename_index is None:
                raise ValueError(
                    f"batch item {position} is keyed by filename {key!r}, but this collate function knows no "
                    "filenames; pass dataset=<LightlyDataset> or filenames=dataset.get_filenames()"
                )
            index = self.filename_index.get(key)
            if index is None:
                known = self.filename_index.examples
                raise ValueError(
                    f"batch item {position} has filename {key!r}, which is not one of the dataset's "
                    f"{len(self.filename_index)} filenames (e.g. {', '.join(map(repr, known))}); "
                    "was the collate function built for another dataset?"
                )
            return index
        if isinstance(key, Tensor) and key.numel() == 1 and not key.is_floating_point():
            key = int(key)
        if isinstance(key, bool) or not isinstance(key, numbers.Integral):
            raise TypeError(
                f"batch item {position} has key {key!r} of type {type(key).__name__}; "
                "expected the sample's dataset index (int) or its filename (str)"
            )
        index = int(key)
        if not 0 <= index < len(self.store):
            raise ValueError(
                f"batch item {position} has index {index}, outside the box store of {len(self.store)} samples "
                f"(allowed: 0 to {len(self.store) - 1}); size the store to the dataset: BoxStore(len(dataset))"
            )
        return index

    def __call__(self, batch: Sequence[Sequence[Any]]) -> tuple[list[Tensor], Tensor, list[Any]]:
        targets: list[Any] = []
        keys: list[Any] = []
        if len(batch) == 0:
            warn("CCropCollate received an empty batch.")
            return [], torch.tensor(targets, dtype=torch.long), keys
        if not isinstance(batch[0], (tuple, list)):  # no sample: unpack_item refuses it; one sample instead?
            raise_for_one_sample(batch)
        views_of_batch: list[list[Any]] = []
        for position, item in enumerate(batch):
            image, target, key = unpack_item(item, position)
            if getattr(image, "dtype", None) is torch.bfloat16:  # one attribute read; else a TypeError deep in lightly
                raise ValueError(_bfloat16(key, position))
            entry = self.store.get(self.index_of(key, position))
            boxes, scores = (None, None) if entry is None else entry
            try:
                rgb = to_rgb(image)
            except (TypeError, ValueError) as error:  # e.g. a mode F image: the sample named
                error.add_note(f"the image of batch item {position} (sample {key!r})")
                raise
            views_of_batch.append(self.transform(rgb, boxes, scores))
            targets.append(target)
            keys.append(key)
        try:
            views = [torch.stack([views[v] for views in views_of_batch]) for v in range(len(views_of_batch[0]))]
        except (TypeError, RuntimeError):
            raise_for_views(views_of_batch, keys)
            raise
        try:
            target_tensor = torch.tensor(targets, dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            target_tensor = raise_for_targets(targets, keys)
        return views, target_tensor, keys

    def __repr__(self) -> str:
        named = "no filenames" if self.filename_index is None else f"{len(self.filename_index)} filenames"
        return f"CCropCollate({self.transform!r}, {self.store!r}, {named})"


def _bfloat16(key: Any, position: int) -> str:
    return (f"the image of sample {key!r} (batch position {position}) is a torch.bfloat16 tensor, which lightly's "
            "transforms cannot take (torchvision's to_pil_image refuses it); allowed: a PIL image or a tensor of "
            "torch.uint8, torch.uint16, torch.float16, torch.float32 or torch.float64: return image.float() "
            "from the dataset")


def _refuse_unkeyed(dataset: Any) -> None:
    """Refuse torchvision's datasets (``ImageFolder``, ``CIFAR10``; also in a ``Subset`` / ``ConcatDataset``) not
    wrapped in :class:`~ccrop_lightly.IndexedDataset`: their items are ``(image, target)``, without the index or
    filename the collate keys the boxes by, and the first batch failed in a DataLoader worker."""
    if isinstance(dataset, (Subset, ConcatDataset)):
        for part in [dataset.dataset] if isinstance(dataset, Subset) else dataset.datasets:
            _refuse_unkeyed(part)
    elif type(dataset).__module__.startswith("torchvision.datasets"):
        raise ValueError(
            f"CCropCollate: the dataset is torchvision's {type(dataset).__name__}, whose items are (image, target), "
            "without the index or filename the collate keys each image's boxes by; wrap it: "
            "ccrop_lightly.IndexedDataset(dataset) (or use lightly's LightlyDataset)"
        )


def _filename_list(filenames: Any) -> list[str]:
    """``filenames`` as a list of str; a single string (read as its characters) or other entries are a mistake."""
    names = None if isinstance(filenames, (str, bytes)) or not isinstance(filenames, Iterable) else list(filenames)
    if names is None or not all(isinstance(name, str) for name in names):
        shown = repr(filenames) if names is None else repr(names[:3])[:-1] + (", ...]" if len(names) > 3 else "]")
        raise TypeError(f"filenames must be a list of the dataset's filenames (str), in index order, e.g. "
                        f"dataset.get_filenames(); got {shown}")
    return names


def _dataset_filenames(dataset: Any) -> list[str] | None:
    """The filenames of ``dataset`` in index order: ``LightlyDataset.get_filenames()``, also through ``Subset`` and
    ``ConcatDataset`` (whose items keep the inner filename as key); ``None`` for datasets without filenames."""
    return names_in_order(dataset, lambda inner: inner.get_filenames() if hasattr(inner, "get_filenames") else None)


def _check_same_filenames(given: list[str], own: list[str], dataset: Any) -> None:
    """``filenames=`` must be the dataset's own list (filename ``i`` is dataset index ``i``): else every item keyed by a
    name whose place differs would be cropped around another image's boxes (the refresh localizes the dataset)."""
    if given == own:
        return
    first = next((i for i, (a, b) in enumerate(zip(given, own)) if a != b), min(len(given), len(own)))

    def at(names: list[str]) -> str:
        return repr(names[first]) if first < len(names) else f"none (it has {len(names)} names)"

    raise ValueError(
        f"filenames differ from the dataset's own ({type(dataset).__name__}, {len(own)} filenames) at index {first}: "
        f"{at(given)}, the dataset's {at(own)} (another order, or another dataset?), so items would be cropped around "
        "other images' boxes; filename i must be dataset index i: leave filenames out, the dataset gives them"
    )


def _check_store_size(store: BoxStore, size: int, what: str) -> None:
    """One store entry per dataset index: a smaller store fails at the first index past it, a larger one hides a
    store made for another dataset (its boxes would crop these images, its extra entries are never refreshed)."""
    if len(store) != size:
        raise ValueError(
            f"the box store holds {len(store)} samples but {what} has {size}; "
            f"create it as BoxStore({size}) (one entry per dataset index)"
        )

"""The refresh options of :class:`~ccrop_lightly.BoxRefresher` and the Lightning callback, checked when they are made.

Each would otherwise fail only at the first refresh, after the whole warm-up.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence, Sized

from torch import Tensor, nn
from lightly.data import LightlyDataset
from torch.utils.data import ConcatDataset, Dataset, Subset

from ccrop_plugins import BoxSets, BoxStore, HeatmapPipeline, build_localizer

from .collate import CCropCollate
from .features import FeatureFn, feature_extractor, pools_away_location
from .indexed_dataset import IndexedDataset, check_index_keys
from .refresh_loader import FROM_TRANSFORM, check_loader_options, loader_settings
from .transform_walk import check_dataset_transform
from .view_options import normalize_step


def checked_feature_fn(feature_fn: Any, stages: str | Sequence[str] | None) -> FeatureFn:
    """With ``stages``, ``feature_extractor(feature_fn, stages=stages)`` of the backbone; without, a module whose output
    has no location (:func:`~ccrop_lightly.features.pools_away_location`: lightly's ResNet backbone, ending in
    ``AdaptiveAvgPool2d``) becomes ``feature_extractor(feature_fn)``, its last stage's maps (as
    :class:`~ccrop_lightly.BoxRefreshCallback` takes its backbone), anything else stays as it is; a ``TypeError``
    naming it when it is no module (with stages) or not callable."""
    if stages is not None:
        if not isinstance(feature_fn, nn.Module):
            raise TypeError("with stages, feature_fn must be the backbone (an nn.Module); "
                            f"got {type(feature_fn).__name__}")
        feature_fn = feature_extractor(feature_fn, stages=stages)
    elif isinstance(feature_fn, nn.Module) and pools_away_location(feature_fn):
        feature_fn = feature_extractor(feature_fn)
    if not callable(feature_fn):
        raise TypeError(f"feature_fn must be callable (images -> feature maps); got {type(feature_fn).__name__}")
    return feature_fn


def check_refresh_options(
    threshold: float | str | None,
    localizer: str | Callable[[Tensor], BoxSets],
    heatmap: str | Callable[[Tensor], Tensor],
    heatmap_options: dict[str, Any] | None,
    localizer_options: dict[str, Any] | None,
    store: BoxStore | None = None,
) -> None:
    """Build the named localizer (as the core's refresh will: ``build_localizer``) and heatmap rule once, so that a
    misspelt name, a bad option or threshold fails when the refresher (or callback) is made, not after the warm-up
    epochs. A ``max_boxes`` option other than the ``store``'s is refused: the store would keep only its first boxes
    of each set, silently."""
    given = (localizer_options or {}).get("max_boxes")
    if store is not None and given is not None and given != store.max_boxes:
        raise ValueError(f"localizer_options max_boxes={given!r} and the box store's max_boxes={store.max_boxes} "
                         f"disagree: the store keeps at most {store.max_boxes} boxes per image; give it once, as "
                         "BoxStore(num_samples, max_boxes=...) (the localizer takes the store's)")
    if callable(localizer) and localizer_options:  # a callable localizer is already configured: the options go nowhere
        raise TypeError(f"localizer_options {sorted(localizer_options)} are for a named localizer; the localizer "
                        f"{getattr(localizer, '__name__', type(localizer).__name__)} is a callable already configured "
                        "(pass get_localizer(name, **options), or the name and localizer_options)")
    build_localizer(localizer, max_boxes=None if store is None else store.max_boxes, threshold=threshold,
                    options=localizer_options)  # None, 3, ['bbox']: the core names them
    HeatmapPipeline(heatmap, heatmap_options)  # a name or a callable; None and a list are refused by the core


def check_refresh_loader(loader: Iterable[Sequence[Tensor]], store: BoxStore) -> None:
    """Refuse a dataset or the training loader as the refresh loader, a loader of another size than ``store`` (each
    would fail only at the first refresh, after the whole warm-up) and one with ``drop_last=True`` (its last partial
    batch would never be localized: those images would keep the warm-up's whole-image crops for the whole run)."""
    if isinstance(loader, Dataset):
        raise TypeError(f"loader must yield batches (images, indices); got the dataset {type(loader).__name__}: "
                        "pass make_refresh_loader(dataset, transform=transform)")
    if isinstance(loader, Iterator) and iter(loader) is loader:  # the second refresh would find it empty
        raise TypeError(f"loader must be read afresh at every refresh (a DataLoader or a list of batches); got a "
                        f"one-shot iterator ({type(loader).__name__}), empty after the first refresh: pass "
                        "make_refresh_loader(dataset, transform=transform)")
    if isinstance(getattr(loader, "collate_fn", None), CCropCollate):
        raise TypeError("loader is the training loader (its collate_fn is CCropCollate, which yields augmented "
                        "views); the refresh needs the plain images: "
                        "make_refresh_loader(dataset, transform=transform)")
    if getattr(loader, "drop_last", False) is True:  # refused on every rank alike, dropping or not
        raise ValueError(
            "the refresh loader has drop_last=True: each refresh would skip its last partial batch, whose images "
            "keep the warm-up's whole-image crops (RandomResizedCrop) for the whole run; build it with "
            "drop_last=False, or pass make_refresh_loader(dataset, transform=transform)"
        )
    dataset = getattr(loader, "dataset", None)
    labelled = _labelled_items(dataset)
    if labelled is not None:
        raise TypeError(
            f"the refresh loader reads {labelled}, whose items are (image, target, ...): the second item of each batch "
            "would be the class label, not the image's dataset index, so the boxes would go to other images (or the "
            "images would not batch); pass make_refresh_loader(dataset, transform=transform), which yields "
            "(images, indices)"
        )
    if dataset is not None and hasattr(dataset, "__len__") and len(dataset) != len(store):
        raise ValueError(
            f"the refresh loader covers {len(dataset)} samples but the box store holds {len(store)}; "
            f"create it as BoxStore({len(dataset)})"
        )


def _labelled_items(dataset: Any) -> str | None:
    """The name of ``dataset`` (or of the dataset inside its ``Subset`` / ``ConcatDataset``) when it is one whose items
    are ``(image, target, ...)`` by definition: torchvision's datasets (``ImageFolder``, ``CIFAR10``), lightly's
    ``LightlyDataset``, :class:`~ccrop_lightly.IndexedDataset`; ``None`` for any other (a dataset of one's own may
    yield ``(image, index)``)."""
    if isinstance(dataset, (Subset, ConcatDataset)):
        parts = [dataset.dataset] if isinstance(dataset, Subset) else dataset.datasets
        found = next((name for name in map(_labelled_items, parts) if name is not None), None)
        return None if found is None else f"a {type(dataset).__name__} of {found}"
    if isinstance(dataset, (LightlyDataset, IndexedDataset)) or type(dataset).__module__.startswith(
            "torchvision.datasets"):
        return type(dataset).__name__
    return None


def check_store_and_dataset(store: Any, dataset: Any) -> None:
    """One store entry per image of ``dataset``: a larger store (made for another dataset, or before images were
    removed) hides a mismatch as a smaller one fails. The dataset's keys and own transform are checked as the refresh
    loader checks them when training starts (a transform that moves content at random, lightly's
    ``SimCLRTransform``: :func:`~ccrop_lightly.transform_walk.check_dataset_transform`, a walk over its steps)."""
    if not isinstance(store, BoxStore):
        raise TypeError(f"store must be a ccrop_plugins.BoxStore; got {type(store).__name__}")
    if not isinstance(dataset, Sized):
        raise TypeError(f"dataset must be the training images without augmentation (a map-style dataset with "
                        f"__len__); got {type(dataset).__name__}")
    if len(dataset) != len(store):
        raise ValueError(f"the box store holds {len(store)} samples but the dataset has {len(dataset)}; "
                         f"create it as BoxStore({len(dataset)})")
    check_index_keys(dataset, "BoxRefreshCallback")
    check_dataset_transform(dataset, "BoxRefreshCallback")


def check_loader_settings(batch_size: Any, num_workers: Any, progress: Any, transform: Any, normalize: Any,
                           input_size: Any) -> tuple[int, int | None]:
    """The refresh loader's settings, checked when the callback is made (they reach the DataLoader only when
    training starts, whose messages name neither the callback nor the argument); ``(batch_size, num_workers)`` as
    plain ints (``num_workers`` ``None``: the training DataLoader's, read when training starts)."""
    sizes = check_loader_options(batch_size, num_workers, "BoxRefreshCallback")
    if progress not in (True, False):  # bool('no') is True
        raise TypeError(f"BoxRefreshCallback: progress must be True or False; got {progress!r}")
    if transform is not None:  # its type, and an explicit normalize that disagrees with it
        loader_settings(input_size, normalize, transform)
    elif normalize is not FROM_TRANSFORM and normalize is not None:
        normalize_step(normalize)
    return sizes

"""Box refresh for plain PyTorch training loops: call ``maybe_refresh(epoch)`` after each epoch."""

from __future__ import annotations

import logging
import operator
import warnings
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Dataset

from ccrop_plugins import (BoxSets, BoxStore, HeatmapPipeline, RefreshStats, checked_device, eval_mode, get_localizer,
                           images_digest, other_images, refresh_boxes)

from .collate import CCropCollate
from .features import feature_extractor
from .indexed_dataset import IndexedDataset
from .refresh_loader import RefreshImages
from .schedule import RefreshSchedule

FeatureFn = Callable[[Tensor], Any]
logger = logging.getLogger("ccrop_lightly")


class BoxRefresher:
    """Refresh a :class:`~ccrop_plugins.BoxStore` on the paper's schedule.

    Usage in a loop over ``epochs`` (0-based)::

        refresher = BoxRefresher(store, feature_extractor(backbone), refresh_loader,
                                 warmup_epochs=100, interval=100, max_epochs=500)
        for epoch in range(500):
            train_one_epoch(...)
            refresher.maybe_refresh(epoch)

    The rule is :class:`~ccrop_lightly.RefreshSchedule`: refresh at the end of epoch ``e``
    when ``e + 1 >= warmup_epochs``, ``(e + 1 - warmup_epochs) % interval == 0`` and
    ``e + 1 < max_epochs``. A refresh calls the core's ``refresh_boxes``; the DataLoader
    workers (persistent or not) see the new boxes from the next epoch's first batch, since
    the next epoch's batches are only requested after this call.

    What it says, so that ContrastiveCrop is never silently inactive:

    - at construction, a warning when the schedule never refreshes within ``max_epochs``,
      and when a feature map of ``feature_fn`` is 1 x 1 at the loader's image size (it
      carries no location: every box would be the whole image);
    - after each refresh, one ``INFO`` line on the ``ccrop_lightly`` logger with the boxes per
      image and the fallback share (images that got the whole-image box); the core's
      ``refresh_boxes`` warns when every image fell back or a map is 1 x 1;
    - a warning when ``maybe_refresh`` is called for an epoch at or past ``max_epochs``
      (``max_epochs`` must be the loop's length).

    Under ``torch.distributed`` every rank must call ``maybe_refresh`` (it is collective):
    each rank localizes the shard its ``loader`` yields (see
    :func:`~ccrop_lightly.make_refresh_loader`) and all ranks end with the same full store.
    Buffers of ``feature_fn`` (BatchNorm statistics, which DDP lets drift by one step per
    rank) are first broadcast from rank 0, so the result equals a one-process refresh with
    rank 0's model.

    Args:
        store: the store the collate function reads.
        feature_fn: images ``(B, 3, H, W)`` -> features ``(B, C, h, w)`` (or a dict of named
            stages, fused into one heatmap by the core), e.g. ``feature_extractor(resnet)``; an
            ``nn.Module`` runs in eval mode and every submodule's train/eval mode is restored
            afterwards. With ``stages``, the backbone itself.
        loader: yields ``(images, indices)`` of the un-augmented training images.
        warmup_epochs, interval, max_epochs: the schedule (see :class:`RefreshSchedule`);
            ``max_epochs`` is the training loop's length.
        threshold: the localizer's ``k`` in ``[0, 1)`` (paper: 0.1), or a per-image adaptive
            threshold, ``"mean"`` (each heatmap's mean) or ``"otsu"``.
        localizer: a registered localizer (``components``: a box per object, the default;
            ``bbox``: the paper's single box) or a callable ``heatmaps -> BoxSets``.
        heatmap: a registered heatmap rule (``channel_sum``: the paper's; ``ccrop plugins`` lists
            the others) or a callable.
        heatmap_options: options of a named heatmap rule (e.g. ``{"sign": "image"}`` for ``ddt``).
        localizer_options: other options of a named localizer (``min_area``, ``max_boxes``).
        stages: name(s) of the backbone stage(s) to localize with (``"layer3"``, or
            ``["layer3", "layer4"]`` to fuse two); ``feature_fn`` is then the backbone and
            becomes ``feature_extractor(feature_fn, stages=stages)``. ``None``: ``feature_fn``
            as given.
        device: where to run ``feature_fn`` (default: its parameters' device).
        progress: show a progress bar on rank 0.
    """

    def __init__(
        self,
        store: BoxStore,
        feature_fn: FeatureFn,
        loader: Iterable[Sequence[Tensor]],
        *,
        warmup_epochs: int,
        interval: int,
        max_epochs: int | None = None,
        threshold: float | str = 0.1,
        localizer: str | Callable[[Tensor], BoxSets] = "components",
        heatmap: str | Callable[[Tensor], Tensor] = "channel_sum",
        heatmap_options: dict[str, Any] | None = None,
        localizer_options: dict[str, Any] | None = None,
        stages: str | Sequence[str] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
    ) -> None:
        if not isinstance(store, BoxStore):
            raise TypeError(f"store must be a ccrop_plugins.BoxStore; got {type(store).__name__}")
        _check_loader(loader, store)
        if stages is not None:
            if not isinstance(feature_fn, nn.Module):
                raise TypeError("with stages, feature_fn must be the backbone (an nn.Module); "
                                f"got {type(feature_fn).__name__}")
            feature_fn = feature_extractor(feature_fn, stages=stages)
        if not callable(feature_fn):
            raise TypeError(f"feature_fn must be callable (images -> feature maps); got {type(feature_fn).__name__}")
        dataset = getattr(loader, "dataset", None)
        self.schedule = RefreshSchedule(warmup_epochs, interval, max_epochs)
        check_refresh_options(threshold, localizer, heatmap, heatmap_options, localizer_options)
        if device is not None:
            device = checked_device(device)
        if progress not in (True, False):  # bool('no') is True
            raise TypeError(f"BoxRefresher: progress must be True or False; got {progress!r}")
        self.store = store
        self.feature_fn = feature_fn
        self.loader = loader
        self.threshold = threshold if isinstance(threshold, str) else float(threshold)  # "otsu"/"mean": per image
        self.localizer = localizer
        self.heatmap = heatmap
        self.heatmap_options = dict(heatmap_options or {})
        self.localizer_options = dict(localizer_options or {})
        self.device = device
        self.progress = progress
        self.last_stats: RefreshStats | None = None
        self._warned_past_end = False
        # After which epoch the store's latest refresh ran (-1: none yet); None: unknown. Saved by state_dict.
        self.last_refresh_epoch: int | None = None
        self._images_digest: str | None | bool = False  # image_list_digest of the loader's dataset; False: not yet read
        size = getattr(dataset, "size", None)
        if size is not None:
            warn_if_no_location(feature_fn, size, device)

    def should_refresh(self, epoch: int) -> bool:
        """Whether :meth:`maybe_refresh` refreshes after (0-based) ``epoch``."""
        return self.schedule.due(_epoch(epoch))

    def maybe_refresh(self, epoch: int) -> RefreshStats | None:
        """Refresh if the schedule says so after ``epoch``; return the stats, or ``None``."""
        epoch = _epoch(epoch)
        end = self.schedule.total
        if end is not None and epoch >= end and not self._warned_past_end:
            self._warned_past_end = True
            warnings.warn(
                f"maybe_refresh(epoch={epoch}) but the schedule's max_epochs is {end}: no refresh runs after "
                f"epoch {end - 1}; pass max_epochs=<the training loop's length>",
                UserWarning,
                stacklevel=2,
            )
        if not self.should_refresh(epoch):
            return None
        stats = self.refresh()
        self.last_refresh_epoch = epoch
        return stats

    def catch_up(self, start_epoch: int) -> RefreshStats | None:
        """On resume, before epoch ``start_epoch`` (0-based) runs: refresh now if the schedule had a refresh due
        before it that the store lacks (a checkpoint without boxes, or a run that ended before a refresh that this
        longer one has passed); return its stats, or ``None``. A store restored by :meth:`load_state_dict` knows
        its last refresh; one of unknown age counts as lagging only when empty. Collective under
        ``torch.distributed``, as :meth:`maybe_refresh`."""
        start = _epoch(start_epoch)
        last = self.last_refresh_epoch
        if last is None:
            last = -1 if self.store.version == 0 else start - 1
        due = self.schedule.latest_refresh(start)  # epochs done at the latest refresh before epoch start
        if due is None or due <= last + 1:
            return None
        logger.info(
            "resumed at epoch %d, but the store (version %d) lacks the refresh due after epoch %d (a checkpoint "
            "without boxes, or a run that ended before it); refreshing now", start, self.store.version, due - 1,
        )
        stats = self.refresh()
        self.last_refresh_epoch = start - 1
        return stats

    def refresh(self) -> RefreshStats:
        """Localize every image of the loader now and write the boxes to the store."""
        if isinstance(self.feature_fn, nn.Module) and dist.is_available() and dist.is_initialized():
            _broadcast_buffers(self.feature_fn)
        with eval_mode(self.feature_fn):
            stats = refresh_boxes(
                self.feature_fn,
                self.loader,
                self.store,
                localizer=self.localizer,
                heatmap=self.heatmap,
                heatmap_options=self.heatmap_options or None,
                threshold=self.threshold if isinstance(self.localizer, str) else None,  # a callable has its own
                localizer_options=self.localizer_options or None,
                device=self.device,
                progress=self.progress,
            )
        self.last_stats = stats
        report_refresh(stats)
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The store's state (boxes, scores, counts, version), the epoch of its latest refresh and the digest of the
        loader's image files (:func:`image_list_digest`; ``None`` without file names), for a checkpoint."""
        return {"store": self.store.state_dict(), "last_refresh_epoch": self.last_refresh_epoch,
                "images": self._digest()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` in place; running workers see it. Then :meth:`catch_up` before the first
        resumed epoch. A state of another number of images (a grown dataset), or of the same number of other files
        (another folder, renamed files), is ignored with a warning naming it; ``catch_up`` then makes the boxes
        afresh."""
        if "store" not in state:
            raise KeyError(f"refresher state lacks 'store'; got keys {sorted(state)}")
        if restore_store(self.store, state["store"], state.get("images"), self._digest, "BoxRefresher",
                         "catch_up(start_epoch) makes them afresh if a refresh was due before it"):
            self.last_refresh_epoch = state.get("last_refresh_epoch")


    def _digest(self) -> str | None:
        if self._images_digest is False:
            self._images_digest = image_list_digest(getattr(self.loader, "dataset", None))
        return self._images_digest


def restore_store(store: BoxStore, state: dict[str, Any], saved_digest: str | None,
                  digest: Callable[[], str | None], owner: str, remade: str) -> bool:
    """Load a saved store ``state`` into ``store``, unless it was made on other images (another count, or the same
    count of other files: :func:`ccrop_plugins.other_images` against ``digest()``, read only when the checkpoint has a
    digest): then warn, naming ``owner`` and how the boxes are ``remade``, and return ``False``. A saved set larger
    than ``store.max_boxes`` keeps its best boxes, with an ``INFO`` line."""
    other = other_images(state, len(store), saved_digest, None if saved_digest is None else digest())
    if other is not None:
        warnings.warn(f"{owner}: the checkpoint's boxes were made on {other}; ignored, they would crop other images' "
                      f"objects: {remade}", UserWarning, stacklevel=3)
        return False
    store.load_state_dict(state)
    if int(state["max_boxes"]) > store.max_boxes:
        logger.info("%s: the checkpoint's box sets hold up to %d boxes per image; this store keeps %d: the best of "
                    "each set until the next refresh", owner, int(state["max_boxes"]), store.max_boxes)
    return True


def image_list_digest(dataset: Any) -> str | None:
    """:func:`ccrop_plugins.images_digest` of the dataset's image files in index order (``LightlyDataset``'s
    ``get_filenames()``, or the ``samples`` of a torchvision ``ImageFolder``, also inside :class:`IndexedDataset` or
    a refresh loader's ``RefreshImages``); ``None`` for datasets without file names (``CIFAR10``)."""
    inner = dataset
    while isinstance(inner, (IndexedDataset, RefreshImages)):
        inner = inner.dataset
    if hasattr(inner, "get_filenames"):
        paths = [str(name) for name in inner.get_filenames()]
    elif isinstance(getattr(inner, "samples", None), list):
        paths = [str(sample[0]) for sample in inner.samples]
    else:
        return None
    return images_digest(paths)


def check_refresh_options(
    threshold: float | str,
    localizer: str | Callable[[Tensor], BoxSets],
    heatmap: str | Callable[[Tensor], Tensor],
    heatmap_options: dict[str, Any] | None,
    localizer_options: dict[str, Any] | None,
) -> None:
    """Build the named localizer and heatmap rule once, so that a misspelt name, a bad option or
    threshold fails when the refresher (or callback) is made, not after the warm-up epochs."""
    if isinstance(localizer, str):
        get_localizer(localizer, threshold=threshold, **(localizer_options or {}))
    elif localizer_options:  # a callable localizer is already configured: the options would go nowhere
        raise TypeError(f"localizer_options {sorted(localizer_options)} are for a named localizer; the localizer "
                        f"{getattr(localizer, '__name__', type(localizer).__name__)} is a callable already configured "
                        "(pass get_localizer(name, **options), or the name and localizer_options)")
    if isinstance(heatmap, str):
        HeatmapPipeline(heatmap, heatmap_options)


def report_refresh(stats: RefreshStats) -> None:
    """Log one ``INFO`` line about a refresh, with its fallback share.

    An all-fallback pass also warns, once, from the core's ``refresh_boxes``.
    """
    logger.info(
        "ccrop refresh v%d: %d images, %.2f boxes per image, mean box area %.2f, fallback %.2f "
        "(share of images with the whole-image box), %.0f images/s",
        stats.version, stats.images, stats.mean_boxes, stats.mean_box_area, stats.fallback_fraction,
        stats.images_per_second,
    )


def _check_loader(loader: Iterable[Sequence[Tensor]], store: BoxStore) -> None:
    """Refuse a dataset or the training loader as the refresh loader, and a loader of another size than ``store``:
    each would fail only at the first refresh, after the whole warm-up."""
    if isinstance(loader, Dataset):
        raise TypeError(f"loader must yield batches (images, indices); got the dataset {type(loader).__name__}: "
                        "pass make_refresh_loader(dataset, transform=transform)")
    if isinstance(getattr(loader, "collate_fn", None), CCropCollate):
        raise TypeError("loader is the training loader (its collate_fn is CCropCollate, which yields augmented "
                        "views); the refresh needs the plain images: "
                        "make_refresh_loader(dataset, transform=transform)")
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(dataset, "__len__") and len(dataset) != len(store):
        raise ValueError(
            f"the refresh loader covers {len(dataset)} samples but the box store holds {len(store)}; "
            f"create it as BoxStore({len(dataset)})"
        )


def warn_if_no_location(feature_fn: FeatureFn, size: Sequence[int], device: torch.device | str | None = None) -> bool:
    """Run ``feature_fn`` once on a blank image of ``size`` and warn if a feature map is 1 x 1.

    A 1 x 1 map (a standard ResNet at 32 px) has no location: every heatmap is constant and
    every box the whole image. Returns ``True`` when it warned. A ``feature_fn`` that fails on
    the blank image is left alone here: the refresh will report its error.
    """
    height, width = int(size[0]), int(size[1])
    if device is None:
        parameter = next(feature_fn.parameters(), None) if isinstance(feature_fn, nn.Module) else None
        device = parameter.device if parameter is not None else "cpu"
    try:
        with eval_mode(feature_fn), torch.no_grad():
            output = feature_fn(torch.zeros(1, 3, height, width, device=device))
    except Exception:  # noqa: BLE001 - a probe only; the refresh raises the real error with context
        return False
    if isinstance(output, dict):
        maps = dict(output)
    elif isinstance(output, (tuple, list)) and output:
        maps = {"": output[-1]}
    else:
        maps = {"": output}
    flat = [
        name
        for name, tensor in maps.items()
        if isinstance(tensor, Tensor) and tensor.ndim == 4 and tensor.shape[-2:].numel() == 1
    ]
    if not flat:
        return False
    where = "the feature map" if flat == [""] else f"the feature map of stage(s) {', '.join(map(repr, flat))}"
    warnings.warn(
        f"{where} is 1 x 1 for {height} x {width} px images: it carries no location, so every box would be the "
        "whole image (fallback 1.00) and ContrastiveCrop would crop like RandomResizedCrop. Localize with an "
        "earlier stage (feature_extractor(backbone, stages='layer3')) or keep a larger map (for a ResNet at 32 px: "
        "a 3 x 3 stride-1 conv1 and no max-pool).",
        UserWarning,
        stacklevel=3,
    )
    return True


def _broadcast_buffers(module: nn.Module) -> None:
    for buffer in module.buffers():
        if dist.get_backend() == "nccl" and not buffer.is_cuda:
            continue
        dist.broadcast(buffer, src=0)


def _epoch(epoch: Any) -> int:
    """The 0-based epoch that just ended, as an int (numpy and one-element integer tensors too); ``ValueError`` naming
    ``epoch`` (not the schedule's ``step``) for floats, bools, text or a negative number."""
    number = None
    inexact = isinstance(epoch, Tensor) and (epoch.dtype == torch.bool or epoch.is_floating_point())
    if not isinstance(epoch, bool) and not inexact:
        try:
            number = operator.index(epoch)
        except TypeError:
            pass
    if number is None or number < 0:
        raise ValueError(f"epoch (the 0-based epoch that just ended) must be an integer >= 0; got {epoch!r}")
    return number

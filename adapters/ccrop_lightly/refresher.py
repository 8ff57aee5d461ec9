"""Box refresh for plain PyTorch training loops: call ``maybe_refresh(epoch)`` after each epoch.

Its parts, re-exported here: option checks (``refresh_options.py``), the 1 x 1 feature-map probe
(``location_check.py``), the store in checkpoints and the catch-up refresh on resume (``checkpoint_boxes.py``).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ccrop_plugins import (BoxSets, BoxStore, RefreshStats, check_same_on_every_rank, checked_device, eval_mode,
                           refresh_boxes)

from .checkpoint_boxes import RefresherCheckpoint, image_list_digest, restore_store
from .features import FeatureFn
from .location_check import warn_if_no_location
from .refresh_options import check_refresh_loader, check_refresh_options, checked_feature_fn
from .schedule import RefreshSchedule, checked_epoch

__all__ = ["BoxRefresher", "FeatureFn", "check_refresh_options", "image_list_digest", "report_refresh", "restore_store",
           "warn_if_no_location"]
logger = logging.getLogger("ccrop_lightly")


class BoxRefresher(RefresherCheckpoint):
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

    Checkpoints: ``state_dict()``, ``load_state_dict(state)`` and ``catch_up(start_epoch)`` on resume
    (:class:`~ccrop_lightly.checkpoint_boxes.RefresherCheckpoint`).

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
            threshold, ``"mean"`` (each heatmap's mean) or ``"otsu"``; ``None``: the localizer's
            default (0.1 for ``components`` and ``bbox``; a plugin's localizer need not take one).
        localizer: a registered localizer (``components``: a box per object, the default;
            ``bbox``: the paper's single box) or a callable ``heatmaps -> BoxSets``.
        heatmap: a registered heatmap rule (``channel_sum``: the paper's; ``ccrop plugins`` lists
            the others) or a callable.
        heatmap_options: options of a named heatmap rule (e.g. ``{"sign": "image"}`` for ``ddt``).
        localizer_options: other options of a named localizer (``min_area``, ``max_boxes``).
        stages: name(s) of the backbone stage(s) to localize with (``"layer3"``, or
            ``["layer3", "layer4"]`` to fuse two); ``feature_fn`` is then the backbone and
            becomes ``feature_extractor(feature_fn, stages=stages)``. ``None``: ``feature_fn`` as
            given, but for a module whose output has no location (a torchvision ResNet; lightly's
            ``nn.Sequential(*list(resnet.children())[:-1])``, ending in ``AdaptiveAvgPool2d``),
            which becomes ``feature_extractor(feature_fn)``, its last stage's maps (as the callback).
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
        threshold: float | str | None = None,
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
        check_refresh_loader(loader, store)
        feature_fn = checked_feature_fn(feature_fn, stages)
        self.schedule = RefreshSchedule(warmup_epochs, interval, max_epochs)
        check_refresh_options(threshold, localizer, heatmap, heatmap_options, localizer_options, store)
        if device is not None:
            device = checked_device(device)
        if progress not in (True, False):  # bool('no') is True
            raise TypeError(f"BoxRefresher: progress must be True or False; got {progress!r}")
        self.store = store
        self.feature_fn = feature_fn
        self.loader = loader
        self.threshold = threshold if threshold is None or isinstance(threshold, str) else float(threshold)
        self.localizer = localizer
        self.heatmap = heatmap
        self.heatmap_options = dict(heatmap_options or {})
        self.localizer_options = dict(localizer_options or {})
        self.device = device
        self.progress = progress
        self.last_stats: RefreshStats | None = None
        self._warned_past_end = False
        self._schedule_agreed = False  # checked across ranks at the first maybe_refresh / catch_up
        # After which epoch the store's latest refresh ran (-1: none yet); None: unknown. Saved by state_dict.
        self.last_refresh_epoch: int | None = None
        self._images_digest: str | None | bool = False  # image_list_digest of the loader's dataset; False: not yet read
        size = getattr(getattr(loader, "dataset", None), "size", None)
        if size is not None:
            warn_if_no_location(feature_fn, size, device)

    def should_refresh(self, epoch: int) -> bool:
        """Whether :meth:`maybe_refresh` refreshes after (0-based) ``epoch``."""
        return self.schedule.due(checked_epoch(epoch))

    def __repr__(self) -> str:
        return (f"BoxRefresher({self.store!r}, {self.schedule!r}, localizer={self.localizer!r}, "
                f"threshold={self.threshold!r}, heatmap={self.heatmap!r}, "
                f"last_refresh_epoch={self.last_refresh_epoch})")

    def maybe_refresh(self, epoch: int) -> RefreshStats | None:
        """Refresh if the schedule says so after ``epoch``; return the stats, or ``None``."""
        epoch = checked_epoch(epoch)
        self.agree_schedule()
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

    def agree_schedule(self) -> None:
        """Under ``torch.distributed``, once: a ``ValueError`` on every rank when the ranks' schedules differ (a
        rank refreshing alone would wait in the refresh's collective until the timeout). Collective."""
        if not self._schedule_agreed:
            check_same_on_every_rank(repr(self.schedule), "BoxRefresher: the refresh schedule")
            self._schedule_agreed = True

    def refresh(self) -> RefreshStats:
        """Localize every image of the loader now and write the boxes to the store."""
        dataset = getattr(self.loader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__") and len(dataset) != len(self.store):
            raise ValueError(
                f"BoxRefresher: the refresh loader's dataset now has {len(dataset)} images, the box store "
                f"{len(self.store)}: the dataset changed size during training (images added or removed?), so its "
                "indices no longer match the store's; keep the image list fixed for the run (restart with a new "
                "BoxStore, refresh loader and DataLoader after changing it)"
            )
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
                threshold=self.threshold,
                localizer_options=self.localizer_options or None,
                device=self.device,
                progress=self.progress,
            )
        self.last_stats = stats
        report_refresh(stats)
        return stats


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


def _broadcast_buffers(module: nn.Module) -> None:
    for buffer in module.buffers():
        if dist.get_backend() == "nccl" and not buffer.is_cuda:
            continue
        dist.broadcast(buffer, src=0)


"""One refresh pass: localize every training image with the current model, update the box store, log the pass.

Collective: every rank reads its shard of :class:`~ccrop_mm.extraction.ExtractionDataset` (of every part of a
``ConcatDataset``, one after the other) and the core's
``refresh_boxes`` gathers the boxes into every rank's store. The pass's statistics go to the runner's
``message_hub`` as ``train/ccrop_*`` scalars and, with the core's warnings, to the run's log (rank 0).
"""

from __future__ import annotations

import warnings
from typing import Any

from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from torch import nn
from torch.utils.data import Dataset

from ccrop_plugins import BoxStore, RefreshStats, refresh_boxes

from .extraction import Normaliser, extraction_loader

SCALAR_PREFIX = "train/ccrop_"


def unwrapped(model: nn.Module) -> nn.Module:
    """The model inside mmengine's (DDP) wrapper, or ``model``."""
    return model.module if is_model_wrapper(model) else model


def run_refresh(runner: Any, images: Dataset, features: nn.Module, store: BoxStore, localizer: Any, *,
                heatmap: str, heatmap_options: dict[str, Any] | None, batch_size: int | None,
                num_workers: int | None, progress: bool) -> RefreshStats:
    """Refresh ``store`` from the heatmaps of ``features`` (the module :func:`~ccrop_mm.stages.feature_fn` chose).

    ``images``: an :class:`~ccrop_mm.extraction.ExtractionDataset` (or ``ExtractionParts``) whose items are
    ``(image, store row)``.

    The loader's ``batch_size`` and ``num_workers`` default to the train loader's.
    """
    model = unwrapped(runner.model)
    normalise = Normaliser(getattr(model, "data_preprocessor", None))
    device = next(model.parameters()).device
    loader = extraction_loader(
        images,
        batch_size or runner.train_dataloader.batch_size or 32,
        runner.train_dataloader.num_workers if num_workers is None else num_workers,
    )
    batches = ((normalise(batch, device), indices) for batch, indices in loader)
    with warnings.catch_warnings(record=True) as caught:  # the core's warnings, into the run's log
        warnings.simplefilter("always")
        stats = refresh_boxes(features, batches, store, localizer, heatmap,
                              heatmap_options=heatmap_options, device=device, progress=progress)
    _log_refresh(runner, stats, caught)
    return stats


def _log_refresh(runner: Any, stats: RefreshStats, caught: list[warnings.WarningMessage]) -> None:
    scalars = {"mean_boxes": stats.mean_boxes, "mean_box_area": stats.mean_box_area,
               "fallback_fraction": stats.fallback_fraction, "refresh_seconds": stats.seconds,
               "box_version": float(stats.version)}
    for name, value in scalars.items():
        runner.message_hub.update_scalar(SCALAR_PREFIX + name, value)
    if is_main_process():
        runner.logger.info("ContrastiveCrop refresh " + ", ".join(f"{k}={v:.4g}" for k, v in scalars.items())
                           + f", images={stats.images}, images_per_second={stats.images_per_second:.1f}")
        for caught_warning in {str(w.message): w for w in caught}.values():
            runner.logger.warning(f"ContrastiveCrop refresh: {caught_warning.message}")

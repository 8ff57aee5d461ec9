"""``ccrop demo --framework lightly``: SimCLR through the Lightly adapter (:func:`pretrain_simclr`)."""

from __future__ import annotations

from pathlib import Path

from ccrop_lightly import feature_extractor

from ccrop_cli.demo.config import DemoConfig, DemoRun
from ccrop_cli.experiment.pretrain import PretrainConfig, RefreshRecord, pretrain_simclr
from ccrop_cli.experiment.store_snapshot import box_lists


def pretrain_config(config: DemoConfig) -> PretrainConfig:
    """The demo's sizes as a :class:`PretrainConfig` (the convnet backbone)."""
    return PretrainConfig(
        image_size=config.image_size,
        refresh_size=config.refresh_size,
        epochs=config.epochs,
        batch_size=config.batch_size,
        warmup_epochs=config.warmup_epochs,
        interval=config.interval,
        threshold=config.threshold,
        heatmap=config.heatmap,
        stages=tuple(config.stages),
        alpha=config.alpha,
        seed=config.seed,
        num_workers=config.num_workers,
    )


def _print_refresh(record: RefreshRecord) -> None:
    stats = record.stats
    print(
        f"  refresh after epoch {record.epoch + 1}: {stats.mean_boxes:.2f} boxes/image, "
        f"mean box area {stats.mean_box_area:.2f}, {stats.seconds:.1f} s",
        flush=True,
    )


def train_lightly(config: DemoConfig, train_root: Path, progress: bool = True) -> DemoRun:
    """Pre-train with box sets (``multi``); return the backbone's view for the report."""
    result = pretrain_simclr(train_root, "multi", pretrain_config(config), progress=progress, on_refresh=_print_refresh)
    return DemoRun(
        feature_fn=feature_extractor(result.backbone, stages=list(config.stages)),
        filenames=result.filenames,
        refreshes=[(r.epoch, r.stats.as_dict(), box_lists(r.box_sets)) for r in result.refreshes],
        train_seconds=result.train_seconds,
        refresh_seconds=result.refresh_seconds,
        epoch_losses=result.epoch_losses,
        store=result.store,
    )

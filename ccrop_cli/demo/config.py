"""The demo's sizes (:class:`DemoConfig`) and what a framework run hands to the report (:class:`DemoRun`).

Both framework runs (``ccrop_cli.demo.lightly_run``, ``ccrop_cli.demo.mm_run``) and the command
(``ccrop_cli.demo.command``) import these; nothing here imports them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ccrop_plugins import BoxStore


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults take about 2-3 minutes on 2 CPU cores.

    Attributes:
        setting: scene setting (``multi-small`` or ``single``); not used with ``data``.
        data: the user's image folder (``ccrop demo --data DIR``) instead of generated scenes.
        images: training images.
        scene_size: generated image side in pixels.
        image_size: training view side in pixels.
        refresh_size: side of the images the box refresh (and the heatmap picture) sees.
        epochs, warmup_epochs, interval, batch_size: the schedule.
        threshold: the ``components`` localizer's ``k`` in ``[0, 1)`` or a per-image rule
            (``otsu``, ``mean``); heatmap: the heatmap rule; stages: the backbone stage(s) the
            heatmap is made from (``("2", "5")``: the convnet's stride-1 and stride-2 stages, fused by
            the geometric mean, from the same forward; ``backbone.layer1`` and ``backbone.layer2``,
            the same strides, for the mmpretrain ResNet-18 with the CIFAR stem). The defaults are the best
            setting measured on four kinds of data (docs/benchmarks/localize.md); the paper's setting is
            ``threshold=0.1, heatmap="channel_sum"`` and the last stage.
        alpha: ``Beta(alpha, alpha)`` of the crop centre.
        seed: data and training seed.
        num_workers: DataLoader workers (persistent).
    """

    setting: str = "multi-small"
    data: str | None = None
    images: int = 1000
    scene_size: int = 64
    image_size: int = 32
    refresh_size: int = 64
    epochs: int = 10
    warmup_epochs: int = 4
    interval: int = 2
    batch_size: int = 64
    threshold: float | str = "otsu"
    heatmap: str = "distinctiveness"
    stages: tuple[str, ...] = ("2", "5")
    alpha: float = 0.6
    seed: int = 0
    num_workers: int = 2


QUICK = dict(
    images=64, scene_size=48, image_size=32, refresh_size=48, epochs=2, warmup_epochs=1, interval=1, batch_size=32
)
# A ResNet-18 through the Runner is about 4x slower per view than the convnet: fewer images and
# epochs keep the mmpretrain demo at a few minutes (measured: about 53 s per 1,000-image epoch).
MMPRETRAIN = dict(images=500, epochs=6, warmup_epochs=2, interval=2, stages=("backbone.layer1", "backbone.layer2"))


@dataclass
class DemoRun:
    """What a framework run hands back to the report: the model's view of the data.

    Attributes:
        feature_fn: images ``(B, 3, S, S)`` normalised -> ``{stage: (B, C, h, w)}`` of the
            configured stages (what the refresh pass localizes with).
        filenames: training images in box-store index order (relative to the data root).
        refreshes: per refresh ``(epoch, stats dict, predicted boxes per image)``.
        train_seconds, refresh_seconds: the time split.
        store: the box store as training left it, indexed as ``filenames`` (written to ``boxes.json``).
    """

    feature_fn: Any
    filenames: list[str]
    refreshes: list[tuple[int, dict[str, float], list[torch.Tensor]]] = field(default_factory=list)
    train_seconds: float = 0.0
    refresh_seconds: float = 0.0
    epoch_losses: list[float] = field(default_factory=list)
    store: BoxStore | None = None

"""SimCLR pre-training through the Lightly adapter, shared by ``ccrop demo`` and ``ccrop study``.

One function, :func:`pretrain_simclr`: lightly's ``LightlyDataset`` (no transform), the
adapter's :class:`~ccrop_lightly.CCropCollate` in a ``DataLoader`` with persistent workers,
lightly's ``SimCLRProjectionHead`` and ``NTXentLoss``, and the adapter's
:class:`~ccrop_lightly.BoxRefresher` called after every epoch (warm-up, then a refresh every
``interval`` epochs). The strategy decides the crop: ``rrc`` never refreshes (plain
RandomResizedCrop throughout), ``paper`` keeps one box per image, ``multi`` and ``multi-box``
keep box sets.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from lightly.data import LightlyDataset
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ccrop_lightly import (
    BoxRefresher,
    CCropCollate,
    CCropMultiViewTransform,
    CCropSimCLRViewTransform,
    CCropViewTransform,
    feature_extractor,
    make_refresh_loader,
)
from ccrop_plugins import BoxSets, BoxStore, RefreshStats, stage_features

from ccrop_cli.experiment.backbones import BACKBONES, build_backbone
from ccrop_cli.experiment.oracle_boxes import OracleRefresher, ground_truth_box_sets
from ccrop_cli.experiment.store_snapshot import snapshot
from ccrop_cli.experiment.strategies import CropStrategy, get_strategy

MAX_BOXES = 4


@dataclass
class RefreshRecord:
    """One box refresh: after which (0-based) epoch, its statistics and the boxes it wrote.

    Attributes:
        epoch: the epoch after which the refresh ran.
        stats: the core's :class:`~ccrop_plugins.RefreshStats`.
        box_sets: the store's boxes after the refresh, one set per dataset index (in
            ``LightlyDataset`` filename order), normalised ``x0, y0, x1, y1``.
    """

    epoch: int
    stats: RefreshStats
    box_sets: BoxSets


@dataclass
class PretrainResult:
    """What :func:`pretrain_simclr` returns.

    Attributes:
        backbone: the trained backbone, images ``(B, 3, S, S)`` -> features ``(B, D)``.
        feature_dim: ``D``.
        strategy: the crop strategy's name.
        filenames: the training images in dataset-index order (relative to ``data_root``).
        refreshes: one :class:`RefreshRecord` per refresh, in order.
        epoch_losses: mean NT-Xent loss of every epoch.
        train_seconds: wall time spent in training epochs (data loading included).
        refresh_seconds: wall time spent in box refreshes.
        views: augmented views the model was trained on (2 per sample per epoch).
        store: the run's box store as training left it (the last refresh's boxes; empty for ``rrc``).
    """

    backbone: nn.Module
    feature_dim: int
    strategy: str
    filenames: list[str]
    refreshes: list[RefreshRecord] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    refresh_seconds: float = 0.0
    views: int = 0
    store: BoxStore | None = None

    @property
    def views_per_second(self) -> float:
        return self.views / self.train_seconds if self.train_seconds > 0 else 0.0


class SimCLR(nn.Module):
    """A backbone and lightly's SimCLR projection head: images ``(B, 3, S, S)`` -> ``(B, 128)``."""

    def __init__(self, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(feature_dim, feature_dim, 128)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(images).flatten(start_dim=1))


RefreshCallback = Callable[[RefreshRecord], None]


class WarmupAwareViews(CCropMultiViewTransform):
    """The strategy's views once a sample has boxes, ``warmup``'s views (RandomResizedCrop) before.

    The study compares strategies that differ only after the first refresh, so every
    strategy's warm-up views must be the same RandomResizedCrop (20-100 % of the image).
    A box-scaled strategy (``scale=(1, 4)`` of the *box*) without boxes takes the image as
    the box and the core shrinks that reference so crops are 25-100 % of the image
    (``ContrastiveCrop._box_reference``): a sensible default for users, but not
    RandomResizedCrop's warm-up. Samples without boxes therefore get ``warmup``'s views.

    Input / output: as :class:`~ccrop_lightly.CCropMultiViewTransform`.
    """

    def __init__(self, warmup: CCropMultiViewTransform, with_boxes: CCropMultiViewTransform) -> None:
        super().__init__(with_boxes.transforms)
        self.warmup = warmup

    def __call__(self, image: Any, boxes: torch.Tensor | None = None, scores: torch.Tensor | None = None) -> list[Any]:
        if boxes is None:
            return self.warmup(image)
        return super().__call__(image, boxes, scores)


def simclr_views(
    strategy: CropStrategy, image_size: int, alpha: float, cj_strength: float = 0.5
) -> CCropMultiViewTransform:
    """SimCLR's two views with ``strategy``'s crop (its scale range and scale reference).

    The steps after the crop are lightly's SimCLR view steps with the CIFAR-size settings of
    lightly's examples (colour jitter strength ``cj_strength``, 0.5 there; no blur at 32-64 px). Both views crop
    around the same box (pair-consistent); samples without boxes (warm-up) get
    RandomResizedCrop views with scale ``(0.2, 1.0)`` of the image (:class:`WarmupAwareViews`).
    """
    steps = CCropSimCLRViewTransform(input_size=image_size, cj_strength=cj_strength, gaussian_blur=0.0).transform

    def views(crop_strategy: CropStrategy) -> CCropMultiViewTransform:
        view = CCropViewTransform(crop_strategy.make_crop(image_size, alpha=alpha), steps)
        return CCropMultiViewTransform([view, view])

    return WarmupAwareViews(views(get_strategy("rrc")), views(strategy))


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker's torch RNG from the loader's generator; numpy and random
    # (used by some lightly transforms) follow from it, so a run is reproducible.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


@dataclass(frozen=True)
class PretrainConfig:
    """The sizes and hyper-parameters of one :func:`pretrain_simclr` run (validated on creation).

    Attributes:
        backbone: ``convnet`` (4 layers, fast) or ``resnet18`` (CIFAR stem).
        image_size: side of the square views; images are cropped from their stored size.
        refresh_size: side the un-augmented images are resized to for the box refresh
            (default ``image_size``, the paper's choice; the images' own size gives a finer
            heatmap when views are smaller than the images).
        epochs: training epochs.
        batch_size: samples per step (each gives 2 views); the last partial batch is dropped.
        warmup_epochs: epochs of plain RandomResizedCrop before the first refresh.
        interval: epochs between refreshes (the last epoch never refreshes).
        threshold: the localizer's ``k`` on heatmaps in ``[0, 1]`` (paper: 0.1), or a per-image
            rule of the ``components`` localizer: ``"otsu"`` or ``"mean"``.
        heatmap: the heatmap rule of the refresh (paper: ``channel_sum``; see ``ccrop plugins``).
        stages: backbone stages the heatmap is computed from (``ccrop_lightly.feature_extractor``
            names: indices of the Sequential backbones, ``"5"`` is the stride-2 stage of both);
            ``None``: the last stage (the paper).
        alpha: ``Beta(alpha, alpha)`` of the crop centre (paper: 0.1 on CIFAR, 0.6 on ImageNet).
        learning_rate: AdamW learning rate, cosine-annealed to 0 over the run (AdamW rather
            than the paper's SGD: these runs are a few epochs long).
        seed: seeds the weights, the shuffling and every augmentation.
        num_workers: DataLoader workers (persistent across epochs; 0 loads in this process).
        box_source: ``learned`` (the strategy's localizer refreshes the boxes) or ``oracle``
            (the folder's ground-truth boxes from ``annotations.json``, written on the same
            schedule: the ceiling any localizer can reach; ``oracle_boxes``).
        cj_strength: colour-jitter strength of the views (lightly's ``cj_strength``).
        device: ``cpu`` or ``cuda`` (``cuda:N``); on CUDA the forward runs under bfloat16 autocast.

    Raises:
        ValueError: for an unknown backbone or stage or a value outside its range, naming it.
    """

    backbone: str = "convnet"
    image_size: int = 64
    refresh_size: int | None = None
    epochs: int = 10
    batch_size: int = 128
    warmup_epochs: int = 4
    interval: int = 2
    threshold: float | str = 0.1
    heatmap: str = "channel_sum"
    stages: tuple[str, ...] | None = None
    alpha: float = 0.6
    learning_rate: float = 2e-3
    seed: int = 0
    num_workers: int = 2
    box_source: str = "learned"
    cj_strength: float = 0.5
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; available: {', '.join(BACKBONES)}")
        _check_positive(image_size=self.image_size, epochs=self.epochs, batch_size=self.batch_size,
                        interval=self.interval)
        if self.refresh_size is not None:
            _check_positive(refresh_size=self.refresh_size)
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (SimCLR contrasts each pair with the rest of the batch, "
                             f"and BatchNorm needs two samples); got {self.batch_size}")
        if int(self.warmup_epochs) != self.warmup_epochs or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0; got {self.warmup_epochs!r}")
        if isinstance(self.threshold, str):
            if self.threshold not in ("mean", "otsu"):
                raise ValueError(f"threshold must be a number in [0, 1), 'mean' or 'otsu'; got {self.threshold!r}")
        elif not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must lie in [0, 1) (or be otsu/mean); got {self.threshold}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be positive; got {self.alpha}")
        if not self.cj_strength >= 0:  # NaN too
            raise ValueError(f"cj_strength must be a number >= 0; got {self.cj_strength}")
        try:  # the view steps' own checks (hue jitter within torchvision's range), before any data is made
            CCropSimCLRViewTransform(input_size=self.image_size, cj_strength=self.cj_strength, gaussian_blur=0.0)
        except ValueError as error:
            raise ValueError(f"cj_strength {self.cj_strength} makes no valid view steps: {error}") from None
        if self.box_source not in ("learned", "oracle"):
            raise ValueError(f"unknown box source {self.box_source!r}; available: learned, oracle")
        if self.stages:  # an unknown name fails here, before any data is made or read
            stage_features(build_backbone(self.backbone, 0)[0], list(self.stages))


@dataclass
class _Training:
    """Everything one run builds before its first epoch."""

    dataset: LightlyDataset
    store: BoxStore
    loader: DataLoader
    model: SimCLR
    feature_dim: int
    refresher: BoxRefresher | OracleRefresher | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    criterion: nn.Module


def pretrain_simclr(
    data_root: str | Path,
    strategy: str | CropStrategy,
    config: PretrainConfig | None = None,
    *,
    progress: bool = True,
    on_refresh: RefreshCallback | None = None,
    **overrides: Any,
) -> PretrainResult:
    """Pre-train SimCLR on an image folder with one crop strategy, on the CPU, or on ``config.device``.

    Args:
        data_root: an image folder (``root/<class>/<image>``), e.g. written by
            ``ccrop_scenes.write_image_folder``; labels are not used.
        strategy: ``rrc``, ``paper``, ``multi``, ``multi-box`` (see ``ccrop_cli.experiment.strategies``).
        config: the run's :class:`PretrainConfig` (default: its defaults).
        progress: show progress bars.
        on_refresh: called with each :class:`RefreshRecord` right after its refresh.
        **overrides: :class:`PretrainConfig` fields replacing ``config``'s, e.g.
            ``pretrain_simclr(root, "multi", epochs=2, image_size=32)``.

    Returns:
        :class:`PretrainResult`; ``refreshes`` is empty for ``rrc``.

    Raises:
        ValueError: for an unknown strategy or backbone, a non-positive size, or a
            ``batch_size`` larger than the dataset.
        TypeError: for an override that is not a :class:`PretrainConfig` field.
    """
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if not isinstance(strategy, CropStrategy):
        raise TypeError(f"strategy must be a name or a CropStrategy; got {type(strategy).__name__}")
    config = _with_overrides(config or PretrainConfig(), overrides)
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise ValueError(f"data_root {str(data_root)!r} is not a directory (expected root/<class>/<image>)")
    training = _build(data_root, strategy, config)
    result = PretrainResult(
        backbone=training.model.backbone,
        feature_dim=training.feature_dim,
        strategy=strategy.name,
        filenames=training.dataset.get_filenames(),
        store=training.store,
    )
    training.model.train()
    for epoch in range(config.epochs):
        _train_epoch(training, epoch, config.epochs, result, progress, label=strategy.name)
        if training.refresher is not None:
            _maybe_refresh(training.refresher, training.store, epoch, result, on_refresh)
    training.model.eval()
    return result


def _with_overrides(config: PretrainConfig, overrides: dict[str, Any]) -> PretrainConfig:
    known = {f.name for f in fields(PretrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"pretrain_simclr() got unknown options {unknown}; "
                        f"PretrainConfig fields: {', '.join(sorted(known))}")
    return replace(config, **overrides) if overrides else config


def _build(data_root: Path, strategy: CropStrategy, config: PretrainConfig) -> _Training:
    """Dataset, store, loader, model, refresher and optimiser, seeded in this order."""
    torch.manual_seed(config.seed)
    dataset = LightlyDataset(str(data_root))
    if config.batch_size > len(dataset):
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(dataset)} images in {data_root}")
    store = BoxStore(len(dataset), max_boxes=MAX_BOXES)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        collate_fn=CCropCollate(
            simclr_views(strategy, config.image_size, config.alpha, config.cj_strength), store, dataset=dataset
        ),
        worker_init_fn=_seed_worker,
        pin_memory=config.device != "cpu",
        generator=torch.Generator().manual_seed(config.seed),
    )
    net, feature_dim = build_backbone(config.backbone, config.seed)
    model = SimCLR(net, feature_dim).to(config.device)
    refresher = None
    if strategy.uses_boxes and config.box_source == "oracle":
        truth = ground_truth_box_sets(data_root, dataset.get_filenames(), strategy, MAX_BOXES)
        refresher = OracleRefresher(
            store, truth, warmup_epochs=config.warmup_epochs, interval=config.interval, max_epochs=config.epochs
        )
    elif strategy.uses_boxes:
        refresher = BoxRefresher(
            store,
            feature_extractor(model.backbone),
            make_refresh_loader(dataset, config.refresh_size or config.image_size, batch_size=256),
            warmup_epochs=config.warmup_epochs,
            interval=config.interval,
            max_epochs=config.epochs,
            threshold=config.threshold,
            localizer=strategy.localizer,
            localizer_options=dict(strategy.localizer_options),
            heatmap=config.heatmap,
            stages=list(config.stages) if config.stages else None,
        )
    criterion = NTXentLoss(temperature=0.2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs * len(loader), 1))
    return _Training(dataset, store, loader, model, feature_dim, refresher, optimizer, scheduler, criterion)


def _train_epoch(training: _Training, epoch: int, epochs: int, result: PretrainResult, progress: bool,
                 label: str) -> None:
    """One pass over the loader; adds the epoch's time, mean loss and view count to ``result``."""
    started = time.perf_counter()
    total, batches = 0.0, 0
    # The bar is given no iterable: tqdm.auto's calls iter() on one, a second iterator of the loader, whose
    # workers made batches that no step used (2 x num_workers of them per epoch)
    bar = tqdm(total=len(training.loader), desc=f"{label} epoch {epoch + 1}/{epochs}", unit="batch", leave=False,
               disable=not progress)
    device = next(training.model.parameters()).device
    for (view_a, view_b), _targets, _keys in training.loader:
        view_a, view_b = view_a.to(device, non_blocking=True), view_b.to(device, non_blocking=True)
        # Mixed precision on CUDA for the network; the loss (a softmax over similarities) in float32.
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            z_a, z_b = training.model(view_a), training.model(view_b)
        loss = training.criterion(z_a.float(), z_b.float())
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        training.optimizer.step()
        training.scheduler.step()
        total += float(loss.detach())
        batches += 1
        result.views += 2 * len(view_a)
        bar.update()
        bar.set_postfix(loss=f"{total / batches:.3f}")
    bar.close()
    result.train_seconds += time.perf_counter() - started
    result.epoch_losses.append(total / max(batches, 1))


def _maybe_refresh(
    refresher: BoxRefresher, store: BoxStore, epoch: int, result: PretrainResult, on_refresh: RefreshCallback | None
) -> None:
    """The refresher's turn after ``epoch``; a refresh that ran is recorded in ``result``."""
    started = time.perf_counter()
    stats = refresher.maybe_refresh(epoch)
    result.refresh_seconds += time.perf_counter() - started
    if stats is not None:
        record = RefreshRecord(epoch=epoch, stats=stats, box_sets=snapshot(store))
        result.refreshes.append(record)
        if on_refresh is not None:
            on_refresh(record)

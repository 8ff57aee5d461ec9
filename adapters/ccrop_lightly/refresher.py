"""Box refresh for plain PyTorch training loops: call ``maybe_refresh(epoch)`` after each epoch."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ccrop_plugins import BoxSets, BoxStore, RefreshStats, get_heatmap, get_localizer, refresh_boxes

from .schedule import RefreshSchedule

FeatureFn = Callable[[Tensor], Any]


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

    Under ``torch.distributed`` every rank must call ``maybe_refresh`` (it is collective):
    each rank localizes the shard its ``loader`` yields (see
    :func:`~ccrop_lightly.make_refresh_loader`) and all ranks end with the same full store.
    Buffers of ``feature_fn`` (BatchNorm statistics, which DDP lets drift by one step per
    rank) are first broadcast from rank 0, so the result equals a one-process refresh with
    rank 0's model.

    Args:
        store: the store the collate function reads.
        feature_fn: images ``(B, 3, H, W)`` -> features ``(B, C, h, w)``, e.g.
            ``feature_extractor(resnet)``; an ``nn.Module`` runs in eval mode and every
            submodule's train/eval mode is restored afterwards.
        loader: yields ``(images, indices)`` of the un-augmented training images.
        warmup_epochs, interval, max_epochs: the schedule (see :class:`RefreshSchedule`).
        threshold: the localizer's ``k`` (paper: 0.1).
        localizer: a registered localizer (``components``: a box per object, the default;
            ``bbox``: the paper's single box) or a callable ``heatmaps -> BoxSets``.
        heatmap: a registered heatmap method (``channel_sum``: the paper's) or a callable.
        localizer_options: other options of a named localizer (``min_area``, ``max_boxes``).
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
        threshold: float = 0.1,
        localizer: str | Callable[[Tensor], BoxSets] = "components",
        heatmap: str | Callable[[Tensor], Tensor] = "channel_sum",
        localizer_options: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
    ) -> None:
        if not isinstance(store, BoxStore):
            raise TypeError(f"store must be a ccrop_plugins.BoxStore; got {type(store).__name__}")
        if not callable(feature_fn):
            raise TypeError(f"feature_fn must be callable (images -> feature maps); got {type(feature_fn).__name__}")
        dataset = getattr(loader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__") and len(dataset) > len(store):
            raise ValueError(
                f"the refresh loader covers {len(dataset)} samples but the box store holds {len(store)}; "
                f"create it as BoxStore({len(dataset)})"
            )
        self.schedule = RefreshSchedule(warmup_epochs, interval, max_epochs)
        # Fail now, not after the first warm-up epochs, on a misspelt name or a bad threshold.
        if isinstance(localizer, str):
            get_localizer(localizer, threshold=threshold, **(localizer_options or {}))
        if isinstance(heatmap, str):
            get_heatmap(heatmap)
        self.store = store
        self.feature_fn = feature_fn
        self.loader = loader
        self.threshold = float(threshold)
        self.localizer = localizer
        self.heatmap = heatmap
        self.localizer_options = dict(localizer_options or {})
        self.device = device
        self.progress = progress
        self.last_stats: RefreshStats | None = None

    def should_refresh(self, epoch: int) -> bool:
        """Whether :meth:`maybe_refresh` refreshes after (0-based) ``epoch``."""
        return self.schedule.due(epoch)

    def maybe_refresh(self, epoch: int) -> RefreshStats | None:
        """Refresh if the schedule says so after ``epoch``; return the stats, or ``None``."""
        return self.refresh() if self.should_refresh(epoch) else None

    def refresh(self) -> RefreshStats:
        """Localize every image of the loader now and write the boxes to the store."""
        if isinstance(self.feature_fn, nn.Module) and dist.is_available() and dist.is_initialized():
            _broadcast_buffers(self.feature_fn)
        with _modes_restored(self.feature_fn):
            self.last_stats = refresh_boxes(
                self.feature_fn,
                self.loader,
                self.store,
                localizer=self.localizer,
                heatmap=self.heatmap,
                threshold=self.threshold,
                localizer_options=self.localizer_options or None,
                device=self.device,
                progress=self.progress,
            )
        return self.last_stats

    def state_dict(self) -> dict[str, Any]:
        """The store's state (boxes, scores, counts, version) for a training checkpoint."""
        return {"store": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` in place; running workers see it."""
        if "store" not in state:
            raise KeyError(f"refresher state lacks 'store'; got keys {sorted(state)}")
        self.store.load_state_dict(state["store"])


def _broadcast_buffers(module: nn.Module) -> None:
    for buffer in module.buffers():
        if dist.get_backend() == "nccl" and not buffer.is_cuda:
            continue
        dist.broadcast(buffer, src=0)


@contextmanager
def _modes_restored(feature_fn: FeatureFn) -> Iterator[None]:
    """Restore every submodule's own train/eval flag (the core restores only the top module's)."""
    if not isinstance(feature_fn, nn.Module):
        yield
        return
    modes = [(module, module.training) for module in feature_fn.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training

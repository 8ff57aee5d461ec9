"""The refresh pass both adapters call: images -> features -> heatmaps -> box sets -> store."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from .box_sets import BoxSets
from .box_store import BoxStore
from .heatmaps import HeatmapMethod, heatmaps_from_features
from .plugins import get_localizer

FeatureFn = Callable[[Tensor], Any]
"""Images ``(B, C, H, W)`` -> feature maps ``(B, C', h, w)`` (or a tuple/list whose last item is)."""


@dataclass(frozen=True)
class RefreshStats:
    """What one refresh pass did, summed over all ranks.

    Attributes:
        images: images localized (duplicates from padded distributed samplers included).
        seconds: wall time of the pass on this rank.
        images_per_second: ``images / seconds``.
        mean_boxes: mean number of boxes per image.
        mean_box_area: mean box area, as a fraction of the image.
        fallback_fraction: fraction of images where nothing was found (whole-image box).
        version: the store's version after the pass.
    """

    images: int
    seconds: float
    images_per_second: float
    mean_boxes: float
    mean_box_area: float
    fallback_fraction: float
    version: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def refresh_boxes(
    feature_fn: FeatureFn,
    batches: Iterable[Sequence[Tensor]],
    store: BoxStore,
    localizer: str | Callable[[Tensor], BoxSets] = "components",
    heatmap: str | HeatmapMethod = "channel_sum",
    *,
    threshold: float | None = None,
    localizer_options: dict[str, Any] | None = None,
    heatmap_size: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> RefreshStats:
    """Localize objects in every image of ``batches`` and write the box sets to ``store``.

    Args:
        feature_fn: the backbone up to its last stage (e.g. a ResNet without pooling/fc); an
            ``nn.Module`` is put in eval mode for the pass and restored afterwards.
        batches: an iterable of ``(images (B, C, H, W), indices (B,))`` of *un-augmented*
            images and their dataset indices (extra items in a batch are ignored). Under
            ``torch.distributed`` each rank iterates over its own shard.
        store: the :class:`BoxStore` to update; every rank ends with the same full store.
        localizer: a registered localizer name or a callable ``heatmaps (N, H, W) -> BoxSets``.
        heatmap: a registered heatmap method name or a callable (see :func:`heatmaps_from_features`).
        threshold: the localizer's threshold ``k`` (a shortcut for ``localizer_options``).
        localizer_options: other options of a named localizer (``max_boxes``, ``min_area``).
        heatmap_size: ``(H, W)`` of the heatmaps; default the images' size.
        device: where to run ``feature_fn``; default the module's device, else the CPU.
        progress: show a progress bar (rank 0 only).

    Returns:
        :class:`RefreshStats` of the pass; the store's version is increased by one.
    """
    if isinstance(localizer, str):
        options = dict(localizer_options or {})
        if threshold is not None:
            options["threshold"] = threshold
        if localizer != "bbox":
            options.setdefault("max_boxes", store.max_boxes)
        localizer = get_localizer(localizer, **options)
    if device is None:
        device = _module_device(feature_fn)
    rank, world_size = _dist_info()
    started = time.perf_counter()
    all_indices: list[Tensor] = []
    all_sets: list[BoxSets] = []
    with _eval_mode(feature_fn), torch.no_grad():
        bar = tqdm(batches, desc="ccrop refresh", unit="batch", disable=not progress or rank != 0, leave=False)
        for batch in bar:
            images, indices = batch[0], torch.as_tensor(batch[1]).reshape(-1).cpu()
            features = feature_fn(images.to(device, non_blocking=True))
            if isinstance(features, (tuple, list)):
                features = features[-1]
            size = heatmap_size if heatmap_size is not None else images.shape[-2:]
            with _one_cpu_thread(features.device):
                maps = heatmaps_from_features(features, size=size, method=heatmap).cpu()
                all_sets.append(localizer(maps))
            all_indices.append(indices)
    indices, box_sets = _concatenate(all_indices, all_sets, store.max_boxes)
    if world_size > 1:
        indices, box_sets = _all_gather(indices, box_sets)
    store.update(indices, box_sets)
    seconds = time.perf_counter() - started
    count = len(indices)
    return RefreshStats(
        images=count,
        seconds=seconds,
        images_per_second=count / seconds if seconds > 0 else float("inf"),
        mean_boxes=float(box_sets.counts.float().mean()) if count else 0.0,
        mean_box_area=float(box_sets.areas().sum() / box_sets.counts.sum()) if count else 0.0,
        fallback_fraction=float(box_sets.fallback.float().mean()) if count else 0.0,
        version=store.version,
    )


@contextmanager
def _eval_mode(feature_fn: FeatureFn) -> Iterator[None]:
    if not isinstance(feature_fn, nn.Module):
        yield
        return
    was_training = feature_fn.training
    feature_fn.eval()
    try:
        yield
    finally:
        feature_fn.train(was_training)


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run small CPU tensor ops on one thread: on a busy machine, waking torch's intra-op pool
    for maps of a few hundred kilobytes costs more than the work (measured 10-20x on 2 cores)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _module_device(feature_fn: FeatureFn) -> torch.device:
    if isinstance(feature_fn, nn.Module):
        for parameter in feature_fn.parameters():
            return parameter.device
    return torch.device("cpu")


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _concatenate(indices: list[Tensor], sets: list[BoxSets], max_boxes: int) -> tuple[Tensor, BoxSets]:
    """Join per-batch box sets, padded to a common ``K <= max_boxes``."""
    if not sets:
        empty = BoxSets(torch.zeros(0, 1, 4), torch.zeros(0, 1), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool))
        return torch.zeros(0, dtype=torch.int64), empty
    k = min(max(s.max_boxes for s in sets), max_boxes)

    def pad(t: Tensor) -> Tensor:
        t = t[:, :k]
        extra = k - t.shape[1]
        return torch.cat([t, t.new_zeros(t.shape[0], extra, *t.shape[2:])], dim=1) if extra else t

    return torch.cat(indices), BoxSets(
        boxes=torch.cat([pad(s.boxes) for s in sets]),
        scores=torch.cat([pad(s.scores) for s in sets]),
        counts=torch.cat([s.counts.clamp(max=k) for s in sets]),
        fallback=torch.cat([s.fallback for s in sets]),
    )


def _all_gather(indices: Tensor, box_sets: BoxSets) -> tuple[Tensor, BoxSets]:
    """Every rank's ``(indices, box sets)``, concatenated in rank order, on every rank."""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    k = torch.tensor([box_sets.max_boxes], device=device)
    dist.all_reduce(k, op=dist.ReduceOp.MAX)
    k = int(k)
    # One float64 row per image: index, count, fallback, K scores, K * 4 box coordinates.
    n = len(indices)
    rows = torch.zeros(n, 3 + 5 * k, dtype=torch.float64)
    kk = box_sets.max_boxes
    rows[:, 0] = indices.double()
    rows[:, 1] = box_sets.counts.double()
    rows[:, 2] = box_sets.fallback.double()
    rows[:, 3 : 3 + kk] = box_sets.scores.double()
    rows[:, 3 + k : 3 + k + 4 * kk] = box_sets.boxes.reshape(n, -1).double()
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([n], device=device))
    longest = max(int(s) for s in sizes)
    padded = torch.zeros(longest, rows.shape[1], dtype=torch.float64, device=device)
    padded[:n] = rows.to(device)
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    rows = torch.cat([g[: int(s)] for g, s in zip(gathered, sizes)]).cpu()
    count = len(rows)
    return rows[:, 0].long(), BoxSets(
        boxes=rows[:, 3 + k :].reshape(count, k, 4).float(),
        scores=rows[:, 3 : 3 + k].float(),
        counts=rows[:, 1].long(),
        fallback=rows[:, 2].bool(),
    )

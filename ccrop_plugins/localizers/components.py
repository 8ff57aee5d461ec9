"""The multi-object localizer: one box per connected blob of the thresholded heatmap."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import lru_cache
from typing import ContextManager, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from ..box_sets import BoxSets
from ..box_store import MAX_BOXES
from ..sizes import checked_real, integer
from ..threads import one_thread
from .threshold import (adaptive_thresholds, centre_samples, check_heatmaps, check_range, check_threshold,
                        constant_maps, zero_non_finite)

try:  # OpenCV labels and measures components in one pass, without the GIL; scipy is the fallback
    import cv2
except ImportError:  # pragma: no cover - OpenCV comes with the mmpretrain extra
    cv2 = None

_EIGHT = np.ones((3, 3), dtype=bool)
_CHUNK_CELLS = 1 << 16
# Cells of 2, 4 or 8 pixels pool a row of hot flags by reading them as one 16-, 32- or 64-bit word.
_WORDS = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_CORE_SHARE = 0.2  # a core counts if its mass above the threshold is at least this share of its component's largest
_CORE_SHRINK = 0.5  # a component's only core is added if its box is under this share of the component's box


class ComponentsLocalizer:
    """A set of boxes per image: connected components (8-connectivity) of ``map > threshold``, one box each
    (normalised ``x0, y0, x1, y1``) scored by the heatmap mass above the threshold; at most ``max_boxes`` per image,
    highest score first, components under ``min_area`` dropped unless none would remain. The options ``threshold``,
    ``max_boxes`` (``K``), ``min_area``, ``label_resolution`` and ``core_level`` (defaults, allowed values and how each
    works: docs/configuration.md, "Localizers"): a bad value is a ``ValueError`` / ``TypeError`` naming it.

    Calling it on heatmaps ``(N, H, W)`` in ``[0, 1]`` returns :class:`BoxSets` with ``K = max_boxes``; an image with
    no pixel above the threshold, or a constant map (any value), gets ``[0, 0, 1, 1]`` and ``fallback = True``; NaN
    and +-inf pixels are "no object" (0).
    """

    def __init__(self, threshold: float | str = 0.1, max_boxes: int = 4, min_area: float = 0.0025,
                 label_resolution: int | None = 64, core_level: float | None = None) -> None:
        self.threshold = check_threshold(threshold)
        self.max_boxes = integer(max_boxes)  # None for 1.5, True, '2': never rounded
        if self.max_boxes is None or self.max_boxes < 1:
            raise (TypeError if self.max_boxes is None else ValueError)(
                f"max_boxes must be a positive integer; got {max_boxes!r} ({type(max_boxes).__name__})")
        if self.max_boxes > MAX_BOXES:  # (N, max_boxes, 4) per batch: 2**40 failed in the allocator, unnamed
            raise ValueError(f"max_boxes must be at most {MAX_BOXES} (the box store's limit); got {max_boxes!r}")
        self.min_area = checked_real(min_area, "min_area", "lie in [0, 1)", lambda x: 0.0 <= x < 1.0)
        resolution = checked_real(label_resolution, "label_resolution", "be a positive integer or None",
                                  lambda x: x.is_integer() and x >= 1, or_none=True)  # 2.0 too; not inf
        self.label_resolution = None if resolution is None else int(resolution)
        self.core_level = checked_real(core_level, "core_level", "lie in [0, 1) or be None", lambda x: 0.0 <= x < 1.0,
                                       or_none=True)

    def __call__(self, heatmaps: Tensor) -> BoxSets:
        heatmaps = check_heatmaps(heatmaps)
        n, height, width = heatmaps.shape
        if n == 0:
            return self._box_sets(0, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        high = heatmaps.amax()
        if not bool(torch.isfinite(high)):  # NaN and +inf survive the max: they are "no object"
            heatmaps = zero_non_finite(heatmaps)
            high = heatmaps.amax()
        check_range(heatmaps, high)
        cell = 1 if self.label_resolution is None else math.ceil(max(height, width) / self.label_resolution)
        found = _components(heatmaps.cpu().numpy(), cell, self.threshold, self.core_level)
        cells_to_unit = cell / np.array([width, height, width, height])
        boxes = np.minimum(found.extents * cells_to_unit, 1.0)
        area = found.area / found.cells_per_image
        kept, rank = self._ranked(n, found.image, boxes, area, found.mass)
        chosen = (found.image[kept], rank, boxes[kept], found.mass[kept])
        if found.cores is not None and len(kept):
            chosen = self._with_cores(n, chosen, kept, found, boxes, cells_to_unit)
        whole = np.zeros(n, dtype=bool)
        whole[found.image[found.area == found.cells_per_image]] = True  # one component of every cell
        constant = constant_maps(heatmaps, torch.from_numpy(whole)).numpy()
        if constant.any():  # nothing to localize: their boxes go, so they fall back to the whole image
            chosen = tuple(column[~constant[chosen[0]]] for column in chosen)
        return self._box_sets(n, *chosen)

    def _ranked(self, n: int, image: np.ndarray, boxes: np.ndarray, area: np.ndarray, mass: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Components ``(M,)`` of ``n`` images -> indices of the kept ones (at most ``max_boxes`` per image,
        by image, best first) and their slots."""
        large = area >= self.min_area
        has_large = np.bincount(image[large], minlength=n) > 0
        index = np.flatnonzero(large | ~has_large[image])
        order = index[np.lexsort((boxes[index, 0], boxes[index, 1], -mass[index], image[index]))]  # ties top-left first
        rank = np.arange(len(order)) - np.searchsorted(image[order], np.arange(n))[image[order]]
        return order[rank < self.max_boxes], rank[rank < self.max_boxes]

    def _with_cores(self, n: int, chosen: tuple[np.ndarray, ...], kept: np.ndarray, found: _Found,
                    found_boxes: np.ndarray, cells_to_unit: np.ndarray) -> tuple[np.ndarray, ...]:
        """``chosen`` (``image, rank, boxes, mass`` of the ``kept`` components of ``found``, whose boxes are
        ``found_boxes``) with the cores of those components in the free slots of their images (docs/configuration.md,
        "Localizers")."""
        image, rank, boxes, mass = chosen
        cores = found.cores
        parent, core_mass = cores.parent, cores.mass
        strongest = np.zeros(len(found.image))
        np.maximum.at(strongest, parent, core_mass)
        strong = core_mass >= _CORE_SHARE * strongest[parent]
        per_parent = np.bincount(parent[strong], minlength=len(found.image))
        core_boxes = np.minimum(cores.extents * cells_to_unit, 1.0)
        size, parent_size = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) for b in (core_boxes, found_boxes))
        several = per_parent[parent] >= 2
        smaller = (per_parent[parent] == 1) & (size < _CORE_SHRINK * parent_size[parent])
        large = cores.area / found.cells_per_image >= self.min_area
        child = strong & np.isin(parent, kept) & (several | smaller) & large
        child_image, child_boxes, child_mass = found.image[parent[child]], core_boxes[child], core_mass[child]
        order = np.lexsort((child_boxes[:, 0], child_boxes[:, 1], -child_mass, child_image))
        child_image, child_boxes, child_mass = child_image[order], child_boxes[order], child_mass[order]
        child_rank = np.arange(len(child_image)) - np.searchsorted(child_image, np.arange(n))[child_image]
        slot = np.bincount(image, minlength=n)[child_image] + child_rank
        free = slot < self.max_boxes
        return (np.concatenate([image, child_image[free]]), np.concatenate([rank, slot[free]]),
                np.concatenate([boxes, child_boxes[free]]), np.concatenate([mass, child_mass[free]]))

    def _box_sets(self, n: int, image: np.ndarray, rank: np.ndarray, boxes: np.ndarray, mass: np.ndarray) -> BoxSets:
        """Kept boxes (``image``, slot ``rank`` in ``[0, max_boxes)``) -> :class:`BoxSets`."""
        out_boxes, scores = torch.zeros(n, self.max_boxes, 4), torch.zeros(n, self.max_boxes)
        out_boxes[image, rank] = torch.from_numpy(boxes).float()
        scores[image, rank] = torch.from_numpy(mass).float()
        counts = torch.from_numpy(np.bincount(image, minlength=n)).long()
        fallback = counts == 0
        out_boxes[fallback, 0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        scores[fallback, 0] = 1.0
        counts[fallback] = 1
        return BoxSets(boxes=out_boxes, scores=scores, counts=counts, fallback=fallback)

    def __repr__(self) -> str:
        return (f"ComponentsLocalizer(threshold={self.threshold!r}, max_boxes={self.max_boxes}, "
                f"min_area={self.min_area}, label_resolution={self.label_resolution}, core_level={self.core_level})")


class _Cores(NamedTuple):
    """Cores of a batch's components: ``parent`` (index of the component), ``area`` (cells), ``mass``
    (above the threshold) ``(C,)``; ``extents`` ``(C, 4)`` as in :class:`_Found`."""

    parent: np.ndarray
    extents: np.ndarray
    area: np.ndarray
    mass: np.ndarray


class _Found(NamedTuple):
    """Components of a batch: ``image``, ``area`` (cells), ``mass`` (above the threshold) ``(M,)``;
    ``extents`` ``(M, 4)`` as cell indices ``left, top, right, bottom`` (exclusive ends);
    ``cells_per_image`` ``h * w``; ``cores`` or ``None``."""

    image: np.ndarray
    extents: np.ndarray
    area: np.ndarray
    mass: np.ndarray
    cells_per_image: int
    cores: _Cores | None = None


def _components(heat: np.ndarray, cell: int, threshold: float | str, core_level: float | None = None) -> _Found:
    """Label the hot cells of ``heat`` ``(N, H, W)`` chunk by chunk, on ``torch.get_num_threads()`` threads
    (per-image thresholds are per chunk too)."""
    n, height, width = heat.shape
    cells = math.ceil(height / cell) * math.ceil(width / cell)
    chunk = max(1, _CHUNK_CELLS // cells)
    starts = range(0, n, chunk)
    threads = min(torch.get_num_threads(), len(starts))

    def work(start: int) -> tuple[np.ndarray, ...]:
        return _chunk_components(heat[start : start + chunk], cell, threshold, start, core_level)

    pool = _executor(os.getpid(), torch.get_num_threads()) if threads > 1 else None  # one pool, whatever the chunks
    with _opencv_on_one_thread():
        parts = list(pool.map(work, starts)) if pool else [work(start) for start in starts]
    image, extents, area, mass, *core_columns = (np.concatenate(column) for column in zip(*parts))
    cores = None
    if core_level is not None:  # a core's parent: chunk-local component index -> batch index
        offsets = np.repeat(np.cumsum([0] + [len(part[0]) for part in parts[:-1]]), [len(part[4]) for part in parts])
        parent, core_extents, core_area, core_mass = core_columns
        cores = _Cores(parent + offsets, core_extents.reshape(-1, 4), core_area, core_mass)
    return _Found(image, extents.reshape(-1, 4), area, mass, cells, cores)


def _chunk_components(heat: np.ndarray, cell: int, threshold: float | str, first_image: int,
                      core_level: float | None = None) -> tuple[np.ndarray, ...]:
    """``image, extents, area, mass`` of the components of one chunk of maps (see :class:`_Found`; one labelling
    call, :func:`_label_maps`), then, with a ``core_level``, ``parent, extents, area, mass`` of their cores
    (``parent`` indexes this chunk's components)."""
    centres = heat if cell == 1 else centre_samples(heat, cell)
    if isinstance(threshold, str):
        threshold = adaptive_thresholds(centres, threshold)[:, None, None]
    else:
        threshold = np.float32(threshold)  # compared in the maps' float32, as the per-image thresholds
    hot = heat > threshold if cell == 1 else _pool_flags(heat > threshold, cell)
    labels, runs, image, extents, area = _label_maps(hot)
    # Mass above the threshold: each hot cell adds max(centre sample, threshold) less the threshold (a pooled hot
    # cell whose centre is not above it adds 0). Cold cells are label 0 and dropped.
    weights = centres if cell == 1 else np.maximum(centres, threshold)
    level = threshold if np.ndim(threshold) == 0 else threshold.ravel()[image]
    mass = runs.sums(weights, len(area))[1:] - level * area
    found = (image + first_image, extents, area, mass)
    if core_level is None:
        return found
    excess = (weights - threshold) * (labels > 0)  # 0 on cold cells
    flat_labels = torch.from_numpy(labels.ravel()).long()
    return found + _cores(labels, flat_labels, torch.from_numpy(excess.ravel()), len(area), core_level)


class _Runs(NamedTuple):
    """Runs of equal labels along the rows of labelled maps ``(n, h, w)`` read flat: ``starts``, ``stops``
    (exclusive) as flat cell indices and ``labels`` ``(R,)`` (0 = cold); no run crosses the end of a row."""

    starts: np.ndarray
    stops: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> _Runs:
        flat = labels.ravel()
        change = np.empty(len(flat), dtype=bool)
        np.not_equal(flat[1:], flat[:-1], out=change[1:])
        change.reshape(-1, labels.shape[-1])[:, 0] = True  # every row starts a run
        starts = np.flatnonzero(change)
        return cls(starts, np.append(starts[1:], len(flat)), flat[starts])

    def sums(self, weights: np.ndarray, count: int) -> np.ndarray:
        """Float64 sums of ``weights`` (shaped as the labels) per label ``0..count``, a run at a time: a few thousand
        run sums where a per-cell ``bincount`` adds every cell (4x faster on 64-cell rows)."""
        run_sums = np.add.reduceat(weights.ravel(), self.starts, dtype=np.float64)
        return np.bincount(self.labels, weights=run_sums, minlength=count + 1)

    def extents(self, width: int, count: int) -> tuple[np.ndarray, ...]:
        """Per label ``1..count`` ``(count,)``: ``left, top, right, bottom`` in cells (exclusive ends; rows counted
        through all the maps) and ``area``, from the runs (OpenCV's statistics cost 3x its labelling)."""
        hot = self.labels > 0
        starts, stops, labels = self.starts[hot], self.stops[hot], self.labels[hot]
        rows = starts // width
        first = rows * width
        left, top = np.full(count + 1, width), np.full(count + 1, len(self.labels))
        right, bottom = np.zeros(count + 1, dtype=np.int64), np.zeros(count + 1, dtype=np.int64)
        np.minimum.at(left, labels, starts - first)
        np.minimum.at(top, labels, rows)
        np.maximum.at(right, labels, stops - first)
        np.maximum.at(bottom, labels, rows + 1)
        area = np.bincount(labels, weights=stops - starts, minlength=count + 1).astype(np.int64)
        return left[1:], top[1:], right[1:], bottom[1:], area[1:]


def _cores(labels: np.ndarray, flat_labels: Tensor, flat_excess: Tensor, count: int, core_level: float
           ) -> tuple[np.ndarray, ...]:
    """``parent, extents, area, mass`` of the cores of a chunk's components: the 8-connected parts of each
    component whose excess over the threshold exceeds ``core_level`` times the component's peak excess."""
    n, height, width = labels.shape
    peak = torch.zeros(count + 1).scatter_reduce_(0, flat_labels, flat_excess, reduce="amax").numpy()
    excess = flat_excess.numpy()
    core = excess > np.float32(core_level) * peak[labels.ravel()]  # cold cells: 0 > 0 is False
    core_labels, _, _, extents, area = _label_maps(core.reshape(n, height, width))
    cells = np.flatnonzero(core)
    at = core_labels.ravel()[cells]
    parent = np.zeros(len(area) + 1, dtype=np.int64)
    parent[at] = labels.ravel()[cells]  # every cell of a core lies in the same component
    mass = np.bincount(at, weights=excess[cells], minlength=len(area) + 1)
    return parent[1:] - 1, extents, area, mass[1:]


def _label_maps(flags: np.ndarray) -> tuple[np.ndarray, _Runs, np.ndarray, np.ndarray, np.ndarray]:
    """8-connected components of every map of ``flags`` ``(n, h, w)`` in one labelling call (the maps stacked
    into one tall image with a cold row after each, so no component spans two maps): ``labels`` ``(n, h, w)``
    (0 = cold), their :class:`_Runs`, and per component ``(M,)`` its ``image``, ``extents`` ``(M, 4)`` as cell
    indices ``left, top, right, bottom`` inside its map (exclusive ends) and ``area`` in cells."""
    n, height, width = flags.shape
    tall = np.zeros((n, height + 1, width), dtype=np.uint8)
    tall[:, :height] = flags
    labels, count = _label(tall.reshape(-1, width))
    labels = np.ascontiguousarray(labels.reshape(n, height + 1, width)[:, :height])
    runs = _Runs.of(labels)
    left, top, right, bottom, area = runs.extents(width, count)
    image = top // height
    offset = image * height
    return labels, runs, image, np.stack([left, top - offset, right, bottom - offset], 1), area


def _label(tall: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a 2-D uint8 map: ``labels`` (0 = cold, components ``1..count``) and ``count``."""
    if cv2 is not None:
        count, labels = cv2.connectedComponents(tall, connectivity=8, ltype=cv2.CV_32S)
        return labels, count - 1
    return ndimage.label(tall, structure=_EIGHT)


def _opencv_on_one_thread() -> ContextManager[None]:
    """Hold OpenCV to one thread for the block, its thread count restored after: its labelling gains nothing from its
    pool, whose workers then slow the refresh's next forward (docs/benchmarks.md, session 22)."""
    return nullcontext() if cv2 is None else one_thread(cv2.getNumThreads, cv2.setNumThreads)


@lru_cache(maxsize=None)  # keyed by process id: a forked child (a DataLoader worker) must not reuse the parent's pool
def _executor(process_id: int, threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ccrop-components")


def _pool_flags(hot: np.ndarray, cell: int) -> np.ndarray:
    """``(N, H, W)`` bool -> ``(N, ceil(H / cell), ceil(W / cell))``: any flag set in the cell."""
    n, height, width = hot.shape
    if cell in _WORDS and height % cell == 0 and width % cell == 0:
        # A row of ``cell`` flags is one word: nonzero iff any flag is set. OR the cell's rows.
        words = hot.view(_WORDS[cell]).reshape(n, height // cell, cell, width // cell)
        pooled = words[:, :, 0].copy()
        for row in range(1, cell):
            pooled |= words[:, :, row]
        return pooled != 0
    pooled = F.max_pool2d(torch.from_numpy(hot).to(torch.uint8)[:, None].float(), cell, cell, ceil_mode=True)[:, 0]
    return pooled.numpy() > 0

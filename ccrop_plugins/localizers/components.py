"""The multi-object localizer: one box per connected blob of the thresholded heatmap."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from ..box_sets import BoxSets
from .threshold import adaptive_thresholds, check_heatmaps, check_max_boxes, check_threshold

try:  # OpenCV labels and measures components in one pass, without the GIL; scipy is the fallback
    import cv2
except ImportError:  # pragma: no cover - OpenCV comes with the mmpretrain extra
    cv2 = None

_EIGHT = np.ones((3, 3), dtype=bool)
_CHUNK_CELLS = 1 << 16
# Cells of 2, 4 or 8 pixels pool a row of hot flags by reading them as one 16-, 32- or 64-bit word.
_WORDS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


class ComponentsLocalizer:
    """A set of boxes per image: connected components (8-connectivity) of ``map > threshold``.

    Each component gives its bounding box, scored by the heatmap mass inside the component.
    Components smaller than ``min_area`` (fraction of the image) are dropped unless that
    would leave the image with none; at most ``max_boxes`` are kept, highest score first.
    Images with no pixel above the threshold get ``[0, 0, 1, 1]`` and ``fallback = True``.
    NaN and +-inf pixels count as "no object".

    Args:
        threshold: ``k`` in ``[0, 1)`` (the paper uses 0.1), or a per-image rule:
            ``"mean"`` (each map's mean) or ``"otsu"`` (Otsu's threshold of each map's
            histogram, 64 bins), computed on the cell-centre samples (see below).
        max_boxes: ``K``, at most this many boxes per image (default 4).
        min_area: components covering less than this fraction of the image are noise.
        label_resolution: maps with a side longer than this are pooled into cells of
            ``ceil(side / label_resolution)`` pixels before labelling, 10-20x faster at 224 px.
            A cell is hot if any of its pixels is above the threshold (max pooling), so each box
            contains the exact box and exceeds it by less than one cell per side; a heatmap
            upsampled from a 7x7 feature map carries no detail finer than a cell. The mass of a
            pooled component sums, over its cells, the heatmap at each cell's centre pixel (at
            least the threshold: every cell of it is hot). ``None`` labels at full resolution
            with the exact mass.

    Calling it on heatmaps ``(N, H, W)`` returns :class:`BoxSets` with ``K = max_boxes``
    (``N = 0`` gives an empty :class:`BoxSets`). Labelling uses OpenCV when it is installed
    (``cv2.connectedComponentsWithStats``) and ``scipy.ndimage`` otherwise: the same boxes.
    Batches are cut into chunks of about 1 MB that ``torch.get_num_threads()`` threads share.
    """

    def __init__(
        self,
        threshold: float | str = 0.1,
        max_boxes: int = 4,
        min_area: float = 0.01,
        label_resolution: int | None = 64,
    ) -> None:
        self.threshold = check_threshold(threshold)
        self.max_boxes = check_max_boxes(max_boxes)
        if isinstance(min_area, bool) or not 0.0 <= float(min_area) < 1.0:
            raise ValueError(f"min_area must lie in [0, 1); got {min_area}")
        self.min_area = float(min_area)
        if label_resolution is not None and (
            isinstance(label_resolution, bool) or int(label_resolution) != label_resolution or int(label_resolution) < 1
        ):
            raise ValueError(f"label_resolution must be a positive integer or None; got {label_resolution}")
        self.label_resolution = None if label_resolution is None else int(label_resolution)

    def __call__(self, heatmaps: Tensor) -> BoxSets:
        heatmaps = check_heatmaps(heatmaps)
        n, height, width = heatmaps.shape
        if n == 0:
            return _empty(self.max_boxes)
        cell = 1
        if self.label_resolution is not None:
            cell = math.ceil(max(height, width) / self.label_resolution)
        found = _components(heatmaps.cpu().numpy(), cell, self.threshold)
        cells_to_unit = cell / np.array([width, height, width, height])
        boxes = np.minimum(found.extents * cells_to_unit, 1.0)
        return self._box_sets(n, found.image, boxes, found.area / found.cells_per_image, found.mass)

    def _box_sets(self, n: int, image: np.ndarray, boxes: np.ndarray, area: np.ndarray, mass: np.ndarray) -> BoxSets:
        """Components ``(M,)`` of ``n`` images -> at most ``max_boxes`` per image, best first."""
        large = area >= self.min_area
        has_large = np.bincount(image[large], minlength=n) > 0
        keep = large | ~has_large[image]
        image, mass, boxes = image[keep], mass[keep], boxes[keep]
        order = np.lexsort((boxes[:, 0], boxes[:, 1], -mass, image))  # by image, best first; ties top-left first
        image, mass, boxes = image[order], mass[order], boxes[order]
        rank = np.arange(len(image)) - np.searchsorted(image, np.arange(n))[image]
        kept = rank < self.max_boxes
        image, rank = image[kept], rank[kept]

        out_boxes = torch.zeros(n, self.max_boxes, 4)
        scores = torch.zeros(n, self.max_boxes)
        out_boxes[image, rank] = torch.from_numpy(boxes[kept]).float()
        scores[image, rank] = torch.from_numpy(mass[kept]).float()
        counts = torch.from_numpy(np.bincount(image, minlength=n)).long()
        fallback = counts == 0
        out_boxes[fallback, 0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        scores[fallback, 0] = 1.0
        counts[fallback] = 1
        return BoxSets(boxes=out_boxes, scores=scores, counts=counts, fallback=fallback)

    def __repr__(self) -> str:
        return (
            f"ComponentsLocalizer(threshold={self.threshold!r}, max_boxes={self.max_boxes}, "
            f"min_area={self.min_area}, label_resolution={self.label_resolution})"
        )


class _Found(NamedTuple):
    """Components of a batch: ``image``, ``area`` (cells), ``mass`` ``(M,)``; ``extents`` ``(M, 4)``
    as cell indices ``left, top, right, bottom`` (exclusive ends); ``cells_per_image`` ``h * w``."""

    image: np.ndarray
    extents: np.ndarray
    area: np.ndarray
    mass: np.ndarray
    cells_per_image: int


def _components(heat: np.ndarray, cell: int, threshold: float | str) -> _Found:
    """Label the hot cells of ``heat`` ``(N, H, W)`` chunk by chunk, on ``torch.get_num_threads()`` threads
    (per-image thresholds are per chunk too)."""
    n, height, width = heat.shape
    chunk = max(1, _CHUNK_CELLS // (math.ceil(height / cell) * math.ceil(width / cell)))
    starts = range(0, n, chunk)
    threads = min(torch.get_num_threads(), len(starts))

    def work(start: int) -> tuple[np.ndarray, ...]:
        return _chunk_components(heat[start : start + chunk], cell, threshold, start)

    parts = list(_executor(threads).map(work, starts)) if threads > 1 else [work(start) for start in starts]
    image, extents, area, mass = (np.concatenate(column) for column in zip(*parts))
    cells = math.ceil(height / cell) * math.ceil(width / cell)
    return _Found(image, extents.reshape(-1, 4), area, mass, cells)


def _chunk_components(heat: np.ndarray, cell: int, threshold: float | str, first_image: int) -> tuple[np.ndarray, ...]:
    """``image, extents, area, mass`` of the components of one chunk of maps (see :class:`_Found`).

    The chunk's cell maps are stacked into one tall 2-D image with a cold row between maps,
    so a single labelling call covers the chunk without joining components across maps.
    """
    heat = _finite(heat)
    centres = _centre_samples(heat, cell)
    if isinstance(threshold, str):
        threshold = adaptive_thresholds(centres, threshold)[:, None, None]
    else:
        threshold = np.float32(threshold)  # compared in the maps' float32, as the per-image thresholds
    hot = _pool_flags(heat > threshold, cell)
    n, height, width = hot.shape
    tall = np.zeros((n, height + 1, width), dtype=np.uint8)
    tall[:, :height] = hot
    labels, left, top, right, bottom, area = _label(tall.reshape(-1, width))
    weights = centres if cell == 1 else np.maximum(centres, threshold)
    labels = labels.reshape(n, height + 1, width)[:, :height]
    mass = torch.zeros(len(area) + 1, dtype=torch.float64)  # label 0: cold; index_add_ runs without the GIL
    mass.index_add_(0, torch.from_numpy(labels.ravel()).long(), torch.from_numpy(weights.ravel()).double())
    mass = mass.numpy()[1:]
    image = top // (height + 1)
    top = top - image * (height + 1)
    bottom = bottom - image * (height + 1)
    return image + first_image, np.stack([left, top, right, bottom], axis=1), area, mass


def _label(tall: np.ndarray) -> tuple[np.ndarray, ...]:
    """8-connected components of a 2-D uint8 map: ``labels`` (0 = cold) and per component ``(M,)``
    ``left, top, right, bottom`` (exclusive ends) and ``area`` in cells."""
    if cv2 is not None:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(tall, connectivity=8, ltype=cv2.CV_32S)
        left, top, w, h, area = stats[1:].T.astype(np.int64)
        return labels, left, top, left + w, top + h, area
    labels, count = ndimage.label(tall, structure=_EIGHT)
    extents = np.array(
        [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndimage.find_objects(labels)], dtype=np.int64
    ).reshape(-1, 4)
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return (labels, *extents.T, area)


def _empty(max_boxes: int) -> BoxSets:
    return BoxSets(
        torch.zeros(0, max_boxes, 4), torch.zeros(0, max_boxes), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool)
    )


def _finite(heat: np.ndarray) -> np.ndarray:
    """``heat`` with NaN and +-inf set to 0 (a copy only when there are any): they are "no object"."""
    if np.isfinite(heat.max()):  # NaN and +inf survive the max; -inf alone does not matter but is cleaned too
        return heat
    return np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)


def _centre_samples(heat: np.ndarray, cell: int) -> np.ndarray:
    """``(N, h, w)``: the heatmap at the centre pixel of every ``cell x cell`` block (partial blocks count)."""
    if cell == 1:
        return heat
    _, height, width = heat.shape
    if height % cell == 0 and width % cell == 0:
        return heat[:, cell // 2 :: cell, cell // 2 :: cell]
    rows = np.minimum(np.arange(0, height, cell) + cell // 2, height - 1)
    cols = np.minimum(np.arange(0, width, cell) + cell // 2, width - 1)
    return heat[:, rows][:, :, cols]


_EXECUTORS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _executor(threads: int) -> ThreadPoolExecutor:
    # Keyed by process id too: a forked child (a DataLoader worker) must not reuse the parent's
    # pool, whose threads do not exist in the child.
    key = (os.getpid(), threads)
    if key not in _EXECUTORS:
        _EXECUTORS[key] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ccrop-components")
    return _EXECUTORS[key]


def _pool_flags(hot: np.ndarray, cell: int) -> np.ndarray:
    """``(N, H, W)`` bool -> ``(N, ceil(H / cell), ceil(W / cell))``: any flag set in the cell."""
    if cell == 1:
        return hot
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

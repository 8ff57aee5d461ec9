"""The multi-object localizer: one box per connected blob of the thresholded heatmap."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from ..box_sets import BoxSets
from .threshold import check_heatmaps, check_threshold, zero_non_finite

# 8-connectivity inside each image and none across the batch axis, so one ``label`` call
# labels a whole batch ``(N, H, W)`` without a Python loop over images.
_IN_PLANE_8 = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE_8[1] = True


class ComponentsLocalizer:
    """A set of boxes per image: connected components (8-connectivity) of ``map > threshold``.

    Each component gives its bounding box, scored by the heatmap mass inside the component.
    Components smaller than ``min_area`` (fraction of the image) are dropped unless that
    would leave the image with none; at most ``max_boxes`` are kept, highest score first.
    Images with no pixel above the threshold get ``[0, 0, 1, 1]`` and ``fallback = True``.

    Args:
        threshold: ``k`` in ``[0, 1)``; the paper uses 0.1.
        max_boxes: ``K``, at most this many boxes per image (default 4).
        min_area: components covering less than this fraction of the image are noise.
        label_resolution: maps with a side longer than this are max-pooled by an integer
            factor (cells of ``ceil(side / label_resolution)`` pixels) before labelling, which
            is 10-20x faster at 224 px. A heatmap upsampled from a 7x7 feature map carries no
            detail finer than a cell, and max pooling keeps every pixel above the threshold:
            each box contains the exact box and exceeds it by less than one cell per side.
            ``None`` labels at full resolution.

    Calling it on heatmaps ``(N, H, W)`` returns :class:`BoxSets` with ``K = max_boxes``.
    """

    def __init__(
        self,
        threshold: float = 0.1,
        max_boxes: int = 4,
        min_area: float = 0.01,
        label_resolution: int | None = 64,
    ) -> None:
        self.threshold = check_threshold(threshold)
        if int(max_boxes) < 1:
            raise ValueError(f"max_boxes must be a positive integer; got {max_boxes}")
        if not 0.0 <= float(min_area) < 1.0:
            raise ValueError(f"min_area must lie in [0, 1); got {min_area}")
        self.max_boxes = int(max_boxes)
        self.min_area = float(min_area)
        if label_resolution is not None and int(label_resolution) < 1:
            raise ValueError(f"label_resolution must be a positive integer or None; got {label_resolution}")
        self.label_resolution = None if label_resolution is None else int(label_resolution)

    def __call__(self, heatmaps: Tensor) -> BoxSets:
        heatmaps = check_heatmaps(heatmaps)
        n, full_height, full_width = heatmaps.shape
        cell = 1
        if self.label_resolution is not None:
            cell = math.ceil(max(full_height, full_width) / self.label_resolution)
        heat_cells = _max_pool(heatmaps, cell)
        if not bool(torch.isfinite(heat_cells.amax(dim=(1, 2))).all()):  # NaN and +inf survive the max
            heat_cells = _max_pool(zero_non_finite(heatmaps), cell)
        heatmaps = heat_cells
        heat = heatmaps.cpu().numpy()
        n, height, width = heat.shape
        labels, num = ndimage.label(heat > self.threshold, structure=_IN_PLANE_8)
        flat_labels = labels.ravel()
        area = np.bincount(flat_labels, minlength=num + 1)[1:] / (height * width)
        mass = np.bincount(flat_labels, weights=heat.ravel(), minlength=num + 1)[1:]
        extents = np.array(
            [(s[0].start, s[2].start, s[1].start, s[2].stop, s[1].stop) for s in ndimage.find_objects(labels)],
            dtype=np.float64,
        ).reshape(-1, 5)
        image = extents[:, 0].astype(np.int64)
        cells_to_unit = cell / np.array([full_width, full_height, full_width, full_height])
        pixel_boxes = np.minimum(extents[:, 1:] * cells_to_unit, 1.0)

        large = area >= self.min_area
        has_large = np.bincount(image[large], minlength=n) > 0
        keep = large | ~has_large[image]
        image, mass, pixel_boxes = image[keep], mass[keep], pixel_boxes[keep]

        order = np.lexsort((-mass, image))  # by image, then best first
        image, mass, pixel_boxes = image[order], mass[order], pixel_boxes[order]
        first_of_image = np.searchsorted(image, np.arange(n))
        rank = np.arange(len(image)) - first_of_image[image]
        kept = rank < self.max_boxes
        image, rank = image[kept], rank[kept]

        boxes = torch.zeros(n, self.max_boxes, 4)
        scores = torch.zeros(n, self.max_boxes)
        boxes[image, rank] = torch.from_numpy(pixel_boxes[kept]).float()
        scores[image, rank] = torch.from_numpy(mass[kept]).float()
        counts = torch.from_numpy(np.bincount(image, minlength=n)).long()
        fallback = counts == 0
        boxes[fallback, 0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        scores[fallback, 0] = 1.0
        counts[fallback] = 1
        return BoxSets(boxes=boxes, scores=scores, counts=counts, fallback=fallback)

    def __repr__(self) -> str:
        return (
            f"ComponentsLocalizer(threshold={self.threshold}, max_boxes={self.max_boxes}, "
            f"min_area={self.min_area}, label_resolution={self.label_resolution})"
        )


def _max_pool(heatmaps: Tensor, cell: int) -> Tensor:
    """Max over ``cell x cell`` blocks of ``(N, H, W)``; partial blocks at the far edges count."""
    if cell == 1:
        return heatmaps
    n, height, width = heatmaps.shape
    if height % cell or width % cell:
        return F.max_pool2d(heatmaps[:, None], cell, cell, ceil_mode=True)[:, 0]
    # Rows first, then columns: two reductions over short axes, 2-3x faster than max_pool2d.
    rows = heatmaps.reshape(n, height // cell, cell, width).amax(dim=2)
    return rows.reshape(n, height // cell, width // cell, cell).amax(dim=3)

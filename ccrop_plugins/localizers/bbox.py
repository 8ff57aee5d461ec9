"""The paper's localizer: one box around every pixel above the threshold."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..box_sets import BoxSets
from .threshold import (ADAPTIVE_SAMPLES, adaptive_thresholds, centre_samples, check_heatmaps, check_range,
                        check_threshold, constant_maps, zero_non_finite)

_CHUNK_PIXELS = 1 << 18  # maps reduced per chunk: the column pass reads it from cache (1.5x faster at 224 px)


class BBoxLocalizer:
    """One box per image around every row and column whose maximum exceeds ``threshold`` (the reference rule
    ``B = L(1[M > k])``, the union of all blobs): rows ``r0..r1`` of an ``H``-row map give ``y0 = r0 / H``,
    ``y1 = (r1 + 1) / H``. ``threshold``: ``k`` in ``[0, 1)`` (the paper uses 0.1), or ``"mean"`` / ``"otsu"``.

    Calling it on heatmaps ``(N, H, W)`` returns :class:`BoxSets` with ``K = 1`` and score 1; images with no pixel
    above the threshold, or a constant map (any value), get ``[0, 0, 1, 1]`` and ``fallback = True``; NaN and +-inf
    pixels are 0.
    """

    def __init__(self, threshold: float | str = 0.1) -> None:
        self.threshold = check_threshold(threshold)

    def __call__(self, heatmaps: Tensor) -> BoxSets:
        heatmaps = check_heatmaps(heatmaps)
        n, height, width = heatmaps.shape
        row_max, col_max = _profiles(heatmaps)
        if not bool(torch.isfinite(row_max).all()):  # NaN and +inf survive the max: redo without them
            heatmaps = zero_non_finite(heatmaps)
            row_max, col_max = _profiles(heatmaps)
        if n:
            check_range(heatmaps, row_max.max())
        threshold = self.threshold
        if isinstance(threshold, str):  # (N, 1) per-image thresholds, on at most 64 x 64 cell centres (as components)
            cell = math.ceil(max(height, width) / ADAPTIVE_SAMPLES)
            samples = zero_non_finite(torch.from_numpy(centre_samples(heatmaps.numpy(), cell)))
            threshold = torch.from_numpy(adaptive_thresholds(samples.numpy(), threshold))[:, None]
        rows, cols = row_max > threshold, col_max > threshold  # (N, H), (N, W)
        flat = (row_max.amin(dim=1) == row_max.amax(dim=1)) & (col_max.amin(dim=1) == col_max.amax(dim=1))
        found = rows.any(dim=1) & ~constant_maps(heatmaps, flat & rows.all(dim=1))  # a constant map: none
        (y0, y1), (x0, x1) = _first_last(rows), _first_last(cols)
        boxes = torch.stack([x0 / width, y0 / height, (x1 + 1) / width, (y1 + 1) / height], dim=1)
        boxes = torch.where(found[:, None], boxes, boxes.new_tensor([0.0, 0.0, 1.0, 1.0]))
        return BoxSets(boxes=boxes[:, None], scores=torch.ones(n, 1), counts=torch.ones(n, dtype=torch.int64),
                       fallback=~found)

    def __repr__(self) -> str:
        return f"BBoxLocalizer(threshold={self.threshold!r})"


def _profiles(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Row maxima ``(N, H)`` and column maxima ``(N, W)`` of ``(N, H, W)`` maps."""
    n, height, width = heatmaps.shape
    chunk = max(1, _CHUNK_PIXELS // (height * width))
    if chunk >= n:
        return heatmaps.amax(dim=2), heatmaps.amax(dim=1)
    parts = [(maps.amax(dim=2), maps.amax(dim=1)) for maps in heatmaps.split(chunk)]
    return torch.cat([rows for rows, _ in parts]), torch.cat([cols for _, cols in parts])


def _first_last(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the first and last ``True`` along dim 1 of ``(N, L)``; 0 where none is set."""
    weights = mask.to(torch.uint8)
    first = weights.argmax(dim=1)  # argmax returns the first maximal index
    last = (mask.shape[1] - 1) - weights.flip(1).argmax(dim=1)
    found = mask.any(dim=1)
    return first.float() * found, last.float() * found

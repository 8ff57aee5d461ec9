"""The paper's localizer: one box around every pixel above the threshold."""

from __future__ import annotations

import torch
from torch import Tensor

from ..box_sets import BoxSets
from .threshold import check_heatmaps, check_threshold


class BBoxLocalizer:
    """One box per image: the extent of every row and column whose maximum exceeds ``threshold``.

    This is the reference rule ``B = L(1[M > k])`` (the union of all blobs), computed for the
    whole batch at once. A pixel row ``r`` of an ``H``-row map covers ``[r / H, (r + 1) / H)``,
    so the box of rows ``r0..r1`` is ``y0 = r0 / H, y1 = (r1 + 1) / H`` (the reference uses
    ``r1 / H``: the two agree to within one pixel).

    Args:
        threshold: ``k`` in ``[0, 1)``; the paper uses 0.1.

    Calling it on heatmaps ``(N, H, W)`` returns :class:`BoxSets` with ``K = 1``; images
    with no pixel above the threshold get ``[0, 0, 1, 1]`` and ``fallback = True``.
    """

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = check_threshold(threshold)

    def __call__(self, heatmaps: Tensor) -> BoxSets:
        heatmaps = check_heatmaps(heatmaps)
        n, height, width = heatmaps.shape
        rows = heatmaps.amax(dim=2) > self.threshold  # (N, H)
        cols = heatmaps.amax(dim=1) > self.threshold  # (N, W)
        found = rows.any(dim=1)
        y0, y1 = _first_last(rows)
        x0, x1 = _first_last(cols)
        boxes = torch.stack([x0 / width, y0 / height, (x1 + 1) / width, (y1 + 1) / height], dim=1)
        whole = boxes.new_tensor([0.0, 0.0, 1.0, 1.0])
        boxes = torch.where(found[:, None], boxes, whole)
        scores = torch.where(found, (heatmaps * (heatmaps > self.threshold)).sum(dim=(1, 2)), torch.ones(n))
        return BoxSets(
            boxes=boxes[:, None],
            scores=scores[:, None],
            counts=torch.ones(n, dtype=torch.int64),
            fallback=~found,
        )

    def __repr__(self) -> str:
        return f"BBoxLocalizer(threshold={self.threshold})"


def _first_last(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the first and last ``True`` along dim 1 of ``(N, L)``; 0 where none is set."""
    length = mask.shape[1]
    positions = torch.arange(length, dtype=torch.float32)
    first = torch.where(mask, positions, torch.full_like(positions, length)).amin(dim=1)
    last = torch.where(mask, positions, torch.full_like(positions, -1)).amax(dim=1)
    none = ~mask.any(dim=1)
    return first.masked_fill(none, 0.0), last.masked_fill(none, 0.0)

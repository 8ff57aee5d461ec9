"""A copy of a :class:`~ccrop_plugins.BoxStore`'s boxes at one moment (after a refresh), for reports."""

from __future__ import annotations

import torch

from ccrop_plugins import BoxSets, BoxStore
from ccrop_plugins.box_sets import WHOLE_IMAGE


def snapshot(store: BoxStore) -> BoxSets:
    """Every sample's box set, copied; a sample with no boxes yet gets the whole image (``fallback``)."""
    counts = store.counts.long()
    empty = counts == 0
    boxes = store.boxes.clone()
    boxes[empty, 0] = torch.tensor(WHOLE_IMAGE, dtype=boxes.dtype)
    return BoxSets(boxes=boxes, scores=store.scores.clone(), counts=counts.clamp(min=1), fallback=empty.clone())


def box_lists(box_sets: BoxSets) -> list[torch.Tensor]:
    """The ``(k_i, 4)`` normalised ``x0, y0, x1, y1`` boxes of every sample of ``box_sets``."""
    return [box_sets[i][0] for i in range(len(box_sets))]

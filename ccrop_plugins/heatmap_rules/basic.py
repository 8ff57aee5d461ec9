"""Per-image heatmap rules: one map per image from that image's features alone."""

from __future__ import annotations

import torch
from torch import Tensor

BORDER_SHARE = 0.1
"""``distinctiveness``'s ``k``: this share of the border ring's cells (at least one)."""
MIN_BORDER_SIDE = 8
"""Maps with a side under this many cells use the distance from the image's mean descriptor."""
MAX_RING_CELLS = 32
"""``distinctiveness`` compares each cell with at most this many ring cells, evenly spaced (its cost)."""
_CHUNK_DISTANCES = 1 << 22  # distances computed at once (16 MB of float32)


def channel_sum(features: Tensor) -> Tensor:
    """The paper's map: ``M = sum_c F`` over channels, ``(N, C, h, w) -> (N, h, w)``."""
    return features.sum(dim=1)


def channel_norm(features: Tensor) -> Tensor:
    """L2 norm over channels, ``(N, C, h, w) -> (N, h, w)``; insensitive to the sign of features."""
    return features.square().sum(dim=1).sqrt()  # 3x faster than linalg.vector_norm over dim 1 on the CPU


def distinctiveness(features: Tensor) -> Tensor:
    """How far each cell's descriptor lies from the image's background, ``(N, C, h, w) -> (N, h, w)``: the distance
    to the ``k``-th nearest descriptor of the ring one cell inside the border (``k``: :data:`BORDER_SHARE` of at most
    :data:`MAX_RING_CELLS` ring cells); maps with a side under :data:`MIN_BORDER_SIDE` use the image's mean
    descriptor. Then :func:`clip_border`; a non-finite descriptor makes its image's map NaN (docs/plugins.md).
    """
    n, channels, height, width = features.shape
    if min(height, width) < MIN_BORDER_SIDE:
        centred = features - features.mean(dim=(2, 3), keepdim=True)
        return clip_border(centred.square().sum(dim=1).sqrt())
    if features.dtype not in (torch.float32, torch.float64):
        features = features.float()
    cells = features.reshape(n, channels, height * width).transpose(1, 2)  # (N, h w, C)
    ring = _inner_ring(height, width, features.device)
    border = cells[:, ring]  # (N, R, C)
    k = max(1, round(BORDER_SHARE * len(ring)))
    out = features.new_empty(n, height * width)
    chunk = max(1, _CHUNK_DISTANCES // (height * width * len(ring)))
    for start in range(0, n, chunk):
        stop = start + chunk
        # Squared distances ||x||^2 + ||b||^2 - 2 x.b as one batched product; the square root of the k-th only.
        squared = torch.baddbmm(border[start:stop].square().sum(dim=2)[:, None], cells[start:stop],
                                border[start:stop].transpose(1, 2), alpha=-2)
        squared += cells[start:stop].square().sum(dim=2, keepdim=True)
        for _ in range(k - 1):  # drop the nearest k - 1 (k is small: 3 of 32 ring cells); 2x faster than topk
            squared.scatter_(2, squared.argmin(dim=2, keepdim=True), torch.inf)
        out[start:stop] = squared.amin(dim=2).clamp_(min=0).sqrt_()
    # A non-finite descriptor makes the whole map NaN, as the mean's distances are: "no location" downstream.
    out[~torch.isfinite(features.reshape(n, -1)).all(dim=1)] = torch.nan  # on the contiguous features: 4x faster
    return clip_border(out.reshape(n, height, width))


def _inner_ring(height: int, width: int, device: torch.device) -> Tensor:
    """Flat indices of at most :data:`MAX_RING_CELLS` cells evenly spaced along the ring one step inside the
    border of an ``height x width`` map (``height, width >= 3``), in order around it."""
    top, bottom, left, right = 1, height - 2, 1, width - 2
    rows = ([top] * (right - left) + list(range(top, bottom)) + [bottom] * (right - left)
            + list(range(bottom, top, -1)))
    cols = (list(range(left, right)) + [right] * (bottom - top) + list(range(right, left, -1))
            + [left] * (bottom - top))
    ring = torch.tensor(rows) * width + torch.tensor(cols)
    if len(ring) > MAX_RING_CELLS:
        ring = ring[torch.linspace(0, len(ring) - 1, MAX_RING_CELLS).round().long()]
    return ring.to(device)


def clip_border(maps: Tensor) -> Tensor:
    """``(N, h, w)`` maps with each border cell lowered to at most its inner neighbour's value (rows, then
    columns): a frame that zero padding lit goes, an object that reaches the border stays (its inner neighbour
    is hot too). Maps with a side under 4 cells are returned as they are."""
    if min(maps.shape[-2:]) < 4:
        return maps
    maps = maps.clone()
    maps[:, 0] = torch.minimum(maps[:, 0], maps[:, 1])
    maps[:, -1] = torch.minimum(maps[:, -1], maps[:, -2])
    maps[:, :, 0] = torch.minimum(maps[:, :, 0], maps[:, :, 1])
    maps[:, :, -1] = torch.minimum(maps[:, :, -1], maps[:, :, -2])
    return maps

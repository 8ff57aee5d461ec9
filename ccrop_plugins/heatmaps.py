"""Feature maps -> heatmaps in [0, 1] (the paper's semantic-aware localization, step 1)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

HeatmapMethod = Callable[[Tensor], Tensor]
"""Reduces features ``(N, C, h, w)`` to raw maps ``(N, h, w)``; larger means "more object"."""


def channel_sum(features: Tensor) -> Tensor:
    """The paper's map: ``M = sum_c F`` over channels, ``(N, C, h, w) -> (N, h, w)``."""
    return features.sum(dim=1)


def channel_norm(features: Tensor) -> Tensor:
    """L2 norm over channels, ``(N, C, h, w) -> (N, h, w)``; insensitive to the sign of features."""
    return torch.linalg.vector_norm(features, dim=1)


def normalize_maps(maps: Tensor) -> Tensor:
    """Per-map min-max normalisation of ``(N, h, w)`` to ``[0, 1]``.

    A map that holds a non-finite value, or is constant, carries no location: it becomes
    all zeros ("no object found"), never NaN, so localizers fall back to the whole image.
    """
    flat = maps.reshape(maps.shape[0], -1).float()
    finite = torch.isfinite(flat).all(dim=1)
    flat = torch.where(finite[:, None], flat, torch.zeros_like(flat))
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    usable = finite & (span[:, 0] > 0)
    scaled = (flat - low) / torch.where(span > 0, span, torch.ones_like(span))
    scaled = scaled * usable[:, None]
    return scaled.reshape(maps.shape)


def heatmaps_from_features(
    features: Tensor,
    size: Sequence[int] | int | None = None,
    method: str | HeatmapMethod = "channel_sum",
) -> Tensor:
    """Turn backbone features into per-image heatmaps in ``[0, 1]``.

    Args:
        features: ``(N, C, h, w)`` feature maps of the last stage, before pooling.
        size: output ``(H, W)`` (or one int for a square); the maps are min-max
            normalised at feature resolution, then bilinearly upsampled
            (``align_corners=False``) as in the reference code. ``None`` keeps ``(h, w)``.
        method: a registered heatmap method name (see ``ccrop plugins``) or a callable
            ``(N, C, h, w) -> (N, h, w)``.

    Returns:
        ``(N, H, W)`` float32 heatmaps in ``[0, 1]``; all zeros for maps with non-finite
        values or no contrast.
    """
    if features.ndim != 4:
        raise ValueError(f"features must have shape (N, C, h, w); got {tuple(features.shape)}")
    if isinstance(method, str):
        from .plugins import get_heatmap

        method = get_heatmap(method)
    maps = normalize_maps(method(features.detach().float()))
    if size is None:
        return maps
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if tuple(maps.shape[-2:]) == size:
        return maps
    return upsample_bilinear(maps, size).clamp_(0.0, 1.0)


def upsample_bilinear(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(N, h, w)`` maps to ``(N, H, W)``, ``align_corners=False``.

    Equal to ``F.interpolate(..., mode="bilinear")`` for upsampling, computed as two small
    matrix products (``A_H @ M @ A_W^T``): about twice as fast on the CPU, where the refresh pass
    upsamples every map of the dataset. Downsampling goes through ``F.interpolate``.
    """
    height, width = size
    if height < maps.shape[-2] or width < maps.shape[-1]:
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    rows = _interpolation_matrix(maps.shape[-2], height, maps.dtype, maps.device)
    cols = _interpolation_matrix(maps.shape[-1], width, maps.dtype, maps.device)
    return rows @ maps @ cols.T


def _interpolation_matrix(source: int, target: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(target, source)`` weights of linear interpolation with half-pixel centres (PyTorch's rule)."""
    position = ((torch.arange(target, dtype=torch.float64) + 0.5) * (source / target) - 0.5).clamp(min=0)
    low = position.floor().long().clamp(max=source - 1)
    high = (low + 1).clamp(max=source - 1)
    weight = position - low
    matrix = torch.zeros(target, source, dtype=torch.float64)
    rows = torch.arange(target)
    matrix.index_put_((rows, low), 1 - weight, accumulate=True)
    matrix.index_put_((rows, high), weight, accumulate=True)
    return matrix.to(dtype=dtype, device=device)

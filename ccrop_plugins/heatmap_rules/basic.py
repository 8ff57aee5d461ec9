"""Per-image heatmap rules: one map per image from that image's features alone."""

from __future__ import annotations

import torch
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

    The outermost ring of cells is then clipped to its inner neighbour (:func:`clip_border`):
    a convolution's zero padding makes border descriptors differ from the interior's, which
    lit a frame around smooth images and joined objects into image-wide boxes.
    """
    centred = features - features.mean(dim=(2, 3), keepdim=True)
    return clip_border(centred.square().sum(dim=1).sqrt())


def clip_border(maps: Tensor) -> Tensor:
    """``(N, h, w)`` maps with each border cell lowered to at most its inner neighbour's value.

    Zero padding shifts the features of the outermost cells, so a per-image rule sees a bright
    frame along the border of an image whose interior is smooth (measured: the frame's mean is
    2x the interior's on the third look's images; the frame then joins the objects it touches
    into one image-wide component). Clipping row 0 to row 1, the last row to the one before it,
    then the same for the columns removes a frame that is brighter than its neighbours but
    keeps an object that reaches the border (its inner neighbour is hot too). Maps with a side
    under 4 cells are returned as they are.
    """
    if min(maps.shape[-2:]) < 4:
        return maps
    maps = maps.clone()
    maps[:, 0] = torch.minimum(maps[:, 0], maps[:, 1])
    maps[:, -1] = torch.minimum(maps[:, -1], maps[:, -2])
    maps[:, :, 0] = torch.minimum(maps[:, :, 0], maps[:, :, 1])
    maps[:, :, -1] = torch.minimum(maps[:, :, -1], maps[:, :, -2])
    return maps

"""What the built-in localizers share: threshold and input checks, adaptive thresholds."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..sizes import real_number

ADAPTIVE_THRESHOLDS = ("mean", "otsu")
ADAPTIVE_SAMPLES = 64  # adaptive thresholds read at most this many samples along each side of a map
_RANGE_TOLERANCE = 0.1  # past [0, 1] by float error or an offset (a resize, half precision, + 0.05): no raw scale


def check_threshold(threshold: float | str) -> float | str:
    """``threshold`` as a float in ``[0, 1)`` or an adaptive rule name, or raise."""
    if isinstance(threshold, str) and threshold in ADAPTIVE_THRESHOLDS:
        return threshold
    number = real_number(threshold)  # None for text, bools, lists
    if number is None:
        raise (ValueError if isinstance(threshold, str) else TypeError)(
            f"threshold must be a number in [0, 1) or one of {', '.join(ADAPTIVE_THRESHOLDS)}; got {threshold!r}")
    if not 0.0 <= number < 1.0:
        raise ValueError(f"threshold must lie in [0, 1) or be one of {', '.join(ADAPTIVE_THRESHOLDS)}; got {number}")
    return number


def check_heatmaps(heatmaps: Tensor) -> Tensor:
    """Return ``heatmaps`` as float ``(N, H, W)`` (no copy for float32 input), or raise. Non-finite values stay:
    each localizer checks a reduction that NaN and +inf survive (a max) and cleans only when one shows up."""
    if not isinstance(heatmaps, Tensor):
        raise TypeError(f"heatmaps must be a Tensor (N, H, W); got {type(heatmaps).__name__}")
    if heatmaps.ndim != 3:
        raise ValueError(f"heatmaps must have shape (N, H, W); got {tuple(heatmaps.shape)}")
    if min(heatmaps.shape[-2:]) < 1:
        raise ValueError(f"heatmaps must be at least 1x1; got {tuple(heatmaps.shape)}")
    return heatmaps.detach().float().contiguous()


def check_range(heatmaps: Tensor, high: Tensor) -> None:
    """Refuse maps (their NaN and +inf pixels already 0) with contrast above 1 (raw channel sums, a rule's
    unnormalised output): every pixel would be above the threshold, the whole image boxed as found. ``high``: the
    batch's maximum, which the localizer reads anyway; constant maps of any value stay (the fallback)."""
    if high <= 1 + _RANGE_TOLERANCE:
        return
    lows, highs = zero_non_finite(heatmaps).flatten(1).aminmax(dim=1)  # the error path: -inf pixels are 0 too
    bad = (highs > 1 + _RANGE_TOLERANCE) & (lows < highs)
    if bad.any():
        index = int(bad.nonzero()[0])
        raise ValueError(f"heatmap {index} spans [{float(lows[index]):.4g}, {float(highs[index]):.4g}]; localizers "
                         "take heatmaps in [0, 1] (larger: more object), as heatmaps_from_features makes them: pass "
                         "the features through it, or normalise each map to [0, 1]")


def zero_non_finite(heatmaps: Tensor) -> Tensor:
    """A copy of ``heatmaps`` with NaN and +-inf set to 0: such pixels are 'no object'."""
    return heatmaps.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def constant_maps(heatmaps: Tensor, candidates: Tensor) -> Tensor:
    """``(N,)`` bool: which ``candidates`` (``(N,)`` bool) of ``heatmaps`` ``(N, H, W)``, their NaN and +inf pixels
    already 0 (not -inf), are constant (min = max, whatever the value): nothing to localize, so the whole-image box
    with ``fallback = True``. Only the candidates are read, one map at a time (no copy): the maps a localizer boxed
    whole, narrowed by a cheap necessary condition (a constant map above the threshold is hot everywhere)."""
    constant = torch.zeros_like(candidates)
    for index in candidates.nonzero().flatten().tolist():
        low, high = heatmaps[index].aminmax()
        constant[index] = bool(low == high)
    return constant


def adaptive_thresholds(maps: np.ndarray, rule: str, bins: int = 64) -> np.ndarray:
    """``(N,)`` float32 per-map thresholds of ``(N, h, w)`` maps in ``[0, 1]``: their mean, or Otsu's (the
    threshold maximising the between-class variance of ``bins`` bins over ``[0, 1]``); a constant map gets 1."""
    n = maps.shape[0]
    flat = maps.reshape(n, int(np.prod(maps.shape[1:])))  # -1 cannot be inferred for no maps
    if rule == "mean":
        thresholds = np.clip(flat.astype(np.float64), 0.0, 1.0).mean(axis=1)
    elif rule == "otsu":
        index = (flat * bins).astype(np.int32)  # finite maps: the bin of each value clipped to [0, 1]
        np.clip(index, 0, bins - 1, out=index)
        index += (np.arange(n, dtype=np.int32) * bins)[:, None]
        histogram = np.bincount(index.ravel(), minlength=n * bins).reshape(n, bins) / flat.shape[1]
        centres = (np.arange(bins) + 0.5) / bins
        weight = np.cumsum(histogram, axis=1)  # share of cells at or below each bin
        first = np.cumsum(histogram * centres, axis=1)
        total = first[:, -1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            between = (total * weight - first) ** 2 / (weight * (1 - weight))
        between[~np.isfinite(between)] = -1.0
        thresholds = (np.argmax(between, axis=1) + 1) / bins  # the upper edge of the lower class
    else:
        raise ValueError(f"unknown adaptive threshold {rule!r}; available: {', '.join(ADAPTIVE_THRESHOLDS)}")
    constant = np.clip(flat.max(axis=1), 0.0, 1.0) <= np.clip(flat.min(axis=1), 0.0, 1.0)
    return np.where(constant, 1.0, thresholds).astype(np.float32)


def centre_samples(heat: np.ndarray, cell: int) -> np.ndarray:
    """``(N, h, w)``: the heatmap at the centre pixel of every ``cell x cell`` block (partial blocks count)."""
    _, height, width = heat.shape
    if height % cell == 0 and width % cell == 0:
        return heat[:, cell // 2 :: cell, cell // 2 :: cell]
    rows = np.minimum(np.arange(0, height, cell) + cell // 2, height - 1)
    cols = np.minimum(np.arange(0, width, cell) + cell // 2, width - 1)
    return heat[:, rows][:, :, cols]

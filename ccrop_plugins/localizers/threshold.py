"""What both built-in localizers share: the threshold and input checks."""

from __future__ import annotations

from torch import Tensor


def check_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float, or raise if it is not in ``[0, 1)``."""
    threshold = float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1); got {threshold}")
    return threshold


def check_heatmaps(heatmaps: Tensor) -> Tensor:
    """Return ``heatmaps`` as float ``(N, H, W)`` (no copy for float32 input), or raise.

    Non-finite values are left in place: scanning a whole batch for them costs as much as
    localizing it, so each localizer checks its small reduced maps (NaN and +inf survive a
    max) and calls :func:`zero_non_finite` only when one shows up.
    """
    if heatmaps.ndim != 3:
        raise ValueError(f"heatmaps must have shape (N, H, W); got {tuple(heatmaps.shape)}")
    if min(heatmaps.shape[-2:]) < 1:
        raise ValueError(f"heatmaps must be at least 1x1; got {tuple(heatmaps.shape)}")
    return heatmaps.detach().float()


def zero_non_finite(heatmaps: Tensor) -> Tensor:
    """A copy of ``heatmaps`` with NaN and +-inf set to 0: such pixels are 'no object'."""
    return heatmaps.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)

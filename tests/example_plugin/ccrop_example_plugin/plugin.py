"""Registers the localizer ``example_centre`` and the sampler ``example_midpoint``.

A plugin needs only pluggy's marker for the ``ccrop_plugins`` project and the core's public API.
"""

from __future__ import annotations

import numpy as np
import pluggy
import torch
from torch import Tensor

from ccrop_plugins import BoxSets

hookimpl = pluggy.HookimplMarker("ccrop_plugins")


class CentreLocalizer:
    """One fixed box per image: the central ``fraction`` of each side (ignores the heatmap)."""

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
        self.fraction = fraction

    def __call__(self, heatmaps: Tensor) -> BoxSets:
        n = heatmaps.shape[0]
        margin = (1.0 - self.fraction) / 2
        box = torch.tensor([margin, margin, 1.0 - margin, 1.0 - margin])
        return BoxSets(
            boxes=box.repeat(n, 1, 1),
            scores=torch.ones(n, 1),
            counts=torch.ones(n, dtype=torch.int64),
            fallback=torch.zeros(n, dtype=torch.bool),
        )


class MidpointSampler:
    """Puts every crop at the middle of the allowed range (no randomness)."""

    def __call__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        centre: np.ndarray,
        extent: np.ndarray,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        return (low + high) / 2


@hookimpl
def ccrop_register_localizers(register):
    register("example_centre", CentreLocalizer)


@hookimpl
def ccrop_register_samplers(register):
    register("example_midpoint", MidpointSampler)

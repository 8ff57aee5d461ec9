"""docs/plugins.md's example plugin as a plugin author copies it: a fitted heatmap rule, a localizer and a sampler.

Loaded by path by the ``docs_plugin`` fixture of tests/conftest.py, for the Lightly and the mmengine tests alike."""

from __future__ import annotations

import numpy as np
import torch

from ccrop_plugins import BoxSets, hookimpl


class FarFromDatasetMean:
    def __init__(self, power: float = 1.0):
        self.power = power
        self.mean = None
        self.fits = 0

    def fit(self, features):
        cells = features.double().permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        return {"count": torch.tensor(float(len(cells))), "sum": cells.sum(0)}

    def finalize(self, totals):
        self.mean, self.fits = totals["sum"] / totals["count"], self.fits + 1

    def __call__(self, features):
        mean = features.mean((0, 2, 3)) if self.mean is None else self.mean.to(features)
        return (features - mean[:, None, None]).norm(dim=1) ** self.power


class EdgeSampler:
    def __call__(self, low, high, centre, extent, generator=None):
        pick = torch.randint(0, 2, low.shape, generator=generator).numpy()
        return np.where(pick == 1, high, low)


def peak_box(heatmaps):
    n, h, w = heatmaps.shape
    peak = heatmaps.nan_to_num(0).reshape(n, -1).argmax(1)
    x0 = ((peak % w + 0.5) / w - 0.25).clamp(0, 0.5)
    y0 = ((peak // w + 0.5) / h - 0.25).clamp(0, 0.5)
    boxes = torch.stack([x0, y0, x0 + 0.5, y0 + 0.5], dim=1)[:, None]
    return BoxSets(boxes, torch.ones(n, 1), torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.bool))


class DocsPlugin:
    @hookimpl
    def ccrop_register_heatmaps(self, register):
        register("far_from_mean", FarFromDatasetMean)

    @hookimpl
    def ccrop_register_samplers(self, register):
        register("edge", EdgeSampler)

    @hookimpl
    def ccrop_register_localizers(self, register):
        register("peak", lambda: peak_box)  # a factory of no options: a threshold given for it is a TypeError

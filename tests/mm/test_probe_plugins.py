"""docs/plugins.md's example plugin (a fitted heatmap rule, a localizer, a sampler) named in the config dicts of a
real mmengine Runner with 2 persistent DataLoader workers (helper P2's probe)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccrop_plugins import BoxSets, hookimpl
from ccrop_plugins.plugins import load_plugins, plugin_manager


class FarFromDatasetMean:
    def __init__(self, power: float = 1.0):
        self.power, self.mean, self.fits = power, None, 0

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
        register("peak", lambda **options: peak_box)


@pytest.fixture(scope="module")
def docs_plugin():
    load_plugins()
    plugin_manager.register(DocsPlugin(), name="docs-plugin")
    yield
    plugin_manager.unregister(name="docs-plugin")


@pytest.mark.slow
def test_the_docs_plugin_named_in_a_runner_config(docs_plugin, setup, train, object_folder, tmp_path):
    cfg = setup.small_config("mmpretrain", object_folder, tmp_path / "run", heatmap="far_from_mean", localizer="peak")
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    crop = multiview["transforms"][0][0]
    crop.pop("alpha", None)
    crop["sampler"] = "edge"
    runner = train(cfg)
    hook = setup.ccrop_hook(runner)
    assert hook.store.version == 1 and hook.last_stats.images == setup.NUM_IMAGES
    assert bool((hook.store.counts == 1).all())
    sizes = hook.store.boxes[:, 0, 2:] - hook.store.boxes[:, 0, :2]
    torch.testing.assert_close(sizes, torch.full_like(sizes, 0.5))  # peak_box's quarter of the image
    from ccrop_plugins.refresh import _PIPELINES

    (pipeline,) = _PIPELINES[hook.store].values()
    assert pipeline.rules[None].fits == 1
    crops = [t for t in runner.train_dataloader.dataset.pipeline.transforms if type(t).__name__ == "MultiView"]
    assert type(crops[0].pipelines[0].transforms[0].crop.sampler).__name__ == "EdgeSampler"

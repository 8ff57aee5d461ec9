"""docs/plugins.md's example plugin (a fitted heatmap rule, a localizer, a sampler) named in the config dicts of a
real mmengine Runner with 2 persistent DataLoader workers (helper P2's probe)."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.slow
def test_the_docs_plugin_named_in_a_runner_config(docs_plugin, setup, train, object_folder, tmp_path):
    # peak takes no threshold (a factory of no options: a threshold given for it is refused)
    cfg = setup.small_config("mmpretrain", object_folder, tmp_path / "run", heatmap="far_from_mean", localizer="peak",
                             threshold=None)
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
    from ccrop_plugins.kept_pipelines import _PIPELINES

    (pipeline,) = _PIPELINES[hook.store].values()
    assert pipeline.rules[None].fits == 1
    crops = [t for t in runner.train_dataloader.dataset.pipeline.transforms if type(t).__name__ == "MultiView"]
    assert type(crops[0].pipelines[0].transforms[0].crop.sampler).__name__ == "EdgeSampler"

"""Heatmaps from a chosen backbone stage (issue 9) through a real Runner, in both scopes: the boxes of the
refresh are those of the named stage(s), computed in the one refresh forward, and persistent workers crop
around them."""

from __future__ import annotations

import pytest
import torch

from ccrop_plugins import BoxStore, get_localizer, refresh_boxes
from ccrop_plugins.features import stage_features


def _expected(hook, model, feature_fn):
    """The box sets ``feature_fn`` gives for the hook's refresh images (same localizer, same normalisation)."""
    from ccrop_mm.extraction import Normaliser, extraction_loader

    normalise = Normaliser(model.data_preprocessor)
    loader = extraction_loader(hook._images, batch_size=8, num_workers=0)
    store = BoxStore(len(hook._images), 4)
    localizer = get_localizer("components", threshold=0.5, max_boxes=4)
    refresh_boxes(feature_fn, ((normalise(x, "cpu"), i) for x, i in loader), store, localizer, progress=False)
    return store.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize(
    "framework, stages, modules",
    [
        ("mmpretrain", ["backbone.layer2"], ["layer2"]),
        ("mmselfsup", ["layer2", 2], ["layer2", "layer3"]),  # a bare name and an out_indices entry, fused
    ],
)
def test_boxes_of_the_chosen_stage_reach_persistent_workers(framework, stages, modules, setup, train,
                                                            coordinate_folder, tmp_path):
    cfg = setup.small_config(framework, coordinate_folder, tmp_path / "run", feature_stages=stages, threshold=0.5)
    cfg.custom_hooks.append(dict(type="CropRecorderHook"))
    cfg.experiment_name = f"stages_{framework}"
    runner = train(cfg)
    recorder = next(h for h in runner.hooks if type(h).__name__ == "CropRecorderHook")
    hook = setup.ccrop_hook(runner)
    assert hook._features.stages == tuple(modules)

    # lr 0 and frozen BN statistics: the model after training is the model of the refresh.
    model = runner.model
    refreshed = recorder.refreshed_state
    chosen = _expected(hook, model, stage_features(model.backbone, modules))
    last_stage = _expected(hook, model, model.backbone)
    for key in ("counts", "boxes"):
        assert torch.allclose(refreshed[key].float(), chosen[key].float(), atol=1e-6), key
    assert not torch.equal(refreshed["boxes"], last_stage["boxes"])  # the option changed the boxes

    # Epoch 2: the persistent workers (started in epoch 1) crop around these boxes.
    assert setup.check_crops([b for b in recorder.batches if b["epoch"] == 1], refreshed) == {0, 1}

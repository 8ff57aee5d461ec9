"""Real mmengine Runner, 2 epochs, 2 persistent DataLoader workers, warm-up 1: refresh, crops from pixels, resume."""

from __future__ import annotations

import pytest
import torch
from mmengine.runner import Runner

FRAMEWORKS = ["mmpretrain", "mmselfsup"]


def _check_crops(setup, batches, epoch, refreshed_state):
    """Every pair of ``epoch`` was cropped around one common box of its sample's set (from pixels)."""
    chosen = set()
    pairs = 0
    for batch in (b for b in batches if b["epoch"] == epoch):
        first, second = batch["views"]
        for row, index in enumerate(batch["indices"]):
            if index % 2 == 0:
                boxes = setup.FORCED_BOXES
            else:
                count = int(refreshed_state["counts"][index])
                boxes = refreshed_state["boxes"][index, :count]
            shared = [k for k, box in enumerate(boxes)
                      if setup.crop_fits_box(first[row], box) and setup.crop_fits_box(second[row], box)]
            assert shared, f"epoch {epoch + 1}: the views of sample {index} share no box of {boxes.tolist()}"
            if index % 2 == 0:
                chosen.update(shared)
            pairs += 1
    assert pairs == setup.NUM_IMAGES
    return chosen


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_epochs_refresh_then_crops_in_boxes_and_resume(framework, setup, coordinate_folder, tmp_path, monkeypatch):
    cfg = setup.small_config(framework, coordinate_folder, tmp_path / "run")
    cfg.custom_hooks.append(dict(type="CropRecorderHook"))
    cfg.experiment_name = f"{framework}_first"
    runner = Runner.from_cfg(cfg)
    runner.train()
    recorder = next(h for h in runner.hooks if type(h).__name__ == "CropRecorderHook")
    hook = setup.ccrop_hook(runner)

    # The refresh after epoch 1 happened, reached the message hub, and filled every sample.
    assert recorder.state_before_train["version"] == 0
    assert recorder.refreshed_state["version"] == 1 and recorder.version_scalar == 1.0
    assert bool((recorder.refreshed_state["counts"] > 0).all())
    assert hook.last_stats.images == setup.NUM_IMAGES

    # Warm-up crops ignore the (later) forced boxes: some even-sample view fits neither.
    warmup_misses = sum(
        not any(setup.crop_fits_box(view[row], box) for box in setup.FORCED_BOXES)
        for batch in recorder.batches if batch["epoch"] == 0
        for view in batch["views"] for row, index in enumerate(batch["indices"]) if index % 2 == 0
    )
    assert warmup_misses > 0
    # Epoch 2: workers (persistent, started in epoch 1) crop around the boxes, one box per pair.
    assert _check_crops(setup, recorder.batches, 1, recorder.refreshed_state) == {0, 1}
    final_state = hook.store.state_dict()

    # Resume from the checkpoint saved after the refresh: a new Runner restores the identical store.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mmengine checkpoints under torch>=2.6
    cfg = setup.small_config(framework, coordinate_folder, tmp_path / "resumed")
    cfg.custom_hooks.append(dict(type="CropRecorderHook", force=False))
    cfg.experiment_name = f"{framework}_resumed"
    cfg.resume = True
    cfg.load_from = str(tmp_path / "run" / "epoch_1.pth")
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    restored = next(h for h in resumed.hooks if type(h).__name__ == "CropRecorderHook").state_before_train
    assert restored["version"] == final_state["version"] == 1
    for key in ("boxes", "scores", "counts"):
        assert torch.equal(restored[key], final_state[key]), key
    recorder2 = next(h for h in resumed.hooks if type(h).__name__ == "CropRecorderHook")
    assert [b["epoch"] for b in recorder2.batches] == [1, 1]
    _check_crops(setup, recorder2.batches, 1, recorder.refreshed_state)

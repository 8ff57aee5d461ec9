"""Real mmengine Runner, 2 persistent DataLoader workers: refresh, crops from pixels, resume.

Epoch loop: 2 epochs, warm-up 1, then a resume without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.
Iteration loop: 4 iterations (2 per pass over the data), warm-up and interval 2.
"""

from __future__ import annotations

import pickle
import sys
import warnings

import pytest
import torch

from ccrop_mm import mmengine_checkpoint_globals
from ccrop_mm.transforms import StoreUser

FRAMEWORKS = ["mmpretrain", "mmselfsup"]


def _warmup_misses(setup, batches):
    """Views of even samples that fit neither forced box: warm-up crops ignore the (later) forced boxes."""
    return sum(
        not any(setup.crop_fits_box(view[row], box) for box in setup.FORCED_BOXES)
        for batch in batches for view in batch["views"]
        for row, index in enumerate(batch["indices"]) if index % 2 == 0
    )


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_epochs_refresh_then_crops_in_boxes_and_resume(
    framework, setup, train, coordinate_folder, tmp_path, monkeypatch
):
    cfg = setup.small_config(framework, coordinate_folder, tmp_path / "run")
    cfg.custom_hooks.append(dict(type="CropRecorderHook"))
    cfg.experiment_name = f"{framework}_first"
    runner = train(cfg)
    recorder = next(h for h in runner.hooks if type(h).__name__ == "CropRecorderHook")
    hook = setup.ccrop_hook(runner)

    # The refresh after epoch 1 happened, reached the message hub, and filled every sample.
    assert recorder.state_before_train["version"] == 0
    assert recorder.refreshed_state["version"] == 1 and recorder.version_scalar == 1.0
    assert bool((recorder.refreshed_state["counts"] > 0).all())
    assert hook.last_stats.images == setup.NUM_IMAGES

    # Warm-up crops ignore the (later) forced boxes: some even-sample view fits neither.
    assert _warmup_misses(setup, [b for b in recorder.batches if b["epoch"] == 0]) > 0
    # Epoch 2: workers (persistent, started in epoch 1) crop around the boxes, one box per pair.
    assert setup.check_crops([b for b in recorder.batches if b["epoch"] == 1], recorder.refreshed_state) == {0, 1}
    final_state = hook.store.state_dict()
    setup.stop_workers(runner)  # before the next Runner starts (see stop_workers)

    # torch>=2.6 loads weights-only by default: the checkpoint needs the hook's allow-list ...
    checkpoint = tmp_path / "run" / "epoch_1.pth"
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    with pytest.raises(pickle.UnpicklingError, match="HistoryBuffer"):
        torch.load(checkpoint, weights_only=True)
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        assert torch.load(checkpoint, weights_only=True)["ccrop"]["box_store"]["version"] == 1
    # ... which the hook admitted only while the runner loaded its checkpoint (none here).
    assert not set(mmengine_checkpoint_globals()) & set(torch.serialization.get_safe_globals())

    # Resume from the checkpoint saved after the refresh, without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD:
    # a new Runner restores the identical store.
    cfg = setup.small_config(framework, coordinate_folder, tmp_path / "resumed")
    cfg.custom_hooks.append(dict(type="CropRecorderHook", force=False))
    cfg.experiment_name = f"{framework}_resumed"
    cfg.resume = True
    cfg.load_from = str(checkpoint)
    resumed = train(cfg)
    restored = next(h for h in resumed.hooks if type(h).__name__ == "CropRecorderHook").state_before_train
    assert restored["version"] == final_state["version"] == 1
    for key in ("boxes", "scores", "counts"):
        assert torch.equal(restored[key], final_state[key]), key
    recorder2 = next(h for h in resumed.hooks if type(h).__name__ == "CropRecorderHook")
    assert [b["epoch"] for b in recorder2.batches] == [1, 1]
    setup.check_crops(recorder2.batches, recorder.refreshed_state)
    setup.stop_workers(resumed)
    assert not set(mmengine_checkpoint_globals()) & set(torch.serialization.get_safe_globals())

    # A checkpoint without boxes (saved by a run without the hook) resumed past the warm-up: the hook refreshes
    # before the first iteration instead of cropping like RandomResizedCrop until the next refresh.
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        saved = torch.load(checkpoint, weights_only=True)
    del saved["ccrop"]
    torch.save(saved, tmp_path / "no_boxes.pth")
    cfg = setup.small_config(framework, coordinate_folder, tmp_path / "no_boxes")
    cfg.custom_hooks.append(dict(type="CropRecorderHook", force=False))
    cfg.experiment_name = f"{framework}_no_boxes"
    cfg.resume = True
    cfg.load_from = str(tmp_path / "no_boxes.pth")
    refreshed = train(cfg)
    recorder3 = next(h for h in refreshed.hooks if type(h).__name__ == "CropRecorderHook")
    assert recorder3.state_before_train["version"] == 1 and bool((recorder3.state_before_train["counts"] > 0).all())
    assert [b["version"] for b in recorder3.batches] == [1, 1]
    setup.stop_workers(refreshed)

    # Without the hook's allow-list the same resume is refused by torch's weights-only load.
    cfg = setup.small_config(framework, coordinate_folder, tmp_path / "refused", allow_mmengine_checkpoints=False)
    cfg.experiment_name = f"{framework}_refused"
    cfg.resume = True
    cfg.load_from = str(checkpoint)
    with pytest.raises(pickle.UnpicklingError, match="HistoryBuffer"):
        train(cfg)


def _to_stderr(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@pytest.mark.slow
def test_iteration_loop_refreshes_after_warmup_iterations(setup, train, coordinate_folder, tmp_path, monkeypatch,
                                                           capfd):
    """IterBasedTrainLoop over an InfiniteSampler (8 of the 16 images per iteration), 2 persistent workers,
    warmup_iters=2, interval 4, 6 iterations: one refresh, after iteration 2 (6 is the last); the workers,
    started by the loop before any hook ran, crop in its boxes once the batches they had prefetched are used, and
    do not warn that no hook is attached (they did: 'every crop is a plain RandomResizedCrop crop for the whole
    run ... add dict(type='ContrastiveCropHook', ...)', once per worker)."""
    monkeypatch.setattr(StoreUser, "_warned_no_store", False)  # as in a fresh process
    monkeypatch.setattr(warnings, "showwarning", _to_stderr)  # the forked workers print theirs (not pytest's list)
    cfg = setup.small_config("mmpretrain", coordinate_folder, tmp_path, warmup_iters=2, interval=4)
    del cfg.custom_hooks[0]["warmup_epochs"]
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=6)
    cfg.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=True)
    cfg.train_dataloader.prefetch_factor = 1  # at most 2 batches (1 per worker) requested before the refresh
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=2, by_epoch=False)
    cfg.custom_hooks.append(dict(type="CropRecorderHook", after_iter=2))
    cfg.experiment_name = "mmpretrain_iterations"
    runner = train(cfg)
    recorder = next(h for h in runner.hooks if type(h).__name__ == "CropRecorderHook")
    hook = setup.ccrop_hook(runner)

    assert runner.iter == 6
    assert "no ContrastiveCropHook is attached" not in capfd.readouterr().err
    assert [b["version"] for b in recorder.batches] == [0, 0, 1, 1, 1, 1]  # refreshed after iteration 2 only
    assert hook.store.version == 1 and recorder.version_scalar == 1.0
    assert recorder.refreshed_state["version"] == 1 and hook.last_stats.images == setup.NUM_IMAGES
    assert _warmup_misses(setup, recorder.batches[:2]) > 0
    # Batches 3-4 were requested before the refresh (prefetch); 5-6 (one pass over the data) after it.
    assert setup.check_crops(recorder.batches[4:], recorder.refreshed_state) == {0, 1}
    # The checkpoint of iteration 2 is saved after the refresh (and the recorder's forcing): it holds the final boxes.
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        saved = torch.load(tmp_path / "iter_2.pth", weights_only=True)["ccrop"]["box_store"]
    final = hook.store.state_dict()
    assert saved["version"] == 1 and all(torch.equal(saved[k], final[k]) for k in ("boxes", "scores", "counts"))


@pytest.mark.slow
def test_iteration_loop_resumed_with_a_refresh_due_crops_in_its_boxes_from_the_first_batch(
        setup, train, coordinate_folder, tmp_path, monkeypatch):
    """Resumed at iteration 3 from a checkpoint without boxes (warm-up 2), the hook refreshes in before_train. The
    workers it restarts (IterBasedTrainLoop started its own before any hook) prefetch at once, 2 workers x 2 batches,
    of which mmengine skips 3 on resume: they must start after the refresh, else the first trained batch is a
    warm-up batch (was: 0 of its 8 pairs in a box). The refresh is forced to one top-left box per sample."""
    import ccrop_mm.refresh_pass
    from ccrop_plugins import BoxSets

    box = torch.tensor([0.0, 0.0, 0.25, 0.25])
    real_refresh = ccrop_mm.refresh_pass.refresh_boxes

    def refresh_to_one_box(features, batches, store, *args, **kwargs):
        stats = real_refresh(features, batches, store, *args, **kwargs)
        n = len(store)
        boxes = box.repeat(n, store.max_boxes, 1)
        scores = torch.zeros(n, store.max_boxes)
        scores[:, 0] = 1.0
        store.update(torch.arange(n), BoxSets(boxes, scores, torch.ones(n, dtype=torch.int64),
                                              torch.zeros(n, dtype=torch.bool)), new_version=False)
        return stats

    def config(name, iterations):
        cfg = setup.small_config("mmpretrain", coordinate_folder, tmp_path / name, warmup_iters=2, interval=10)
        del cfg.custom_hooks[0]["warmup_epochs"]
        cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iterations)
        cfg.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=True)
        cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=3, by_epoch=False)
        cfg.custom_hooks.append(dict(type="CropRecorderHook", force=False))
        cfg.experiment_name = f"prefetch_{name}"
        return cfg

    train(config("first", 3))
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        saved = torch.load(tmp_path / "first" / "iter_3.pth", weights_only=True)
    del saved["ccrop"]  # as saved by a run without the hook
    torch.save(saved, tmp_path / "no_boxes.pth")

    monkeypatch.setattr(ccrop_mm.refresh_pass, "refresh_boxes", refresh_to_one_box)
    cfg = config("resumed", 5)
    cfg.resume, cfg.load_from = True, str(tmp_path / "no_boxes.pth")
    runner = train(cfg)
    batches = next(h for h in runner.hooks if type(h).__name__ == "CropRecorderHook").batches
    assert [b["iter"] for b in batches] == [3, 4] and setup.ccrop_hook(runner).store.version == 1
    for batch in batches:
        first, second = batch["views"]
        fits = [setup.crop_fits_box(first[row], box) and setup.crop_fits_box(second[row], box)
                for row in range(len(batch["indices"]))]
        assert all(fits), f"iteration {batch['iter'] + 1}: {fits.count(False)} of {len(fits)} pairs outside the box"

"""A user's config mistakes (copied ready configs, edited): each is named before the first iteration, or logged."""

from __future__ import annotations

import pytest
from mmengine.runner import Runner


def _config(setup, folder, tmp_path, **hook):
    cfg = setup.small_config("mmpretrain", folder, tmp_path, **hook)
    cfg.experiment_name = f"probe_{tmp_path.name}"  # else two Runners of one second share mmengine's instances
    cfg.train_dataloader.num_workers, cfg.train_dataloader.persistent_workers = 0, False
    return cfg


def test_two_hooks_are_refused_before_training(setup, coordinate_folder, tmp_path):
    # Both used to run: two stores, a refresh pass each, and the crops read only the store attached last.
    cfg = _config(setup, coordinate_folder, tmp_path)
    cfg.custom_hooks = [cfg.custom_hooks[0], dict(cfg.custom_hooks[0], localizer="bbox")]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"the runner holds 2 ContrastiveCropHooks .*keep one"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran

"""Configuration errors name the key and the allowed values, and come before the first iteration."""

from __future__ import annotations

import pytest
from mmengine.registry import DATASETS
from mmengine.runner import Runner
from mmpretrain.datasets import CustomDataset


@DATASETS.register_module(force=True)
class DatasetWithoutSampleIndex(CustomDataset):
    """A custom dataset whose data infos lack ``sample_idx``."""

    def get_data_info(self, idx):
        info = super().get_data_info(idx)
        info.pop("sample_idx", None)
        return info


def _runner(setup, folder, tmp_path, name, **hook):
    cfg = setup.small_config("mmpretrain", folder, tmp_path, **hook)
    cfg.experiment_name = name
    return cfg


def test_unknown_localizer_fails_when_the_runner_is_built(setup, coordinate_folder, tmp_path):
    cfg = _runner(setup, coordinate_folder, tmp_path, "bad_localizer", localizer="blobs")
    with pytest.raises(ValueError, match=r"unknown localizer 'blobs'; available: .*bbox.*components"):
        Runner.from_cfg(cfg)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(sampler="betta"), r"unknown sampler 'betta'; available: beta, gaussian, uniform"),
        (dict(alpha=0.0), r"ContrastiveCrop .*alpha must be .*> 0"),
        (dict(alpha=-1.0), r"ContrastiveCrop .*alpha must be .*> 0"),
    ],
)
def test_bad_crop_arguments_fail_before_training(setup, coordinate_folder, tmp_path, change, message):
    cfg = _runner(setup, coordinate_folder, tmp_path, f"bad_crop_{len(message)}_{change}")
    multiview = next(s for s in cfg.train_dataloader.dataset.pipeline if s["type"] == "MultiView")
    multiview["transforms"][0][0].update(change)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=message):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran


def test_hook_without_contrastive_crop_fails_before_training(setup, coordinate_folder, tmp_path):
    cfg = _runner(setup, coordinate_folder, tmp_path, "no_crop")
    pipeline = cfg.train_dataloader.dataset.pipeline
    multiview = next(s for s in pipeline if s["type"] == "MultiView")
    multiview["transforms"][0][0] = dict(type="RandomResizedCrop", scale=32)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"found no ContrastiveCrop in train_dataloader.dataset.pipeline"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran


def test_missing_pair_step_for_box_sets_fails_before_training(setup, coordinate_folder, tmp_path):
    cfg = _runner(setup, coordinate_folder, tmp_path, "no_chooser")
    pipeline = cfg.train_dataloader.dataset.pipeline
    cfg.train_dataloader.dataset.pipeline = [s for s in pipeline if s["type"] != "ChooseContrastiveBox"]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"put dict\(type='ChooseContrastiveBox'\) before MultiView"):
        runner.train()


def test_dataset_without_sample_idx_fails_before_training(setup, coordinate_folder, tmp_path):
    cfg = _runner(setup, coordinate_folder, tmp_path, "no_sample_idx")
    cfg.train_dataloader.dataset.type = "DatasetWithoutSampleIndex"
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"has no 'sample_idx'"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran


@pytest.mark.parametrize("image_size", [0, -4, (32, 0), 8.5])
def test_bad_refresh_image_size_fails_when_the_hook_is_built(image_size):
    from mmengine.registry import HOOKS

    with pytest.raises((ValueError, TypeError), match=r"ContrastiveCropHook: image_size must be a positive int"):
        HOOKS.build(dict(type="ContrastiveCropHook", image_size=image_size))


@pytest.mark.parametrize("feature_stages", [[], True, [1.5], 1.5, {"layer3": 1}, "backbone.layer3.nope"])
def test_bad_feature_stages_fail_before_training(setup, coordinate_folder, tmp_path, feature_stages):
    from mmengine.registry import HOOKS

    if feature_stages != "backbone.layer3.nope":  # the type is checked when the hook is built
        with pytest.raises(TypeError, match=r"feature_stages must be a module name"):
            HOOKS.build(dict(type="ContrastiveCropHook", feature_stages=feature_stages))
        return
    runner = Runner.from_cfg(_runner(setup, coordinate_folder, tmp_path, "bad_stage", feature_stages=feature_stages))
    with pytest.raises(ValueError, match=r"unknown stage 'layer3.nope'"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0


def test_random_step_before_the_box_choice_is_refused(setup, coordinate_folder, tmp_path):
    """A RandomFlip before ChooseContrastiveBox would also flip the refresh pass's images (boxes of flipped images)."""
    cfg = _runner(setup, coordinate_folder, tmp_path, "flip_first")
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline.insert(1, dict(type="RandomFlip", prob=0.5))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"RandomFlip comes before ContrastiveCrop/ChooseContrastiveBox"
                                         r".*move RandomFlip into the view pipeline"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0


@pytest.mark.parametrize(
    "heatmap, options, message",
    [
        ("channel_sum", dict(sgn=1), r"ContrastiveCropHook: heatmap 'channel_sum' .*takes no options; got \['sgn'\]"),
        ("distinctiveness", dict(sign=1),
         r"ContrastiveCropHook: heatmap 'distinctiveness' .*takes no options; got \['sign'\]"),
        ("distinctiveness", "sign", r"ContrastiveCropHook: heatmap_options must be a dict .*or None; got 'sign'"),
    ],
)
def test_bad_heatmap_options_fail_when_the_hook_is_built(heatmap, options, message):
    # They used to pass until the first refresh, after the whole warm-up (100 epochs by default).
    from mmengine.registry import HOOKS

    with pytest.raises(TypeError, match=message):
        HOOKS.build(dict(type="ContrastiveCropHook", heatmap=heatmap, heatmap_options=options))


def test_a_misspelt_hook_argument_lists_the_accepted_ones():
    # was Python's "__init__() got an unexpected keyword argument 'warmup_epoch'", without the accepted names
    from mmengine.registry import HOOKS

    with pytest.raises(TypeError, match=r"ContrastiveCropHook got unknown arguments "
                                        r"\['feature_stage', 'warmup_epoch'\]; "
                                        r"it takes warmup_epochs, interval, .*feature_stages"):
        HOOKS.build(dict(type="ContrastiveCropHook", warmup_epoch=5, feature_stage="backbone.layer2"))


@pytest.mark.parametrize("key", ["load_boxes", "progress", "allow_mmengine_checkpoints"])
def test_a_switch_given_as_text_is_refused(key):
    # load_boxes='no' was bool('no') = True: the boxes of another dataset's checkpoint were restored, silently
    from mmengine.registry import HOOKS

    with pytest.raises(TypeError, match=rf"ContrastiveCropHook: {key} must be True or False; got 'no'"):
        HOOKS.build(dict(type="ContrastiveCropHook", **{key: "no"}))
    assert HOOKS.build(dict(type="ContrastiveCropHook", **{key: False})) is not None

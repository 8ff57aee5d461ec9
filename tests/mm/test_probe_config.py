"""A user's config mistakes (copied ready configs, edited): each is named before the first iteration, or logged."""

from __future__ import annotations

import logging

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


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _before_train(runner):
    """Run ``runner`` up to its hook's before_train (before_run, the loop built as runner.train() does; no iteration);
    returns the ContrastiveCropHook."""
    runner.call_hook("before_run")
    runner.train_loop  # noqa: B018  (builds the loop, as runner.train() does)
    hook = next(h for h in runner.hooks if type(h).__name__ == "ContrastiveCropHook")
    hook.before_train(runner)
    return hook


def _logged_before_train(cfg, setup) -> list[str]:
    """The lines the runner's logger gave from before_run to the end of the hook's before_train (no iteration)."""
    runner = Runner.from_cfg(cfg)
    records = _Records()
    runner.logger.addHandler(records)
    try:
        _before_train(runner)
    finally:
        runner.logger.removeHandler(records)
        setup.stop_workers(runner)
    return records.lines


@pytest.mark.parametrize("warmup, said", [("warmup_epochs", True), ("warmup_iters", False)])
def test_an_iteration_loop_says_that_warmup_epochs_counts_iterations(setup, coordinate_folder, tmp_path, warmup,
                                                                      said):
    # An epoch config switched to IterBasedTrainLoop refreshed every `interval` iterations, said only by the
    # list of refresh iterations; named warmup_iters, the counts are meant as iterations: nothing more to say.
    cfg = _config(setup, coordinate_folder, tmp_path, interval=1)
    cfg.custom_hooks[0].pop("warmup_epochs")
    cfg.custom_hooks[0][warmup] = 1
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2)
    warned = [line for line in _logged_before_train(cfg, setup) if "count iterations, not epochs" in line]
    assert bool(warned) == said
    if said:
        assert ("warmup_epochs=1 and interval=1 count iterations, not epochs: a refresh (a pass over all 16 images) "
                "after iteration 1" in warned[0])
        assert "an epoch of 16 images is 2 iterations at batch_size 8" in warned[0]
        assert "warmup_iters=" in warned[0]


def _pipeline(cfg, order):
    """The train pipeline's top-level steps in ``order`` (type names; a new name is a step without arguments)."""
    steps = {step["type"]: step for step in cfg.train_dataloader.dataset.pipeline}
    cfg.train_dataloader.dataset.pipeline = [steps.get(name, dict(type=name)) for name in order]


def _started(cfg, setup):
    """A Runner with its hook's before_train run (no iteration), and the hook."""
    runner = Runner.from_cfg(cfg)
    return runner, _before_train(runner)


def test_a_box_choice_before_the_image_is_loaded_refreshes(setup, coordinate_folder, tmp_path):
    # ChooseContrastiveBox needs only sample_idx; put first, it cut the refresh's loading steps off: training ran the
    # whole warm-up, then the refresh failed with KeyError('img') and stopped the run.
    cfg = _config(setup, coordinate_folder, tmp_path)
    _pipeline(cfg, ["ChooseContrastiveBox", "LoadImageFromFile", "MultiView", "PackInputs"])
    runner, hook = _started(cfg, setup)
    hook.refresh(runner)
    assert hook.store.version == 1 and hook.last_stats.images == 16


def test_a_random_step_between_the_box_choice_and_the_crop_is_refused(setup, coordinate_folder, tmp_path):
    # The refresh localized the unflipped image while the views were cut from the flipped one: a silent wrong crop.
    cfg = _config(setup, coordinate_folder, tmp_path)
    _pipeline(cfg, ["LoadImageFromFile", "ChooseContrastiveBox", "RandomFlip", "MultiView", "PackInputs"])
    cfg.train_dataloader.dataset.pipeline[2]["prob"] = 0.5
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"RandomFlip comes before ContrastiveCrop/ChooseContrastiveBox .*move "
                                         r"RandomFlip into the view pipeline, after ContrastiveCrop"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0


def _view_steps_before_the_crop(cfg, steps):
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    multiview["transforms"] = [[*steps, *multiview["transforms"][0]]]


def test_a_flip_before_the_crop_in_a_view_is_refused(setup, coordinate_folder, tmp_path):
    # Accepted before: boxes of the unflipped image cut the flipped half of the views, a silent wrong crop.
    cfg = _config(setup, coordinate_folder, tmp_path)
    _view_steps_before_the_crop(cfg, [dict(type="RandomFlip", prob=0.5)])
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"RandomFlip comes before ContrastiveCrop in a view pipeline .*boxes that do "
                                         r"not fit it; move RandomFlip after ContrastiveCrop"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0


def test_a_colour_change_before_the_crop_in_a_view_is_fine(setup, coordinate_folder, tmp_path):
    cfg = _config(setup, coordinate_folder, tmp_path)
    jitter = dict(type="ColorJitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    _view_steps_before_the_crop(cfg, [dict(type="RandomApply", transforms=[jitter], prob=0.8),
                                      dict(type="RandomGrayscale", prob=0.2, keep_channels=True)])
    _, hook = _started(cfg, setup)
    assert hook.store is not None


def test_a_box_choice_after_multiview_is_named_as_such(setup, coordinate_folder, tmp_path):
    # The refusal said "as a step of its own, not inside ChooseContrastiveBox": it named the step as its own wrapper.
    cfg = _config(setup, coordinate_folder, tmp_path)
    _pipeline(cfg, ["LoadImageFromFile", "MultiView", "ChooseContrastiveBox", "PackInputs"])
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"put dict\(type='ChooseContrastiveBox'\) before MultiView in the train "
                                         r"pipeline \(it comes after the step that cuts the views now\) \(or use"):
        runner.train()


def test_load_boxes_without_boxes_to_load_says_so(setup, coordinate_folder, tmp_path):
    # load_boxes=True with no load_from (or one saved without the hook) started the warm-up without a word.
    cfg = _config(setup, coordinate_folder, tmp_path, load_boxes=True)
    assert any("ContrastiveCropHook(load_boxes=True) found no boxes to load (no load_from, or its checkpoint was "
               "saved without ContrastiveCropHook): the warm-up starts afresh" in line
               for line in _logged_before_train(cfg, setup))


def _refused_before_training(cfg, message):
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=message):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran


def _torchvision(name, **options):
    """mmpretrain's wrapper of a torchvision transform, between the conversions it needs (torchvision takes PIL)."""
    return [dict(type="NumpyToPIL", to_rgb=True), dict(type=f"torchvision/{name}", **options),
            dict(type="PILToNumpy", to_bgr=True)]


@pytest.mark.parametrize("name, options", [("RandomHorizontalFlip", dict(p=0.5)), ("RandomRotation", dict(degrees=30)),
                                           ("RandAugment", {})])
def test_a_torchvision_geometric_step_before_the_crop_in_a_view_is_refused(setup, coordinate_folder, tmp_path, name,
                                                                           options):
    # mmpretrain's TorchVision wrapper (type TorchVisonTransformWrapper, the transform in .t) hid the flip from the
    # check: accepted, and half of the views were cut around the mirror image of their object's box, silently.
    cfg = _config(setup, coordinate_folder, tmp_path)
    _view_steps_before_the_crop(cfg, _torchvision(name, **options))
    _refused_before_training(cfg, rf"torchvision/{name} comes before ContrastiveCrop in a view pipeline .*boxes that "
                                  rf"do not fit it; move torchvision/{name} after ContrastiveCrop")


def test_a_torchvision_random_step_before_the_box_choice_is_refused(setup, coordinate_folder, tmp_path):
    # torchvision's ColorJitter is random without a Random* name, a prob or mmcv's mark (it draws with get_params): the
    # refresh localized jittered images. In a view, a colour change is fine.
    cfg = _config(setup, coordinate_folder, tmp_path)
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[1:1] = _torchvision("ColorJitter", brightness=0.4)
    _refused_before_training(cfg, r"torchvision/ColorJitter comes before ContrastiveCrop/ChooseContrastiveBox .*move "
                                  r"torchvision/ColorJitter into the view pipeline, after ContrastiveCrop")


@pytest.mark.parametrize("step", [dict(type="RandomResize", scale=(32, 32), ratio_range=(1.0, 2.0)),
                                  dict(type="RandomChoiceResize", scales=[(32, 32), (48, 48)])])
def test_a_random_whole_image_resize_before_multiview_says_to_put_it_before_the_crop(setup, coordinate_folder,
                                                                                      tmp_path, step):
    # The advice was "move RandomResize into the view pipeline, after ContrastiveCrop", where it resizes the view (the
    # views lose the crop's size); before ContrastiveCrop in the view it is accepted: a normalised box fits the image.
    cfg = _config(setup, coordinate_folder, tmp_path)
    cfg.train_dataloader.dataset.pipeline.insert(1, step)
    name = step["type"]
    _refused_before_training(cfg, rf"^{name} comes before ContrastiveCrop/ChooseContrastiveBox in "
                                  rf"train_dataloader.dataset.pipeline: .*images resized at random.*; move {name} into "
                                  rf"the view pipeline, before ContrastiveCrop \(resizing the whole image there leaves "
                                  rf"the normalised boxes right\)$")
    cfg.train_dataloader.dataset.pipeline.pop(1)
    _view_steps_before_the_crop(cfg, [step])  # where the advice puts it: it trains and refreshes
    runner, hook = _started(cfg, setup)
    hook.refresh(runner)
    assert hook.store.version == 1 and hook.last_stats.images == 16
    setup.stop_workers(runner)


@pytest.mark.parametrize("steps, name", [
    ([dict(type="CenterCrop", crop_size=24)], "CenterCrop"),
    ([dict(type="Pad", size=(40, 40))], "Pad"),
    (_torchvision("CenterCrop", size=24), "torchvision/CenterCrop"),
])
def test_a_fixed_crop_before_the_crop_in_a_view_is_refused(setup, coordinate_folder, tmp_path, steps, name):
    # Not random, so accepted before: the refresh made the boxes on the whole image (it reuses only the steps before
    # MultiView) and every view was cut from the centre crop around them, silently off by the crop's margin.
    cfg = _config(setup, coordinate_folder, tmp_path)
    _view_steps_before_the_crop(cfg, steps)
    _refused_before_training(cfg, rf"{name} comes before ContrastiveCrop in a view pipeline .*boxes that do not fit "
                                  rf"the image {name} made .*; move {name} before MultiView \(the refresh then sees it "
                                  r"too\) or after ContrastiveCrop")


@pytest.mark.parametrize("name", ["RandomResizedCrop", "torchvision/RandomResizedCrop"])
def test_a_random_resized_crop_left_after_the_crop_is_refused(setup, coordinate_folder, tmp_path, name):
    # ContrastiveCrop added but RandomResizedCrop kept after it: every view was a random crop of the box-aware crop.
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    crop, *rest = multiview["transforms"][0]
    again = _torchvision("RandomResizedCrop", size=32) if "/" in name else [dict(type=name, scale=32)]
    multiview["transforms"] = [[crop, *again, *rest]]
    _refused_before_training(cfg, rf"{name} comes after ContrastiveCrop in a view pipeline .*cut ContrastiveCrop's "
                                  rf"crop again .*remove {name}")


@pytest.mark.parametrize("where", ["view", "top"])
def test_a_random_resized_crop_left_before_the_crop_is_to_be_removed(setup, coordinate_folder, tmp_path, where):
    # Refused before as a random step, with the advice to move it after ContrastiveCrop, where it cuts the crop again.
    cfg = _config(setup, coordinate_folder, tmp_path)
    if where == "view":
        _view_steps_before_the_crop(cfg, [dict(type="RandomResizedCrop", scale=32)])
        said = r"RandomResizedCrop comes before ContrastiveCrop in a view pipeline .*boxes that do not fit it"
    else:
        cfg.train_dataloader.dataset.pipeline.insert(1, dict(type="RandomResizedCrop", scale=32))
        said = r"RandomResizedCrop comes before ContrastiveCrop/ChooseContrastiveBox .*the views are cut from"
    advice = r"; ContrastiveCrop replaces RandomResizedCrop and takes its arguments: remove RandomResizedCrop$"
    _refused_before_training(cfg, said + advice)


def test_loading_the_image_in_each_view_is_refused_before_training(setup, coordinate_folder, tmp_path):
    # LoadImageFromFile moved into the view pipeline (each view loads its image): the whole warm-up trained, then the
    # refresh, which loads with the top-level steps before MultiView, failed with KeyError('img') and stopped the run.
    cfg = _config(setup, coordinate_folder, tmp_path)
    pipeline = cfg.train_dataloader.dataset.pipeline
    cfg.train_dataloader.dataset.pipeline = [step for step in pipeline if step["type"] != "LoadImageFromFile"]
    _view_steps_before_the_crop(cfg, [dict(type="LoadImageFromFile")])
    _refused_before_training(cfg, r"LoadImageFromFile is inside MultiView in train_dataloader.dataset.pipeline, "
                                  r"and no step before MultiView loads the image: .*move LoadImageFromFile before "
                                  r"MultiView")


@pytest.mark.parametrize("second_view, warned", [("RandomResizedCrop", True), ("ContrastiveCrop", False)])
def test_a_view_pipeline_left_with_random_resized_crop_is_logged(setup, coordinate_folder, tmp_path, second_view,
                                                                 warned):
    # Two view pipelines, only the first converted: every pair had one view cut around no box, without a word.
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    crop, *rest = multiview["transforms"][0]
    other = dict(type="RandomResizedCrop", scale=32) if second_view == "RandomResizedCrop" else crop
    multiview.update(num_views=[1, 1], transforms=[[crop, *rest], [other, *rest]])
    said = [line for line in _logged_before_train(cfg, setup) if "ignore the boxes" in line]
    assert bool(said) == warned
    if warned:
        assert said[0].startswith("ContrastiveCrop: view pipeline 2 of MultiView (RandomResizedCrop) crops with "
                                  "RandomResizedCrop, not ContrastiveCrop, so those views ignore the boxes")


@pytest.mark.parametrize("other, name", [([dict(type="RandomResizedCrop", scale=32)], "RandomResizedCrop"),
                                         (_torchvision("RandomResizedCrop", size=32),
                                          "torchvision/RandomResizedCrop")])
def test_a_random_choice_branch_left_with_random_resized_crop_is_logged(setup, coordinate_folder, tmp_path, other,
                                                                        name):
    # RandomChoice between ContrastiveCrop and RandomResizedCrop in a view: the views of the second branch were cut
    # around no box without a word (only MultiView's view pipelines were judged, not a RandomChoice's branches).
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    crop, *rest = multiview["transforms"][0]
    multiview["transforms"] = [[dict(type="RandomChoice", transforms=[[crop], other]), *rest]]
    said = [line for line in _logged_before_train(cfg, setup) if "ignore the boxes" in line]
    assert said and said[0].startswith(f"ContrastiveCrop: branch 2 of RandomChoice ({name}) crops with "
                                       "RandomResizedCrop, not ContrastiveCrop, so those views ignore the boxes")


@pytest.mark.parametrize("wrapper", [dict(type="RandomApply", transforms=[dict(type="RandomResizedCrop", scale=32)],
                                          prob=0.5),
                                     dict(type="RandomChoice", transforms=[[dict(type="RandomResizedCrop", scale=32)],
                                                                           [dict(type="RandomFlip", prob=1.0)]])])
def test_a_random_resized_crop_inside_a_wrapper_after_the_crop_is_refused(setup, coordinate_folder, tmp_path,
                                                                          wrapper):
    # Inside RandomApply or a RandomChoice branch, it cuts ContrastiveCrop's crop again as surely as written plainly.
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    crop, *rest = multiview["transforms"][0]
    multiview["transforms"] = [[crop, wrapper, *rest]]
    _refused_before_training(cfg, r"RandomResizedCrop comes after ContrastiveCrop in a view pipeline .*cut "
                                  r"ContrastiveCrop's crop again .*remove RandomResizedCrop")


def test_steps_that_keep_the_boxes_right_are_accepted(setup, coordinate_folder, tmp_path):
    # RandomResize in a view was refused as 'geometric' (Resize was in the pattern), though scaling the whole image
    # keeps a normalised box in place. A fixed centre crop before MultiView is fine: the refresh reuses it.
    cfg = _config(setup, coordinate_folder, tmp_path)
    cfg.train_dataloader.dataset.pipeline[1:1] = [dict(type="CenterCrop", crop_size=28), *_torchvision("CenterCrop",
                                                                                                      size=24)]
    _view_steps_before_the_crop(cfg, [dict(type="Resize", scale=(48, 40)),
                                      dict(type="RandomResize", scale=(48, 48), ratio_range=(0.8, 1.25)),
                                      *_torchvision("ColorJitter", brightness=0.4)])
    runner, hook = _started(cfg, setup)
    hook.refresh(runner)
    assert hook.store.version == 1 and hook.last_stats.images == 16
    views = runner.train_dataloader.dataset[3]["inputs"]  # the real pipeline, with the refreshed boxes
    assert [tuple(view.shape) for view in views] == [(3, 32, 32)] * 2


@pytest.mark.parametrize("prob, warned", [(0.5, True), (1.0, False)])
def test_a_contrastive_crop_inside_random_apply_is_logged(setup, coordinate_folder, tmp_path, prob, warned):
    # RandomApply(prob=0.5) around ContrastiveCrop: half the views were the whole image, not a crop around the box,
    # without a word (images of the crop's size stack with the cut views).
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    crop, *rest = multiview["transforms"][0]
    multiview["transforms"] = [[dict(type="RandomApply", transforms=[crop], prob=prob), *rest]]
    said = [line for line in _logged_before_train(cfg, setup) if "RandomApply" in line]
    assert len(said) == int(warned)
    if warned:
        assert said[0].startswith("ContrastiveCrop: ContrastiveCrop (in MultiView > Compose > RandomApply, prob=0.5) "
                                  "is skipped in 50% of the draws, so those views are the whole image, not a crop "
                                  "around the box; ")
        assert said[0].endswith("put ContrastiveCrop outside RandomApply (as its own step of the view pipeline; "
                                "RandomApply may keep the other steps)")


@pytest.mark.parametrize("view_steps", [[dict(type="RandomFlip", prob=0.5)], [dict(type="Resize", scale=32)]],
                         ids=["flip", "resize"])
def test_a_crop_after_multiview_is_refused_before_training(setup, coordinate_folder, tmp_path, view_steps):
    # It got MultiView's list of views: with a flip in the views the refusal blamed the flip ("move RandomFlip into
    # the view pipeline", where it was); with a resize only, the first batch failed in a DataLoader worker.
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")
    crop = multiview["transforms"][0][0]
    multiview["transforms"] = [view_steps]
    _pipeline(cfg, ["LoadImageFromFile", "ChooseContrastiveBox", "MultiView", "PackInputs"])
    cfg.train_dataloader.dataset.pipeline.insert(3, crop)
    _refused_before_training(cfg, r"^ContrastiveCrop comes after MultiView in train_dataloader.dataset.pipeline: "
                                  r"MultiView has made the list of views by then, and ContrastiveCrop cuts one image; "
                                  r"put it inside the view pipeline of MultiView \(transforms=\[\[dict\(type="
                                  r"'ContrastiveCrop', \.\.\.\), \.\.\.\]\]\) in place of RandomResizedCrop$")


@pytest.mark.parametrize("priority, warned", [("LOWEST", True), ("NORMAL", False)])
def test_a_hook_that_runs_after_the_checkpoint_hook_is_logged(setup, coordinate_folder, tmp_path, priority, warned):
    # priority='LOWEST' (mmengine takes it from the hook's dict): each checkpoint was saved before its step's refresh,
    # so it held the boxes one refresh behind, without a word.
    cfg = _config(setup, coordinate_folder, tmp_path, priority=priority)
    said = [line for line in _logged_before_train(cfg, setup) if "runs after CheckpointHook" in line]
    assert said == ([f"ContrastiveCropHook(priority='{priority}') runs after CheckpointHook (priority='VERY_LOW'), so "
                     "each checkpoint is saved before its step's refresh and holds the boxes one refresh behind (a "
                     "resume from it refreshes again first); leave the hook's priority at 'NORMAL', or any above "
                     "CheckpointHook's"] if warned else [])


def test_a_loader_without_a_batch_is_refused_before_training(setup, coordinate_folder, tmp_path):
    # 16 images at batch_size 32 with drop_last=True: every epoch ran 0 iterations and the refresh localized with
    # the untrained model, silently.
    cfg = _config(setup, coordinate_folder, tmp_path)
    cfg.train_dataloader.batch_size, cfg.train_dataloader.drop_last = 32, True
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"the train dataset holds 16 images, fewer than train_dataloader's batch_size "
                                         r"32 with drop_last=True: every epoch would have 0 iterations"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0

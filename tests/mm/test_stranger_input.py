"""A stranger's config and images: each bad input is a clear error naming it (or a documented fallback),
not an mmcv / OpenCV / torch error from a DataLoader worker or the first refresh after the warm-up."""

from __future__ import annotations

from pathlib import Path

import itertools
import re
import uuid

import numpy as np
import pytest
import torch
from mmengine.registry import TRANSFORMS, DefaultScope


_SCOPES = itertools.count()


def _mmpretrain_scope():
    """A new current default scope 'mmpretrain' (mmengine makes the latest *created* instance current)."""
    DefaultScope.get_instance(f"stranger_{uuid.uuid4().hex}_{next(_SCOPES)}", scope_name="mmpretrain")


def _crop(**options):
    _mmpretrain_scope()
    return TRANSFORMS.build(dict(type="ContrastiveCrop", scale=16, **options))


def _image(dtype="uint8", channels=3):
    shape = (20, 24) if channels is None else (20, 24, channels)
    return np.random.default_rng(0).integers(0, 200, shape).astype(dtype)


def test_an_interpolation_the_pillow_backend_lacks_is_refused_when_built():
    # was KeyError: 'area' from mmcv.imresize at the first crop, in a DataLoader worker
    with pytest.raises(ValueError, match=r"interpolation 'area' is not one of backend 'pillow' "
                                         r"\(nearest, bilinear, bicubic, lanczos\); use backend='cv2'"):
        _crop(backend="pillow", interpolation="area")
    assert _crop(backend="cv2", interpolation="area")({"img": _image(), "sample_idx": 0})["img"].shape == (16, 16, 3)


@pytest.mark.parametrize(
    "backend, dtype, channels, message",
    [
        ("pillow", "float32", 3, r"got float32 \(20, 24, 3\); backend 'pillow' resizes uint8 of up to 4 channels "
                                 r"\(use backend='cv2'\)"),
        ("pillow", "uint16", 3, r"got uint16 .*backend 'pillow' resizes uint8"),
        ("pillow", "uint8", 5, r"got uint8 \(20, 24, 5\); backend 'pillow' resizes uint8 of up to 4 channels"),
        ("cv2", "bool", 3, r"got bool .*backend 'cv2' resizes uint8, uint16, int16, float32, float64 \(convert it"),
        ("cv2", "int64", 3, r"got int64"),  # nearest made int32 of it, silently; bilinear: an OpenCV assertion
        ("cv2", "float16", None, r"got float16"),
    ],
)
def test_an_image_the_resize_backend_cannot_take_is_named(backend, dtype, channels, message):
    # was mmcv's "AssertionError: Pillow backend only support uint8 type" / "Cannot handle this data type" or
    # OpenCV's "(-215:Assertion failed) func != 0 in function 'resize'", from a DataLoader worker
    crop = _crop(backend=backend, interpolation="nearest")
    with pytest.raises(TypeError, match=r"ContrastiveCrop \(PretrainContrastiveCrop\) needs .*; " + message):
        crop({"img": _image(dtype, channels), "sample_idx": 0})


def test_an_empty_image_is_named():
    # was the core's "image_size must be a positive (height, width); got (0, 24)", a name the config does not use
    with pytest.raises(TypeError, match=r"got an array of shape \(0, 24, 3\) \(an empty image\)"):
        _crop()({"img": _image()[:0], "sample_idx": 0})


@pytest.mark.parametrize("backend", ["cv2", "pillow"])
@pytest.mark.parametrize("dtype, channels", [("uint8", None), ("uint8", 1), ("uint8", 4), ("uint16", 3),
                                             ("float32", 3)])
def test_images_the_loaders_make_are_cropped_alike_by_both_backends(backend, dtype, channels):
    # grayscale (2-D, or (H, W, 1)), RGBA, 16-bit ('unchanged'), to_float32; (H, W, 1) failed under pillow
    if backend == "pillow" and dtype != "uint8":
        return
    out = _crop(backend=backend)({"img": _image(dtype, channels), "sample_idx": 0})["img"]
    assert out.dtype == np.dtype(dtype) and out.shape == (16, 16) + ((channels,) if channels not in (None, 1) else ())


def test_a_second_contrastive_crop_on_one_view_is_refused():
    # was a silent wrong crop: the second placed its crop inside the first's with the boxes of the whole image
    from mmcv.transforms import Compose

    crop = dict(type="ContrastiveCrop", scale=16, crop_ratio_range=(0.5, 1.0))
    _mmpretrain_scope()
    twice = Compose([crop, dict(type="RandomFlip", prob=0.5), crop])
    with pytest.raises(ValueError, match=r"got an image a ContrastiveCrop has already cut: one view pipeline .*holds "
                                         r"two.*Keep one ContrastiveCrop per view"):
        twice({"img": _image(), "sample_idx": 0})
    views = TRANSFORMS.build(dict(type="MultiView", num_views=[1, 1], transforms=[[crop], [dict(crop, scale=8)]]))
    assert [v.shape for v in views({"img": _image(), "sample_idx": 0})["img"]] == [(16, 16, 3), (8, 8, 3)]


def test_the_refresh_reads_rgba_images_as_the_data_preprocessor_does():
    # LoadImageFromFile(color_type='unchanged') of RGBA PNGs: training runs (the preprocessor's channels [2, 1, 0]
    # drop the alpha); the refresh failed after the whole warm-up with torch's "The size of tensor a (4) must match
    # the size of tensor b (3)"
    import torch
    from mmpretrain.models import SelfSupDataPreprocessor

    from ccrop_mm.extraction import Normaliser

    preprocessor = SelfSupDataPreprocessor(mean=[120.0, 110.0, 100.0], std=[50.0, 60.0, 70.0], to_rgb=True)
    rgba = torch.from_numpy(_image(channels=4)).permute(2, 0, 1)[None].contiguous()
    trained_on = preprocessor({"inputs": [rgba], "data_samples": None})["inputs"][0]
    assert torch.allclose(Normaliser(preprocessor)(rgba, torch.device("cpu")), trained_on)


@pytest.mark.parametrize("stage, error, message", [
    ("neck", RuntimeError, r"stages \['neck'\] were not run by the forward of SimCLR; .* \(the refresh runs the "
                           r"model's feature forward, its online backbone: the neck, the head and a momentum copy such "
                           r"as MoCo's encoder_k or BYOL's target_net never run; docs/mmpretrain\.md\)$"),
    ("backbone.layer4.1.conv2.weight", ValueError, r"unknown stage"),  # a parameter, not a module (already named)
])
def test_a_stage_the_refresh_forward_never_runs_fails_before_training(setup, coordinate_folder, tmp_path, stage, error,
                                                                       message):
    # 'neck' (or 'head', 'data_preprocessor') was accepted, then the first refresh after the whole warm-up failed
    from mmengine.runner import Runner

    cfg = setup.small_config("mmpretrain", coordinate_folder, tmp_path, feature_stages=stage)
    cfg.experiment_name = f"stage_{tmp_path.name}"  # else two Runners of one second share mmengine's instances
    cfg.train_dataloader.num_workers, cfg.train_dataloader.persistent_workers = 0, False
    runner = Runner.from_cfg(cfg)
    with pytest.raises(error, match=message):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran


def test_max_boxes_given_twice_must_agree():
    # localizer_options=dict(max_boxes=8) with the default max_boxes=4: the localizer made 8 boxes and the store of 4
    # kept the first 4 of each set, silently
    from mmengine.registry import HOOKS

    with pytest.raises(ValueError, match=r"ContrastiveCropHook: max_boxes=4 and localizer_options max_boxes=8 "
                                         r"disagree; give max_boxes once, as the hook's own argument"):
        HOOKS.build(dict(type="ContrastiveCropHook", localizer="components", localizer_options=dict(max_boxes=8)))
    hook = HOOKS.build(dict(type="ContrastiveCropHook", localizer="components", max_boxes=8,
                            localizer_options=dict(max_boxes=8)))
    assert hook.max_boxes == 8



def test_a_threshold_given_twice_must_agree():
    # Before: the localizer_options threshold won and the hook's own was dropped, without a word. The hook's default
    # is None (the localizer's own), so a threshold given once, in localizer_options, is taken.
    from mmengine.registry import HOOKS

    with pytest.raises(ValueError, match=r"ContrastiveCropHook: threshold='otsu' and localizer_options "
                                         r"threshold=0.3 disagree; give the threshold once"):
        HOOKS.build(dict(type="ContrastiveCropHook", localizer="components", threshold="otsu",
                         localizer_options=dict(threshold=0.3)))
    for threshold in ("otsu", None):
        hook = HOOKS.build(dict(type="ContrastiveCropHook", localizer="components", threshold=threshold,
                                localizer_options=dict(threshold="otsu")))
        assert hook.localizer.threshold == "otsu"


def test_a_plugin_localizer_without_threshold_or_max_boxes_is_built(registered_sized_box):
    # docs/plugins.md: dict(type='ContrastiveCropHook', localizer='peak'). Before: "ContrastiveCropHook: localizer
    # 'sized_box' ... does not accept options ['max_boxes', 'threshold']; accepted: size" (both were always passed).
    from mmengine.registry import HOOKS

    with registered_sized_box():
        hook = HOOKS.build(dict(type="ContrastiveCropHook", localizer="sized_box", localizer_options=dict(size=0.4)))
        boxes = hook.localizer(torch.rand(2, 8, 8)).boxes[:, 0]
        assert torch.allclose(boxes, torch.tensor([0.3, 0.3, 0.7, 0.7]).expand(2, 4)) and hook.max_boxes == 4


def test_numpy_integer_counts_are_taken_as_ints():
    # max_boxes, batch_size and num_workers of np.int64 were refused as "must be an int ...; got 4", naming a value
    # that looks allowed (warmup_epochs, interval and the crop's sizes took them).
    from mmengine.registry import HOOKS

    hook = HOOKS.build(dict(type="ContrastiveCropHook", localizer="components", max_boxes=np.int64(3),
                            batch_size=np.int64(8), num_workers=np.int32(0)))
    assert (hook.max_boxes, hook.batch_size, hook.num_workers) == (3, 8, 0)
    assert all(type(value) is int for value in (hook.max_boxes, hook.batch_size, hook.num_workers))
    with pytest.raises(ValueError, match=r"max_boxes must be an int in \[1, 127\]; got (np\.)?True_?$"):
        HOOKS.build(dict(type="ContrastiveCropHook", localizer="components", max_boxes=np.bool_(True)))


@pytest.mark.parametrize("stages, problem", [("", "an empty module name"), ((1, 1), "1 twice"),
                                             (["layer2", "layer2"], "'layer2' twice")])
def test_an_empty_or_repeated_stage_is_refused_when_the_hook_is_built(stages, problem):
    # Built, then refused in before_train by the core's bare "stage names must be unique; got ['layer2', 'layer2']"
    # (for (1, 1): names the user never wrote) or "a stage name must be a non-empty dotted module name".
    from mmengine.registry import HOOKS

    with pytest.raises(ValueError, match=rf"^ContrastiveCropHook: feature_stages={re.escape(repr(stages))} holds "
                                         rf"{re.escape(problem)}; name each stage once"):
        HOOKS.build(dict(type="ContrastiveCropHook", feature_stages=stages))


def test_a_crop_range_in_percent_is_refused_when_built():
    # Before: built; every draw fell back to the whole image (an area above the image's), the boxes ignored.
    with pytest.raises(ValueError, match=r"scale must be at most 1 with scale_reference='image': .*\(in percent\? "
                                         r"\(8, 100\) is \(0\.08, 1\.0\)\); got \(8\.0, 100\.0\) \(in the core's "
                                         r"words: crop_ratio_range is its scale"):
        _crop(crop_ratio_range=(8, 100))


def test_a_crop_given_multiviews_list_says_where_it_belongs():
    # Was "got builtins.list; a step before it changed the image's type".
    with pytest.raises(TypeError, match=r"got a list \(MultiView's views\?\): put ContrastiveCrop inside MultiView's "
                                        r"view pipeline, in place of RandomResizedCrop"):
        _crop()(dict(img=[_image(), _image()], sample_idx=0))


@pytest.mark.parametrize("index", ["0", 0.0, True])
def test_a_box_index_that_is_no_int_is_named(index):
    # '0' was "'<' not supported between instances of 'str' and 'int'" (None too: now no choice, as the key absent);
    # 0.0 and True were taken
    with pytest.raises(TypeError, match=r"results\['ccrop_box_index'\] must be the int ChooseContrastiveBox writes "
                                        r"\(-1: no boxes yet\); got "):
        _crop()(dict(img=_image(), sample_idx=0, ccrop_box_index=index))
    assert _crop()(dict(img=_image(), sample_idx=0, ccrop_box_index=np.int64(-1)))["img"].shape == (16, 16, 3)

def test_a_crop_after_pack_inputs_says_so():
    # was "...got no 'img' key (keys: data_samples, inputs); put LoadImageFromFile before it", though it was there
    from mmcv.transforms import Compose

    _mmpretrain_scope()
    packed_first = Compose([dict(type="PackInputs"), dict(type="ContrastiveCrop", scale=16)])
    with pytest.raises(TypeError, match=r"got no 'img' key \(keys: data_samples, inputs\); PackInputs came before "
                                        r"it: put ContrastiveCrop before PackInputs"):
        packed_first({"img": _image(), "sample_idx": 0})


def test_a_refresh_on_nan_features_names_them(setup, coordinate_folder, tmp_path):
    # documented fallback: every box the whole image; the log named neither NaN nor the model, only
    # "no heatmap had contrast or a cell above the threshold; check the stage, the heatmap rule and the threshold"
    from mmengine.registry import MODELS
    from mmengine.runner import Runner
    from mmpretrain.models import ResNet_CIFAR

    @MODELS.register_module(force=True)
    class NaNResNetCIFAR(ResNet_CIFAR):
        def forward(self, x):
            return tuple(out * float("nan") for out in super().forward(x))

    cfg = setup.small_config("mmpretrain", coordinate_folder, tmp_path)
    cfg.model.backbone.type = "NaNResNetCIFAR"
    cfg.experiment_name = f"nan_features_{tmp_path.name}"  # mmengine reuses the logger (and file) of a same name
    cfg.train_dataloader.num_workers, cfg.train_dataloader.persistent_workers = 0, False
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = setup.ccrop_hook(runner)
    assert hook.last_stats.fallback_fraction == 1.0 and hook.store.version == 1
    log = Path(runner.logger.log_file).read_text()
    assert ("the features of 16 of the 16 images this pass localized hold NaN or inf (a diverged model?" in log
            and "their boxes are the whole image" in log)


def test_arguments_to_the_box_choice_say_whose_options_they_are():
    # was Python's "ChooseContrastiveBox() takes no arguments"
    with pytest.raises(TypeError, match=r"ChooseContrastiveBox takes no arguments; got \['max_boxes'\] \(the boxes "
                                        r"are made by ContrastiveCropHook: give max_boxes, localizer"):
        TRANSFORMS.build(dict(type="ChooseContrastiveBox", max_boxes=2))
    assert TRANSFORMS.build(dict(type="ChooseContrastiveBox"))({"sample_idx": 0})["ccrop_box_index"] == -1


def test_an_image_the_loader_ignores_is_a_blank_image_to_the_refresh(setup, object_folder, tmp_path):
    # LoadImageFromFile(ignore_empty=True) and a listed file that is missing: training draws another sample, and the
    # refresh after the warm-up stopped the run with "the pipeline head dropped .../missing.png (sample 15)" (again
    # on every resume)
    from mmengine.runner import Runner

    listing = tmp_path / "images.txt"
    listing.write_text("".join(f"a/{i:02d}.png 0\n" for i in range(15)) + "a/missing.png 0\n")
    cfg = setup.small_config("mmpretrain", object_folder, tmp_path)
    cfg.experiment_name = f"ignore_empty_{tmp_path.name}"
    cfg.train_dataloader.dataset.ann_file = str(listing)
    cfg.train_dataloader.dataset.pipeline[0]["ignore_empty"] = True
    cfg.train_dataloader.num_workers, cfg.train_dataloader.persistent_workers = 0, False
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = setup.ccrop_hook(runner)
    assert runner.iter == 4 and hook.store.version == 1 and hook.last_stats.images == 16
    assert "the pipeline head dropped" in Path(runner.logger.log_file).read_text()


@pytest.mark.parametrize("where", ["RandomApply", "MultiView", "Compose"])
def test_a_wrapped_box_choice_is_named(setup, coordinate_folder, tmp_path, where):
    # was "put dict(type='ChooseContrastiveBox') before MultiView", though the config had it (wrapped); a Compose
    # before MultiView runs once per sample, so its reason is another (it said "each view chooses its own box")
    from mmengine.runner import Runner

    cfg = setup.small_config("mmpretrain", coordinate_folder, tmp_path)
    cfg.experiment_name = f"wrapped_choice_{tmp_path.name}"
    pipeline = cfg.train_dataloader.dataset.pipeline
    choice = pipeline.pop(1)
    if where == "RandomApply":
        pipeline.insert(1, dict(type="RandomApply", transforms=[choice], prob=0.5))
    elif where == "Compose":
        pipeline.insert(1, dict(type="Compose", transforms=[choice]))
    else:
        next(s for s in pipeline if s["type"] == "MultiView")["transforms"][0].insert(0, choice)
    why = ("the hook looks for it among the pipeline's own steps" if where == "Compose"
           else "there each view chooses its own box, or some samples none")
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=rf"before MultiView in the train pipeline as a step of its own, not inside "
                                         rf"{where} \({why}\)"):
        runner.train()


def test_the_hook_prints_its_settings():
    # It printed as <ccrop_mm.hook.ContrastiveCropHook object at 0x...>.
    from ccrop_mm import ContrastiveCropHook

    assert repr(ContrastiveCropHook(warmup_epochs=1, interval=2)) == (
        "ContrastiveCropHook(RefreshSchedule(warmup=1, interval=2, total=None), localizer='bbox', max_boxes=1, "
        "heatmap='channel_sum', feature_stages=None, store=None)")

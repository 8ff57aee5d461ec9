"""The pipeline steps on their own: scope-dependent arguments, warm-up = RandomResizedCrop, boxes, pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.registry import TRANSFORMS, DefaultScope
from scipy import stats

from ccrop_mm import ChooseContrastiveBox, PretrainContrastiveCrop, SelfSupContrastiveCrop
from ccrop_plugins import BoxSets, BoxStore


def _image():
    rows = np.arange(32)[:, None].repeat(32, 1) * 8 + 4
    cols = np.arange(32)[None, :].repeat(32, 0) * 8 + 4
    return np.stack([np.full((32, 32), 128), cols, rows], -1).astype(np.uint8)


def _decode(img):
    rows, cols = (img[..., 2].astype(int) - 4) // 8, (img[..., 1].astype(int) - 4) // 8
    return rows.min(), cols.min(), rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def _scope(name):
    return DefaultScope.get_instance(f"test_scope_{name}_{np.random.randint(1 << 30)}", scope_name=name)


def test_contrastive_crop_takes_the_arguments_of_the_scope():
    _scope("mmselfsup")
    crop = TRANSFORMS.build(dict(type="ContrastiveCrop", size=24, scale=(0.2, 1.0), ratio=(0.5, 2.0)))
    assert isinstance(crop, SelfSupContrastiveCrop) and crop.size == (24, 24) and crop.crop.ratio == (0.5, 2.0)
    with pytest.raises(TypeError, match=r"default scope 'mmselfsup'.*size, scale, ratio"):
        TRANSFORMS.build(dict(type="ContrastiveCrop", scale=24, crop_ratio_range=(0.2, 1.0)))
    _scope("mmpretrain")
    crop = TRANSFORMS.build(dict(type="ContrastiveCrop", scale=(24, 16), crop_ratio_range=(0.2, 1.0)))
    assert isinstance(crop, PretrainContrastiveCrop) and crop.size == (24, 16)
    out = crop({"img": _image(), "sample_idx": 0})
    assert out["img"].shape == (24, 16, 3) and out["img_shape"] == (24, 16, 3)


def test_warm_up_crops_follow_the_frameworks_random_resized_crop():
    _scope("mmpretrain")
    ours = TRANSFORMS.build(
        dict(type="ContrastiveCrop", scale=32, crop_ratio_range=(0.2, 1.0), interpolation="nearest")
    )
    theirs = TRANSFORMS.build(
        dict(type="RandomResizedCrop", scale=32, crop_ratio_range=(0.2, 1.0), interpolation="nearest")
    )
    torch.manual_seed(0)
    np.random.seed(0)
    a = np.array([_decode(ours({"img": _image(), "sample_idx": 0})["img"]) for _ in range(600)])
    b = np.array([_decode(theirs({"img": _image()})["img"]) for _ in range(600)])
    for column, name in enumerate(("top", "left", "height", "width")):
        assert stats.ks_2samp(a[:, column], b[:, column]).pvalue > 1e-3, name


def test_chosen_box_is_shared_by_every_view_and_crops_stay_on_it():
    _scope("mmpretrain")
    store = BoxStore(2, max_boxes=2)
    boxes = torch.tensor([[[0.0, 0.0, 0.25, 0.25], [0.75, 0.75, 1.0, 1.0]]] * 2)
    store.update([0, 1], BoxSets(boxes, torch.ones(2, 2), torch.tensor([2, 2]), torch.zeros(2, dtype=torch.bool)))
    chooser = ChooseContrastiveBox()
    crop = TRANSFORMS.build(dict(type="ContrastiveCrop", scale=32, crop_ratio_range=(0.05, 0.1),
                                 interpolation="nearest", alpha=0.5))
    chooser.attach_store(store)
    crop.attach_store(store)
    torch.manual_seed(1)
    corners = []
    for _ in range(40):
        results = chooser({"img": _image(), "sample_idx": 1})
        chosen = boxes[1, results["ccrop_box_index"]]
        centres = []
        for _ in range(2):  # two views from copies of the same results, as MultiView does
            top, left, h, w = _decode(crop(dict(results))["img"])
            centres.append((top + h / 2, left + w / 2))
        near_origin = chosen[0] == 0.0
        for cy, cx in centres:  # centre on the chosen box (crops of <= 12 px: clamping cannot move it off)
            assert (cy <= 8 + 1 and cx <= 8 + 1) if near_origin else (cy >= 24 - 1 and cx >= 24 - 1)
        corners.append(bool(near_origin))
    assert 0 < sum(corners) < 40  # both boxes get chosen


def test_missing_sample_idx_is_named():
    _scope("mmpretrain")
    crop = TRANSFORMS.build(dict(type="ContrastiveCrop", scale=32))
    crop.attach_store(BoxStore(1))
    with pytest.raises(ValueError, match=r"needs results\['sample_idx'\]"):
        crop({"img": _image()})


@pytest.mark.parametrize(
    "scope, arguments, accepted",
    [
        # mmselfsup-style arguments under the mmpretrain scope (was: "got multiple values for argument 'size'")
        ("mmpretrain", dict(size=32, scale=(0.2, 1.0), ratio=(0.75, 1.33)),
         r"unexpected arguments \['ratio', 'size'\]"),
        # antialias is a torchvision option; mmcv.imresize has none (was: silently ignored)
        ("mmpretrain", dict(scale=32, antialias=False), r"unexpected arguments \['antialias'\]"),
        ("mmselfsup", dict(size=32, crop_ratio_range=(0.2, 1.0)), r"unexpected arguments \['crop_ratio_range'\]"),
    ],
)
def test_arguments_of_the_other_flavour_name_the_accepted_ones(scope, arguments, accepted):
    _scope(scope)
    with pytest.raises(TypeError, match=accepted) as error:
        TRANSFORMS.build(dict(type="ContrastiveCrop", **arguments))
    names = "scale, crop_ratio_range, aspect_ratio_range" if scope == "mmpretrain" else "size, scale, ratio"
    assert f"takes {names}, max_attempts, interpolation, backend, alpha, sampler, scale_reference" in str(error.value)
    assert f"default scope {scope!r}" in str(error.value)


def test_a_misspelt_argument_is_a_type_error_listing_the_accepted_ones():
    _scope("mmpretrain")
    with pytest.raises(TypeError,
                       match=r"does not know, \['alhpa'\], to sampler 'beta'.*PretrainContrastiveCrop takes scale"):
        TRANSFORMS.build(dict(type="ContrastiveCrop", scale=32, alhpa=0.5))
    crop = TRANSFORMS.build(dict(type="ContrastiveCrop", scale=32, sampler="gaussian", sigma=0.3))  # a real option
    assert crop.crop.sampler.sigma == 0.3


def test_bad_values_name_this_flavours_argument():
    _scope("mmpretrain")
    with pytest.raises((TypeError, ValueError), match=r"scale must be a positive int"):
        TRANSFORMS.build(dict(type="ContrastiveCrop", scale=8.7))
    with pytest.raises(ValueError, match=r"crop_ratio_range is its scale"):
        TRANSFORMS.build(dict(type="ContrastiveCrop", scale=32, crop_ratio_range=(0.0, 1.0)))
    # the output size's error said "(in the core's words: crop_ratio_range is its scale, ...)": another scale
    with pytest.raises(ValueError, match=r"scale must be a positive int or \(height, width\); got 0$"):
        TRANSFORMS.build(dict(type="ContrastiveCrop", scale=0))
    with pytest.raises(ValueError, match=r"unknown scale_reference 'boxx'; available: image, box$"):
        TRANSFORMS.build(dict(type="ContrastiveCrop", scale=32, scale_reference="boxx"))


@pytest.mark.parametrize("arguments", [dict(crop_ratio_range=0.5), dict(crop_ratio_range="0.2,1"),
                                       dict(aspect_ratio_range=1.0)])
def test_a_range_given_as_one_value_names_this_flavours_argument(arguments):
    # A number or a text where a (low, high) pair goes is the core's TypeError; it said "scale must be an increasing
    # pair" without the mapping, which under mmpretrain reads as the output size (scale=32, which was right).
    _scope("mmpretrain")
    with pytest.raises(TypeError, match=r"must be an increasing pair .*\(in the core's words: crop_ratio_range is its "
                                        r"scale, aspect_ratio_range its ratio\)"):
        TRANSFORMS.build(dict(type="ContrastiveCrop", scale=32, **arguments))


def test_a_crop_without_a_hook_warns_once(monkeypatch):
    from ccrop_mm.transforms import StoreUser

    monkeypatch.setattr(StoreUser, "_warned_no_store", False)
    _scope("mmpretrain")
    crop = TRANSFORMS.build(dict(type="ContrastiveCrop", scale=16))
    with pytest.warns(UserWarning,
                      match=r"no ContrastiveCropHook is attached.*RandomResizedCrop crop for the whole run"):
        crop({"img": _image(), "sample_idx": 0})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crop({"img": _image(), "sample_idx": 0})  # once per process


def test_chosen_index_means_warm_up_before_boxes_and_stays_inside_a_shorter_set():
    _scope("mmpretrain")
    store = BoxStore(1, max_boxes=2)
    crop = TRANSFORMS.build(
        dict(type="ContrastiveCrop", scale=32, crop_ratio_range=(0.05, 0.1), interpolation="nearest")
    )
    crop.attach_store(store)
    store.update([0], BoxSets(torch.tensor([[[0.75, 0.75, 1.0, 1.0], [0.75, 0.75, 1.0, 1.0]]]), torch.ones(1, 2),
                              torch.tensor([1]), torch.zeros(1, dtype=torch.bool)))
    torch.manual_seed(0)
    # index 1 chosen before a refresh that left one box: the crop uses the last box of the set
    centres = [_decode(crop({"img": _image(), "sample_idx": 0, "ccrop_box_index": 1})["img"]) for _ in range(20)]
    assert all(top + h / 2 >= 23 and left + w / 2 >= 23 for top, left, h, w in centres)
    # chosen in warm-up (-1): every view stays a RandomResizedCrop crop even if boxes arrived since
    centres = [_decode(crop({"img": _image(), "sample_idx": 0, "ccrop_box_index": -1})["img"]) for _ in range(40)]
    assert any(top + h / 2 < 16 for top, left, h, w in centres)


def test_a_pipeline_without_an_image_array_is_named(tmp_path):
    # were KeyError: 'img' (no LoadImageFromFile) and AttributeError: 'Image' object has no attribute 'shape'
    # (an mmpretrain NumpyToPIL before the crop), from a DataLoader worker
    from mmcv.transforms import Compose
    from PIL import Image

    Image.fromarray(_image()).save(tmp_path / "a.png")
    _scope("mmpretrain")
    crop = dict(type="ContrastiveCrop", scale=16)
    without_loading = Compose([crop])
    with pytest.raises(TypeError, match=r"needs results\['img'\] as a numpy array .*got no 'img' key "
                                        r"\(keys: img_path, sample_idx\); put LoadImageFromFile before it"):
        without_loading({"img_path": str(tmp_path / "a.png"), "sample_idx": 0})
    as_pil = Compose([dict(type="LoadImageFromFile"), dict(type="NumpyToPIL", to_rgb=True), crop])
    with pytest.raises(TypeError, match=r"got PIL.Image.Image; a step before it changed the image's type"):
        as_pil({"img_path": str(tmp_path / "a.png"), "sample_idx": 0})
    loaded = Compose([dict(type="LoadImageFromFile"), crop])({"img_path": str(tmp_path / "a.png"), "sample_idx": 0})
    assert loaded["img"].shape == (16, 16, 3)

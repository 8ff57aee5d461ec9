"""The ContrastiveCrop views: lightly's arguments and defaults, lightly's exact warm-up views, pair consistency."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pytest
import torch
from lightly.transforms import MoCoV2Transform, SimCLRTransform, SimCLRViewTransform
from PIL import Image
from scipy.stats import binomtest
from torchvision import transforms as transforms_v1
from torchvision.transforms import v2 as T

from ccrop_lightly import (
    CCropMoCoV2Transform,
    CCropMultiViewTransform,
    CCropSimCLRTransform,
    CCropSimCLRViewTransform,
    CCropViewTransform,
    to_rgb,
)
from ccrop_plugins import ContrastiveCrop

EXTRA = {"alpha": None, "sampler": "beta", "scale_reference": "image", "max_scale": 1.0}


def _defaults(cls) -> dict:
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (CCropSimCLRTransform, SimCLRTransform),
        (CCropSimCLRViewTransform, SimCLRViewTransform),
        (CCropMoCoV2Transform, MoCoV2Transform),
    ],
)
def test_same_arguments_and_defaults_as_lightly_plus_ccrop_options(ours, theirs):
    # lightly 1.5 still has the deprecated kernel_size (superseded by sigmas, gone in 1.6).
    lightly_arguments = {k: v for k, v in _defaults(theirs).items() if k != "kernel_size"}
    assert _defaults(ours) == {**lightly_arguments, **EXTRA}


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@pytest.mark.parametrize(
    "ours, theirs", [(CCropSimCLRTransform, SimCLRTransform), (CCropMoCoV2Transform, MoCoV2Transform)]
)
def test_without_boxes_the_views_equal_lightlys_for_equal_seeds(ours, theirs):
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (48, 40, 3), dtype=np.uint8))
    ours, theirs = ours(input_size=32), theirs(input_size=32)
    for seed in range(10):
        _seed(seed)
        expected = theirs(image)
        _seed(seed)
        got = ours(image)
        assert len(got) == 2 and all(torch.equal(a, b) for a, b in zip(got, expected)), seed


def _two_region_image() -> Image.Image:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:, :32, 0] = 255  # left half red
    image[:, 32:, 2] = 255  # right half blue
    return Image.fromarray(image)


def test_all_views_of_a_sample_crop_around_the_same_box():
    crop = ContrastiveCrop(16, scale=(0.3, 0.6), scale_reference="box", alpha=0.1)
    views = CCropMultiViewTransform(
        [CCropViewTransform(crop, T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)]))] * 3
    )
    boxes = torch.tensor([[0.05, 0.3, 0.35, 0.7], [0.65, 0.3, 0.95, 0.7]])  # one in each half
    image = _two_region_image()
    torch.manual_seed(0)
    chose_left = 0
    for _ in range(200):
        red = [float((v[0] > 0.5).float().mean()) > 0.5 for v in views(image, boxes, torch.tensor([1.0, 1.0]))]
        assert len(set(red)) == 1, "views of one sample cropped different boxes"
        chose_left += red[0]
    # Equal scores: each box is chosen half the time.
    assert binomtest(chose_left, 200, 0.5).pvalue > 1e-3


def test_generic_form_allows_per_view_sizes_and_transforms():
    to_tensor = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])
    global_view = CCropViewTransform(ContrastiveCrop(32, scale=(0.4, 1.0)), to_tensor)
    local_view = CCropViewTransform(ContrastiveCrop(12, scale=(0.05, 0.4)), to_tensor)
    views = CCropMultiViewTransform([global_view, global_view, local_view, local_view, local_view])
    out = views(_two_region_image(), torch.tensor([[0.1, 0.1, 0.9, 0.9]]))
    assert [tuple(v.shape) for v in out] == [(3, 32, 32)] * 2 + [(3, 12, 12)] * 3
    # Without a transform a view is the cropped image itself; tensors are accepted too.
    crop_only = CCropMultiViewTransform([CCropViewTransform(ContrastiveCrop(8))])
    assert tuple(crop_only(torch.rand(3, 20, 30))[0].shape) == (3, 8, 8)


def test_bad_views_are_refused():
    with pytest.raises(ValueError, match="at least one"):
        CCropMultiViewTransform([])
    with pytest.raises(TypeError, match=r"transforms\[1\] must be a CCropViewTransform.*got SimCLRViewTransform"):
        CCropMultiViewTransform([CCropSimCLRViewTransform(input_size=8), SimCLRViewTransform(input_size=8)])
    with pytest.raises(TypeError, match="crop must be a ccrop_plugins.ContrastiveCrop"):
        CCropViewTransform(T.RandomResizedCrop(8))
    with pytest.raises(ValueError, match="unknown scale_reference 'object'"):
        CCropSimCLRTransform(scale_reference="object")
    with pytest.raises(ValueError, match="unknown sampler 'betta'"):
        CCropMoCoV2Transform(sampler="betta")


@pytest.mark.parametrize("transform, where", [
    (T.Compose([T.RandomHorizontalFlip(), T.RandomResizedCrop(8)]), r"RandomResizedCrop \(in Compose\)"),
    (T.Compose([T.RandomApply([T.RandomResizedCrop(8)], p=0.5)]), r"RandomResizedCrop \(in Compose > RandomApply\)"),
    (T.RandomChoice([T.RandomResizedCrop(8), T.RandomHorizontalFlip()]), r"RandomResizedCrop \(in RandomChoice\)"),
    (SimCLRViewTransform(input_size=8), r"RandomResizedCrop \(in SimCLRViewTransform > Compose\)"),  # lightly's view
])
def test_a_random_resized_crop_in_the_view_steps_is_refused(transform, where):
    # Accepted before: every view was a random crop of ContrastiveCrop's crop, the box-aware crop silently undone
    # (e.g. lightly's own SimCLRViewTransform given as the steps after the crop).
    with pytest.raises(ValueError, match=rf"transform holds {where}: after ContrastiveCrop it would cut the crop again"
                                         r".*remove it from transform"):
        CCropViewTransform(ContrastiveCrop(8), transform)
    CCropViewTransform(ContrastiveCrop(8), T.Compose([T.RandomHorizontalFlip(), T.ToImage()]))  # no crop: accepted


@pytest.mark.parametrize("steps, where", [
    (lambda v: v.Compose([v.RandomHorizontalFlip(), ContrastiveCrop(8)]), r"ContrastiveCrop \(in Compose\)"),
    (lambda v: ContrastiveCrop(8), r"ContrastiveCrop"),  # the crop itself given as the steps
    (lambda v: v.Compose([v.RandomApply([ContrastiveCrop(8)], p=0.3)]),
     r"ContrastiveCrop \(in Compose > RandomApply\)"),  # 4eee589: a warning; now refused, as RandomResizedCrop
    (lambda v: v.RandomApply([ContrastiveCrop(8)], p=1.0), r"ContrastiveCrop \(in RandomApply\)"),
    (lambda v: v.RandomChoice([v.Compose([ContrastiveCrop(8)]), v.RandomHorizontalFlip()]),
     r"ContrastiveCrop \(in RandomChoice > Compose\)"),
])
@pytest.mark.parametrize("v", [T, transforms_v1], ids=["v2", "v1"])
def test_a_contrastive_crop_in_the_view_steps_is_refused(v, steps, where, recwarn):
    # Accepted before (silently, or with a warning inside RandomApply with p < 1): the view was cut around its box by
    # the crop argument, then cut again at random without boxes, so the box was lost, as with RandomResizedCrop.
    with pytest.raises(ValueError, match=rf"^transform holds {where}: after the view's crop it would cut the crop "
                                         r"again \(a random part of it, made without boxes\), silently losing the "
                                         r"box the view was cut around; the view's ContrastiveCrop is the crop "
                                         r"argument: remove this one from transform$"):
        CCropViewTransform(ContrastiveCrop(8), steps(v))
    CCropViewTransform(ContrastiveCrop(8), v.Compose([v.RandomApply([v.ColorJitter(0.4)], p=0.3)]))  # accepted
    assert not [w for w in recwarn if "ContrastiveCrop" in str(w.message)]


@pytest.mark.parametrize("steps, where", [
    (lambda v: v.Compose([v.Resize(16), ContrastiveCrop(8)]), r"ContrastiveCrop \(in Compose\)"),
    (lambda v: ContrastiveCrop(8), r"ContrastiveCrop"),
    (lambda v: v.RandomApply([ContrastiveCrop(8)], p=0.5), r"ContrastiveCrop \(in RandomApply\)"),  # was a warning
])
@pytest.mark.parametrize("v", [T, transforms_v1], ids=["v2", "v1"])
def test_a_contrastive_crop_in_the_dataset_transform_is_refused(v, steps, where):
    # Accepted before (silently, or with a warning inside RandomApply with p < 1): each read was cut at random without
    # boxes before the views' own ContrastiveCrop, so the refresh's boxes fit no view's image.
    from ccrop_lightly import CCropCollate, make_refresh_loader
    from ccrop_plugins import BoxStore

    class Images(torch.utils.data.Dataset):
        def __init__(self, transform) -> None:
            self.transform = transform

        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int):
            return self.transform(Image.new("RGB", (16, 16))), 0, index

    view = CCropViewTransform(ContrastiveCrop(8), T.ToImage())
    message = (rf"the dataset's own transform holds {where}, which cuts each image at random, without boxes, on "
               r"every read, before the views' own ContrastiveCrop .*build the dataset without a transform")
    with pytest.raises(ValueError, match="^CCropCollate: " + message):
        CCropCollate(CCropMultiViewTransform([view]), BoxStore(4), dataset=Images(steps(v)))
    with pytest.raises(ValueError, match="^the refresh loader: " + message):
        make_refresh_loader(Images(steps(v)), 8)
    CCropCollate(CCropMultiViewTransform([view]), BoxStore(4), dataset=Images(v.Resize(16)))  # fixed: accepted


@pytest.mark.parametrize("option, value, message", [
    ("cj_prob", 2, r"cj_prob must be a probability in \[0, 1\]; got 2"),  # was torchvision's "`p` should be ..."
    ("hf_prob", -0.1, r"hf_prob must be a probability in \[0, 1\]; got -0.1"),
    ("gaussian_blur", 1.5, r"gaussian_blur must be a probability in \[0, 1\]; got 1.5"),  # was accepted: always
    ("random_gray_scale", True, r"random_gray_scale must be a probability in \[0, 1\]; got True"),
    ("cj_strength", -1, r"cj_strength must be a number >= 0 \(a colour-jitter factor\); got -1"),  # "brightness"
    ("cj_hue", 0.7, r"cj_strength \* cj_hue must be at most 0.5 \(torchvision's hue range\); got 1.0 \* 0.7"),
])
def test_bad_view_options_are_named(option, value, message):
    for transform in (CCropSimCLRTransform, CCropMoCoV2Transform):
        with pytest.raises(ValueError, match=message):
            transform(input_size=8, **{option: value})


@pytest.mark.parametrize("option, value, error, message", [
    ("min_scale", 0, ValueError, r"min_scale and max_scale \(the crop's area range\) must be finite numbers with "
                                 r"0 < min_scale <= max_scale; got min_scale=0, max_scale=1.0$"),
    ("min_scale", 1.5, ValueError, r"0 < min_scale <= max_scale; got min_scale=1.5, max_scale=1.0$"),
    ("min_scale", "0.08", TypeError, r"0 < min_scale <= max_scale; got min_scale='0.08', max_scale=1.0$"),
    ("input_size", 0, ValueError, r"^input_size must be a positive int or \(height, width\); got 0$"),
    ("input_size", 16.5, TypeError, r"^input_size must be a positive int or \(height, width\); got 16.5$"),
])
def test_bad_crop_options_are_named_as_the_transform_names_them(option, value, error, message):
    # The core's "scale must be an increasing pair ...; got (0, 1.0)" / "size must be ..." named no option of these
    # transforms (they take min_scale, max_scale and input_size).
    for transform in (CCropSimCLRTransform, CCropMoCoV2Transform):
        with pytest.raises(error, match=message):
            transform(**{"input_size": 8, option: value})


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "PA", "CMYK", "1", "I;16"])
def test_views_of_an_odd_pil_mode_are_made_from_its_rgb_image(mode):
    # called directly (not through CCropCollate): were "image has wrong mode" (colour jitter) or a channel mismatch
    # in Normalize ("The size of tensor a (4) must match ..."), naming neither the mode nor a remedy
    image = Image.new("RGB", (24, 20), (10, 200, 30)).convert(mode)
    boxes = torch.tensor([[0.1, 0.1, 0.9, 0.9]])
    transform = CCropSimCLRTransform(input_size=8, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0)
    torch.manual_seed(0)
    views = transform(image, boxes)
    torch.manual_seed(0)
    expected = transform(to_rgb(image), boxes)
    assert [tuple(v.shape) for v in views] == [(3, 8, 8)] * 2
    assert all(torch.equal(a, b) for a, b in zip(views, expected))


def test_views_of_four_channel_and_sixteen_bit_tensors():
    transform = CCropSimCLRTransform(input_size=8)
    for image in (torch.rand(4, 20, 24), torch.full((1, 20, 24), 40000, dtype=torch.uint16)):
        assert [tuple(v.shape) for v in transform(image)] == [(3, 8, 8)] * 2


@pytest.mark.parametrize("normalize, lacks", [
    ({"mean": [0.5, 0.5, 0.5]}, r" \(no 'std'\)$"),
    ({"std": [0.2] * 3, "average": [0.5] * 3}, r" \(no 'mean'\)$"),
    ([[0.5] * 3, [0.2] * 3], r"\[\[0.5, 0.5, 0.5\], \[0.2, 0.2, 0.2\]\]$"),
])
def test_a_normalize_without_mean_or_std_is_named(normalize, lacks):
    # was KeyError: 'std' from inside the constructor
    with pytest.raises(ValueError, match=r"normalize must be a dict with 'mean' and 'std', as lightly's "
                                         r"IMAGENET_NORMALIZE, or None \(no normalisation\); got .*" + lacks):
        CCropSimCLRTransform(input_size=32, normalize=normalize)


def test_a_normalize_of_tensors_gives_lightlys_views_and_bad_tensors_are_still_named():
    # lightly's SimCLRTransform takes {"mean": tensor, "std": tensor} (torchvision's Normalize does); ours refused it
    # ("needs 'mean' and 'std' of 3 numbers ... got mean=tensor([...])") though its values are valid.
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (40, 40, 3), dtype=np.uint8))
    cifar = {"mean": torch.tensor([0.4914, 0.4822, 0.4465]), "std": torch.tensor([0.2470, 0.2435, 0.2616])}
    ours, theirs = CCropSimCLRTransform(input_size=16, normalize=cifar), SimCLRTransform(input_size=16, normalize=cifar)
    _seed(0)
    expected = theirs(image)
    _seed(0)
    assert all(torch.equal(a, b) for a, b in zip(ours(image), expected))
    gray = CCropSimCLRTransform(input_size=16, normalize={"mean": torch.tensor(0.5), "std": torch.tensor([0.2])})
    assert [tuple(v.shape) for v in gray(image)] == [(3, 16, 16)] * 2  # one value for all channels, as a list allows
    for mean, std in [
        (torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.2])),  # two channels
        (torch.tensor([[0.5] * 3]), torch.tensor([[0.2] * 3])),  # (1, 3): not one number per channel
        (torch.tensor([0.5] * 3), torch.tensor([float("nan")] * 3)),
        (torch.tensor([0.5] * 3), torch.tensor([0.2, 0.0, 0.2])),
        (torch.tensor([True] * 3), torch.tensor([0.2] * 3)),
    ]:
        with pytest.raises(ValueError, match=r"normalize needs 'mean' and 'std' of 3 numbers .* got mean=tensor"):
            CCropSimCLRTransform(input_size=16, normalize={"mean": mean, "std": std})

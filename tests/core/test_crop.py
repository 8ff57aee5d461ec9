"""ContrastiveCrop: RandomResizedCrop's sizes, the paper's centre range, Beta offsets, replay, image kinds."""

import math
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from scipy import stats
from torchvision.transforms import InterpolationMode, RandomResizedCrop

from ccrop_plugins import (WHOLE_IMAGE, BoxSets, BoxStore, ContrastiveCrop, choose_box, get_sampler, hookimpl,
                           image_size_of)

BIG = (10_000, 10_000)  # a large image: one pixel of rounding is negligible next to the range


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _rounded_beta_pit(tops, low, span, alpha, seed=0):
    """Randomised probability integral transform of integer tops drawn as round(low + span * Beta).

    ``P(top <= t) = F((t + 0.5 - low) / span)``; drawing ``U`` uniformly between the CDF just
    below and at each observed ``t`` gives exactly Uniform(0, 1) values when the model is right,
    even where a U-shaped Beta piles many draws onto the first and last pixel.
    """
    cdf = stats.beta(alpha, alpha).cdf
    tops = np.asarray(tops, dtype=np.float64)
    upper = cdf(np.clip((tops + 0.5 - low) / span, 0, 1))
    lower = cdf(np.clip((tops - 0.5 - low) / span, 0, 1))
    jitter = np.random.default_rng(seed).random(len(tops))
    return lower + jitter * (upper - lower)


# ----------------------------------------------------------------------------- positions with boxes
@pytest.mark.parametrize("alpha, wrong_alphas", [(0.1, (0.2, 0.05)), (0.6, (1.0, 0.3))])
def test_crop_centres_follow_beta_inside_the_allowed_range(alpha, wrong_alphas):
    crop = ContrastiveCrop(224, scale=(0.04, 0.04), ratio=(1, 1), alpha=alpha)
    boxes = torch.tensor([[0.3, 0.2, 0.8, 0.9]])
    x0, y0, x1, y1 = boxes[0].tolist()  # float32 values, as make_params sees them
    generator = _generator(1)
    params = [crop.make_params(BIG, boxes, generator) for _ in range(3000)]
    side = params[0]["height"]
    assert side == 2000 and all(p["height"] == p["width"] == side for p in params)
    # The paper's range: the crop's centre on the box, i.e. top-left in [edge * H - h / 2].
    for key, (edge0, edge1), size in (("top", (y0, y1), BIG[0]), ("left", (x0, x1), BIG[1])):
        low, high = edge0 * size - side / 2, edge1 * size - side / 2
        values = np.array([p[key] for p in params])
        assert values.min() >= round(low) and values.max() <= round(high)
        centres = values + side / 2
        assert (centres >= edge0 * size - 0.5).all() and (centres <= edge1 * size + 0.5).all()
        pit = _rounded_beta_pit(values, low, high - low, alpha)
        assert stats.kstest(pit, "uniform").pvalue > 0.01
        for wrong in wrong_alphas:  # power: the same test rejects a wrong alpha
            assert stats.kstest(_rounded_beta_pit(values, low, high - low, wrong), "uniform").pvalue < 1e-4
        if alpha == 0.6:  # here rounding is negligible: the plain KS test on offsets agrees
            offsets = (values - low) / (high - low)
            assert stats.kstest(offsets, stats.beta(alpha, alpha).cdf).pvalue > 0.01


def test_allowed_range_is_clamped_to_the_image():
    crop = ContrastiveCrop(32, scale=(0.25, 0.25), ratio=(1, 1), alpha=0.1)
    boxes = torch.tensor([[0.0, 0.0, 0.2, 0.3], [0.9, 0.85, 1.0, 1.0]])
    generator = _generator(2)
    for index, corner in ((0, 0), (1, 50)):
        params = [crop.make_params((100, 100), boxes, generator, box_index=index) for _ in range(300)]
        assert all(p["height"] == p["width"] == 50 and p["box_index"] == index for p in params)
        tops = {p["top"] for p in params}
        lefts = {p["left"] for p in params}
        assert min(tops | lefts) >= 0 and max(tops | lefts) <= 50
        assert corner in tops and corner in lefts  # the clamped end is reached (U-shaped Beta)
    # box 0: centre range top 0 - 25 .. 30 - 25 -> [0, 5]; left 0 - 25 .. 20 - 25 -> [0, 0]
    params = [crop.make_params((100, 100), boxes, generator, box_index=0) for _ in range(200)]
    assert {p["left"] for p in params} == {0} and {p["top"] for p in params} <= set(range(6))


def test_gaussian_sampler_through_make_params_stays_in_range_and_centred():
    crop = ContrastiveCrop(224, scale=(0.04, 0.04), ratio=(1, 1), sampler="gaussian", sigma=0.1)
    boxes = torch.tensor([[0.3, 0.2, 0.8, 0.9]])
    params = [crop.make_params(BIG, boxes, _generator(s)) for s in range(1000)]
    tops = np.array([p["top"] for p in params]) + 1000  # centres
    lefts = np.array([p["left"] for p in params]) + 1000
    assert tops.min() >= 2000 and tops.max() <= 9000 and lefts.min() >= 3000 and lefts.max() <= 8000
    assert abs(tops.mean() - 5500) < 3 * 700 / np.sqrt(1000)
    assert abs(lefts.mean() - 5500) < 3 * 500 / np.sqrt(1000)
    assert stats.kstest(tops, stats.norm(5500, 700).cdf).pvalue > 0.01


def test_scale_reference_box_draws_areas_relative_to_the_box():
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.5]])  # 200 x 400 px on 1000 x 1000
    fixed = ContrastiveCrop(32, scale=(0.25, 0.25), ratio=(1, 1), scale_reference="box")
    params = fixed.make_params((1000, 1000), boxes, _generator())
    assert params["height"] == params["width"] == round((0.25 * 200 * 400) ** 0.5)
    ranged = ContrastiveCrop(32, scale=(0.2, 1.0), scale_reference="box")
    image_ranged = ContrastiveCrop(32, scale=(0.2, 1.0))
    generator = _generator(3)
    box_areas = np.array([(p["height"] * p["width"])
                          for p in (ranged.make_params((1000, 1000), boxes, generator) for _ in range(500))])
    fractions = box_areas / (200 * 400)
    assert fractions.min() >= 0.19 and fractions.max() <= 1.02
    assert stats.kstest(fractions.clip(0.2, 1.0), stats.uniform(0.2, 0.8).cdf).pvalue > 0.001
    image_areas = np.array([(p["height"] * p["width"])
                            for p in (image_ranged.make_params((1000, 1000), boxes, generator) for _ in range(500))])
    assert image_areas.min() >= 0.19 * 1000 * 1000  # relative to the image: much larger crops
    # a box smaller than a pixel still gives a valid crop
    tiny = ranged.make_params((50, 50), torch.tensor([[0.5, 0.5, 0.505, 0.505]]), generator)
    assert tiny["height"] >= 1 and tiny["width"] >= 1


# ----------------------------------------------------------------------------- choosing a box
def test_choose_box_frequencies_follow_scores():
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.2, 0.2, 0.4, 0.4]])
    scores = torch.tensor([5.0, 3.0, 2.0])
    generator = _generator(4)
    n = 4000
    picks = np.bincount([choose_box(boxes, scores, generator) for _ in range(n)], minlength=3)
    assert stats.chisquare(picks, n * np.array([0.5, 0.3, 0.2])).pvalue > 0.01
    assert stats.chisquare(picks, n * np.array([0.4, 0.35, 0.25])).pvalue < 1e-4  # power
    # make_params draws its box the same way
    crop = ContrastiveCrop(16)
    made = np.bincount([crop.make_params((64, 64), boxes, generator, scores=scores)["box_index"] for _ in range(n)],
                       minlength=3)
    assert stats.chisquare(made, n * np.array([0.5, 0.3, 0.2])).pvalue > 0.01
    # no scores, zero or non-finite scores: uniform
    for weights in (None, torch.zeros(3), torch.tensor([1.0, float("nan"), 1.0]), [1.0, float("-inf"), 2.0]):
        uniform = np.bincount([choose_box(boxes, weights, generator) for _ in range(1500)], minlength=3)
        assert stats.chisquare(uniform).pvalue > 0.01  # -inf was weight 0: box 1 never drawn
        made = [crop.make_params((64, 64), boxes, generator, scores=weights)["box_index"] for _ in range(1500)]
        assert stats.chisquare(np.bincount(made, minlength=3)).pvalue > 0.01
    assert choose_box(boxes[:1], None, generator) == 0
    with pytest.raises(ValueError, match="empty set"):
        choose_box(torch.zeros(0, 4))


def test_box_index_is_used_for_pair_consistent_views():
    crop = ContrastiveCrop(16)
    boxes = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.8, 0.8, 1.0, 1.0]])
    index = choose_box(boxes, torch.tensor([1.0, 1.0]), _generator())
    views = [crop.make_params((100, 100), boxes, box_index=index) for _ in range(20)]
    assert {v["box_index"] for v in views} == {index}
    for bad in (2, -1, 1.0, True):
        with pytest.raises(ValueError, match=rf"box_index {bad!r} is outside the box set of 2 boxes"):
            crop.make_params((100, 100), boxes, box_index=bad)
    for index in (np.int64(1), torch.tensor(1)):  # an integer of any kind, as the store's indices (was "outside")
        assert crop.make_params((100, 100), boxes, box_index=index)["box_index"] == 1
    assert not hasattr(crop, "choose_box")  # one way to choose: the module's choose_box


def test_invalid_boxes_are_rejected_with_the_box():
    crop = ContrastiveCrop(16)
    with pytest.raises(ValueError, match=r"box 0 \[0.5, 0.0, 0.20000000298023224, 1.0\] is not a valid"):
        crop.make_params((100, 100), torch.tensor([[0.5, 0.0, 0.2, 1.0]]))
    with pytest.raises(ValueError, match="box 0 .*nan.* is not a valid"):
        crop.make_params((100, 100), torch.tensor([[float("nan"), 0.0, 0.2, 1.0]]))
    with pytest.raises(ValueError, match="empty set"):
        crop.make_params((100, 100), torch.zeros(0, 4))


def test_an_invalid_box_that_is_not_drawn_is_rejected_too():
    crop = ContrastiveCrop(16)
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.6, 0.2, 0.3, 0.9]])  # box 1 inverted
    for seed in range(5):
        with pytest.raises(ValueError, match=r"box 1 \[0.6.*\] is not a valid"):
            crop.make_params((100, 100), boxes, _generator(seed), box_index=0)
        with pytest.raises(ValueError, match=r"box 1 .* is not a valid"):
            crop.make_params((100, 100), boxes, _generator(seed), scores=torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize(
    "boxes, message",
    [
        (torch.zeros(2, 3), r"boxes must have shape \(k, 4\) as x0, y0, x1, y1; got \(2, 3\)$"),
        (torch.tensor([0.1, 0.1, 0.5, 0.5]), r"got \(4,\) \(one box\? pass \[\[x0, y0, x1, y1\]\]\)"),
        (torch.zeros(1, 2, 4), r"got \(1, 2, 4\)"),
        (np.zeros((2, 3)), r"got \(2, 3\)"),
        ([0.1, 0.1, 0.5, 0.5], r"boxes must have shape \(k, 4\) .*; got \(4,\) \(one box\? pass \[\[x0, y0"),
        ([[0.1, 0.1, 0.5]], r"boxes must have shape \(k, 4\) as x0, y0, x1, y1; got \(1, 3\)$"),
        ([[0.1, 0.1, 0.5, 0.6], [0.1]], r"boxes must be a \(k, 4\) tensor, array or list of \[x0, y0, x1, y1\]; got "),
    ],
)
def test_boxes_of_the_wrong_shape_are_named(boxes, message):
    with pytest.raises(ValueError, match=message):
        ContrastiveCrop(16).make_params((100, 100), boxes)


def test_boxes_as_a_list_or_array_are_accepted_like_a_tensor():
    crop = ContrastiveCrop(16)
    rows = [[0.1, 0.2, 0.6, 0.9], [0.5, 0.0, 1.0, 0.5]]
    expected = crop.make_params((80, 60), torch.tensor(rows, dtype=torch.float64), _generator(3),
                                scores=torch.tensor([1.0, 3.0]))
    assert crop.make_params((80, 60), rows, _generator(3), scores=[1.0, 3.0]) == expected
    assert crop.make_params((80, 60), np.array(rows), _generator(3), scores=np.array([1.0, 3.0])) == expected
    # A list of row tensors (list(boxes), a store's rows) was "boxes must be a (k, 4) tensor, array or list".
    tensor_rows = list(torch.tensor(rows, dtype=torch.float64))
    assert crop.make_params((80, 60), tensor_rows, _generator(3), scores=[1.0, 3.0]) == expected
    with pytest.raises(TypeError, match="boxes must have a floating point or integer dtype .*; got torch.bool"):
        crop.make_params((80, 60), [torch.tensor([True, False, True, True])])  # a mask stays a mask


# Text and complex arrays were a TypeError deep in the draw; negative scores were clamped to 0 (never drawn).
_NOT_NUMBERS = r"scores must be one non-negative number per box, shape \(2,\); got "
_OTHER_LENGTH = r"scores must hold one weight per box, shape \(2,\); got shape"
_NEGATIVE = r"scores must be >= 0 .*; got \[-?[0-9]"


@pytest.mark.parametrize(("scores", "message"), [
    *((scores, _OTHER_LENGTH) for scores in (torch.tensor([1.0]), torch.tensor([1.0, 1.0, 1.0]), torch.ones(2, 1),
                                             [2.0])),
    *((scores, _NOT_NUMBERS) for scores in ("ab", 5, [None, 1.0], ["x", "y"], np.array(["x", "y"]),
                                            np.array([None, 1.0]), torch.tensor([1 + 1j, 2j]))),
    *((scores, _NEGATIVE) for scores in ([-1.0, 5.0], np.array([-2.0, -1.0]), torch.tensor([0.5, -1e-3]))),
])
def test_bad_scores_are_named(scores, message):
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]])
    with pytest.raises(ValueError, match=message):
        ContrastiveCrop(16).make_params((100, 100), boxes, scores=scores)
    with pytest.raises(ValueError, match=message):
        choose_box(boxes, scores)


class _PlainBeta:
    """The beta sampler without its unit_quantile: the generic (numpy, own draws) path."""

    def __init__(self, alpha):
        self.inner = get_sampler("beta", alpha=alpha)

    def __call__(self, low, high, centre, extent, generator=None):
        return self.inner(low, high, centre, extent, generator)


@pytest.mark.parametrize("sampler", ["beta", "uniform"])
def test_the_fast_sampler_path_gives_the_same_crops_as_the_sampler_call(sampler):
    fast = (ContrastiveCrop(16, sampler=sampler, alpha=0.3) if sampler == "beta"
            else ContrastiveCrop(16, sampler=sampler))
    plain_sampler = (_PlainBeta(0.3) if sampler == "beta"
                     else (lambda low, high, c, e, g=None: get_sampler("uniform")(low, high, c, e, g)))
    plain = ContrastiveCrop(16, sampler=plain_sampler)
    assert fast._quantile is not None and plain._quantile is None
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.7], [0.4, 0.3, 0.9, 0.8]])
    for size in ((120, 90), (500, 375), (20, 20)):
        g_fast, g_plain = _generator(11), _generator(11)
        ours = [fast.make_params(size, boxes, g_fast, scores=torch.tensor([1.0, 2.0])) for _ in range(200)]
        theirs = [plain.make_params(size, boxes, g_plain, scores=torch.tensor([1.0, 2.0])) for _ in range(200)]
        assert ours == theirs


# ----------------------------------------------------------------------------- warm-up: boxes=None
@pytest.mark.parametrize(
    "size, scale, ratio",
    [((375, 500), (0.2, 1.0), (3 / 4, 4 / 3)), ((32, 32), (0.08, 1.0), (3 / 4, 4 / 3)),
     ((10, 300), (0.9, 1.0), (3 / 4, 4 / 3))],
)
def test_without_boxes_equals_random_resized_crop_under_the_same_seed(size, scale, ratio):
    crop = ContrastiveCrop(16, scale=scale, ratio=ratio, alpha=0.1)
    image = torch.empty(3, *size)
    fallbacks = 0
    for seed in range(150):
        torch.manual_seed(seed)
        expected = RandomResizedCrop.get_params(image, list(scale), list(ratio))
        torch.manual_seed(seed)
        params = crop.make_params(size, None)
        assert (params["top"], params["left"], params["height"], params["width"]) == expected
        assert params["box_index"] == -1
        expected_again = RandomResizedCrop.get_params(image, list(scale), list(ratio))
        torch.manual_seed(seed)
        crop.make_params(size, None)  # consumes exactly torchvision's draws
        assert RandomResizedCrop.get_params(image, list(scale), list(ratio)) == expected_again
        fallbacks += (params["height"], params["width"]) == (10, 13)
    if size == (10, 300):
        assert fallbacks > 0  # the centred fallback was exercised


def test_without_boxes_sizes_and_positions_follow_random_resized_crop():
    size, n = (375, 500), 1500
    crop = ContrastiveCrop(224, alpha=0.1)  # alpha < 1 must not push warm-up crops into corners
    generator = _generator(11)
    ours = np.array([[p[k] for k in ("top", "left", "height", "width")]
                     for p in (crop.make_params(size, None, generator) for _ in range(n))])
    torch.manual_seed(12)
    image = torch.empty(3, *size)
    theirs = np.array([RandomResizedCrop.get_params(image, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(n)])
    for column in range(4):
        assert stats.ks_2samp(ours[:, column], theirs[:, column]).pvalue > 0.001
    boxed = np.array([[p["top"], p["left"]]
                      for p in (crop.make_params(size, torch.tensor([WHOLE_IMAGE]), generator) for _ in range(n))])
    assert min(stats.ks_2samp(boxed[:, c], theirs[:, c]).pvalue for c in range(2)) < 1e-4  # power


# ----------------------------------------------------------------------------- seeds, replay, images
def test_same_seed_same_crops():
    crop = ContrastiveCrop(16)
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.7], [0.4, 0.3, 0.9, 0.8]])
    first = [crop.make_params((120, 90), boxes, g, scores=torch.tensor([1.0, 2.0]))
             for g in [_generator(5)] for _ in range(30)]
    again = [crop.make_params((120, 90), boxes, g, scores=torch.tensor([1.0, 2.0]))
             for g in [_generator(5)] for _ in range(30)]
    other = [crop.make_params((120, 90), boxes, g, scores=torch.tensor([1.0, 2.0]))
             for g in [_generator(6)] for _ in range(30)]
    assert first == again and first != other
    torch.manual_seed(0)
    global_first = [crop.make_params((120, 90), boxes) for _ in range(5)]
    torch.manual_seed(0)
    assert global_first == [crop.make_params((120, 90), boxes) for _ in range(5)]


def test_replay_with_params():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    crop = ContrastiveCrop((20, 24))
    boxes = torch.tensor([[0.2, 0.1, 0.7, 0.9]])
    params = crop.make_params(image_size_of(image), boxes, _generator(9))
    seeded = crop(image, boxes, generator=_generator(9))
    replayed = crop(image, params=params)
    manual = TF.resized_crop(image, params["top"], params["left"], params["height"], params["width"], [20, 24],
                             InterpolationMode.BILINEAR, antialias=True)
    assert np.array_equal(np.asarray(seeded), np.asarray(replayed))
    assert np.array_equal(np.asarray(replayed), np.asarray(manual))
    assert replayed.size == (24, 20)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("image_size", [(40, 30), (12, 9), (1, 1)])  # (width, height); smaller than the crop too
def test_pil_modes_and_small_images(mode, image_size):
    image = Image.new(mode, image_size, color=128 if mode == "L" else (10, 20, 30, 40)[: len(mode)])
    crop = ContrastiveCrop(32)
    for boxes in (None, torch.tensor([[0.1, 0.1, 0.9, 0.9]])):
        out = crop(image, boxes, generator=_generator())
        assert out.mode == mode and out.size == (32, 32)
        params = crop.make_params((image_size[1], image_size[0]), boxes, _generator())
        assert 0 <= params["top"] <= image_size[1] - params["height"]
        assert 0 <= params["left"] <= image_size[0] - params["width"]


@pytest.mark.parametrize("shape, dtype", [((3, 20, 15), torch.uint8), ((1, 20, 15), torch.float32),
                                          ((2, 3, 8, 6), torch.float32)])
def test_tensor_images(shape, dtype):
    image = (torch.rand(shape, generator=_generator()) * 200).to(dtype)
    crop = ContrastiveCrop((16, 12))
    out = crop(image, torch.tensor([[0.0, 0.0, 0.5, 1.0]]), generator=_generator())
    assert out.shape == (*shape[:-2], 16, 12) and out.dtype == dtype
    params = crop.make_params(image.shape[-2:], None, _generator())
    torch.testing.assert_close(crop(image, params=params),
                               TF.resized_crop(image, params["top"], params["left"], params["height"], params["width"],
                                               [16, 12], antialias=True))


def test_empty_and_wrong_images():
    crop = ContrastiveCrop(8)
    with pytest.raises(ValueError, match=r"empty image of size \(height, width\) = \(0, 5\)"):
        crop(torch.zeros(3, 0, 5))
    with pytest.raises(ValueError, match=r"empty image of size \(height, width\) = \(4, 0\)"):
        crop(Image.new("RGB", (0, 4)))
    with pytest.raises(ValueError, match=r"image_size must be a positive \(height, width\); got \(0, 3\)"):
        crop.make_params((0, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\); got \(5,\)"):
        crop(torch.zeros(5))
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\); got \(6, 5\) \(one channel\? pass img\[None\]\)"):
        crop(torch.zeros(6, 5, dtype=torch.uint8))  # torchvision's resize fails deep inside on (H, W)
    with pytest.raises(TypeError, match="expected a PIL image or a tensor .* got ndarray"):
        crop(np.zeros((4, 4, 3)))


def test_a_channels_last_or_channel_less_tensor_is_named():
    # (H, W, C) was read as (C, H, W): a silent wrong crop (cut along the width and the channels), e.g. of
    # torch.from_numpy(np.array(pil_image)); (0, H, W) failed inside torch's interpolate ("Non-empty 4D data tensor")
    crop = ContrastiveCrop(8)
    for shape in ((20, 24, 3), (20, 24, 1), (20, 24, 4)):
        with pytest.raises(ValueError, match=rf"shape {re.escape(str(shape))} looks like \(\.\.\., H, W, C\)"
                                             r".*pass img.permute\(2, 0, 1\)"):
            crop(torch.zeros(shape, dtype=torch.uint8), torch.tensor([[0.1, 0.1, 0.9, 0.9]]))
    with pytest.raises(ValueError, match=r"needs at least one channel; got shape \(0, 20, 24\)"):
        crop(torch.zeros(0, 20, 24))
    assert crop(torch.zeros(8, 20, 24)).shape == (8, 8, 8)  # many channels, a wide image: (C, H, W) as before
    assert crop(torch.zeros(2, 8, 20, 24)).shape == (2, 8, 8, 8)  # a batch (B, C, H, W) of many channels


def test_a_store_entry_unpacked_into_the_positional_arguments_is_named():
    # crop.make_params(size, *store.get(i)) put the scores into `generator`: torch's "rand() received an invalid
    # combination of arguments"; crop(image, *store.get(i)) put them into `params`
    store = BoxStore(1)
    store.update([0], BoxSets.from_lists([[[0.1, 0.1, 0.6, 0.7]]]))
    crop = ContrastiveCrop(8)
    hint = r"got Tensor \(the scores of store.get\(i\)\? pass them as scores=...\)"
    with pytest.raises(TypeError, match=rf"generator must be a torch.Generator or None; {hint}"):
        crop.make_params((20, 20), *store.get(0))
    with pytest.raises(TypeError, match=rf"params must be the dict of make_params or None; {hint}"):
        crop(Image.new("RGB", (20, 20)), *store.get(0))
    with pytest.raises(TypeError, match=r"got numpy.random._generator.Generator"):
        crop.make_params((20, 20), None, np.random.default_rng(0))
    boxes, scores = store.get(0)
    assert crop.make_params((20, 20), boxes, _generator(), scores=scores)["box_index"] == 0


class _NanQuantile:
    def __call__(self, low, high, centre, extent, generator=None):
        return low

    def unit_quantile(self, u):
        return float("nan")


@pytest.mark.parametrize("sampler, got", [
    # was "'float' object is not subscriptable"
    (lambda low, high, centre, extent, generator=None: 0.5, "returned 0.5"),
    (lambda low, high, centre, extent, generator=None: None, "returned None"),
    (lambda low, high, centre, extent, generator=None: np.array([1.0]), r"returned array\(\[1.\]\)"),  # IndexError
    (lambda low, high, centre, extent, generator=None: np.array([np.nan, 0.0]),  # "cannot convert float NaN to integer"
     r"returned array\(\[nan, +0\.\]\)"),
    (_NanQuantile(), r"returned unit_quantile\(0.5\) = nan"),
])
def test_a_plugin_sampler_returning_something_else_is_named(sampler, got):
    # named when the crop is built (samplers.check_sampler), not in a DataLoader worker; tests/core/test_probe_plugins
    with pytest.raises(ValueError, match=rf"sampler .* {got}; a centre sampler returns the crop's \(top, left\)"):
        ContrastiveCrop(8, sampler=sampler)


def test_alpha_given_to_another_sampler_warns():
    # was silently ignored: ContrastiveCrop(224, sampler="uniform", alpha=0.1) drew uniform centres
    with pytest.warns(UserWarning,
                      match=r"alpha=0.1 is no option of sampler 'uniform', which ignores it"):
        ContrastiveCrop(8, sampler="uniform", alpha=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ContrastiveCrop(8, sampler="uniform")  # the default alpha is no choice
        ContrastiveCrop(8, sampler="gaussian", sigma=0.2)
        ContrastiveCrop(8, alpha=0.1)


class _OwnAlphaSampler:
    """A plugin sampler with an ``alpha`` of its own (default 0.3) and another option."""

    def __init__(self, alpha: float = 0.3, cut: float = 0.1) -> None:
        self.alpha, self.cut = alpha, cut

    def __call__(self, low, high, centre, extent, generator=None):
        return (low + high) / 2


class _OwnAlphaPlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("own_alpha", _OwnAlphaSampler)


def test_alpha_reaches_a_plugin_sampler_that_takes_it(registered_plugin):
    # Before: alpha went to 'beta' only; ContrastiveCrop(sampler='own_alpha', alpha=0.2) built own_alpha(alpha=0.3)
    # with the false warning "alpha=0.2 is an option of sampler 'beta' only" (and alpha cannot go in sampler_options).
    with registered_plugin(_OwnAlphaPlugin(), "own-alpha"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ContrastiveCrop(8, sampler="own_alpha", alpha=0.2, cut=0.2).sampler.alpha == 0.2
        assert ContrastiveCrop(8, sampler="own_alpha").sampler.alpha == 0.3  # its own default, not beta's 0.6
    assert ContrastiveCrop(8).sampler.alpha == 0.6 and ContrastiveCrop(8, alpha=0.1).sampler.alpha == 0.1


def _midpoint_sampler_factory():
    def midpoint(low, high, centre, extent, generator=None):  # a closure: no spawned worker can unpickle it
        return (low + high) / 2
    return midpoint


class _ClosureSamplerPlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("closure_midpoint", _midpoint_sampler_factory)


class _Cropped(torch.utils.data.Dataset):
    def __init__(self, crop: ContrastiveCrop) -> None:
        self.crop = crop

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.crop(torch.zeros(3, 16, 16))


def test_a_sampler_that_cannot_be_pickled_is_named_when_a_spawned_worker_needs_it(registered_plugin):
    # Before: "AttributeError: Can't pickle local object '_midpoint_sampler_factory.<locals>.midpoint'" from the
    # DataLoader starting its workers under spawn (forkserver: Python 3.14's default), naming no sampler.
    with registered_plugin(_ClosureSamplerPlugin(), "closure-sampler"):
        crop = ContrastiveCrop(8, sampler="closure_midpoint")
    assert crop(torch.zeros(3, 16, 16)).shape == (3, 8, 8)  # fine in this process (and in forked workers)
    message = r"ContrastiveCrop: its sampler <function _midpoint_sampler_factory.<locals>.midpoint .* cannot be pickled"
    with pytest.raises(TypeError, match=message):
        pickle.dumps(crop)
    loader = torch.utils.data.DataLoader(_Cropped(crop), num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(TypeError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own "Got pickle error when attempting to start a worker Process"
        list(loader)
    assert pickle.loads(pickle.dumps(ContrastiveCrop(8))).sampler.alpha == 0.6


def test_an_array_alpha_is_named_not_numpys_ambiguous_truth_value():
    # before: numpy's "The truth value of an array with more than one element is ambiguous" from alpha != 0.6
    with pytest.warns(UserWarning, match=r"alpha=array\(\[0.5, 0.7\]\) is no option of sampler 'gaussian', "
                                         "which ignores it"):
        ContrastiveCrop(8, sampler="gaussian", alpha=np.array([0.5, 0.7]))
    with pytest.raises(ValueError, match=r"^alpha must be a finite number > 0 .*; got \[0.5 0.7\]$"):
        ContrastiveCrop(8, alpha=np.array([0.5, 0.7]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ContrastiveCrop(8, sampler="uniform")  # alpha left out (None): nothing to say
        ContrastiveCrop(8, sampler="beta", alpha=np.float64(0.6))


def test_a_misspelt_sampler_with_alpha_is_only_the_unknown_name():
    # the alpha warning claimed that the unknown sampler 'betta' ignores alpha, before the error named the misspelling
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^unknown sampler 'betta'; available: beta, gaussian, uniform$"):
            ContrastiveCrop(8, sampler="betta", alpha=0.5)


def test_constructor_errors():
    with pytest.raises(ValueError, match="unknown scale_reference 'object'; available: image, box"):
        ContrastiveCrop(8, scale_reference="object")
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'; available: nearest, .*bilinear"):
        ContrastiveCrop(8, interpolation="cubic")
    with pytest.raises(ValueError, match=r"scale must be an increasing pair of positive numbers .* got \(1.0, 0.2\)"):
        ContrastiveCrop(8, scale=(1.0, 0.2))
    with pytest.raises(ValueError, match=r"size must be a positive int or \(height, width\); got 0"):
        ContrastiveCrop(0)
    with pytest.raises(TypeError, match=r"size must be a positive int or \(height, width\); got 8.7"):
        ContrastiveCrop(8.7)
    with pytest.raises(TypeError, match=r"size must be a positive int or \(height, width\); got 'abc'"):
        ContrastiveCrop("abc")
    with pytest.raises(TypeError, match=r"scale must be an increasing pair of positive numbers \(low, high\); got 0.5"):
        ContrastiveCrop(8, scale=0.5)
    with pytest.raises(ValueError, match=r"ratio must be an increasing pair .*; got \(0.5, 1.0, 2.0\) \(3 values\)"):
        ContrastiveCrop(8, ratio=(0.5, 1.0, 2.0))
    with pytest.raises(TypeError, match=r"scale must be an increasing pair .*; got 'ab'"):
        ContrastiveCrop(8, scale="ab")
    with pytest.raises(TypeError, match=r"ratio must be an increasing pair .*; got \('a', 1\)"):
        ContrastiveCrop(8, ratio=("a", 1))
    for text_or_bool in (("0.2", "1.0"), (True, 1)):  # were parsed, where every other real option refuses them
        with pytest.raises(TypeError, match=r"scale must be an increasing pair of positive numbers \(low, high\); got"):
            ContrastiveCrop(8, scale=text_or_bool)
    assert ContrastiveCrop(8, scale=(np.float32(0.5), torch.tensor(1.0)), ratio=np.array([1, 2])).scale == (0.5, 1.0)
    with pytest.raises(ValueError, match="unknown sampler 'betta'; available: beta, gaussian, uniform"):
        ContrastiveCrop(8, sampler="betta")
    with pytest.raises(TypeError, match=r"sampler 'beta' .*does not accept options .*'sigma'\]; accepted: alpha"):
        ContrastiveCrop(8, sampler="beta", sigma=0.3)
    with pytest.raises(TypeError, match="need a sampler name, not an object"):
        ContrastiveCrop(8, sampler=lambda *a: a[0], sigma=0.3)
    assert ContrastiveCrop(8, interpolation="nearest").interpolation == InterpolationMode.NEAREST
    for bad in ("no", None, 0):  # 'no' was taken as True
        with pytest.raises(TypeError, match=f"antialias must be True or False; got {bad!r}"):
            ContrastiveCrop(8, antialias=bad)
    assert ContrastiveCrop(8, antialias=np.bool_(False)).antialias is False


def test_box_reference_on_a_whole_image_box_still_varies_the_crop():
    """scale (1, 4) of a whole-image box would only fit the image itself; the reference shrinks instead."""
    crop = ContrastiveCrop(32, scale=(1.0, 4.0), ratio=(1.0, 1.0), scale_reference="box")
    generator = torch.Generator().manual_seed(0)
    whole = torch.tensor([WHOLE_IMAGE])
    areas = torch.tensor(
        [p["height"] * p["width"] / 100**2
         for p in (crop.make_params((100, 100), whole, generator) for _ in range(400))]
    )
    assert areas.min() >= 0.24 and areas.max() <= 1.0
    assert (areas > 0.98).float().mean() < 0.1  # not the image every time
    # A small box keeps its own reference: areas of 1-4x the box (100 px^2 -> 100-400 px^2).
    small = torch.tensor([[0.40, 0.40, 0.50, 0.50]])
    small_areas = torch.tensor(
        [p["height"] * p["width"] for p in (crop.make_params((100, 100), small, generator) for _ in range(400))]
    ).float()
    assert 90 <= small_areas.min() and small_areas.max() <= 420


def test_box_reference_without_boxes_treats_the_image_as_the_box():
    crop = ContrastiveCrop(32, scale=(1.0, 4.0), ratio=(1.0, 1.0), scale_reference="box")
    generator = torch.Generator().manual_seed(1)
    areas = torch.tensor(
        [p["height"] * p["width"] / 100**2 for p in (crop.make_params((100, 100), None, generator) for _ in range(400))]
    )
    assert areas.min() >= 0.24 and (areas > 0.98).float().mean() < 0.1


@pytest.mark.parametrize("size, shown", [(3, "3"), ((10, 10, 3), r"\(10, 10, 3\)"), ((10.5, 10), r"\(10.5, 10\)"),
                                         ("ab", "'ab'"), ((float("inf"), 10), r"\(inf, 10\)"),
                                         ((True, 4), r"\(True, 4\)")])
def test_image_size_must_be_a_pair_of_ints_not_cut_or_truncated(size, shown):
    with pytest.raises(ValueError, match=rf"image_size must be a positive \(height, width\); got {shown}$"):
        ContrastiveCrop(8).make_params(size, torch.tensor([[0.1, 0.1, 0.5, 0.5]]))
    for ints in [(np.int64(12), np.int64(10)), torch.Size([12, 10]), [12, torch.tensor(10)]]:
        generator = torch.Generator().manual_seed(0)
        assert ContrastiveCrop(8).make_params(ints, None, generator) == ContrastiveCrop(8).make_params(
            (12, 10), None, torch.Generator().manual_seed(0))


def test_list_boxes_of_non_numbers_and_non_callable_samplers_are_named():
    crop = ContrastiveCrop(8)
    for boxes in (["abcd"], [[None, 0, 1, 1]], [[torch.zeros(2), 0, 1, 1]]):
        with pytest.raises(ValueError, match=r"boxes must be a \(k, 4\) tensor, array or list of \[x0, y0, x1, y1\]"):
            crop.make_params((10, 10), boxes)
    as_tensors = [[torch.tensor(0.1), torch.tensor(0.2), torch.tensor(0.6), torch.tensor(0.9)]]
    assert crop.make_params((40, 30), as_tensors, torch.Generator().manual_seed(1)) == crop.make_params(
        (40, 30), [[0.1, 0.2, 0.6, 0.9]], torch.Generator().manual_seed(1))
    for sampler in (None, 5):
        with pytest.raises(TypeError, match=f"sampler must be a registered name or a callable sampler; got"):
            ContrastiveCrop(8, sampler=sampler)


def test_non_finite_scores_still_choose_uniformly():
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]])
    generator = torch.Generator().manual_seed(0)
    picks = [choose_box(boxes, torch.tensor([math.nan, 1.0]), generator) for _ in range(400)]
    assert stats.binomtest(sum(picks), len(picks), 0.5).pvalue > 1e-3


@pytest.mark.parametrize("generator", [5, np.random.default_rng(0)])
def test_choose_box_names_a_generator_that_is_not_torch_s(generator):
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]])
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None; got (int|numpy)"):
        choose_box(boxes, None, generator)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None; got int"):
        choose_box(boxes[:1], None, 5)  # one box: no draw, but the argument is still wrong


def test_params_replayed_on_an_image_they_do_not_fit_are_named():
    # a crop drawn for a 100 x 100 image replayed on a 20 x 20 one was padded with black, silently (PIL and torch)
    crop = ContrastiveCrop(8)
    params = crop.make_params((100, 100), torch.tensor([[0.5, 0.5, 1.0, 1.0]]), _generator())
    for image in (Image.new("RGB", (20, 20)), torch.ones(3, 20, 20)):
        with pytest.raises(ValueError, match=r"params \{'top': .*\} are no crop of this image of \(height, width\) = "
                                             r"\(20, 20\); replay the top, left, height and width that make_params"):
            crop(image, params=params)
    for bad in ({"top": -5, "left": 0, "height": 10, "width": 10}, {"top": 0}, {"top": "0", "left": 0, "height": 1,
                                                                              "width": 1}):
        with pytest.raises(ValueError, match="are no crop of this image"):
            crop(torch.ones(3, 20, 20), params=bad)
    assert crop(torch.ones(3, 100, 100), params=params).shape == (3, 8, 8)


def test_a_channels_last_grayscale_alpha_tensor_is_named():
    # (H, W, 2), torch.from_numpy(np.array(pil_LA)): cropped as 30 channels of a 2-pixel-wide image, silently
    with pytest.raises(ValueError, match=r"shape \(30, 40, 2\) looks like \(\.\.\., H, W, C\) \(else: 2 pixels wide, "
                                         r"30 channels\).*pass img.permute\(2, 0, 1\)"):
        ContrastiveCrop(16)(torch.zeros(30, 40, 2, dtype=torch.uint8), [[0.1, 0.1, 0.6, 0.6]])
    assert ContrastiveCrop(8)(torch.zeros(2, 20, 24)).shape == (2, 8, 8)  # (C, H, W) grayscale + alpha: as before


@pytest.mark.parametrize("scores", [{5.0, 1.0}, {0: 9.0, 1: 1.0}, "91"], ids=["set", "dict", "text"])
def test_scores_that_are_no_sequence_are_refused(scores):
    # were weights without a word: a set in its own order ({5.0, 1.0} iterates as 1.0, 5.0), a dict's keys, digits
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    match = r"scores must be one non-negative number per box, shape \(2,\); got "
    with pytest.raises(ValueError, match=match):
        choose_box(boxes, scores, _generator())
    with pytest.raises(ValueError, match=match):
        ContrastiveCrop(16).make_params((32, 32), boxes, _generator(), scores=scores)
    assert choose_box(boxes, (9.0, 1.0), _generator()) in (0, 1)  # a tuple, as a list


@pytest.mark.parametrize("boxes, message", [
    (torch.tensor([0.1, 0.1, 0.5, 0.5]), r"shape \(k, 4\) as x0, y0, x1, y1; got \(4,\) \(one box\? pass \[\["),
    (torch.rand(1, 3, 4), r"shape \(k, 4\) as x0, y0, x1, y1; got \(1, 3, 4\)$"),
    (torch.rand(2, 3), r"shape \(k, 4\) as x0, y0, x1, y1; got \(2, 3\)$"),
    ([[5.0, 5.0, 1.0, 1.0]] * 3, r"box 0 \[5.0, 5.0, 1.0, 1.0\] is not a valid normalised x0, y0, x1, y1 box"),
    (None, r"boxes must be a \(k, 4\) tensor, array or list of \[x0, y0, x1, y1\]; got None"),
], ids=["one-box", "batch", "three-columns", "invalid", "none"])
def test_choose_box_checks_the_boxes_as_make_params(boxes, message):
    # were an index without a word ((4,): one in [0, 4)), or Python's "object of type 'NoneType' has no len()"
    with pytest.raises(ValueError, match=message):
        choose_box(boxes, generator=_generator())
    if boxes is not None:  # None is make_params' warm-up
        with pytest.raises(ValueError, match=message):
            ContrastiveCrop(16).make_params((32, 32), boxes, _generator())


@pytest.mark.parametrize("option", ["min_scale", "scal", "interpolation_mode"])
def test_a_misspelt_crop_argument_names_the_crops_own_arguments(option):
    # was blamed on the sampler alone: "sampler 'beta' ... does not accept options ['min_scale']; accepted: alpha"
    with pytest.raises(TypeError, match=rf"does not accept options \['{option}'\]; accepted: alpha; ContrastiveCrop's "
                                        r"own arguments: size, scale, ratio, sampler, alpha, scale_reference, "
                                        r"interpolation, antialias$"):
        ContrastiveCrop(32, **{option: 0.2})
    with pytest.raises(TypeError, match=r"need a sampler name, not an object \(ContrastiveCrop's own arguments: size,"):
        ContrastiveCrop(32, sampler=get_sampler("beta"), **{option: 0.2})

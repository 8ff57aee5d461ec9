"""Bad input found by trying the public API as a new user: each fails on the code before."""

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ccrop_plugins import BoxSets, BoxStore, ContrastiveCrop, stage_features

BOXES = [[0.1, 0.2, 0.6, 0.7]]
TENSOR_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")


@pytest.mark.parametrize("mode", ["box", "hamming", "lanczos"])
@pytest.mark.parametrize("shape", [(3, 20, 24), (2, 3, 20, 24), (2, 2, 1, 20, 24)])
def test_a_tensor_image_with_an_interpolation_of_pil_images_only_is_named(mode, shape):
    crop = ContrastiveCrop(8, interpolation=mode)  # fine for PIL images: built without a word
    assert crop(Image.new("RGB", (24, 20)), BOXES).size == (8, 8)
    allowed = ", ".join(TENSOR_INTERPOLATIONS)
    with pytest.raises(ValueError, match=rf"interpolation '{mode}' resizes PIL images only; .*\(allowed for tensors: "
                                         rf"{allowed}\)"):
        crop(torch.rand(shape, generator=torch.Generator().manual_seed(0)), BOXES)


def test_tensor_interpolations_still_crop_tensors():
    image = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    for mode in TENSOR_INTERPOLATIONS:
        assert ContrastiveCrop(8, interpolation=mode)(image, BOXES).shape == (3, 8, 8)


@pytest.mark.parametrize("option, values", [("scale", (1.0, 1e308)), ("scale", (1e-320, 1e-310)),
                                            ("ratio", (1e38, 1e39)), ("ratio", (1e-320, 1e-310))])
def test_scale_or_ratio_outside_float32_is_refused_when_built(option, values):
    # Before: built, then every view failed in make_params (in a DataLoader worker): "to is out of bounds for float",
    # "cannot convert float infinity to integer", "cannot convert float NaN to integer".
    with pytest.raises(ValueError, match=rf"{option} must be an increasing pair of positive numbers \(low, high\) "
                                         r"between 1\.175e-38 and 3\.403e\+38 .*; got " + re.escape(str(values))):
        ContrastiveCrop(8, **{option: values})


def test_ordinary_scale_and_ratio_give_the_crops_of_before():
    crop = ContrastiveCrop(8, scale=(0.08, 1.0), ratio=(0.5, 2.0))
    for boxes in (None, BOXES):
        generator = torch.Generator().manual_seed(3)
        params = [crop.make_params((40, 60), boxes, generator) for _ in range(3)]
        again = torch.Generator().manual_seed(3)
        assert params == [crop.make_params((40, 60), boxes, again) for _ in range(3)]
    assert ContrastiveCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0)).make_params((10, 10), BOXES)["height"] == 10


def _store_state():
    store = BoxStore(3, max_boxes=2)
    store.update(torch.arange(3), BoxSets.from_lists([BOXES, [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], []]))
    return store.state_dict()


@pytest.mark.parametrize("key", ["boxes", "scores", "counts"])
def test_a_state_without_values_names_its_key(key):
    state = _store_state()
    state[key] = torch.empty_like(state[key], device="meta")
    store = BoxStore(3, max_boxes=2)
    with pytest.raises(TypeError, match=rf"box store state: {key} holds no values \(a tensor on device meta\); "
                                        r"load the checkpoint with its data"):
        store.load_state_dict(state)  # before: torch's "Tensor on device meta is not on the expected device cpu!"
    assert store.version == 0 and int(store.counts.sum()) == 0


@pytest.mark.parametrize("value", ["3", 3.0, None])
def test_a_state_whose_num_samples_is_no_integer_says_so(value):
    state = _store_state()
    state["num_samples"] = value
    with pytest.raises(ValueError, match=rf"holds {value!r} samples but this store has 3: num_samples must be an "
                                         rf"integer >= 1 \(the dataset length\); got {type(value).__name__}$"):
        BoxStore(3, max_boxes=2).load_state_dict(state)  # before: "...; was the checkpoint made on another dataset?"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: a checkpoint mapped to CUDA")
def test_a_state_and_box_sets_on_a_gpu_are_restored():
    # mmengine's runner.resume(map_location='default') maps a checkpoint's tensors to the current GPU.
    state = _store_state()
    store = BoxStore(3, max_boxes=2)
    store.load_state_dict({k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in state.items()})
    assert all(torch.equal(store.state_dict()[k], state[k]) for k in ("boxes", "scores", "counts"))
    sets = BoxSets.from_lists([BOXES])
    store.update([1], BoxSets(sets.boxes.cuda(), sets.scores.cuda(), sets.counts.cuda(), sets.fallback.cuda()))
    assert torch.equal(store.get(1)[0], torch.tensor(BOXES))


def test_alpha_with_a_sampler_object_warns_that_it_is_ignored():
    from ccrop_plugins.samplers import BetaSampler

    with pytest.warns(UserWarning, match=r"alpha=0\.1 is ignored with a sampler object \(BetaSampler\(alpha=0\.6\)\), "
                                         r"which keeps its own options"):
        crop = ContrastiveCrop(8, sampler=BetaSampler(), alpha=0.1)  # before: alpha dropped without a word
    assert crop.sampler.alpha == 0.6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default alpha (None) is no choice: nothing to say
        ContrastiveCrop(8, sampler=BetaSampler(alpha=0.1))
    with pytest.warns(UserWarning, match=r"alpha=0\.6 is ignored with a sampler object"):  # 0.6 given is a choice
        ContrastiveCrop(8, sampler=BetaSampler(alpha=0.1), alpha=0.6)


def test_stop_early_takes_numpy_bools_and_names_the_type_of_others():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3))
    assert stage_features(model, "0", stop_early=np.bool_(False)).stop_early is False  # before: "got True"
    with pytest.raises(TypeError, match=r"stop_early must be True or False; got 'no' \(str\)"):
        stage_features(model, "0", stop_early="no")


@pytest.mark.parametrize("box, hint", [
    ([2.0, 3.0, 10.0, 12.0], r"\(in pixels\? divide x0, x1 by the image's width and y0, y1 by its height\)"),
    ([0.5, 0.1, 0.2, 0.3], r"\(\[x, y, width, height\], as COCO's bbox\? pass \[x, y, x \+ width, y \+ height\]\)"),
])
def test_a_box_in_pixels_or_as_x_y_width_height_is_named_as_such(box, hint):
    with pytest.raises(ValueError, match=r"is not a valid normalised x0, y0, x1, y1 box \(.*\) " + hint):
        ContrastiveCrop(8).make_params((20, 20), [box])
    with pytest.raises(ValueError, match=r"boxes are normalised x0, y0, x1, y1 in \[0, 1\] " + hint):
        BoxSets.from_lists([[box]])


@pytest.mark.parametrize("box", [[-1.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.9, 0.1], [float("nan"), 0.0, 1.0, 1.0]])
def test_other_bad_boxes_get_no_hint(box):
    with pytest.raises(ValueError, match=r"x0 < x1, y0 < y1\)$"):
        ContrastiveCrop(8).make_params((20, 20), [box])
    with pytest.raises(ValueError, match=r"in \[0, 1\]$"):
        BoxSets.from_lists([[box]])


def test_a_store_larger_than_the_shared_memory_names_its_size_and_the_remedy():
    # A file size limit makes torch's shared-memory file fail as a full /dev/shm does (Docker's 64 MiB default).
    code = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "from ccrop_plugins import BoxStore\n"
        "assert len(BoxStore(1000)) == 1000\n"
        "BoxStore(100000, max_boxes=4)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"RuntimeError: BoxStore\(num_samples=100000, max_boxes=4\) needs 7\.7 MiB of shared memory"
                        r"( \(/dev/shm has [0-9.]+ MiB free\))?, which torch could not allocate \(.+\); give the "
                        r"machine or container more \(docker run --shm-size=1g\), or use a smaller max_boxes",
                        last), last


@pytest.mark.parametrize("scale, percent", [((8, 100), True), ((0.08, 1.5), False), ((1.0, 2.0), True)])
def test_a_scale_above_the_image_is_refused_when_built(scale, percent):
    # Before: built; every draw above 1 fell back to RandomResizedCrop's centred crop, the boxes ignored (with
    # (8, 100), a percent range, every view was the whole image).
    hint = r" \(in percent\? \(8, 100\) is \(0\.08, 1\.0\)\)" if percent else ""
    with pytest.raises(ValueError, match=rf"^scale must be at most 1 with scale_reference='image': .*a larger crop "
                                         rf"falls back to a centred one{hint}; got \({scale[0]:g}\.?0?, "):
        ContrastiveCrop(8, scale=scale)
    crop = ContrastiveCrop(8, scale=(1.0, 4.0), scale_reference="box")  # of the box: larger than it is the point
    assert crop.make_params((32, 32), BOXES, torch.Generator().manual_seed(0))["height"] <= 32


def test_a_threshold_given_twice_must_agree():
    from ccrop_plugins import refresh_boxes

    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    batches = [(images, torch.arange(4))]
    store = BoxStore(4)
    with pytest.raises(ValueError, match=r"threshold=0\.3 and localizer_options threshold=0\.5 disagree; give the "
                                         r"threshold once"):  # was: 0.3 used, 0.5 dropped without a word
        refresh_boxes(torch.nn.Conv2d(3, 4, 3), batches, store, threshold=0.3, localizer_options={"threshold": 0.5},
                      progress=False)
    assert store.version == 0
    refresh_boxes(torch.nn.Conv2d(3, 4, 3), batches, store, threshold=np.float32(0.5),
                  localizer_options={"threshold": float(np.float32(0.5))}, progress=False)
    assert store.version == 1

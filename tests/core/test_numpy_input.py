"""NumPy values as users pass them (``np.bool_`` flags, reversed arrays) and edge values of the box choice, found by
probing main in session 23 (and PIL's interpolation constants): each test fails on the code before."""

import numpy as np
import pytest
import torch

from ccrop_plugins import BoxSets, BoxStore, ContrastiveCrop, RefreshSchedule, get_localizer, get_sampler
from ccrop_plugins.box_sets import validate_boxes
from ccrop_plugins.crop import choose_box

BOXES = np.array([[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]])
FLAGS = [np.bool_(True), torch.tensor(True)]


def _filled_store() -> BoxStore:
    store = BoxStore(4)
    store.update([0, 1, 2, 3], BoxSets.from_lists([[[0, 0, 0.5, 0.5]], [[0.5, 0.5, 1, 1]], [[0, 0, 1, 1]],
                                                    [[0, 0, 1, 1]]]))
    return store


@pytest.mark.parametrize("flag", FLAGS, ids=["numpy", "tensor"])
def test_numpy_and_tensor_bools_are_refused_where_python_bools_are(flag):
    # Before: np.bool_(True) read as 1 (sample 1's boxes, max_boxes 1, a 1-pixel crop, alpha 1), bool tensors as well.
    store = _filled_store()
    with pytest.raises(TypeError, match="sample index must be an integer"):
        store.get(flag)
    refused = [lambda: BoxStore(4, max_boxes=flag), lambda: ContrastiveCrop(flag),
               lambda: ContrastiveCrop(8, scale=(flag, 1)), lambda: get_sampler("beta", alpha=flag),
               lambda: get_localizer("bbox", threshold=flag), lambda: RefreshSchedule(flag, 1),
               lambda: ContrastiveCrop(8).make_params((32, 32), BOXES, box_index=flag)]
    for build in refused:
        with pytest.raises((TypeError, ValueError), match="True|bool"):
            build()


def test_numpy_integers_and_reals_are_still_taken():
    store = _filled_store()
    assert store.get(np.int64(1))[0].tolist() == [[0.5, 0.5, 1.0, 1.0]]
    assert ContrastiveCrop(np.int32(8), scale=(np.float32(0.25), 1)).size == (8, 8)
    assert get_sampler("beta", alpha=np.float64(0.5)).alpha == 0.5


def test_reversed_arrays_are_read_as_their_values():
    # Before: "boxes of sample None must be a (k, 4) tensor ...", "sample indices must be integers; got array([1, 0])":
    # torch.as_tensor refuses negative strides.
    validate_boxes(BOXES[::-1])
    sets = BoxSets.from_lists([BOXES[::-1]], [np.array([1.0, 2.0])[::-1]])
    assert sets.boxes[0].tolist() == torch.tensor(BOXES[::-1].copy(), dtype=torch.float32).tolist()
    assert sets.scores[0].tolist() == [2.0, 1.0]
    store = BoxStore(4)
    store.update(np.arange(2)[::-1], BoxSets.from_lists([BOXES, BOXES[:1]]))
    assert len(store.get(0)[0]) == 1 and len(store.get(1)[0]) == 2
    rows = ("boxes", "scores", "counts")  # the samples in reverse order, as reversed arrays
    state = {key: value.numpy()[::-1] if key in rows else value for key, value in store.state_dict().items()}
    restored = BoxStore(4)
    restored.load_state_dict(state)
    assert all(torch.equal(getattr(restored, key), getattr(store, key).flip(0)) for key in rows)


def test_box_sets_of_no_image_and_no_slot_update_nothing():
    # Before: IndexError: index 0 is out of bounds for dimension 1 with size 0 (BoxStore._padded).
    empty = BoxSets(torch.zeros(0, 0, 4), torch.zeros(0, 0), torch.zeros(0, dtype=torch.long),
                    torch.zeros(0, dtype=torch.bool))
    store = _filled_store()
    before = store.counts.clone()
    store.update([], empty)
    assert torch.equal(store.counts, before) and store.version == 2


def test_finite_scores_whose_sum_overflows_keep_their_weights():
    # Before: the sum was inf, so the choice fell back to uniform: the box of score 0 was drawn a third of the time.
    generator = torch.Generator().manual_seed(0)
    boxes = [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0.5, 0.5, 1]]
    drawn = np.bincount([choose_box(boxes, [1.7e308, 0.0, 1.7e308], generator) for _ in range(2000)], minlength=3)
    assert drawn[1] == 0 and min(drawn[0], drawn[2]) > 900
    params = [ContrastiveCrop(8).make_params((32, 32), boxes, generator, scores=[0.0, 1e308, 1e308])["box_index"]
              for _ in range(300)]
    assert 0 not in params


def test_pil_interpolation_constants_are_taken_as_random_resized_crop_takes_them():
    # Before: "unknown interpolation 3" for Image.BICUBIC, which torchvision's RandomResizedCrop accepts.
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    assert ContrastiveCrop(8, interpolation=Image.BICUBIC).interpolation is InterpolationMode.BICUBIC
    assert ContrastiveCrop(8, interpolation=int(Image.Resampling.NEAREST)).interpolation is InterpolationMode.NEAREST
    with pytest.raises(ValueError, match=r"unknown interpolation 7; available: nearest, .* or PIL's constants "
                                         r"\(Image.NEAREST, .*Image.LANCZOS\)$"):
        ContrastiveCrop(8, interpolation=7)
    with pytest.raises(ValueError, match="unknown interpolation True"):
        ContrastiveCrop(8, interpolation=True)

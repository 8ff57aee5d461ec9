"""Both built-in localizers on heatmaps with nothing to localize: constant maps (any value), all-NaN / all-inf maps."""

import pytest
import torch

from ccrop_plugins import get_localizer

LOCALIZERS = [("bbox", {}), ("components", {}), ("components", {"label_resolution": None}),
              ("components", {"label_resolution": 8, "core_level": 0.3})]
THRESHOLDS = [0.0, 0.1, 0.5, "mean", "otsu"]


def _blob() -> torch.Tensor:
    blob = torch.zeros(16, 16)
    blob[4:8, 2:10] = 1.0
    return blob


@pytest.mark.parametrize("name, options", LOCALIZERS, ids=lambda v: str(v))
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_a_constant_map_of_any_value_falls_back_to_the_whole_image(name, options, threshold):
    """A constant map above the threshold (all ones, 0.5, out-of-range 2.0) gave the whole-image box with
    ``fallback=False``, claiming an object; an all-zero one fell back. Now every constant map falls back, next to a
    map with a blob in the same batch, which keeps its box."""
    values = [0.0, 0.05, 0.3, 0.5, 0.99, 1.0, 2.0, -1.0, float("nan"), float("inf"), float("-inf")]
    maps = torch.stack([torch.full((16, 16), value) for value in values] + [_blob()])
    box_sets = get_localizer(name, threshold=threshold, **options)(maps)
    constant = slice(0, len(values))
    assert box_sets.fallback[constant].all(), [v for v, f in zip(values, box_sets.fallback) if not f]
    assert (box_sets.counts[constant] == 1).all()
    assert torch.equal(box_sets.boxes[constant, 0], torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(len(values), 4))
    assert (box_sets.scores[constant, 0] == 1.0).all()
    assert not box_sets.fallback[-1]
    torch.testing.assert_close(box_sets.boxes[-1, 0], torch.tensor([2 / 16, 4 / 16, 10 / 16, 8 / 16]))


@pytest.mark.parametrize("name, options", LOCALIZERS, ids=lambda v: str(v))
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1)])
def test_a_map_of_one_row_column_or_pixel_at_any_value_falls_back(name, options, size):
    """A 1 x 1 heatmap (a one-pixel heatmap_size) is constant: no location, whatever its value."""
    box_sets = get_localizer(name, threshold=0.1, **options)(torch.full((2, *size), 0.7))
    assert box_sets.fallback.all()


@pytest.mark.parametrize("name, options", LOCALIZERS, ids=lambda v: str(v))
def test_maps_that_differ_only_by_nan_pixels_keep_their_documented_reading(name, options):
    """NaN and +-inf pixels are 0 ("no object"): a map of ones with one NaN pixel (of 0.5 with one -inf pixel) is not
    constant (the rest is the object, boxed whole, ``fallback=False``); a blob with an inf pixel keeps its box."""
    ones = torch.ones(16, 16)
    ones[0, 0] = float("nan")
    half = torch.full((16, 16), 0.5)
    half[9, 3] = float("-inf")
    blob = _blob()
    blob[12, 12] = float("inf")
    box_sets = get_localizer(name, threshold=0.1, **options)(torch.stack([ones, half, blob]))
    assert not box_sets.fallback.any()
    torch.testing.assert_close(box_sets.boxes[:, 0], torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0],
                                                                    [2 / 16, 4 / 16, 10 / 16, 8 / 16]]))


@pytest.mark.parametrize("name, options", LOCALIZERS, ids=lambda v: str(v))
def test_a_map_hot_everywhere_but_not_constant_keeps_its_whole_image_box(name, options):
    """Every pixel above the threshold but with contrast (a gradient): an object filling the image, not a fallback."""
    ramp = torch.linspace(0.2, 1.0, 16)[None, :, None].expand(1, 16, 16)
    box_sets = get_localizer(name, threshold=0.1, **options)(ramp)
    assert not box_sets.fallback.any()
    assert box_sets.boxes[0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]

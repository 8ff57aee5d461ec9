"""The built-in localizers: bbox (the paper's rule) and components (the multi-object box set)."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from ccrop_plugins import get_localizer, heatmaps_from_features
from ccrop_plugins.localizers import ComponentsLocalizer


def reference_bbox(heatmap: torch.Tensor, threshold: float):
    """The reference rule for one map: rows/cols whose max exceeds k, first/last index over size."""
    height, width = heatmap.shape
    rows = torch.nonzero(heatmap.max(dim=1).values > threshold)[:, 0]
    cols = torch.nonzero(heatmap.max(dim=0).values > threshold)[:, 0]
    if len(rows) == 0:
        return None
    return [int(cols[0]) / width, int(rows[0]) / height, int(cols[-1]) / width, int(rows[-1]) / height]


def blob_map(size, blobs):
    """A ``size`` map with rectangular blobs ``(top, left, bottom, right, value)`` (inclusive-exclusive)."""
    heat = torch.zeros(size)
    for top, left, bottom, right, value in blobs:
        heat[top:bottom, left:right] = value
    return heat


def exact_box(top, left, bottom, right, size):
    height, width = size
    return [left / width, top / height, right / width, bottom / height]


# ----------------------------------------------------------------------------- bbox
@pytest.mark.parametrize("threshold", [0.1, 0.3])
def test_bbox_matches_the_reference_rule_on_random_maps(threshold):
    generator = torch.Generator().manual_seed(1)
    groups = [
        heatmaps_from_features(torch.randn(40, 6, 4, 4, generator=generator), size=32),
        heatmaps_from_features(torch.randn(20, 6, 7, 7, generator=generator), size=(56, 40)),
        torch.rand(30, 24, 36, generator=generator).pow(40),  # sparse hot pixels, some maps empty
    ]
    for group in groups:
        sets = get_localizer("bbox", threshold=threshold)(group)
        height, width = group.shape[-2:]
        for i, heatmap in enumerate(group):
            expected = reference_bbox(heatmap, threshold)
            box = sets[i][0][0].tolist()
            if expected is None:
                assert box == [0.0, 0.0, 1.0, 1.0] and bool(sets.fallback[i])
                continue
            assert not bool(sets.fallback[i])
            # Near edges equal; far edges are (last + 1) / size here, last / size in the reference.
            assert box[0] == pytest.approx(expected[0]) and box[1] == pytest.approx(expected[1])
            assert box[2] == pytest.approx(expected[2] + 1 / width)
            assert box[3] == pytest.approx(expected[3] + 1 / height)


def test_bbox_is_the_union_of_blobs_and_falls_back_when_nothing_is_hot():
    size = (20, 30)
    maps = torch.stack(
        [
            blob_map(size, [(2, 3, 5, 6, 0.9), (10, 20, 15, 28, 0.5)]),
            blob_map(size, [(4, 4, 6, 6, 0.05)]),  # below the threshold
        ]
    )
    sets = get_localizer("bbox")(maps)
    assert sets.max_boxes == 1 and sets.counts.tolist() == [1, 1]
    torch.testing.assert_close(sets.boxes[0, 0], torch.tensor([3 / 30, 2 / 20, 28 / 30, 15 / 20]))
    assert sets.boxes[1, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert sets.fallback.tolist() == [False, True]


# ----------------------------------------------------------------------------- components
def test_components_give_exact_boxes_of_separated_blobs():
    size = (48, 48)
    blobs = [(2, 3, 10, 12, 0.9), (20, 30, 40, 46, 0.6), (30, 2, 33, 6, 1.0)]
    heat = blob_map(size, blobs)
    for resolution in (None, 48, 64):
        sets = get_localizer("components", label_resolution=resolution, min_area=0.0)(heat[None])
        boxes, scores = sets[0]
        masses = [(b - t) * (r - l) * (v - 0.1) for t, l, b, r, v in blobs]  # mass above the threshold 0.1
        order = sorted(range(3), key=lambda j: -masses[j])  # best first: by mass
        expected = torch.tensor([exact_box(*blobs[j][:4], size) for j in order])
        torch.testing.assert_close(boxes, expected)
        torch.testing.assert_close(scores, torch.tensor([masses[j] for j in order]))
        assert not bool(sets.fallback[0])


@pytest.mark.parametrize("size, resolution", [((96, 96), 24), ((100, 90), 16)])
def test_pooled_boxes_contain_the_exact_box_within_one_cell(size, resolution):
    """label_resolution < map size: each box contains the exact one and exceeds it by < 1 cell per side."""
    generator = torch.Generator().manual_seed(3)
    height, width = size
    cell = math.ceil(max(size) / resolution)
    exact = get_localizer("components", label_resolution=None, min_area=0.0, max_boxes=8)
    pooled = get_localizer("components", label_resolution=resolution, min_area=0.0, max_boxes=8)
    checked = 0
    for _ in range(10):
        # Blobs on a coarse grid with gaps of >= 2 cells, so pooling cannot merge them.
        blobs = []
        for top in range(0, height - 3 * cell, 5 * cell):
            for left in range(0, width - 3 * cell, 5 * cell):
                if torch.rand(1, generator=generator) < 0.5:
                    t = top + int(torch.randint(0, cell, (1,), generator=generator))
                    l = left + int(torch.randint(0, cell, (1,), generator=generator))
                    b = t + int(torch.randint(1, 2 * cell, (1,), generator=generator))
                    r = l + int(torch.randint(1, 2 * cell, (1,), generator=generator))
                    blobs.append((t, l, b, r, float(torch.rand(1, generator=generator)) * 0.8 + 0.2))
        blobs = blobs[:8]
        if not blobs:
            continue
        heat = blob_map(size, blobs)[None]
        exact_boxes = exact(heat)[0][0]
        pooled_boxes = pooled(heat)[0][0]
        assert len(exact_boxes) == len(pooled_boxes) == len(blobs)
        tolerance = torch.tensor([cell / width, cell / height, cell / width, cell / height])
        for box in exact_boxes:
            containing = [p for p in pooled_boxes
                          if (p[:2] <= box[:2] + 1e-6).all() and (p[2:] >= box[2:] - 1e-6).all()]
            assert len(containing) >= 1, f"no pooled box contains {box.tolist()}"
            excess = torch.cat([box[:2] - containing[0][:2], containing[0][2:] - box[2:]])
            assert (excess < tolerance - 1e-6).all(), (box.tolist(), containing[0].tolist(), cell)
            checked += 1
    assert checked > 20


def test_eight_connectivity_joins_diagonal_pixels():
    heat = torch.zeros(1, 10, 10)
    heat[0, 2, 2] = heat[0, 3, 3] = heat[0, 4, 4] = 1.0
    boxes, _ = get_localizer("components", label_resolution=None, min_area=0.0)(heat)[0]
    torch.testing.assert_close(boxes, torch.tensor([[0.2, 0.2, 0.5, 0.5]]))


def test_min_area_drops_small_blobs_unless_none_would_remain():
    size = (50, 50)
    big_and_small = blob_map(size, [(0, 0, 20, 20, 0.5), (40, 40, 42, 42, 1.0)])  # small: 4 px = 0.16%
    only_small = blob_map(size, [(10, 10, 12, 12, 1.0), (30, 30, 31, 31, 0.5)])
    sets = get_localizer("components", min_area=0.01, label_resolution=None)(torch.stack([big_and_small, only_small]))
    assert sets.counts.tolist() == [1, 2]
    torch.testing.assert_close(sets[0][0], torch.tensor([[0.0, 0.0, 0.4, 0.4]]))
    assert sets.fallback.tolist() == [False, False]
    kept = get_localizer("components", min_area=0.0, label_resolution=None)(big_and_small[None])
    assert kept.counts.tolist() == [2]


def test_max_boxes_keeps_the_heaviest_ranked_by_mass():
    size = (60, 60)
    # Five blobs; mass above the threshold 0.1 = area * (value - 0.1): 9*0.9=8.1, 16*0.4=6.4, 4*0.8=3.2,
    # 25*0.7=17.5, 1*0.85=0.85
    blobs = [(0, 0, 3, 3, 1.0), (10, 10, 14, 14, 0.5), (30, 0, 32, 2, 0.9), (40, 40, 45, 45, 0.8),
             (55, 55, 56, 56, 0.95)]
    heat = blob_map(size, blobs)[None]
    sets = get_localizer("components", max_boxes=3, min_area=0.0, label_resolution=None)(heat)
    assert sets.max_boxes == 3 and sets.counts.tolist() == [3]
    boxes, scores = sets[0]
    torch.testing.assert_close(scores, torch.tensor([17.5, 8.1, 6.4]))
    expected = torch.tensor([exact_box(*blobs[j][:4], size) for j in (3, 0, 1)])
    torch.testing.assert_close(boxes, expected)


def test_components_match_scipy_labelling_on_random_maps():
    """Batched labelling (one call for the batch) equals per-image scipy labelling."""
    generator = torch.Generator().manual_seed(5)
    coarse = heatmaps_from_features(torch.randn(12, 4, 7, 7, generator=generator), size=28).pow(6)
    maps = torch.cat([coarse, torch.rand(12, 28, 28, generator=generator).pow(30)])  # several blobs each
    sets = get_localizer("components", max_boxes=50, min_area=0.0, label_resolution=None)(maps)
    assert not sets.fallback.any()
    for i, heatmap in enumerate(maps.numpy()):
        labels, count = ndimage.label(heatmap > 0.1, structure=np_ones3())
        expected = sorted(
            [s[1].start / 28, s[0].start / 28, s[1].stop / 28, s[0].stop / 28] for s in ndimage.find_objects(labels)
        )
        got = sorted(sets[i][0].tolist())
        assert int(sets.counts[i]) == max(count, 1)
        if count:
            torch.testing.assert_close(torch.tensor(got), torch.tensor(expected))
    assert (sets.counts > 2).sum() >= 6


def np_ones3():
    import numpy as np

    return np.ones((3, 3), dtype=bool)


# ----------------------------------------------------------------------------- both
@pytest.mark.parametrize("name", ["bbox", "components"])
def test_degenerate_maps(name):
    localizer = get_localizer(name)
    size = (16, 16)
    hot = torch.zeros(size)
    hot[5, 9] = 1.0
    with_nan = blob_map(size, [(2, 2, 6, 6, 0.8)])
    with_nan[10, 10] = math.nan
    with_inf = blob_map(size, [(2, 2, 6, 6, 0.8)])
    with_inf[12, 1] = math.inf  # +inf is not a location: treated as 0
    maps = torch.stack([torch.full(size, math.nan), torch.zeros(size), hot, with_nan, with_inf])
    sets = localizer(maps)
    assert sets.fallback.tolist() == [True, True, False, False, False]
    for i in (0, 1):
        assert sets[i][0].tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert sets[2][0].tolist() == [[9 / 16, 5 / 16, 10 / 16, 6 / 16]]
    for i in (3, 4):
        assert sets[i][0].tolist() == [[2 / 16, 2 / 16, 6 / 16, 6 / 16]]
    # Through heatmaps_from_features: constant and non-finite features give the fallback.
    features = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    features[1] = 2.0
    features[2, 0, 0, 0] = math.inf
    sets = localizer(heatmaps_from_features(features, size=32))
    assert sets.fallback.tolist() == [False, True, True]
    assert sets[1][0].tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_option_errors():
    for name, bad in (("bbox", 1.5), ("components", 1), ("components", -0.1)):  # the rule names too (were left out)
        with pytest.raises(ValueError, match=rf"threshold must lie in \[0, 1\) or be one of mean, otsu; got {bad}"):
            get_localizer(name, threshold=bad)
    with pytest.raises(ValueError, match="max_boxes must be a positive integer; got 0"):
        get_localizer("components", max_boxes=0)
    with pytest.raises(ValueError, match=r"min_area must lie in \[0, 1\); got -0.1"):
        get_localizer("components", min_area=-0.1)
    with pytest.raises(ValueError, match="label_resolution must be a positive integer or None; got 0"):
        get_localizer("components", label_resolution=0)
    for name in ("bbox", "components"):
        with pytest.raises(ValueError, match=r"\(N, H, W\); got \(8, 8\)"):
            get_localizer(name)(torch.zeros(8, 8))



@pytest.mark.parametrize("bad, shown", [("x", "'x'"), (None, "None"), (float("nan"), "nan"), (True, "True")])
def test_options_that_are_not_numbers_are_named_not_converted(bad, shown):
    with pytest.raises(ValueError, match=rf"min_area must lie in \[0, 1\); got {shown}$"):
        get_localizer("components", min_area=bad)
    if bad is not None:  # None: no cores
        with pytest.raises(ValueError, match=rf"core_level must lie in \[0, 1\) or be None; got {shown}$"):
            get_localizer("components", core_level=bad)
        with pytest.raises(ValueError, match=f"label_resolution must be a positive integer or None; got {shown}$"):
            get_localizer("components", label_resolution=bad)
    for name in ("bbox", "components"):
        with pytest.raises((TypeError, ValueError), match=r"threshold must (be a number in|lie in) \[0, 1\)"):
            get_localizer(name, threshold=bad if bad != "x" else [0.1])
    with pytest.raises(ValueError, match="label_resolution must be a positive integer or None; got inf$"):
        get_localizer("components", label_resolution=float("inf"))
    assert get_localizer("components", label_resolution=2.0, min_area=np.float32(0.5)).label_resolution == 2

# ------------------------------------------------------------------------ issue 12, adaptive thresholds, speed paths
@pytest.mark.parametrize("bad", [1.5, True, "2", None])
def test_max_boxes_must_be_an_integer_not_rounded(bad):
    with pytest.raises((TypeError, ValueError), match=r"max_boxes must be a positive integer; got"):
        get_localizer("components", max_boxes=bad)


def test_components_on_an_empty_batch_give_empty_box_sets():
    sets = get_localizer("components", max_boxes=3)(torch.zeros(0, 32, 32))
    assert len(sets) == 0 and sets.boxes.shape == (0, 3, 4) and sets.counts.shape == (0,)


@pytest.mark.parametrize("name", ["bbox", "components"])
@pytest.mark.parametrize("threshold", [0.1, "mean", "otsu"])
def test_an_empty_batch_gives_empty_box_sets_with_every_threshold(name, threshold):
    # bbox with 'mean'/'otsu' was numpy's "cannot reshape array of size 0 into shape (0,newaxis)"
    sets = get_localizer(name, threshold=threshold)(torch.zeros(0, 16, 24))
    assert len(sets) == 0 and sets.boxes.shape[0] == 0


def test_threshold_names():
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\) or one of mean, otsu; got 'median'"):
        get_localizer("components", threshold="median")
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\) or one of mean, otsu; got 'median'"):
        get_localizer("bbox", threshold="median")
    for bad in ([0.1], None, True):  # not a number: the rule names were left out of this TypeError
        with pytest.raises(TypeError, match=r"threshold must be a number in \[0, 1\) or one of mean, otsu; got "):
            ComponentsLocalizer(threshold=bad)
        with pytest.raises(TypeError, match=r"or one of mean, otsu; got "):
            get_localizer("components", threshold=bad)


@pytest.mark.parametrize("rule", ["mean", "otsu"])
def test_adaptive_thresholds_find_a_dim_blob_on_a_dim_background(rule):
    """A fixed k of 0.5 misses a blob at 0.4 on a 0.2 background; a per-image threshold does not."""
    size = (32, 32)
    bright = blob_map(size, [(4, 4, 12, 12, 1.0)]) + 0.05
    dim = blob_map(size, [(20, 8, 28, 20, 0.4 - 0.2)]) + 0.2
    maps = torch.stack([bright, dim])
    fixed = get_localizer("components", threshold=0.5, label_resolution=None)(maps)
    assert fixed.fallback.tolist() == [False, True]
    adaptive = get_localizer("components", threshold=rule, label_resolution=None, min_area=0.0)(maps)
    assert adaptive.fallback.tolist() == [False, False]
    torch.testing.assert_close(adaptive[0][0], torch.tensor([exact_box(4, 4, 12, 12, size)]))
    torch.testing.assert_close(adaptive[1][0], torch.tensor([exact_box(20, 8, 28, 20, size)]))
    constant = get_localizer("components", threshold=rule)(torch.full((1, 16, 16), 0.3))
    assert constant.fallback.tolist() == [True]


@pytest.mark.parametrize("rule", ["mean", "otsu"])
def test_the_papers_box_takes_a_per_image_threshold_too(rule):
    """bbox with an adaptive rule: the union of what lies above each map's own threshold."""
    size = (32, 32)
    dim_pair = blob_map(size, [(2, 2, 8, 8, 0.2), (20, 22, 28, 30, 0.2)]) + 0.2  # two blobs at 0.4 on 0.2
    bright = blob_map(size, [(4, 4, 12, 12, 1.0)]) + 0.05
    maps = torch.stack([dim_pair, bright, torch.full(size, 0.3)])
    assert get_localizer("bbox", threshold=0.5)(maps).fallback.tolist() == [True, False, True]
    sets = get_localizer("bbox", threshold=rule)(maps)
    assert sets.fallback.tolist() == [False, False, True]
    torch.testing.assert_close(sets[0][0], torch.tensor([exact_box(2, 2, 28, 30, size)]))
    torch.testing.assert_close(sets[1][0], torch.tensor([exact_box(4, 4, 12, 12, size)]))


@pytest.mark.parametrize("size, resolution",
                         [((64, 64), 16), ((64, 64), 32), ((64, 64), 8), ((60, 60), 20), ((62, 50), 16)])
def test_pooled_paths_agree_with_max_pooling(size, resolution):
    """The word-packed pooling (cells of 2, 4, 8 px), the generic one and a plain max-pool give the same cells."""
    generator = torch.Generator().manual_seed(7)
    maps = heatmaps_from_features(torch.randn(40, 4, 6, 6, generator=generator), size=size).pow(3)
    maps[3, 5, 5] = math.inf  # not a location, in the pooled path too
    localizer = get_localizer("components", label_resolution=resolution, min_area=0.0, max_boxes=20)
    cell = math.ceil(max(size) / resolution)
    sets = localizer(maps)
    cleaned = maps.nan_to_num(posinf=0.0)
    pooled = torch.nn.functional.max_pool2d(cleaned[:, None], cell, cell, ceil_mode=True)[:, 0] > 0.1
    for i in range(len(maps)):
        labels, count = ndimage.label(pooled[i].numpy(), structure=np_ones3())
        assert int(sets.counts[i]) == max(count, 1)
        expected = sorted(
            [min(s[1].start * cell / size[1], 1), min(s[0].start * cell / size[0], 1),
             min(s[1].stop * cell / size[1], 1), min(s[0].stop * cell / size[0], 1)]
            for s in ndimage.find_objects(labels)
        )
        torch.testing.assert_close(torch.tensor(sorted(sets[i][0].tolist())), torch.tensor(expected))


def _on_one_and_two_threads(localizer, maps):
    """The localizer's box sets on one torch thread and on two (2 chunks of 30 maps at 224 px share them)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = localizer(maps)
        torch.set_num_threads(2)
        shared = localizer(maps)
    finally:
        torch.set_num_threads(threads)
    for name in ("boxes", "scores", "counts", "fallback"):
        assert torch.equal(getattr(single, name), getattr(shared, name))
    return single


def test_threads_and_chunks_do_not_change_the_result():
    generator = torch.Generator().manual_seed(8)
    maps = heatmaps_from_features(torch.randn(30, 4, 7, 7, generator=generator), size=224)
    _on_one_and_two_threads(get_localizer("components"), maps)


# ----------------------------------------------------------------------------- cores (core_level)
def joined_pair(size=(40, 40)):
    """Two bright squares joined by a dim bridge: one component at k = 0.1, two cores at level 0.3."""
    return blob_map(size, [(10, 4, 20, 36, 0.3), (8, 4, 22, 14, 1.0), (8, 26, 22, 36, 0.9)])


def test_cores_of_a_joined_component_fill_the_free_slots():
    size = (40, 40)
    plain = get_localizer("components", label_resolution=None)(joined_pair(size)[None])
    assert plain.counts.tolist() == [1]
    sets = get_localizer("components", label_resolution=None, core_level=0.3)(joined_pair(size)[None])
    boxes, scores = sets[0]
    # The component's box stays first; then each core (above 0.1 + 0.3 * 0.9 = 0.37), heaviest first.
    torch.testing.assert_close(boxes, torch.tensor([exact_box(8, 4, 22, 36, size), exact_box(8, 4, 22, 14, size),
                                                    exact_box(8, 26, 22, 36, size)]))
    torch.testing.assert_close(scores[1:], torch.tensor([140 * 0.9, 140 * 0.8]))
    assert scores[0] > scores[1] > scores[2]
    # No free slot: the component alone.
    one = get_localizer("components", label_resolution=None, core_level=0.3, max_boxes=1)(joined_pair(size)[None])
    assert one.counts.tolist() == [1]
    torch.testing.assert_close(one[0][0], torch.tensor([exact_box(8, 4, 22, 36, size)]))
    # Pooled labelling (cells of 2 px) finds the same cores within a cell.
    big = torch.nn.functional.interpolate(joined_pair(size)[None, None], scale_factor=2, mode="nearest")[0]
    pooled = get_localizer("components", label_resolution=40, core_level=0.3)(big)
    assert pooled.counts.tolist() == [3]
    torch.testing.assert_close(pooled[0][0], boxes, atol=1 / 40, rtol=0)


def test_a_soft_halo_adds_its_core_and_a_flat_blob_adds_nothing():
    size = (40, 40)
    halo = blob_map(size, [(5, 5, 35, 35, 0.25), (16, 18, 24, 26, 1.0)])  # a small object in a wide soft rim
    flat = blob_map(size, [(5, 5, 25, 25, 0.8)])
    sets = get_localizer("components", label_resolution=None, core_level=0.3)(torch.stack([halo, flat]))
    assert sets.counts.tolist() == [2, 1]
    torch.testing.assert_close(sets[0][0],
                               torch.tensor([exact_box(5, 5, 35, 35, size), exact_box(16, 18, 24, 26, size)]))
    torch.testing.assert_close(sets[1][0], torch.tensor([exact_box(5, 5, 25, 25, size)]))


def test_weak_cores_and_small_cores_do_not_count():
    size = (40, 40)
    # The second square's mass above the threshold is under a fifth of the first's: one core, as large
    # as half the component's box or more, so nothing is added.
    weak = blob_map(size, [(10, 4, 20, 36, 0.3), (8, 4, 22, 24, 1.0), (14, 30, 16, 32, 0.9)])
    sets = get_localizer("components", label_resolution=None, core_level=0.3)(weak[None])
    assert sets.counts.tolist() == [1]
    # Cores under min_area are noise, like components.
    sets = get_localizer("components", label_resolution=None, core_level=0.3, min_area=0.1)(joined_pair(size)[None])
    assert sets.counts.tolist() == [1]


def test_cores_are_the_same_on_threads_and_chunks_and_checked():
    generator = torch.Generator().manual_seed(9)
    maps = heatmaps_from_features(torch.randn(30, 4, 7, 7, generator=generator), size=224)
    single = _on_one_and_two_threads(get_localizer("components", threshold="otsu", core_level=0.3), maps)
    plain = get_localizer("components", threshold="otsu")(maps)
    assert (single.counts >= plain.counts).all() and (single.counts > plain.counts).any()
    for i in range(len(maps)):  # the components' boxes come first, unchanged
        k = int(plain.counts[i])
        assert torch.equal(single.boxes[i, :k], plain.boxes[i, :k])
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="core_level must lie in"):
            get_localizer("components", core_level=bad)


@pytest.mark.parametrize("name", ["bbox", "components"])
def test_heatmaps_with_contrast_outside_0_1_are_refused_naming_their_range(name):
    # raw maps (background 3, object 10) were boxed whole as found (fallback False): every pixel above the threshold
    raw = torch.full((2, 16, 16), 3.0)
    raw[1, 4:8, 4:10] = 10.0
    with pytest.raises(ValueError, match=r"^heatmap 1 spans \[3, 10\]; localizers take heatmaps in \[0, 1\] .*"
                                         r"heatmaps_from_features"):
        get_localizer(name)(raw)
    # as before: a constant map of any value, float error or an offset within 0.1, -inf / NaN pixels (as 0)
    maps = torch.zeros(4, 16, 16)
    maps[0] = 3.0
    maps[1, 4:8, 4:8], maps[2, 4:8, 4:8], maps[3, 4:8, 4:8] = 1.05, 1.0, 1.0
    maps[2, 0, 0], maps[3, 0, 0] = -math.inf, math.nan
    assert get_localizer(name)(maps).fallback.tolist() == [True, False, False, False]


def test_max_boxes_above_the_store_limit_is_refused_when_built():
    # 2**40 was taken, then failed allocating (N, 2**40, 4) boxes at the first call
    with pytest.raises(ValueError, match=r"^max_boxes must be at most 127 \(the box store's limit\); "
                                         r"got 1099511627776$"):
        get_localizer("components", max_boxes=2**40)
    assert get_localizer("components", max_boxes=127).max_boxes == 127


@pytest.mark.parametrize("rule", ["otsu", "mean"])
def test_bbox_adaptive_thresholds_read_at_most_64_samples_a_side(rule, monkeypatch):
    # They read every pixel: 588 us per 224 px map (30x the constant threshold's), 3.6 ms at 512 px.
    from ccrop_plugins.localizers import bbox
    from ccrop_plugins.localizers.threshold import adaptive_thresholds, centre_samples

    read = []
    monkeypatch.setattr(bbox, "adaptive_thresholds", lambda maps, name: read.append(maps.shape) or
                        adaptive_thresholds(maps, name))
    maps = heatmaps_from_features(torch.rand(6, 8, 7, 7, generator=torch.Generator().manual_seed(0)) ** 4, size=256)
    boxes = get_localizer("bbox", threshold=rule)(maps).boxes[:, 0]
    assert read == [(6, 64, 64)]
    thresholds = adaptive_thresholds(centre_samples(maps.numpy(), 4), rule)  # the components localizer's samples
    for index, threshold in enumerate(thresholds.tolist()):
        alone = get_localizer("bbox", threshold=threshold)(maps[index : index + 1])
        assert torch.equal(boxes[index], alone.boxes[0, 0])
    small = maps[:, ::4, ::4].contiguous()  # up to 64 px a side: every pixel, as before
    read.clear()
    get_localizer("bbox", threshold=rule)(small)
    assert read == [(6, 64, 64)]

"""heatmaps_from_features: the paper's channel-sum map, min-max to [0, 1], degenerate maps give zeros."""

import math

import pytest
import torch
import torch.nn.functional as F

from ccrop_plugins import features_to_localize, heatmaps_from_features
from ccrop_plugins.heatmaps import channel_norm, channel_sum, normalize_maps


def _features(n=3, c=5, h=4, w=6, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_channel_sum_min_max_at_feature_resolution():
    features = _features()
    maps = heatmaps_from_features(features)
    summed = features.sum(dim=1)
    low = summed.amin(dim=(1, 2), keepdim=True)
    high = summed.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(maps, (summed - low) / (high - low))
    assert maps.shape == (3, 4, 6) and maps.dtype == torch.float32
    assert maps.amin(dim=(1, 2)).tolist() == [0.0] * 3
    assert maps.amax(dim=(1, 2)).tolist() == pytest.approx([1.0] * 3)


def test_upsampling_is_bilinear_after_normalisation():
    features = _features()
    maps = heatmaps_from_features(features, size=(16, 24))
    expected = F.interpolate(heatmaps_from_features(features)[:, None], size=(16, 24), mode="bilinear",
                             align_corners=False)
    torch.testing.assert_close(maps, expected[:, 0].clamp(0, 1))
    assert heatmaps_from_features(features, size=8).shape == (3, 8, 8)
    assert 0.0 <= float(maps.min()) and float(maps.max()) <= 1.0


def test_methods_by_name_and_callable():
    features = _features()
    torch.testing.assert_close(
        heatmaps_from_features(features, method="channel_norm"), normalize_maps(channel_norm(features))
    )
    torch.testing.assert_close(heatmaps_from_features(features, method=channel_sum), heatmaps_from_features(features))
    negated = heatmaps_from_features(features, method=lambda f: -f.sum(dim=1))
    torch.testing.assert_close(negated, 1 - heatmaps_from_features(features))
    with pytest.raises(ValueError, match="unknown heatmap 'sum'; available: channel_norm, channel_sum"):
        heatmaps_from_features(features, method="sum")


@pytest.mark.parametrize(
    "name, fill",
    [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("constant", 3.0), ("zero", 0.0)],
)
def test_degenerate_maps_give_zeros_not_nan(name, fill):
    features = _features(n=2)
    healthy = heatmaps_from_features(features[:1], size=(12, 12))
    if name in ("constant", "zero"):
        features[1] = fill
    else:
        features[1, 2, 1, 1] = fill  # one bad value spoils the whole map
    maps = heatmaps_from_features(features, size=(12, 12))
    assert not torch.isnan(maps).any()
    assert maps[1].abs().sum() == 0, f"{name} map should carry no location"
    assert torch.equal(maps[0], healthy[0])  # the healthy map in the same batch is untouched


def test_single_hot_pixel():
    features = torch.zeros(1, 3, 5, 5)
    features[0, 0, 2, 3] = 7.0
    maps = heatmaps_from_features(features)
    expected = torch.zeros(1, 5, 5)
    expected[0, 2, 3] = 1.0
    assert torch.equal(maps, expected)
    up = heatmaps_from_features(features, size=20)
    assert not torch.isnan(up).any() and up.max() > 0.5


def test_bad_feature_shape():
    with pytest.raises(ValueError, match=r"\(N, C, h, w\); got \(3, 4, 4\)"):
        heatmaps_from_features(torch.zeros(3, 4, 4))


@pytest.mark.parametrize("source, target", [((7, 7), (224, 224)), ((4, 4), (32, 32)), ((2, 3), (64, 50)),
                                            ((1, 1), (8, 8)), ((8, 8), (4, 4))])
def test_matrix_upsampling_equals_torch_bilinear(source, target):
    from ccrop_plugins.heatmaps import upsample_bilinear

    maps = torch.rand(3, *source, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.interpolate(maps[:, None], size=target, mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(upsample_bilinear(maps, target), expected, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- issue 12 and stage fusion
def test_empty_batch_gives_empty_heatmaps():
    assert heatmaps_from_features(torch.zeros(0, 3, 4, 4), size=16).shape == (0, 16, 16)
    assert heatmaps_from_features(torch.zeros(0, 3, 4, 4)).shape == (0, 4, 4)


@pytest.mark.parametrize(
    "features, size, error, message",
    [
        (torch.zeros(2, 3, 0, 4), None, ValueError, r"features must have C, h, w >= 1; got \(2, 3, 0, 4\)"),
        (torch.zeros(2, 0, 4, 4), None, ValueError, r"C, h, w >= 1"),
        (torch.rand(2, 3, 4, 4), 0, ValueError, r"size must be a positive int or \(height, width\); got 0"),
        (torch.rand(2, 3, 4, 4), (10, 10, 3), ValueError, r"size must be .*got \(10, 10, 3\) \(3 values\)"),
        (torch.rand(2, 3, 4, 4), 8.5, TypeError, r"size must be a positive int .*got 8.5"),
        ({}, None, ValueError, "empty dict"),
        ({"a": torch.rand(2, 3, 4, 4), "b": torch.rand(3, 3, 2, 2)}, None, ValueError, "disagree on the batch size"),
        ([torch.rand(2, 3, 4, 4)], None, TypeError, "Tensor .* or a dict"),
    ],
)
def test_bad_features_and_sizes_are_named(features, size, error, message):
    with pytest.raises(error, match=message):
        heatmaps_from_features(features, size=size)


def test_a_heatmap_method_returning_4d_maps_is_refused_by_name():
    def keep_channels(features):
        return features

    with pytest.raises(ValueError, match=r"heatmap method .*keep_channels returned \(3, 5, 4, 6\); "
                                         r"expected maps \(N, h, w\) = \(3, 4, 6\)"):
        heatmaps_from_features(_features(), method=keep_channels)
    with pytest.raises(ValueError, match=r"returned list"):
        heatmaps_from_features(_features(), method=lambda f: [1])


def test_stage_fusion_is_the_geometric_mean_on_the_finest_grid_and_skips_flat_stages():
    from ccrop_plugins.heatmaps import fuse_maps, upsample_bilinear

    fine, coarse = _features(h=8, w=8, seed=1), _features(h=4, w=4, seed=2)
    fused = heatmaps_from_features({"coarse": coarse, "fine": fine})
    a = normalize_maps(channel_sum(fine))
    b = upsample_bilinear(normalize_maps(channel_sum(coarse)), (8, 8)).clamp(0, 1)
    torch.testing.assert_close(fused, normalize_maps((a.clamp_min(1e-6) * b.clamp_min(1e-6)).sqrt()))
    flat = torch.ones_like(coarse)  # no contrast: left out, the fine stage alone decides
    torch.testing.assert_close(heatmaps_from_features({"coarse": flat, "fine": fine}), a, atol=1e-6, rtol=0)
    assert fuse_maps([torch.zeros(2, 4, 4), torch.zeros(2, 8, 8)]).abs().sum() == 0


def test_fusing_nothing_or_two_batch_sizes_and_options_that_are_not_a_dict_are_named():
    from ccrop_plugins.heatmaps import fuse_maps

    with pytest.raises(ValueError, match=r"fuse_maps needs maps \(N, h_s, w_s\) of one batch size; got \[\]"):
        fuse_maps([])
    with pytest.raises(ValueError, match=r"one batch size; got \[\(2, 3, 3\), \(3, 4, 4\)\]"):
        fuse_maps([torch.rand(2, 3, 3), torch.rand(3, 4, 4)])
    for options in ("sign", [("sign", "image")]):
        with pytest.raises(TypeError, match=f"heatmap options must be a dict; got {type(options).__name__}"):
            heatmaps_from_features(torch.rand(2, 3, 4, 4), None, "channel_sum", options)


def test_normalizing_no_maps_or_empty_maps_gives_zeros():
    for shape in [(0, 3, 3), (2, 0, 4)]:
        out = normalize_maps(torch.rand(shape, dtype=torch.float64))
        assert out.shape == shape and out.dtype == torch.float32


def test_finalize_of_statistics_a_rule_cannot_take_is_named():
    from ccrop_plugins import HeatmapPipeline

    pipeline = HeatmapPipeline("channel_sum")
    pipeline.finalize(pipeline.fit(torch.rand(2, 3, 4, 4)))  # a rule without statistics: fit gives {}, a no-op
    for totals, got in (({None: {"count": torch.tensor(2.0)}}, "dict"), ([1], "list")):  # were AttributeErrors
        with pytest.raises(TypeError, match=rf"finalize takes the summed statistics of fit, .*; got {got} for "):
            pipeline.finalize(totals)


def test_features_to_localize_takes_a_tuples_last_item_as_the_refresh_does():
    maps, embedding = torch.rand(2, 4, 3, 3), torch.rand(2, 4)
    assert features_to_localize((embedding, maps)) is maps  # out_indices stages: the deepest last
    assert features_to_localize([maps]) is maps
    stages = {"layer3": maps}
    assert features_to_localize(stages) is stages and features_to_localize((embedding, stages)) is stages
    assert features_to_localize(maps) is maps and features_to_localize(()) == ()


def test_finite_features_spanning_more_than_float32_give_no_nan():
    # max - min overflowed to inf: NaN pixels (documented: never NaN), the hottest cell read as 0
    features = torch.zeros(2, 1, 4, 4)
    features[0, 0, 0, 0], features[0, 0, 3, 3] = 2e38, -2e38
    features[1, 0, 1, 1] = 1.0
    maps = heatmaps_from_features(features)
    assert not maps.isnan().any()
    assert (maps[0, 0, 0], maps[0, 3, 3], maps[0, 1, 1]) == (1.0, 0.0, 0.5)
    assert torch.equal(maps[1], heatmaps_from_features(features[1:])[0])  # an ordinary map beside it: as before

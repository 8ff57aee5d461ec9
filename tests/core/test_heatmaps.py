"""heatmaps_from_features: the paper's channel-sum map, min-max to [0, 1], degenerate maps give zeros."""

import math

import pytest
import torch
import torch.nn.functional as F

from ccrop_plugins import heatmaps_from_features
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
    expected = F.interpolate(heatmaps_from_features(features)[:, None], size=(16, 24), mode="bilinear", align_corners=False)
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


@pytest.mark.parametrize("source, target", [((7, 7), (224, 224)), ((4, 4), (32, 32)), ((2, 3), (64, 50)), ((1, 1), (8, 8)), ((8, 8), (4, 4))])
def test_matrix_upsampling_equals_torch_bilinear(source, target):
    from ccrop_plugins.heatmaps import upsample_bilinear

    maps = torch.rand(3, *source, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.interpolate(maps[:, None], size=target, mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(upsample_bilinear(maps, target), expected, atol=1e-6, rtol=0)

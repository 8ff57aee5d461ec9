"""A third-party plugin author's mistakes, met with a clear error or a documented fallback (helper P2's probe)."""

import pytest
import torch

from ccrop_plugins import heatmaps_from_features


def _features(n: int = 2, h: int = 5, w: int = 6) -> torch.Tensor:
    return torch.rand(n, 8, h, w, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("rule, got", [
    (lambda f: torch.rand(f.shape[0], f.shape[2] + 1, f.shape[3]), r"\(2, 6, 6\)"),  # one row too many
    (lambda f: f.sum(1).transpose(1, 2), r"\(2, 6, 5\)"),  # (N, w, h)
    (lambda f: f.sum(1).to(torch.complex64), r"\(2, 5, 6\) of dtype torch.complex64"),
])
def test_a_heatmap_rule_off_the_features_grid_is_refused(rule, got):
    # was: stretched to the image without a word (a transposed map put the boxes on the other axis), a complex map
    # cast to its real part with a UserWarning
    with pytest.raises(ValueError, match=rf"returned {got}; expected maps \(N, h, w\) = \(2, 5, 6\) \(real numbers"):
        heatmaps_from_features(_features(), size=(10, 12), method=rule)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.int64, torch.bool])
def test_a_heatmap_rule_of_another_real_dtype_gives_float32_maps_in_0_1(dtype):
    maps = heatmaps_from_features(_features(), size=(10, 12), method=lambda f: (f.sum(1) * 4).to(dtype))
    assert maps.dtype == torch.float32 and maps.shape == (2, 10, 12)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1

"""The centre samplers: Beta (the paper's), uniform and Gaussian, found by name."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ccrop_plugins import get_sampler
from ccrop_plugins.samplers import BetaSampler, GaussianSampler, UniformSampler

LOW = np.array([100.0, 20.0])
HIGH = np.array([600.0, 420.0])
CENTRE = (LOW + HIGH) / 2
EXTENT = np.array([500.0, 400.0])


def _draw(sampler, n=3000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return np.stack([sampler(LOW, HIGH, CENTRE, EXTENT, generator) for _ in range(n)])


@pytest.mark.parametrize("alpha, wrong_alphas", [(0.1, (0.2, 0.05)), (0.6, (1.0, 0.3)), (2.0, (1.0, 4.0))])
def test_beta_offsets_follow_beta_and_a_wrong_alpha_is_rejected(alpha, wrong_alphas):
    points = _draw(get_sampler("beta", alpha=alpha))
    assert (points >= LOW).all() and (points <= HIGH).all()
    offsets = (points - LOW) / (HIGH - LOW)
    for axis in range(2):
        assert stats.kstest(offsets[:, axis], stats.beta(alpha, alpha).cdf).pvalue > 0.01
        for wrong in wrong_alphas:  # power: the same test tells a wrong alpha apart
            assert stats.kstest(offsets[:, axis], stats.beta(wrong, wrong).cdf).pvalue < 1e-4
    # the two axes are independent draws
    assert abs(stats.spearmanr(offsets[:, 0], offsets[:, 1]).statistic) < 0.06


def test_uniform_sampler_is_uniform_over_the_range():
    offsets = (_draw(get_sampler("uniform")) - LOW) / (HIGH - LOW)
    for axis in range(2):
        assert stats.kstest(offsets[:, axis], "uniform").pvalue > 0.01
        assert stats.kstest(offsets[:, axis], stats.beta(0.6, 0.6).cdf).pvalue < 1e-4


def test_gaussian_is_centred_with_relative_sigma_and_clamped():
    sigma = 0.1
    points = _draw(get_sampler("gaussian", sigma=sigma))
    # sigma * extent = 50 / 40 px, far inside the range: unclamped normal around the centre.
    for axis in range(2):
        scale = sigma * EXTENT[axis]
        assert stats.kstest(points[:, axis], stats.norm(CENTRE[axis], scale).cdf).pvalue > 0.01
        assert stats.kstest(points[:, axis], stats.norm(CENTRE[axis] + 0.2 * scale, scale).cdf).pvalue < 1e-4
    wide = _draw(get_sampler("gaussian", sigma=2.0), n=500)
    assert (wide >= LOW).all() and (wide <= HIGH).all()
    assert ((wide == LOW) | (wide == HIGH)).mean() > 0.5  # mostly clamped at sigma = 2 box sizes
    assert abs(np.median(wide[:, 0]) - CENTRE[0]) < 0.1 * (HIGH[0] - LOW[0])


@pytest.mark.parametrize("sampler", [BetaSampler(0.3), UniformSampler(), GaussianSampler(0.5)], ids=repr)
def test_same_generator_seed_same_points(sampler):
    assert np.array_equal(_draw(sampler, n=20, seed=7), _draw(sampler, n=20, seed=7))
    assert not np.array_equal(_draw(sampler, n=20, seed=7), _draw(sampler, n=20, seed=8))


def test_degenerate_range_gives_its_single_point():
    low = np.array([5.0, 7.0])
    for name in ("beta", "uniform", "gaussian"):
        out = get_sampler(name)(low, low.copy(), low.copy(), np.array([0.0, 0.0]), None)
        assert out.tolist() == [5.0, 7.0]


@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan])
def test_bad_options(value):
    with pytest.raises(ValueError, match=f"alpha must be a finite number > 0.*got {value}"):
        get_sampler("beta", alpha=value)
    with pytest.raises(ValueError, match=f"sigma must be a finite number > 0.*got {value}"):
        get_sampler("gaussian", sigma=value)


@pytest.mark.parametrize("value, shown", [(True, "True"), ("0.5", "'0.5'"), (None, "None"), ([0.5], r"\[0.5\]")])
def test_options_that_are_not_numbers_are_named_not_converted(value, shown):
    with pytest.raises(ValueError, match=r"alpha must be a finite number > 0 \(the paper uses 0.1 to 1.0\); "
                                         rf"got {shown}$"):
        get_sampler("beta", alpha=value)
    with pytest.raises(ValueError, match=rf"sigma must be a finite number > 0 .*; got {shown}$"):
        get_sampler("gaussian", sigma=value)


def test_unknown_sampler_lists_available():
    with pytest.raises(ValueError, match="^unknown sampler 'betta'; available: beta, gaussian, uniform$"):
        get_sampler("betta")


@pytest.mark.parametrize("sampler", [BetaSampler(0.3), UniformSampler()])
def test_unit_quantile_is_the_call_with_the_same_draws(sampler):
    low, high = np.array([3.0, 10.0]), np.array([50.0, 12.5])
    placed = sampler(low, high, (low + high) / 2, np.array([40.0, 5.0]), torch.Generator().manual_seed(2))
    u = torch.rand(2, generator=torch.Generator().manual_seed(2), dtype=torch.float64).tolist()
    expected = [lo + (hi - lo) * sampler.unit_quantile(v) for lo, hi, v in zip(low, high, u)]
    np.testing.assert_allclose(placed, expected, rtol=0, atol=1e-12)

"""Where inside the chosen box a view goes: the centre samplers (the protocol: :class:`CentreSampler`)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from scipy.special import betaincinv

from .sizes import checked_real

Pair = np.ndarray
"""A ``(top, left)`` pair of pixels: a float64 array of shape ``(2,)``."""


class CentreSampler(Protocol):
    """Places one crop of a known size: returns its top-left ``(2,)`` inside ``[low, high]``, drawing from
    ``generator`` (or torch's global RNG). Every argument is a :data:`Pair`: ``low`` / ``high`` bound the top-left
    (``box_edge * H - h / 2`` clamped to ``[0, H - h]``), ``centre`` centres the crop on the box (unclamped),
    ``extent`` is the box's height and width. Optional: ``unit_quantile(u) -> q(u)`` for samplers placing each axis
    at ``low + (high - low) * q(u)`` (docs/configuration.md, "Samplers").
    """

    def __call__(self, low: Pair, high: Pair, centre: Pair, extent: Pair,
                 generator: torch.Generator | None = None) -> Pair: ...


class _QuantileSampler:
    """The quantile form: each axis at ``low + (high - low) * q(u)``, ``u`` uniform (here ``q`` is the identity)."""

    def __call__(self, low: Pair, high: Pair, centre: Pair, extent: Pair,
                 generator: torch.Generator | None = None) -> Pair:
        u = torch.rand(low.shape, generator=generator, dtype=torch.float64).numpy()
        return low + (high - low) * self._quantiles(u)

    def _quantiles(self, u: np.ndarray) -> np.ndarray:
        return u

    def unit_quantile(self, u: float) -> float:
        return float(self._quantiles(u))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


class BetaSampler(_QuantileSampler):
    """The paper's center-suppressed sampler: ``low + (high - low) * Beta(alpha, alpha)``, by inverse CDF of
    ``torch.rand`` (a seeded ``torch.Generator`` reproduces it). ``alpha < 1`` pushes the two views of a pair to
    opposite sides of the object, ``1`` is uniform, ``> 1`` central; ``ValueError`` unless finite and ``> 0``."""

    def __init__(self, alpha: float = 0.6) -> None:
        self.alpha = checked_real(alpha, "alpha", "be a finite number > 0 (the paper uses 0.1 to 1.0)", _positive)

    def _quantiles(self, u: np.ndarray) -> np.ndarray:
        return betaincinv(self.alpha, self.alpha, u)


class UniformSampler(_QuantileSampler):
    """Uniform over the allowed range (the paper's ablation with ``alpha = 1``)."""


class GaussianSampler:
    """A Gaussian around the box centre, clamped to the range; ``sigma`` (finite, ``> 0``, else ``ValueError``):
    its standard deviation as a fraction of the box's height (for ``top``) and width (for ``left``)."""

    def __init__(self, sigma: float = 0.25) -> None:
        self.sigma = checked_real(sigma, "sigma", "be a finite number > 0 (a fraction of the box size)", _positive)

    def __call__(self, low: Pair, high: Pair, centre: Pair, extent: Pair,
                 generator: torch.Generator | None = None) -> Pair:
        noise = torch.randn(low.shape, generator=generator, dtype=torch.float64).numpy()
        return np.clip(centre + self.sigma * extent * noise, low, high)

    __repr__ = _QuantileSampler.__repr__  # GaussianSampler(sigma=0.25)


def check_sampler(sampler: CentreSampler) -> None:
    """Call ``sampler`` once on a fixed range with its own generator (``ContrastiveCrop`` does, when built):
    ``ValueError`` naming it unless it returns a ``(top, left)`` pair of real numbers inside ``[low, high]`` and its
    ``unit_quantile``, if any, a real number in ``[0, 1]`` (one-element tensors and arrays too:
    :func:`quantile_value`); what it raises is named too."""
    low, high = np.array([10.0, 20.0]), np.array([30.0, 50.0])
    try:
        placed = sampler(low, high, (low + high) / 2, np.array([40.0, 60.0]), torch.Generator().manual_seed(0))
        quantile = getattr(sampler, "unit_quantile", None)
        q = quantile(0.5) if callable(quantile) else 0.5
        if not (np.iscomplexobj(placed) or np.iscomplexobj(q)):  # float64 would drop the imaginary part, warning
            q, pair = quantile_value(q), np.asarray(placed, dtype=np.float64)
    except Exception as error:
        raise ValueError(f"sampler {sampler!r} failed a first call, sampler(low, high, centre, extent, generator) with "
                         f"low={low.tolist()}, high={high.tolist()} (then unit_quantile(0.5)): "
                         f"{type(error).__name__}: {error} (ccrop_plugins.samplers.CentreSampler)") from error
    if np.iscomplexobj(placed):
        raise sampler_error(sampler, f"complex values {placed!r}")
    if np.iscomplexobj(q):
        raise sampler_error(sampler, f"a complex unit_quantile(0.5) = {q!r}")
    inside = pair.shape == (2,) and bool(np.all(low <= pair) and np.all(pair <= high))
    if not inside or not 0 <= q <= 1:
        raise sampler_error(sampler, f"unit_quantile(0.5) = {q}" if inside else repr(placed),
                            f" (here low={low.tolist()}, high={high.tolist()})")


def quantile_value(q: Any) -> float:
    """A ``unit_quantile``'s value as a float: a number, or a one-element tensor or array (``ValueError`` /
    ``RuntimeError`` for more elements, ``TypeError`` for text or a complex number)."""
    return float(q.item() if isinstance(q, (np.ndarray, torch.Tensor)) else q)


def sampler_error(sampler: CentreSampler, got: str, where: str = "") -> ValueError:
    """The ``ValueError`` of a centre sampler that returned ``got`` (``where``: the range it was given)."""
    return ValueError(f"sampler {sampler!r} returned {got}; a centre sampler returns the crop's (top, left) inside "
                      f"[low, high]{where} as two finite numbers, its unit_quantile a number in [0, 1] "
                      "(ccrop_plugins.samplers.CentreSampler)")


def _positive(number: float) -> bool:
    return 0.0 < number < float("inf")

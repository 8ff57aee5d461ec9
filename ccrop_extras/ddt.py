"""A dataset-level rule (DDT, Wei et al., Pattern Recognition 2019): each cell projected on the first principal
component of the dataset's cells, fitted on the refresh pass (docs/plugins.md, "How the shipped extra rules work")."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ccrop_plugins.heatmap_rules.basic import distinctiveness

SIGN_RULES = ("dataset", "image", "border", "none")


class DatasetPCA:
    """DDT heatmap: ``M = (F - mean) . v``, ``v`` the first principal component of the dataset's cells;
    :func:`~ccrop_plugins.heatmap_rules.distinctiveness` until fitted.

    Args:
        sign: how to orient ``v``: ``"dataset"`` (default; positive correlation with distinctiveness over the
            dataset), ``"image"`` (the same, per image), ``"border"`` (per image, border cells below the mean)
            or ``"none"`` (largest-magnitude entry positive); any other is a ``ValueError``.

    Shapes: ``fit`` and ``__call__`` take features ``(N, C, h, w)``; ``__call__`` returns ``(N, h, w)``.
    """

    def __init__(self, sign: str = "dataset") -> None:
        if sign not in SIGN_RULES:
            raise ValueError(f"unknown sign rule {sign!r} of heatmap 'ddt'; available: {', '.join(SIGN_RULES)}")
        self.sign = sign
        self.mean: Tensor | None = None
        self.component: Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.component is not None

    def fit(self, features: Tensor) -> dict[str, Tensor]:
        """Sufficient statistics of one batch as float64 sums (the host adds them up); products in the features'
        precision, 3-4x faster than float64 and as good for the component."""
        n, channels, height, width = features.shape
        flat = features.detach().reshape(n, channels, height * width)  # no copy: (N, C, cells)
        statistics = {"count": torch.tensor(float(n * height * width), dtype=torch.float64, device=flat.device),
                      "sum": flat.sum(dim=(0, 2)).double(),
                      "outer": torch.bmm(flat, flat.transpose(1, 2)).sum(dim=0).double()}
        if self.sign == "dataset":  # only this sign rule needs them
            distinct = distinctiveness(features.detach()).reshape(n, height * width, 1)
            statistics["distinct_sum"] = distinct.sum().double()
            statistics["distinct_weighted"] = torch.bmm(flat, distinct).sum(dim=0)[:, 0].double()
        return statistics

    def finalize(self, totals: dict[str, Tensor]) -> None:
        """Set the mean and the oriented first principal component from the summed statistics."""
        expected = ["count", "sum", "outer"] + (["distinct_sum", "distinct_weighted"] if self.sign == "dataset" else [])
        missing = [key for key in expected if key not in totals]
        if missing:
            raise ValueError(f"heatmap 'ddt' (sign={self.sign!r}): the statistics lack {missing}; expected "
                             f"{', '.join(expected)} (the sums of fit)")
        count = float(totals["count"])
        if count < 2:
            return  # nothing fitted: keep the previous statistics (or the fallback)
        mean = totals["sum"] / count
        covariance = totals["outer"] / count - torch.outer(mean, mean)
        covariance = (covariance + covariance.T) / 2
        if not bool(torch.isfinite(covariance).all()):
            return
        # NumPy's LAPACK call: torch.linalg.eigh on a busy multi-threaded CPU was measured 100x slower.
        _, vectors = np.linalg.eigh(covariance.cpu().numpy())
        component = torch.from_numpy(vectors[:, -1].copy()).to(mean.device)
        component = component * _sign(component[component.abs().argmax()])
        if self.sign == "dataset":
            # cov(projection, distinctiveness) = v . (E[f d] - E[f] E[d]) over all cells of the dataset
            agreement = component @ (totals["distinct_weighted"] / count - mean * totals["distinct_sum"] / count)
            component = component * _sign(agreement)
        self.mean, self.component = mean, component

    def __call__(self, features: Tensor) -> Tensor:
        if self.component is None:
            return distinctiveness(features)
        channels = features.shape[1]
        if channels != self.component.shape[0]:
            raise ValueError(f"heatmap 'ddt' was fitted on {self.component.shape[0]} channels; "
                             f"got features with {channels}")
        component = self.component.to(features.device, features.dtype)
        offset = float(self.mean @ self.component)
        n, _, height, width = features.shape
        # (F - mean) . v as one matrix product, without a centred copy of the features
        maps = (component @ features.reshape(n, channels, height * width)).reshape(n, height, width) - offset
        if self.sign == "image":
            maps = maps * _agreement_sign(maps, distinctiveness(features))[:, None, None]
        elif self.sign == "border":
            maps = maps * _border_sign(maps)[:, None, None]
        return maps

    def __repr__(self) -> str:
        return f"DatasetPCA(sign={self.sign!r}, fitted={self.fitted})"


def _sign(value: Tensor) -> Tensor:
    return torch.where(value < 0, -1.0, 1.0).to(value.dtype)


def _agreement_sign(maps: Tensor, reference: Tensor) -> Tensor:
    """``(N,)``: -1 where a map correlates negatively with ``reference`` (per image), else 1."""
    a, b = (x.flatten(1) - x.flatten(1).mean(dim=1, keepdim=True) for x in (maps, reference))
    return _sign((a * b).sum(dim=1))


def _border_sign(maps: Tensor) -> Tensor:
    """``(N,)``: -1 where a map's border cells score above the map's mean, else 1."""
    height, width = maps.shape[-2:]
    if height < 3 or width < 3:
        return maps.new_ones(maps.shape[0])
    border = torch.ones(height, width, dtype=torch.bool, device=maps.device)
    border[1:-1, 1:-1] = False
    return _sign(maps.flatten(1).mean(dim=1) - maps[:, border].mean(dim=1))

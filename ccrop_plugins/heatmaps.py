"""Feature maps -> heatmaps in [0, 1] (the paper's semantic-aware localization, step 1): a *heatmap rule* (a plugin;
built-ins in :mod:`ccrop_plugins.heatmap_rules`) reduces features ``(N, C, h, w)`` to raw maps ``(N, h, w)``; each
map normalised, several stages fused, upsampled to the image (docs/plugins.md, "Heatmap rules")."""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from .heatmap_rules import channel_norm, channel_sum, distinctiveness  # noqa: F401  (re-exported)
from .plugins import get_heatmap
from .sizes import height_width

HeatmapMethod = Callable[[Tensor], Tensor]
"""Reduces features ``(N, C, h, w)`` to raw maps ``(N, h, w)``; larger means "more object"."""

Features = Tensor | Mapping[str, Tensor]
"""One stage's features ``(N, C, h, w)``, or several stages by name (fused into one heatmap)."""


@runtime_checkable
class FittedHeatmap(Protocol):
    """A heatmap rule with dataset statistics: ``fit`` returns a batch's statistics that add up, ``finalize``
    takes their sums over the pass and the ranks (docs/plugins.md, "Rules with dataset statistics")."""

    def fit(self, features: Tensor) -> dict[str, Tensor]: ...

    def finalize(self, totals: dict[str, Tensor]) -> None: ...

    def __call__(self, features: Tensor) -> Tensor: ...


def build_heatmap(method: str | HeatmapMethod, options: Mapping[str, Any] | None = None) -> HeatmapMethod:
    """The heatmap rule ``method``: a callable as it is (no ``options``), or a registered name built by
    :func:`ccrop_plugins.get_heatmap` with ``options``; ``TypeError`` for a bad option."""
    if isinstance(method, str):
        return get_heatmap(method, **(options or {}))
    if not callable(method):
        raise TypeError(f"heatmap must be a registered name or a callable; got {type(method).__name__}")
    if options:
        raise TypeError(f"heatmap options {sorted(options)} need a heatmap given by name; got {method!r}")
    return method


def _method_name(method: object) -> str:
    name = repr(method) if isinstance(method, str) else getattr(method, "__qualname__", None)
    return name or type(method).__qualname__


class HeatmapPipeline:
    """A heatmap rule applied to one or several stages, one rule instance per stage (key ``None``: single-tensor
    features). ``pipeline(features, size)`` gives heatmaps ``(N, H, W)`` in ``[0, 1]``; a fitted rule's
    statistics go through ``fit`` / ``finalize`` and stay with the pipeline from one refresh pass to the next."""

    def __init__(self, method: str | HeatmapMethod = "channel_sum", options: Mapping[str, Any] | None = None) -> None:
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"heatmap options must be a dict; got {type(options).__name__}")
        self.method, self.options = method, dict(options or {})
        self.rules: dict[str | None, HeatmapMethod] = {}
        # Whether the rule has dataset statistics; a bad name or option fails here, before any pass.
        rule = build_heatmap(method, self.options)
        half = [name for name in ("fit", "finalize") if callable(getattr(rule, name, None))]
        self.fits = len(half) == 2  # a FittedHeatmap; every stage's rule is built alike
        if len(half) == 1:  # e.g. 'finalise': the rule would apply its fallback on every pass, silently
            raise TypeError(f"heatmap rule {_method_name(method)} has {half[0]} but no "
                            f"{'finalize' if half == ['fit'] else 'fit'}; a rule with dataset statistics defines both, "
                            "fit(features) -> {name: tensor} and finalize(totals) (docs/plugins.md)")

    def __repr__(self) -> str:
        options = f", options={self.options}" if self.options else ""
        return f"HeatmapPipeline({self.method!r}{options})"

    def rule(self, stage: str | None) -> HeatmapMethod:
        """The rule instance of ``stage`` (built on first use)."""
        if stage not in self.rules:
            if not isinstance(self.method, str) and self.fits and self.rules:
                raise ValueError(f"a fitted heatmap instance ({_method_name(self.method)}) serves one stage only; "
                                 "pass the heatmap by name to fit one instance per stage")
            self.rules[stage] = build_heatmap(self.method, self.options)
        return self.rules[stage]

    def __call__(self, features: Features, size: int | Sequence[int] | None = None) -> Tensor:
        stages = as_stages(features)
        size = None if size is None else height_width(size, "size")
        first = next(iter(stages.values()))
        if first.shape[0] == 0:
            grid = size or max((tuple(f.shape[-2:]) for f in stages.values()), key=lambda s: s[0] * s[1])
            return torch.zeros(0, *grid, device=first.device)
        maps = [self._stage_map(stage, values) for stage, values in stages.items()]
        fused = maps[0] if len(maps) == 1 else fuse_maps(maps)
        return fused if size is None or tuple(fused.shape[-2:]) == size else upsample_bilinear(fused, size).clamp_(0, 1)

    def fit(self, features: Features) -> dict[str | None, dict[str, Tensor]]:
        """Each fitted stage rule's statistics of this batch (empty for rules without ``fit``); ``TypeError`` unless the
        rule's ``fit`` returns ``{name: tensor}``."""
        out = {}
        for stage, values in as_stages(features).items():
            rule = self.rule(stage)
            if self.fits and values.shape[0]:
                statistics = rule.fit(values.detach().float())
                if not isinstance(statistics, Mapping) or not all(isinstance(v, Tensor) for v in statistics.values()):
                    got = {k: type(v).__name__ for k, v in statistics.items()} if isinstance(statistics, Mapping) \
                        else type(statistics).__name__
                    raise TypeError(f"the fit of heatmap rule {_method_name(self.method)} returned {got}; expected "
                                    "{name: tensor}, sums that add up over batches and ranks (docs/plugins.md)")
                out[stage] = {key: value.detach() for key, value in statistics.items()}
        return out

    def finalize(self, totals: Mapping[str | None, Mapping[str, Tensor]]) -> None:
        """Give each stage's rule its summed statistics."""
        if not isinstance(totals, Mapping) or totals and not self.fits:  # were AttributeErrors of list / function
            raise TypeError(f"finalize takes the summed statistics of fit, {{stage: {{name: tensor}}}}, of a heatmap "
                            f"with dataset statistics; got {type(totals).__name__} for {_method_name(self.method)}")
        for stage, statistics in totals.items():
            broken = sorted(k for k, v in statistics.items() if not torch.isfinite(torch.as_tensor(v).float()).all())
            if broken:  # applied, every map would be NaN: the whole image for every image, with no word of why
                where = "" if stage is None else f" of stage {stage!r}"
                warnings.warn(f"heatmap rule {_method_name(self.method)}{where}: its summed fit statistics {broken} "
                              "hold NaN or inf; not applied, the rule keeps its previous statistics (before its first "
                              "fit, its fallback)", UserWarning, stacklevel=2)
                continue
            self.rule(stage).finalize(dict(statistics))

    def _stage_map(self, stage: str | None, features: Tensor) -> Tensor:
        raw = self.rule(stage)(features.detach().float())
        expected = (features.shape[0], *features.shape[-2:])  # the features' own grid: another one would be stretched
        if not isinstance(raw, Tensor) or raw.shape != expected or raw.is_complex():
            got = type(raw).__name__ if not isinstance(raw, Tensor) else f"{tuple(raw.shape)}" + (
                f" of dtype {raw.dtype}" if raw.is_complex() else "")
            where = f" of stage {stage!r}" if stage is not None else ""
            raise ValueError(f"heatmap method {_method_name(self.method)}{where} returned {got}; "
                             f"expected maps (N, h, w) = {expected} (real numbers on the features' grid)")
        return normalize_maps(raw)


def features_to_localize(output: Any) -> Any:
    """What :func:`~ccrop_plugins.refresh_boxes` localizes with from a feature function's ``output``: a tuple's or
    list's last item (a backbone's ``out_indices`` stages, or ``(maps, embedding)``), else ``output`` itself, maps
    ``(N, C, h, w)`` or ``{stage: maps}``. Unchecked (the refresh checks it); the adapters' probes read the same."""
    return output[-1] if isinstance(output, (tuple, list)) and output else output


def as_stages(features: Features) -> dict[str | None, Tensor]:
    """``features`` as ``{stage: (N, C, h, w)}`` (``None`` for a single tensor), checked."""
    if isinstance(features, Tensor):
        stages: dict[str | None, Tensor] = {None: features}
    elif not isinstance(features, Mapping):
        raise TypeError(f"features must be a Tensor (N, C, h, w) or a dict of them; got {type(features).__name__}")
    elif not features:
        raise ValueError("features is an empty dict; expected {stage: (N, C, h, w)}")
    else:
        stages = dict(features)
    for stage, values in stages.items():
        where = "features" if stage is None else f"features of stage {stage!r}"
        if not isinstance(values, Tensor) or values.ndim != 4:
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(f"{where} must have shape (N, C, h, w); got {got}")
        if min(values.shape[1:]) < 1:
            raise ValueError(f"{where} must have C, h, w >= 1; got {tuple(values.shape)}")
    if len({values.shape[0] for values in stages.values()}) > 1:
        raise ValueError(f"stages disagree on the batch size: { {s: v.shape[0] for s, v in stages.items()} }")
    return stages


def fuse_maps(maps: Sequence[Tensor]) -> Tensor:
    """Geometric mean of normalised ``(N, h_s, w_s)`` maps on the finest grid, normalised to ``[0, 1]``; a map with
    no contrast for an image (all zeros after :func:`normalize_maps`) is left out of that image's mean, and an image
    with no usable map gets zeros (why: docs/plugins.md, "Heatmap rules")."""
    if not maps or len({m.shape[0] for m in maps}) > 1:
        raise ValueError(f"fuse_maps needs maps (N, h_s, w_s) of one batch size; got {[tuple(m.shape) for m in maps]}")
    grid = max((tuple(m.shape[-2:]) for m in maps), key=lambda s: s[0] * s[1])
    log_sum = maps[0].new_zeros(maps[0].shape[0], *grid)
    used = maps[0].new_zeros(maps[0].shape[0], 1, 1)
    for m in maps:
        m = m if tuple(m.shape[-2:]) == grid else upsample_bilinear(m, grid).clamp_(0.0, 1.0)
        usable = (m.flatten(1).amax(dim=1) > 0).float()[:, None, None]
        log_sum += m.clamp_min(1e-6).log() * usable
        used += usable
    return normalize_maps(torch.exp(log_sum / used.clamp_min(1)) * (used > 0))


def normalize_maps(maps: Tensor) -> Tensor:
    """Per-map min-max normalisation of ``(N, h, w)`` to ``[0, 1]``; a map with a non-finite value, or a
    constant one, carries no location and becomes all zeros ("no object found"), never NaN."""
    if maps.numel() == 0:  # no maps, or maps of no cells
        return maps.new_zeros(maps.shape, dtype=torch.float32)
    flat = maps.reshape(maps.shape[0], -1).float()
    finite = torch.isfinite(flat).all(dim=1)
    flat = torch.where(finite[:, None], flat, torch.zeros_like(flat))
    low, high = flat.aminmax(dim=1, keepdim=True)
    span = high - low
    scaled = (flat - low) / torch.where(span > 0, span, torch.ones_like(span))
    wide = torch.isinf(span[:, 0])  # finite maps whose max - min overflows float32 (NaN above): scaled in float64
    if wide.any():
        low64 = low[wide].double()
        scaled[wide] = ((flat[wide].double() - low64) / (high[wide].double() - low64)).float()
    return (scaled * (finite & (span[:, 0] > 0))[:, None]).reshape(maps.shape)


def heatmaps_from_features(features: Features, size: Sequence[int] | int | None = None,
                           method: str | HeatmapMethod = "channel_sum",
                           options: Mapping[str, Any] | None = None) -> Tensor:
    """Backbone features ``(N, C, h, w)`` (or ``{stage: (N, C_s, h_s, w_s)}``, fused) -> heatmaps ``(N, H, W)``
    float32 in ``[0, 1]``, all zeros for maps with non-finite values or no contrast; ``size``: ``(H, W)`` or one int
    (``None`` keeps the finest ``(h, w)``); ``method``: a registered rule name with its ``options``, or a callable
    ``(N, C, h, w) -> (N, h, w)`` (docs/configuration.md; a fitted rule applies its fallback: a
    :class:`HeatmapPipeline` fits it). ``ValueError`` / ``TypeError`` name bad features, sizes, rules or options.
    """
    return HeatmapPipeline(method, options)(features, size)


def upsample_bilinear(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(N, h, w)`` maps to ``(N, H, W)``, ``align_corners=False``: upsampling is
    ``F.interpolate``'s result as two small matrix products ``A_H @ M @ A_W^T``, about twice as fast on the CPU."""
    if size[0] < maps.shape[-2] or size[1] < maps.shape[-1]:
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    rows, cols = (_interpolation_matrix(n, target, maps.dtype, maps.device) for n, target in zip(maps.shape[-2:], size))
    return rows @ maps @ cols.T


@lru_cache(maxsize=64)  # the same few sizes every batch of a pass
def _interpolation_matrix(source: int, target: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(target, source)`` weights of linear interpolation with half-pixel centres (PyTorch's rule)."""
    position = ((torch.arange(target, dtype=torch.float64) + 0.5) * (source / target) - 0.5).clamp(min=0)
    low = position.floor().long().clamp(max=source - 1)
    weight, rows = position - low, torch.arange(target)
    matrix = torch.zeros(target, source, dtype=torch.float64)
    matrix.index_put_((rows, low), 1 - weight, accumulate=True)
    matrix.index_put_((rows, (low + 1).clamp(max=source - 1)), weight, accumulate=True)
    return matrix.to(dtype=dtype, device=device)

"""``ContrastiveCropHook(feature_stages=...)``: which stage(s) of the model make the heatmap.

A stage is a dotted module name of the model (``'backbone.layer3'``; a name missing from the
model is looked up in its backbone, so ``'layer3'`` works too) or an ``out_indices`` entry, an
int ``i`` meaning the backbone's ``res_layers[i]`` (the ResNet family) or ``layers[i]`` (ViTs).
The core's :func:`~ccrop_plugins.features.stage_features` takes the maps from one forward that
stops after the deepest stage; two or more stages are fused by the core's ``refresh_boxes``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ccrop_plugins import eval_mode, stage_features

Stage = str | int


def check_stages(stages: Stage | Sequence[Stage] | None) -> list[Stage] | None:
    """``stages`` as a list, or ``TypeError`` (the names themselves are checked against the model later)."""
    if stages is None:
        return None
    items = [stages] if isinstance(stages, (str, int)) else list(stages) if isinstance(stages, Sequence) else []
    if not items or any(isinstance(s, bool) or not isinstance(s, (str, int)) for s in items):
        raise TypeError("ContrastiveCropHook: feature_stages must be a module name ('backbone.layer3'), an "
                        f"out_indices entry (int) or a non-empty list of them; got {stages!r}")
    repeated = next((s for i, s in enumerate(items) if s in items[:i]), None)
    if "" in items or repeated is not None:
        problem = "an empty module name" if "" in items else f"{repeated!r} twice"
        raise ValueError(f"ContrastiveCropHook: feature_stages={stages!r} holds {problem}; name each stage once, as "
                         "a module name ('backbone.layer3') or an out_indices entry (int)")
    return items


def feature_fn(model: nn.Module, stages: list[Stage] | None) -> nn.Module:
    """The module whose forward gives the refresh's features: the backbone (``stages=None``:
    its last output, the paper), else the named stages of one forward, as a dict."""
    if stages is None:
        return model.backbone
    names = [_module_name(model, stage) for stage in stages]
    try:
        if all(name.startswith("backbone.") for name in names):  # run the backbone alone, not the model's forward
            return stage_features(model.backbone, [name[len("backbone."):] for name in names])
        return stage_features(model, names)
    except (TypeError, ValueError) as error:  # e.g. 1 and 'layer2': the same module twice
        raise type(error)(f"ContrastiveCropHook: feature_stages={stages!r} (modules {names}): {error}") from None


def check_stages_run(features: nn.Module, stages: list[Stage] | None, size: Sequence[int], channels: int) -> None:
    """Run the named stages once on a blank image before training: a stage the forward never runs (the neck, the
    head: SimCLR's feature forward is its backbone's) or one without feature maps fails now, not at the first
    refresh after the warm-up. The backbone's own output (``stages=None``) is the refresh's to check."""
    if stages is None:
        return
    device = next(features.parameters()).device
    blank = torch.zeros(1, channels, int(size[0]), int(size[1]), device=device)
    try:
        with eval_mode(features), torch.no_grad():
            features(blank)
    except (RuntimeError, ValueError) as error:
        raise type(error)(f"ContrastiveCropHook: feature_stages={stages!r}, run once on a blank "
                          f"{tuple(blank.shape)} image before training: {error}") from None


def _module_name(model: nn.Module, stage: Stage) -> str:
    modules = dict(model.named_modules())
    if isinstance(stage, str):
        return f"backbone.{stage}" if stage not in modules and f"backbone.{stage}" in modules else stage
    backbone: Any = model.backbone
    layers = getattr(backbone, "res_layers", None) or [
        f"layers.{i}" for i in range(len(getattr(backbone, "layers", [])))
    ]
    if not -len(layers) <= stage < len(layers):
        raise ValueError(f"ContrastiveCropHook: feature_stages entry {stage} is not an out_indices entry of "
                         f"{type(backbone).__name__} ({len(layers)} stages: {list(layers)}); name the module instead")
    return f"backbone.{layers[stage]}"

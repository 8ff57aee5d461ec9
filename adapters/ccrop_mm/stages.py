"""``ContrastiveCropHook(feature_stages=...)``: which stage(s) of the model make the heatmap.

A stage is a dotted module name of the model (``'backbone.layer3'``; a name missing from the
model is looked up in its backbone, so ``'layer3'`` works too) or an ``out_indices`` entry, an
int ``i`` meaning the backbone's ``res_layers[i]`` (the ResNet family), ``layers[i]`` (ViTs, EfficientNet;
MobileNet's ``layers`` lists module names) or ``stages[i]`` (ConvNeXt, Swin).
The core's :func:`~ccrop_plugins.features.stage_features` takes the maps from one forward that
stops after the deepest stage; two or more stages are fused by the core's ``refresh_boxes``. A ViT's
layers give tokens ``(B, T, C)``: :class:`~ccrop_mm.token_maps.TokenMaps` lays them on the patch grid.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ccrop_plugins import eval_mode, features_to_localize, stage_features

from .token_maps import TokenMaps, is_token_backbone, last_layer

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
    """The module whose forward gives the refresh's features: the backbone (``stages=None``: its last output, the
    paper; a ViT's: its last transformer layer's patch tokens as maps, as its default output is the cls token
    ``(B, C)``), else the named stages of one forward, as a dict ``{stage: (B, C, h, w)}``."""
    backbone = model.backbone
    if stages is None:
        last = last_layer(backbone) if is_token_backbone(backbone) else None
        return backbone if last is None else TokenMaps(backbone, [last])
    names = [_module_name(model, stage) for stage in stages]
    try:
        if all(name.startswith("backbone.") for name in names):  # run the backbone alone, not the model's forward
            inner = [name[len("backbone."):] for name in names]
            return TokenMaps(backbone, inner) if is_token_backbone(backbone) else stage_features(backbone, inner)
        return stage_features(model, names)
    except (TypeError, ValueError) as error:  # e.g. 1 and 'layer2': the same module twice
        raise type(error)(f"ContrastiveCropHook: feature_stages={stages!r} (modules {names}): {error}") from None


def check_stages_run(features: nn.Module, stages: list[Stage] | None, size: Sequence[int], channels: int) -> None:
    """Run the feature module once on a blank image before training: a stage the forward never runs (the neck, the
    head: SimCLR's feature forward is its backbone's) or one without feature maps fails now, not at the first
    refresh after the warm-up; so does a backbone whose own output (``stages=None``) is no maps (a pooled vector)."""
    device = next(features.parameters()).device
    blank = torch.zeros(1, channels, int(size[0]), int(size[1]), device=device)
    where = (f"ContrastiveCropHook: feature_stages={stages!r}, run once on a blank {tuple(blank.shape)} image "
             "before training")
    try:
        with eval_mode(features), torch.no_grad():
            output = features_to_localize(features(blank))
    except (RuntimeError, ValueError) as error:
        outside = "were not run by the forward" in str(error)  # a module the refresh forward never calls
        raise type(error)(f"{where}: {error}" + (
            " (the refresh runs the model's feature forward, its online backbone: the neck, the head and a momentum "
            "copy such as MoCo's encoder_k or BYOL's target_net never run; docs/mmpretrain.md)" if outside else "")
        ) from None
    maps = output.values() if isinstance(output, dict) else [output]
    if not all(isinstance(m, torch.Tensor) and m.ndim == 4 for m in maps):
        got = _shapes(output)
        what = f"{type(features).__name__}'s output" if stages is None else "the stages' output"
        raise ValueError(f"{where}: {what} is {got}, not feature maps (B, C, h, w) (a pooled vector or a cls token?), "
                         "so every refresh would fail; name a stage that outputs maps with feature_stages (a module "
                         "name such as 'backbone.layer3', or an out_indices entry)")


def _shapes(output: object) -> object:
    """``output``'s shape(s), for a message: ``(1, 48)``, ``{'layer3': (1, 48)}`` or the type's name."""
    if isinstance(output, dict):
        return {key: _shapes(value) for key, value in output.items()}
    return tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__


def _module_name(model: nn.Module, stage: Stage) -> str:
    modules = dict(model.named_modules())
    if isinstance(stage, str):
        return f"backbone.{stage}" if stage not in modules and f"backbone.{stage}" in modules else stage
    backbone: Any = model.backbone
    layers = out_index_modules(backbone)
    if not -len(layers) <= stage < len(layers):
        held = f"{len(layers)} stages: {layers}" if layers else "no res_layers, layers or stages to index"
        raise ValueError(f"ContrastiveCropHook: feature_stages entry {stage} is not an out_indices entry of "
                         f"{type(backbone).__name__} ({held}); name the module instead")
    return f"backbone.{layers[stage]}"


def out_index_modules(backbone: nn.Module) -> list[str]:
    """The modules of ``backbone`` its ``out_indices`` count, in order, as names inside it: the first of
    ``res_layers`` (ResNet: a list of module names), ``layers`` (MobileNet V2/V3: names; ViT, EfficientNet: a
    ``ModuleList``) and ``stages`` (ConvNeXt, Swin, DenseNet: a ``ModuleList``) that it has."""
    for attribute in ("res_layers", "layers", "stages"):
        held = getattr(backbone, attribute, None)
        if isinstance(held, nn.ModuleList) and len(held):
            return [f"{attribute}.{i}" for i in range(len(held))]
        if isinstance(held, (list, tuple)) and held and all(isinstance(name, str) for name in held):
            return list(held)
    return []

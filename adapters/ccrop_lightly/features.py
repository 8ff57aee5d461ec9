"""The refresh pass needs feature maps *before* pooling: the backbone's last stage, or named stages."""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, Callable, Sequence

from torch import Tensor, nn

from ccrop_plugins import stage_features, unwrapped_model

FeatureFn = Callable[[Tensor], Any]
"""What the refresh pass localizes with: images ``(B, 3, H, W)`` -> features ``(B, C, h, w)`` (or named stages)."""

# Layers that follow the last feature map in torchvision classifiers and in lightly's
# ``nn.Sequential(*list(resnet.children())[:-1])`` backbones.
_HEAD_LAYERS = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.Flatten,
    nn.Linear,
    nn.Dropout,
    nn.Identity,
)
_RESNET_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
# A module ending in one of these gives no location at all: one value per channel.
_GLOBAL_HEAD = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)


class LayerOutput(nn.Module):
    """The output ``(B, C, h, w)`` of the submodule ``layer`` of ``model`` (any architecture).

    The forward of ``model`` runs once and stops after ``layer`` (the core's
    :func:`ccrop_plugins.features.stage_features`), so later stages and the head cost nothing.

    Args:
        model: the network; its parameters are shared, not copied.
        layer: the dotted name of a submodule, whose output must be a ``(B, C, h, w)`` map.
    """

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        self.stages = stage_features(model, [layer])
        self.layer_name = layer

    @property
    def model(self) -> nn.Module:
        return self.stages.model

    def forward(self, images: Tensor) -> Tensor:
        return self.stages(images)[self.layer_name]


def feature_extractor(
    model: nn.Module, layer: str | None = None, stages: str | Sequence[str] | None = None
) -> nn.Module:
    """A module mapping images ``(B, 3, H, W)`` to the feature maps the refresh localizes with.

    The result shares the parameters of ``model`` (no copy), so it follows training. A
    ``torch.compile(model)`` wrapper is looked through: its original module is used (run
    eagerly by the refresh; same parameters), so its structure and stage names are those of
    the module compiled (the wrapper's ``"_orig_mod.layer3"`` works too). First the *trunk*
    of ``model`` is found (the layers up to its last stage, without pooling / head):

    - a torchvision ResNet (``conv1`` ... ``layer4`` attributes), or lightly's
      ``nn.Sequential(*list(resnet.children())[:-1])``: the stem and the four stages, named
      ``conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4``;
    - another ``nn.Sequential``: the same sequence without its trailing pooling / flatten /
      linear / dropout / identity layers (stage names are its indices, ``"3"``);
    - any other module: the module itself.

    Then:

    - no ``layer`` nor ``stages``: the trunk, whose output is the last stage's map (the paper);
    - ``stages="layer3"`` or ``stages=["layer3", "layer4"]``: one forward of the trunk, stopped
      after the deepest named stage, returning ``{name: (B, C, h, w)}`` in the given order
      (the core fuses several stages into one heatmap per image); names are dotted submodule
      names of the trunk;
    - ``layer="name"``: :class:`LayerOutput`, the output of that submodule of ``model`` itself
      as a tensor (kept from 0.1; ``stages="name"`` does the same and returns a dict).

    Args:
        model: the backbone.
        layer: dotted name of one submodule of ``model`` whose output is the feature map.
        stages: the stage name(s) to localize with.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: both ``layer`` and ``stages``; an ``nn.Sequential`` with nothing before its
            head layers; an unknown ``layer`` or stage (the message lists valid names).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if layer is not None and stages is not None:
        raise ValueError(f"give layer or stages, not both; got layer={layer!r}, stages={stages!r}")
    unwrapped = _unwrapped(model)
    if unwrapped is not model:  # names as the wrapper's named_modules() gives them, "_orig_mod.layer3", work too
        model, layer, stages = unwrapped, _without_prefix(layer), _without_prefix(stages)
    if layer is not None:
        return LayerOutput(model, layer)
    trunk = _trunk(model)
    return trunk if stages is None else stage_features(trunk, stages)


def pools_away_location(model: nn.Module) -> bool:
    """Whether ``model``'s output has no location by construction: a torchvision-style ResNet (its stages and
    ``avgpool``), or an ``nn.Sequential`` ending in global pooling, flatten or a linear layer (lightly's
    ``nn.Sequential(*list(resnet.children())[:-1])``); :func:`feature_extractor` gives its trunk's maps."""
    model = _unwrapped(model)
    if _has_modules(model, (*_RESNET_STAGES, "avgpool")):
        return True
    return isinstance(model, nn.Sequential) and len(model) > 0 and isinstance(model[-1], _GLOBAL_HEAD)


def _unwrapped(model: nn.Module) -> nn.Module:
    """``model`` without ``torch.compile``'s wrapper nor those whose forward calls their ``module`` (DDP,
    ``DataParallel``, an ``AveragedModel`` / EMA copy: :func:`ccrop_plugins.unwrapped_model`), in any nesting: the
    trunk of a wrapped ``nn.Sequential`` kept its pooling (1 x 1 maps) and its stage names were unknown."""
    inner = unwrapped_model(_uncompiled(model))
    return model if inner is model else _unwrapped(inner)


def _uncompiled(model: nn.Module) -> nn.Module:
    """The module that ``torch.compile`` wrapped (``OptimizedModule._orig_mod``, the same parameters), else ``model``.

    The wrapper is no ``nn.Sequential`` and has no ``layer4`` attribute, so the trunk of Lightly's compiled
    ``nn.Sequential(*list(resnet.children())[:-1])`` kept its pooling (1 x 1 maps: every box the whole image) and
    stage names were unknown. The wrapper's class exists only once ``torch._dynamo`` is imported (``torch.compile``
    imports it): looked up in ``sys.modules`` rather than imported here."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    compiled = getattr(eval_frame, "OptimizedModule", None)
    while isinstance(compiled, type) and isinstance(model, compiled) and isinstance(
            getattr(model, "_orig_mod", None), nn.Module):
        model = model._orig_mod
    return model


def _without_prefix(names: Any) -> Any:
    """``names`` (one name or a sequence of them) without the wrappers' ``_orig_mod.`` and ``module.`` prefixes;
    anything else unchanged, for the core to refuse by name."""
    if isinstance(names, str):
        while prefix := next((p for p in ("_orig_mod.", "module.") if names.startswith(p)), None):  # once a wrapper
            names = names[len(prefix):]
        return names
    if isinstance(names, (list, tuple)):
        return [_without_prefix(name) for name in names]
    return names


def _trunk(model: nn.Module) -> nn.Module:
    if _has_modules(model, _RESNET_STAGES):
        return nn.Sequential(OrderedDict((name, getattr(model, name)) for name in _RESNET_STAGES))
    if not isinstance(model, nn.Sequential):
        return model
    layers = list(model)
    while layers and isinstance(layers[-1], _HEAD_LAYERS):
        layers.pop()
    if not layers:
        raise ValueError(
            "the nn.Sequential holds only pooling / flatten / linear layers; "
            "pass the backbone whose output is a (B, C, h, w) feature map"
        )
    if _is_resnet_children(layers):
        return nn.Sequential(OrderedDict(zip(_RESNET_STAGES, layers)))
    return nn.Sequential(OrderedDict(zip((str(i) for i in range(len(layers))), layers)))


def _has_modules(model: nn.Module, names: tuple[str, ...]) -> bool:
    """Whether ``model`` has a submodule attribute of each of ``names`` (a torchvision ResNet: its stem and stages)."""
    return all(isinstance(getattr(model, name, None), nn.Module) for name in names)


def _is_resnet_children(layers: list[nn.Module]) -> bool:
    """``list(resnet.children())`` without its head: stem conv, norm, ..., four stage Sequentials."""
    return (
        len(layers) == len(_RESNET_STAGES)
        and isinstance(layers[0], nn.Conv2d)
        and isinstance(layers[1], nn.BatchNorm2d)
        and all(isinstance(stage, nn.Sequential) and len(stage) > 0 for stage in layers[4:])
    )

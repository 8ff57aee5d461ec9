"""The build-time probe: does a feature map of ``feature_fn`` carry a location at the images' size?"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ccrop_plugins import eval_mode, features_to_localize

from .features import FeatureFn


def warn_if_no_location(feature_fn: FeatureFn, size: Sequence[int], device: torch.device | str | None = None) -> bool:
    """Run ``feature_fn`` once on a blank image of ``size`` and warn if a feature map is 1 x 1.

    A 1 x 1 map (a standard ResNet at 32 px) has no location: every heatmap is constant and
    every box the whole image. Returns ``True`` when it warned. A ``feature_fn`` that fails on
    the blank image is left alone here: the refresh will report its error. One that returns no map
    (a pooled ``(B, C)`` embedding, a tuple ending in one) raises a ``ValueError`` now, not after the warm-up.
    """
    height, width = int(size[0]), int(size[1])
    if device is None:
        parameter = next(feature_fn.parameters(), None) if isinstance(feature_fn, nn.Module) else None
        device = parameter.device if parameter is not None else "cpu"
    with eval_mode(feature_fn), torch.no_grad():  # a module that cannot be put in eval mode: its TypeError now
        try:
            output = feature_fn(torch.zeros(1, 3, height, width, device=device))
        except Exception:  # noqa: BLE001 - a probe only; the refresh raises the real error with context
            return False
    features = features_to_localize(output)
    maps = dict(features) if isinstance(features, dict) else {"": features}
    _raise_for_non_maps(maps, output, (height, width))
    flat = [
        name
        for name, tensor in maps.items()
        if isinstance(tensor, Tensor) and tensor.ndim == 4 and tensor.shape[-2:].numel() == 1
    ]
    if not flat:
        return False
    where = "the feature map" if flat == [""] else f"the feature map of stage(s) {', '.join(map(repr, flat))}"
    warnings.warn(
        f"{where} is 1 x 1 for {height} x {width} px images: it carries no location, so every box would be the "
        "whole image (fallback 1.00) and ContrastiveCrop would crop like RandomResizedCrop. Localize with an "
        "earlier stage (feature_extractor(backbone, stages='layer3')) or keep a larger map (for a ResNet at 32 px: "
        "a 3 x 3 stride-1 conv1 and no max-pool).",
        UserWarning,
        stacklevel=3,
    )
    return True


def _raise_for_non_maps(maps: dict[str, Any], output: Any, size: tuple[int, int]) -> None:
    """A ``ValueError`` when a tensor the refresh would localize with is not a ``(B, C, h, w)`` map."""
    for name, tensor in maps.items():
        if isinstance(tensor, Tensor) and tensor.ndim != 4:
            what = (f"stage {name!r} of its output" if name else
                    "the last item of its tuple (the one the refresh localizes with)"
                    if isinstance(output, (tuple, list)) else "its output")
            raise ValueError(
                f"feature_fn gives no feature map for a (1, 3, {size[0]}, {size[1]}) image: {what} has shape "
                f"{tuple(tensor.shape)}, not (B, C, h, w) (a pooled embedding?); localize with the backbone's maps: "
                "feature_extractor(backbone) (drops pooling and head), stages='layer4', or a function returning the "
                "map (lambda images: backbone(images)[0] for a backbone that returns (maps, embedding))"
            )

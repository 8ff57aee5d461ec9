"""The two small backbones the demo and the study pre-train, built from a seed (no downloads).

Both are ``nn.Sequential`` whose last two layers are global average pooling and flatten, so
``ccrop_lightly.feature_extractor`` cuts them to the last feature map for the box refresh.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torchvision
from torch import nn

BACKBONES = ("convnet", "resnet18")


def _conv_block(channels_in: int, channels_out: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    ]


def convnet() -> nn.Sequential:
    """A 4-layer convnet: 32-64-128-256 channels, strides 1-2-2-2.

    Input ``(B, 3, S, S)``; last feature map ``(B, 256, S/8, S/8)`` (8 x 8 at 64 px, the
    resolution the heatmap is computed at); output ``(B, 256)`` after pooling.
    """
    layers = [
        *_conv_block(3, 32, 1),
        *_conv_block(32, 64, 2),
        *_conv_block(64, 128, 2),
        *_conv_block(128, 256, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ]
    return nn.Sequential(*layers)


def cifar_resnet18() -> nn.Sequential:
    """torchvision's ResNet-18 with the CIFAR stem (3 x 3 conv, stride 1, no max pool).

    Input ``(B, 3, S, S)``; last feature map ``(B, 512, S/8, S/8)`` (4 x 4 at 32 px, as in
    the paper); output ``(B, 512)``.
    """
    resnet = torchvision.models.resnet18(weights=None)
    resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    resnet.maxpool = nn.Identity()
    return nn.Sequential(*list(resnet.children())[:-1], nn.Flatten())


def build_backbone(name: str, seed: int) -> tuple[nn.Sequential, int]:
    """``(backbone, feature_dim)`` for ``name`` in :data:`BACKBONES`, weights drawn from ``seed``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if name == "convnet":
            return convnet(), 256
        return cifar_resnet18(), 512


def check_stage_names(stages: Sequence[str], modules: Sequence[str], backbone: str, last: bool = True,
                      shown: Sequence[str] | None = None) -> None:
    """``--stages`` named as typed, with the backbone's stages: a ValueError for an empty or unknown name.

    ``modules``: the dotted module names taken; ``backbone``: its name in the message (``convnet``); ``last``: the
    command also takes ``last`` alone (``ccrop study``); ``shown``: the stages listed (default the undotted names).
    """
    nested = next((name for name in modules if "." in name and name not in (shown or ())), None)
    allowed = (f"the {backbone} backbone's stages are {', '.join(shown or [n for n in modules if '.' not in n])}"
               + (f" (or dotted submodules such as {nested})" if nested else "")
               + (", or last alone (the last stage, the paper's)" if last else ""))
    for stage in stages:
        if not stage.strip():
            raise ValueError(f"--stages: an empty stage name ({stage!r}); {allowed}")
        if stage not in modules:
            raise ValueError(f"--stages: unknown stage {stage!r}; {allowed}")

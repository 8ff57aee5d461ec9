"""Multi-view transforms whose first step is ContrastiveCrop instead of RandomResizedCrop.

They mirror ``lightly.transforms`` (``SimCLRTransform``, ``SimCLRViewTransform``,
``MoCoV2Transform``, ``MultiViewTransform``): same arguments, same defaults, the same
augmentations after the crop, plus ``alpha``, ``sampler`` and ``scale_reference``.
Unlike lightly's, they also accept the sample's box set, which a lightly transform
never receives; :class:`~ccrop_lightly.CCropCollate` passes it.

This module holds lightly's two-view presets; their parts are modules of their own and are
re-exported here: one view (``view_transform.py``), views around one box (``multi_view.py``),
the SimCLR view (``simclr_view.py``) and its option checks (``view_options.py``), and what the
refresh pass takes from the views (``view_settings.py``).

Boxes are normalised ``x0, y0, x1, y1`` in ``[0, 1]``; see :class:`ccrop_plugins.ContrastiveCrop`.
"""

from __future__ import annotations

from typing import Any

from lightly.transforms.utils import IMAGENET_NORMALIZE

from .multi_view import CCropMultiViewTransform
from .simclr_view import CCropSimCLRViewTransform
from .view_settings import refresh_settings
from .view_transform import CCropViewTransform, ImageLike

__all__ = ["CCropMoCoV2Transform", "CCropMultiViewTransform", "CCropSimCLRTransform", "CCropSimCLRViewTransform",
           "CCropViewTransform", "ImageLike", "refresh_settings"]


class CCropSimCLRTransform(CCropMultiViewTransform):
    """SimCLR's two views [0, 1] with ContrastiveCrop; both views crop around the same box.

    Same arguments and defaults as ``lightly.transforms.SimCLRTransform``, plus ``alpha``,
    ``sampler`` and ``scale_reference`` (see :class:`CCropSimCLRViewTransform`).

    Input to this transform:
        PIL image (or tensor) and optionally its box set ``(k, 4)`` with scores ``(k,)``.

    Output of this transform:
        List of 2 tensors ``(C, input_size, input_size)``.
    """

    def __init__(
        self,
        input_size: int = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.2,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        sigmas: tuple[float, float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | tuple[float, float] | None = None,
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        alpha: float | None = None,
        sampler: str | Any = "beta",
        scale_reference: str = "image",
        max_scale: float = 1.0,
    ) -> None:
        view = CCropSimCLRViewTransform(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
            alpha=alpha,
            sampler=sampler,
            scale_reference=scale_reference,
            max_scale=max_scale,
        )
        super().__init__([view, view])


class CCropMoCoV2Transform(CCropSimCLRTransform):
    """MoCo v2's two views [0] with ContrastiveCrop: SimCLR's steps with MoCo v2's defaults.

    Same arguments and defaults as ``lightly.transforms.MoCoV2Transform`` (weaker colour
    jitter, ``min_scale=0.2``), plus ``alpha``, ``sampler`` and ``scale_reference``.

    Output of this transform:
        List of 2 tensors ``(C, input_size, input_size)``.

    - [0]: MoCo v2, 2020, https://arxiv.org/abs/2003.04297
    """

    def __init__(
        self,
        input_size: int = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.4,
        cj_hue: float = 0.1,
        min_scale: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        sigmas: tuple[float, float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | tuple[float, float] | None = None,
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        alpha: float | None = None,
        sampler: str | Any = "beta",
        scale_reference: str = "image",
        max_scale: float = 1.0,
    ) -> None:
        super().__init__(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
            alpha=alpha,
            sampler=sampler,
            scale_reference=scale_reference,
            max_scale=max_scale,
        )

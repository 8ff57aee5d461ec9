"""One SimCLR view with ContrastiveCrop in place of RandomResizedCrop, and lightly's steps after the crop."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable

from lightly.transforms.gaussian_blur import GaussianBlur
from lightly.transforms.rotation import random_rotation_transform
from lightly.transforms.torchvision_v2_compatibility import torchvision_transforms as T
from lightly.transforms.utils import IMAGENET_NORMALIZE

from ccrop_plugins import ContrastiveCrop

from .view_options import check_sigmas, check_view_options, normalize_step
from .view_transform import CCropViewTransform


class CCropSimCLRViewTransform(CCropViewTransform):
    """One SimCLR view [0, 1] with ContrastiveCrop in place of RandomResizedCrop.

    Same arguments and defaults as ``lightly.transforms.SimCLRViewTransform``; the
    augmentations after the crop are lightly's own (horizontal/vertical flip, rotation,
    colour jitter, grayscale, Gaussian blur, ``ToTensor``, normalisation), so with
    ``boxes=None`` and the same seeds the output equals lightly's view exactly.

    Input to this transform:
        PIL image (or tensor), optional box set ``(k, 4)`` and box index.

    Output of this transform:
        Tensor ``(C, input_size, input_size)``.

    Args (beyond lightly's):
        alpha: ``Beta(alpha, alpha)`` of the ``beta`` sampler (default 0.6); the paper uses 0.1
            on CIFAR / STL-10 / Tiny ImageNet and 0.6 on ImageNet. Given to a plugin sampler that
            takes an ``alpha``; ``None``: the sampler's own default.
        sampler: a registered centre sampler name (``beta``, ``uniform``, ``gaussian``)
            or a sampler object.
        scale_reference: ``"image"`` (the paper: ``min_scale`` relative to the image) or
            ``"box"`` (relative to the chosen box, for small objects).
        max_scale: the largest crop area (lightly fixes it at 1.0 of the image); with
            ``scale_reference="box"`` a value above 1 lets a view hold the whole object
            and some context, e.g. ``min_scale=1.0, max_scale=4.0``.

    - [0]: SimCLR v1, 2020, https://arxiv.org/abs/2002.05709
    - [1]: SimCLR v2, 2020, https://arxiv.org/abs/2006.10029
    - ContrastiveCrop, Peng et al., CVPR 2022, https://arxiv.org/abs/2202.03278
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
        check_view_options(
            dict(cj_prob=cj_prob, random_gray_scale=random_gray_scale, gaussian_blur=gaussian_blur, vf_prob=vf_prob,
                 hf_prob=hf_prob, rr_prob=rr_prob),
            dict(cj_strength=cj_strength, cj_bright=cj_bright, cj_contrast=cj_contrast, cj_sat=cj_sat, cj_hue=cj_hue),
        )
        check_sigmas(sigmas)
        try:
            crop = ContrastiveCrop(
                input_size, scale=(min_scale, max_scale), sampler=sampler, alpha=alpha, scale_reference=scale_reference
            )
        except (TypeError, ValueError) as error:
            raise type(error)(_option_names(str(error), min_scale, max_scale)) from None
        jitter = T.ColorJitter(
            brightness=cj_strength * cj_bright,
            contrast=cj_strength * cj_contrast,
            saturation=cj_strength * cj_sat,
            hue=cj_strength * cj_hue,
        )
        # The same steps, in the same order, as lightly's SimCLRViewTransform after its crop:
        # the random draws line up, so warm-up views equal lightly's for equal seeds.
        steps: list[Callable[[Any], Any]] = [
            T.RandomHorizontalFlip(p=hf_prob),
            T.RandomVerticalFlip(p=vf_prob),
            _rotation(rr_prob, rr_degrees),
            T.RandomApply([jitter], p=cj_prob),
            T.RandomGrayscale(p=random_gray_scale),
            GaussianBlur(sigmas=sigmas, prob=gaussian_blur),
            T.ToTensor(),
        ]
        if normalize:
            steps.append(normalize_step(normalize))
        super().__init__(crop, T.Compose(steps))


def _option_names(message: str, min_scale: Any, max_scale: Any) -> str:
    """The core crop's error in this transform's option names: its ``size`` is ``input_size``, its ``scale`` the pair
    ``(min_scale, max_scale)`` (the core's "scale must be ... got (0, 1.0)" named no option of this transform)."""
    if message.startswith("size must be"):
        return "input_size" + message[len("size"):]
    if message.startswith("scale must be"):
        return (f"min_scale and max_scale (the crop's area range) must be finite numbers with "
                f"0 < min_scale <= max_scale; got min_scale={min_scale!r}, max_scale={max_scale!r}")
    return message


def _rotation(rr_prob: float, rr_degrees: Any) -> Any:
    """Lightly's random rotation; torchvision's error about ``degrees`` named as the option ``rr_degrees``, and a
    range torchvision takes but cannot draw from (inverted, NaN, inf: an error in every DataLoader worker) refused."""
    allowed = "rr_degrees must be None (90-degree turns), a number >= 0 (-x to x) or a (low, high) pair"
    try:
        rotation = random_rotation_transform(rr_prob=rr_prob, rr_degrees=rr_degrees)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{allowed}; got {rr_degrees!r} ({error})") from error
    if rr_degrees is not None:  # torchvision took it: a number >= 0 (or NaN) or a pair of numbers
        low, high = (-float(rr_degrees), float(rr_degrees)) if isinstance(rr_degrees, Real) else map(float, rr_degrees)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"{allowed}, finite, with low <= high; got {rr_degrees!r}")
    return rotation

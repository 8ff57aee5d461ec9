"""Multi-view transforms whose first step is ContrastiveCrop instead of RandomResizedCrop.

They mirror ``lightly.transforms`` (``SimCLRTransform``, ``SimCLRViewTransform``,
``MoCoV2Transform``, ``MultiViewTransform``): same arguments, same defaults, the same
augmentations after the crop, plus ``alpha``, ``sampler`` and ``scale_reference``.
Unlike lightly's, they also accept the sample's box set, which a lightly transform
never receives; :class:`~ccrop_lightly.CCropCollate` passes it.

Boxes are normalised ``x0, y0, x1, y1`` in ``[0, 1]``; see :class:`ccrop_plugins.ContrastiveCrop`.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

from lightly.transforms.gaussian_blur import GaussianBlur
from lightly.transforms.rotation import random_rotation_transform
from lightly.transforms.torchvision_v2_compatibility import torchvision_transforms as T
from lightly.transforms.utils import IMAGENET_NORMALIZE
import torch
from PIL.Image import Image
from torch import Tensor
from torchvision import transforms as transforms_v1
from torchvision.transforms import v2 as transforms_v2

from ccrop_plugins import ContrastiveCrop, choose_box, image_size_of

from .image_mode import to_rgb

ImageLike = Image | Tensor

# PIL modes a view's steps take as they are (grayscale: ``Normalize`` spreads it over three channels); any other mode
# (``P``, ``RGBA``, ``I;16``, ``CMYK``, ``1``...) made colour jitter or ``Normalize`` fail with "image has wrong mode"
# or a channel mismatch, so it goes through ``to_rgb`` first, as in ``CCropCollate``.
_VIEW_MODES = ("RGB", "L")


class CCropViewTransform:
    """One view: a :class:`~ccrop_plugins.ContrastiveCrop`, then any per-view transform.

    Input to this transform:
        PIL image or ``(C, H, W)`` tensor, the sample's box set ``(k, 4)`` (or ``None``
        during warm-up, which crops exactly like ``RandomResizedCrop``) and the index of
        the box to crop around. Palette, alpha, 16-bit, CMYK and bilevel PIL images and ``(H, W)``,
        ``(4, H, W)`` or ``uint16`` tensors are brought to RGB first, as :class:`~ccrop_lightly.CCropCollate`
        does (:func:`~ccrop_lightly.to_rgb`); RGB and grayscale (``L``) images go in as they are.

    Output of this transform:
        Whatever ``transform`` returns for the ``crop.size`` crop (the crop itself if
        ``transform`` is ``None``).

    Args:
        crop: the crop; its ``size``, ``scale`` and sampler define the view.
        transform: applied to the cropped image, e.g. a torchvision ``Compose`` of flips,
            colour jitter, ``ToTensor`` and ``Normalize``.
    """

    def __init__(self, crop: ContrastiveCrop, transform: Callable[[Any], Any] | None = None) -> None:
        if not isinstance(crop, ContrastiveCrop):
            raise TypeError(f"crop must be a ccrop_plugins.ContrastiveCrop; got {type(crop).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None; got {type(transform).__name__}")
        self.crop = crop
        self.transform = transform

    def __call__(
        self,
        image: ImageLike,
        boxes: Tensor | None = None,
        box_index: int | None = None,
        *,
        scores: Tensor | None = None,
    ) -> Any:
        """Crop around box ``box_index`` of ``boxes`` (chosen by ``scores`` if ``None``), then transform.

        The one box path: the store's ``(k, 4)`` box set and the chosen box's index go to the
        core's ``make_params``; the index is drawn here (:func:`~ccrop_plugins.choose_box`) when the
        caller (a multi-view transform, for all its views) has not drawn it.
        """
        if boxes is not None and box_index is None:
            box_index = choose_box(boxes, scores)
        if isinstance(image, Image):  # called directly, not by CCropCollate: odd modes and layouts as it converts them
            if image.mode not in _VIEW_MODES:
                image = to_rgb(image)
        elif isinstance(image, Tensor) and (image.ndim != 3 or image.shape[0] == 4 or image.dtype == torch.uint16):
            image = to_rgb(image)
        params = self.crop.make_params(image_size_of(image), boxes, box_index=box_index)
        view = self.crop.apply(image, params)
        return view if self.transform is None else self.transform(view)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(crop={self.crop!r}, transform={self.transform!r})"


class CCropMultiViewTransform:
    """Several views of one image, all cropped around the *same* box (pair-consistent).

    The generic form: any list of :class:`CCropViewTransform`, e.g. BYOL's two asymmetric
    views or DINO-style multi-crop (two large and several small ``ContrastiveCrop`` sizes).

    Input to this transform:
        PIL image or ``(C, H, W)`` tensor, and optionally its box set ``(k, 4)`` with scores ``(k,)``.

    Output of this transform:
        List with one output per view transform.

    Args:
        transforms: one :class:`CCropViewTransform` per view.
    """

    def __init__(self, transforms: Sequence[CCropViewTransform]) -> None:
        transforms = list(transforms)
        if not transforms:
            raise ValueError("transforms must hold at least one CCropViewTransform")
        for position, view in enumerate(transforms):
            if not isinstance(view, CCropViewTransform):
                raise TypeError(
                    f"transforms[{position}] must be a CCropViewTransform (a ContrastiveCrop and what follows it); "
                    f"got {type(view).__name__}"
                )
        self.transforms = transforms

    def __call__(self, image: ImageLike, boxes: Tensor | None = None, scores: Tensor | None = None) -> list[Any]:
        """All views of ``image``; one box of ``boxes`` is drawn (weighted by ``scores``) for all of them."""
        box_index = None if boxes is None else choose_box(boxes, scores)
        return [view(image, boxes, box_index) for view in self.transforms]

    def __repr__(self) -> str:
        views = ", ".join(repr(view) for view in self.transforms)
        return f"{type(self).__name__}([{views}])"


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
        alpha: ``Beta(alpha, alpha)`` of the ``beta`` sampler; the paper uses 0.1 on
            CIFAR / STL-10 / Tiny ImageNet and 0.6 on ImageNet.
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
        alpha: float = 0.6,
        sampler: str | Any = "beta",
        scale_reference: str = "image",
        max_scale: float = 1.0,
    ) -> None:
        _check_view_options(
            dict(cj_prob=cj_prob, random_gray_scale=random_gray_scale, gaussian_blur=gaussian_blur, vf_prob=vf_prob,
                 hf_prob=hf_prob, rr_prob=rr_prob),
            dict(cj_strength=cj_strength, cj_bright=cj_bright, cj_contrast=cj_contrast, cj_sat=cj_sat, cj_hue=cj_hue),
        )
        crop = ContrastiveCrop(
            input_size, scale=(min_scale, max_scale), sampler=sampler, alpha=alpha, scale_reference=scale_reference
        )
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
            random_rotation_transform(rr_prob=rr_prob, rr_degrees=rr_degrees),
            T.RandomApply([jitter], p=cj_prob),
            T.RandomGrayscale(p=random_gray_scale),
            GaussianBlur(sigmas=sigmas, prob=gaussian_blur),
            T.ToTensor(),
        ]
        if normalize:
            steps.append(_normalize_step(normalize))
        super().__init__(crop, T.Compose(steps))


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
        alpha: float = 0.6,
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
        alpha: float = 0.6,
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


def _normalize_step(normalize: Any) -> Any:
    """``Normalize`` of lightly's ``{"mean": [...], "std": [...]}`` dict; a ``ValueError`` naming what is missing."""
    missing = [key for key in ("mean", "std") if key not in normalize] if isinstance(normalize, dict) else None
    if missing is None or missing:
        lacks = f" (no {' or '.join(repr(key) for key in missing)})" if missing else ""
        raise ValueError(f"normalize must be a dict with 'mean' and 'std', as lightly's IMAGENET_NORMALIZE, or None "
                         f"(no normalisation); got {normalize!r}{lacks}")
    return T.Normalize(mean=normalize["mean"], std=normalize["std"])


def _check_view_options(probabilities: dict[str, Any], jitter: dict[str, Any]) -> None:
    """Probabilities in [0, 1] and colour-jitter factors >= 0 (their hue product at most 0.5), named; torchvision's
    own messages name ``p`` or ``brightness``, and lightly's blur took any ``prob`` (2 meant always)."""
    for name, value in probabilities.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1]; got {value!r}")
    for name, value in jitter.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0 (a colour-jitter factor); got {value!r}")
    if jitter["cj_strength"] * jitter["cj_hue"] > 0.5:
        raise ValueError(f"cj_strength * cj_hue must be at most 0.5 (torchvision's hue range); got "
                         f"{jitter['cj_strength']} * {jitter['cj_hue']}")


def refresh_settings(transform: Any) -> tuple[tuple[int, int], dict[str, list[float]] | None]:
    """The ``(height, width)`` and normalisation the refresh pass should use for ``transform``.

    ``transform`` is a :class:`CCropMultiViewTransform` (its first view counts: the global
    view of a multi-crop), a :class:`CCropViewTransform`, or a collate function holding one
    as ``.transform`` (:class:`~ccrop_lightly.CCropCollate`). The size is the view's crop
    size; the normalisation is the ``Normalize`` step found in the view's transform
    (``None`` when it has none).
    """
    view = (
        getattr(transform, "transform", None)
        if not isinstance(transform, (CCropMultiViewTransform, CCropViewTransform))
        else transform
    )
    if isinstance(view, CCropMultiViewTransform):
        view = view.transforms[0]
    if not isinstance(view, CCropViewTransform):
        raise TypeError(
            "transform must be a CCropMultiViewTransform (CCropSimCLRTransform, ...), a CCropViewTransform or a "
            f"CCropCollate; got {type(transform).__name__}"
        )
    return view.crop.size, _find_normalize(view.transform)


def _find_normalize(transform: Any) -> dict[str, list[float]] | None:
    if isinstance(transform, (transforms_v1.Normalize, transforms_v2.Normalize)):
        return {"mean": [float(v) for v in transform.mean], "std": [float(v) for v in transform.std]}
    for step in getattr(transform, "transforms", None) or []:
        found = _find_normalize(step)
        if found is not None:
            return found
    return None

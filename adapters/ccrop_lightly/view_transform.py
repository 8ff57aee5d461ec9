"""One view: a ContrastiveCrop around a box of the sample's box set, then the view's other steps.

Boxes are normalised ``x0, y0, x1, y1`` in ``[0, 1]``; see :class:`ccrop_plugins.ContrastiveCrop`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from PIL.Image import Image
from torch import Tensor

from ccrop_plugins import ContrastiveCrop, choose_box, image_size_of

from .image_mode import to_rgb
from .transform_walk import CONTRASTIVE_CROP, RESIZED_CROP, find_step

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
        ``(4, H, W)``, ``uint16`` and float tensors are brought to RGB first, as :class:`~ccrop_lightly.CCropCollate`
        does (:func:`~ccrop_lightly.to_rgb`: a float tensor outside ``[0, 1]``, a ``bool`` or ``int32`` one is a
        ``ValueError``); RGB and grayscale (``L``) images and ``uint8`` ``(1 or 3, H, W)`` tensors go in as they are.

    Output of this transform:
        Whatever ``transform`` returns for the ``crop.size`` crop (the crop itself if
        ``transform`` is ``None``).

    Args:
        crop: the crop; its ``size``, ``scale`` and sampler define the view.
        transform: applied to the cropped image, e.g. a torchvision ``Compose`` of flips,
            colour jitter, ``ToTensor`` and ``Normalize``. A ``RandomResizedCrop`` or a ``ContrastiveCrop`` in it,
            however nested (``RandomApply`` with any ``p`` too), is a ``ValueError``: it would cut the view again.
    """

    def __init__(self, crop: ContrastiveCrop, transform: Callable[[Any], Any] | None = None) -> None:
        if not isinstance(crop, ContrastiveCrop):
            raise TypeError(f"crop must be a ccrop_plugins.ContrastiveCrop; got {type(crop).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None; got {type(transform).__name__}")
        again = find_step(transform, RESIZED_CROP)
        if again is not None:
            raise ValueError(
                f"transform holds {again}: after ContrastiveCrop it would cut the crop again (a random part of it), "
                "silently undoing the box-aware crop; ContrastiveCrop replaces RandomResizedCrop and takes its size, "
                "scale and ratio: remove it from transform" + _lightly_view(transform)
            )
        again = find_step(transform, CONTRASTIVE_CROP)
        if again is not None:
            raise ValueError(
                f"transform holds {again}: after the view's crop it would cut the crop again (a random part of it, "
                "made without boxes), silently losing the box the view was cut around; the view's ContrastiveCrop is "
                "the crop argument: remove this one from transform"
            )
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
        elif isinstance(image, Tensor) and (image.ndim != 3 or image.shape[0] not in (1, 3)
                                            or image.dtype != torch.uint8):  # float: its range checked (25 us)
            image = to_rgb(image)
        elif not isinstance(image, Tensor):
            image = to_rgb(image)  # a numpy array or a path: named, with the way to fix it
        params = self.crop.make_params(image_size_of(image), boxes, box_index=box_index)
        view = self.crop.apply(image, params)
        return view if self.transform is None else self.transform(view)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(crop={self.crop!r}, transform={self.transform!r})"


def _lightly_view(transform: Any) -> str:
    """How to drop the crop of a lightly view transform (``BYOLView1Transform``), which builds its own."""
    name = type(transform).__name__
    if not (type(transform).__module__.startswith("lightly") and name.endswith("Transform")):
        return ""
    return (f" (lightly's {name} builds its crop in: give its other steps as a torchvision Compose, e.g. "
            "T.Compose([T.RandomHorizontalFlip(), T.ColorJitter(...), ..., T.ToTensor(), T.Normalize(...)]))")

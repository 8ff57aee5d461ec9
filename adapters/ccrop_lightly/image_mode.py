"""Bring every image to three channels, as the models of lightly's examples expect.

Datasets of real photos mix modes: grayscale (``L``), palette (``P``), ``RGBA`` PNGs,
``CMYK`` JPEGs. One odd image would otherwise make the views of a batch disagree in
their channel count and fail at ``torch.stack``, far from its cause.
"""

from __future__ import annotations

from PIL.Image import Image
from torch import Tensor


def to_rgb(image: Image | Tensor) -> Image | Tensor:
    """Return ``image`` with three channels.

    - PIL images of any mode other than ``RGB`` go through ``Image.convert("RGB")``: gray
      values are repeated, palette images are expanded, and an alpha channel is
      *dropped* (not composited on a background), so transparent pixels show their
      stored colour.
    - Tensors ``(H, W)`` or ``(1, H, W)`` are repeated to ``(3, H, W)``; ``(4, H, W)``
      loses its fourth (alpha) channel; ``(3, H, W)`` is returned as is.

    Raises:
        TypeError: for anything but a PIL image or a tensor.
        ValueError: for a tensor with another channel count.
    """
    if isinstance(image, Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, Tensor):
        if image.ndim == 2:
            image = image.unsqueeze(0)
        if image.ndim == 3 and image.shape[0] == 3:
            return image
        if image.ndim == 3 and image.shape[0] == 1:
            return image.expand(3, -1, -1)
        if image.ndim == 3 and image.shape[0] == 4:
            return image[:3]
        raise ValueError(
            f"cannot make an RGB image from a tensor of shape {tuple(image.shape)}; "
            "allowed: (H, W), (1, H, W), (3, H, W), (4, H, W)"
        )
    raise TypeError(f"expected a PIL image or a tensor (C, H, W); got {type(image).__name__}")


__all__ = ["to_rgb"]

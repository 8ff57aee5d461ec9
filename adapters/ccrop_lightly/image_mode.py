"""Bring every image to three 8-bit channels, and name the file when one cannot be read.

Datasets of real photos mix modes: grayscale (``L``), 16-bit grayscale PNGs (``I;16``),
palette (``P``), ``RGBA`` PNGs, ``CMYK`` JPEGs. One odd image would otherwise make the views
of a batch disagree in their channel count and fail at ``torch.stack``, far from its cause;
PIL's own ``convert("RGB")`` clips 16-bit values at 255, so a 16-bit image becomes white.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from PIL import Image as PILImage
from PIL.Image import Image
from torch import Tensor

T = TypeVar("T")

# Integer modes whose values span 16 bits (PNG's 16-bit grayscale opens as I;16; older
# Pillow and some TIFFs give I). Scaled to 8 bits by / 257 (65535 -> 255), not clipped.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(image: Image | Tensor) -> Image | Tensor:
    """Return ``image`` with three channels.

    - PIL images of a 16-bit mode (``I;16``, ``I;16B``, ``I``) are scaled to 8 bits
      (``value / 257``, so 65535 becomes 255 and mid-grey stays mid-grey) and repeated on
      three channels; values of mode ``I`` are taken as 16-bit and clipped to ``[0, 65535]``.
    - PIL images of any other mode but ``RGB`` go through ``Image.convert("RGB")``: gray
      values are repeated, palette images are expanded, and an alpha channel is
      *dropped* (not composited on a background), so transparent pixels show their
      stored colour.
    - Tensors ``(H, W)`` or ``(1, H, W)`` are repeated to ``(3, H, W)``; ``(4, H, W)``
      loses its fourth (alpha) channel; ``(3, H, W)`` is returned as is. A float tensor must
      hold values in ``[0, 1]`` (torchvision's convention; 0.1 of slack for resampling overshoot);
      a ``uint16`` tensor (``torchvision.io.decode_image`` of a 16-bit PNG) is scaled to ``uint8``
      (``value / 257``), as 16-bit PIL images are.

    Raises:
        TypeError: for anything but a PIL image or a tensor.
        ValueError: for a tensor with another channel count or an integer dtype other than ``uint8``/``uint16``
            (``int32``, ``bool``), a float tensor with values outside
            ``[0, 1]`` (``[0, 255]``, or already normalised by the dataset's transform: the views
            would be silently saturated), or a PIL image of mode ``F`` (32-bit float: no fixed range,
            ``convert("RGB")`` makes it black).
    """
    if isinstance(image, Image):
        if image.mode == "RGB":
            return image
        if image.mode == "F":
            raise ValueError(
                "cannot make an RGB image from a PIL image of mode F (32-bit float, no fixed value range; "
                "PIL's convert('RGB') clips it to nearly black): scale it to 8 bits first, e.g. "
                "Image.fromarray(np.uint8(np.clip(values / values.max() * 255, 0, 255)))"
            )
        if image.mode in _SIXTEEN_BIT_MODES:
            values = np.asarray(image).astype(np.float64)
            gray = np.rint(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)
            return PILImage.fromarray(np.repeat(gray[..., None], 3, axis=2), mode="RGB")
        if image.mode == "La":  # PIL has no La -> RGB (nor La -> L); La -> LA un-premultiplies, as RGBa -> RGB does
            image = image.convert("LA")
        return image.convert("RGB")
    if isinstance(image, Tensor):
        if image.requires_grad:  # torchvision's jitter writes in place: refused on a tensor that needs grad
            image = image.detach()
        if image.dtype != torch.uint8 and not image.is_floating_point():  # one comparison on the usual path
            image = _eight_bit_tensor(image)
        elif image.is_floating_point() and image.numel():
            low, high = (float(v) for v in torch.aminmax(image.detach()))
            if not (low >= -0.1 and high <= 1.1):  # NaN fails too
                raise ValueError(
                    f"a float image tensor must hold values in [0, 1] (torchvision's convention); got values in "
                    f"[{low:.3g}, {high:.3g}]: in [0, 255]? divide by 255 (or keep it uint8); already normalised? "
                    "build the dataset without a transform (CCropCollate makes the views and normalises them)"
                )
        if image.ndim == 2:
            image = image.unsqueeze(0)
        if image.ndim == 3 and image.shape[0] == 3:
            return image
        if image.ndim == 3 and image.shape[0] == 1:
            return image.expand(3, -1, -1)
        if image.ndim == 3 and image.shape[0] == 4:
            return image[:3]
        raise ValueError(f"cannot make an RGB image from a tensor of shape {tuple(image.shape)}; allowed: (H, W), "
                         f"(1, H, W), (3, H, W), (4, H, W){_channels_last(image)}")
    raise TypeError(f"expected a PIL image or a tensor (C, H, W); got {_type_of(image)}")


def _channels_last(image: Tensor) -> str:
    return "; it looks like (H, W, C): pass image.permute(2, 0, 1)" if image.ndim == 3 and image.shape[-1] in (
        1, 3, 4) else ""


def _type_of(image: Any) -> str:
    """The type of a non-image, with the way from a numpy array (an array dataset) to an image."""
    if not isinstance(image, np.ndarray):
        return type(image).__name__
    return (f"a numpy array of shape {image.shape} ({image.dtype}): return PIL.Image.fromarray(array) from the dataset "
            "(an (H, W, 3) uint8 array; OpenCV's are BGR: array[..., ::-1] first) or a tensor, "
            "torch.from_numpy(array).permute(2, 0, 1)")


def _eight_bit_tensor(image: Tensor) -> Tensor:
    """A ``uint16`` tensor (``torchvision.io.decode_image`` of a 16-bit PNG) scaled to ``uint8`` as 16-bit PIL images
    are (``value / 257``); any other integer or bool dtype refused, naming it."""
    if image.dtype == torch.uint16:
        return image.to(torch.float32).div_(257.0).round_().to(torch.uint8)
    raise ValueError(
        f"cannot make an RGB image from a tensor of dtype {image.dtype}; allowed: torch.uint8, torch.uint16 (16-bit, "
        "scaled to 8 bits), or a float tensor with values in [0, 1]"
    )


def load_image(path: str | os.PathLike) -> Image:
    """Open and fully decode the image at ``path``, in its own mode (``to_rgb`` converts it later).

    A loader for torchvision's ``ImageFolder(root, loader=load_image)``: unlike the default
    loader it keeps 16-bit images for :func:`to_rgb` to scale, and a file that cannot be
    decoded (a truncated JPEG), or a 32-bit float image (mode ``F``, which :func:`to_rgb` refuses), raises an
    ``OSError`` that names it.
    """
    try:
        with open(path, "rb") as file:
            image = PILImage.open(file)
            image.load()
    except (OSError, SyntaxError) as error:
        raise OSError(f"cannot read image {os.fspath(path)!r}: {type(error).__name__}: {error}") from error
    if image.mode == "F":  # to_rgb's refusal, here with the file's name (in a folder of thousands)
        raise OSError(f"cannot read image {os.fspath(path)!r}: a 32-bit float image (PIL mode F) has no fixed value "
                      "range; save it scaled to 8 (or 16) bits")
    return image


class UnreadableImageError(OSError):
    """Raised by :class:`FileNamingLoader`, naming the file; ``path`` and ``reason`` (the reader's own message) let
    :func:`read_item` add the sample index (they stay in the process that raised it; one argument, the message, as
    torch re-raises a worker's error)."""

    path = reason = ""


class FileNamingLoader:
    """An image folder's loader (``loader(path) -> image``) whose read errors name the file.

    Picklable (a class, not a closure), so DataLoader workers started by ``spawn`` get it too.
    """

    def __init__(self, loader: Callable[[str], Any]) -> None:
        self.loader = loader

    def __call__(self, path: str) -> Any:
        try:
            return self.loader(path)
        except (OSError, SyntaxError) as error:
            if "cannot read image" in str(error):  # already named (load_image)
                raise
            reason = f"{type(error).__name__}: {error}"
            named = UnreadableImageError(f"cannot read image {os.fspath(path)!r}: {reason}")
            named.path, named.reason = os.fspath(path), reason
            raise named from error

    def __repr__(self) -> str:
        return f"FileNamingLoader({getattr(self.loader, '__name__', self.loader)!r})"


def read_item(dataset: Any, index: int, read: Callable[[Any, int], T] | None = None) -> T:
    """``dataset[index]``; an image that cannot be decoded raises an ``OSError`` naming its file.

    The file is found as torchvision's ``ImageFolder`` (``samples``) and lightly's
    ``LightlyDataset`` (``get_filenames()`` under ``input_dir``) record it; for other datasets
    the error names the sample index.
    """
    try:
        return dataset[index] if read is None else read(dataset, index)
    except (OSError, SyntaxError) as error:
        if isinstance(error, UnreadableImageError) and error.path:  # named by name_unreadable_files' loader: + sample
            raise OSError(f"cannot read image {error.path!r} (sample {index} of {type(dataset).__name__}): "
                          f"{error.reason}") from error.__cause__
        if "cannot read image" in str(error):  # already named (load_image)
            raise
        raise OSError(
            f"cannot read image {_source_of(dataset, index)} (sample {index} of {type(dataset).__name__}): "
            f"{type(error).__name__}: {error}"
        ) from error


def _source_of(dataset: Any, index: int) -> str:
    try:
        samples = getattr(dataset, "samples", None)
        if samples is not None:
            return repr(os.fspath(samples[index][0]))
        if hasattr(dataset, "get_filenames"):
            name = dataset.get_filenames()[index]
            root = getattr(dataset, "input_dir", None)
            return repr(os.path.join(root, name) if root else name)
    except Exception:  # noqa: BLE001 - only for the message
        pass
    return f"#{index}"


__all__ = ["FileNamingLoader", "UnreadableImageError", "load_image", "read_item", "to_rgb"]

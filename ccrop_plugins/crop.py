"""ContrastiveCrop: RandomResizedCrop's crop size, with the crop's position drawn inside a box."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode

from .plugins import get_sampler

CropParams = dict[str, int]
"""``dict(top, left, height, width, box_index)`` in pixels; ``box_index`` is -1 without boxes."""

SCALE_REFERENCES = ("image", "box")


def image_size_of(img: Image.Image | Tensor) -> tuple[int, int]:
    """``(height, width)`` of a PIL image or a ``(..., H, W)`` tensor; raises on an empty image."""
    if isinstance(img, Image.Image):
        width, height = img.size
    elif isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"a tensor image must have shape (..., H, W); got {tuple(img.shape)}")
        height, width = img.shape[-2:]
    else:
        raise TypeError(f"expected a PIL image or a tensor (..., H, W); got {type(img).__name__}")
    if height < 1 or width < 1:
        raise ValueError(f"cannot crop an empty image of size (height, width) = ({height}, {width})")
    return int(height), int(width)


def choose_box(boxes: Tensor, scores: Tensor | None = None, generator: torch.Generator | None = None) -> int:
    """Pick one box of a set, with probability proportional to its score.

    Args:
        boxes: ``(k, 4)`` normalised ``x0, y0, x1, y1``.
        scores: ``(k,)`` non-negative weights; ``None``, all zero or non-finite means uniform.
        generator: optional seeded ``torch.Generator``.

    Returns:
        The index of the chosen box. Draws nothing when ``k == 1``.

    Adapters call this once per *sample* and pass the index to every view's
    :meth:`ContrastiveCrop.make_params`, so that both views of a pair crop the same object.
    """
    count = len(boxes)
    if count == 0:
        raise ValueError("cannot choose a box from an empty set")
    if count == 1:
        return 0
    return _pick_index(float(torch.rand(1, generator=generator, dtype=torch.float64)), scores, count)


def _pick_index(u: float, scores: Tensor | Sequence[float] | None, count: int) -> int:
    """Turn one uniform draw ``u`` in ``[0, 1)`` into a box index, weighted by ``scores``."""
    if scores is not None:
        weights = [max(s, 0.0) for s in (scores.tolist() if isinstance(scores, Tensor) else list(scores))[:count]]
        total = sum(weights)
        if math.isfinite(total) and total > 0:
            target, cumulative = u * total, 0.0
            for index, weight in enumerate(weights):
                cumulative += weight
                if target < cumulative:
                    return index
            return count - 1
    return min(int(u * count), count - 1)


# One call to the random generator per view with a box set: torch's per-call overhead
# (about 10 us) dominates the crop's cost otherwise. 1 draw for the box, 2 per size try.
_BOX_PATH_DRAWS = 1 + 2 * 10


class ContrastiveCrop:
    """The framework-neutral view crop of ContrastiveCrop (Peng et al., CVPR 2022).

    The crop's size is drawn exactly as torchvision's ``RandomResizedCrop``: area fraction
    in ``scale``, log-uniform aspect ratio in ``ratio``, 10 tries, then a centred fallback.
    Without boxes the position is uniform too, so warm-up crops follow
    ``RandomResizedCrop``'s distribution (and, with the same seed, its exact draws).
    With a box set, one box is chosen (weighted by score), the allowed range of the
    top-left corner is the paper's ``box_edge * H - h / 2`` clamped to ``[0, H - h]``, and
    the centre sampler places the crop in that range.

    Args:
        size: output ``(height, width)`` or one int for a square.
        scale: range of the crop's area, as a fraction of the image (or of the chosen box
            with ``scale_reference="box"``).
        ratio: range of the crop's aspect ratio ``width / height``.
        sampler: a registered sampler name (``beta``, ``uniform``, ``gaussian``, ...) or a
            sampler object.
        alpha: ``Beta(alpha, alpha)`` of the ``beta`` sampler (paper: 0.1 on CIFAR, 0.6 on ImageNet).
        scale_reference: ``"image"`` (the paper) or ``"box"``: draw the area relative to the
            chosen box, so that small objects get crops of their own size. A box so large that
            ``scale[1] * box_area`` exceeds the image is shrunk to ``image_area / scale[1]``, so
            the largest crop is the image and crops stay varied.
        interpolation: a torchvision ``InterpolationMode`` or its name (``"bilinear"``).
        antialias: passed to torchvision's resize (as ``RandomResizedCrop`` does).
        sampler_options: other options of the sampler (``sigma`` for ``gaussian``).

    Images keep their mode: a grayscale or RGBA PIL image gives a grayscale or RGBA crop
    (convert before, as the adapters do, if the model wants RGB).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.2, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        sampler: str | Any = "beta",
        alpha: float = 0.6,
        scale_reference: str = "image",
        interpolation: InterpolationMode | str = InterpolationMode.BILINEAR,
        antialias: bool = True,
        **sampler_options: Any,
    ) -> None:
        self.size = _pair(size, "size")
        self.scale = _range(scale, "scale")
        self.ratio = _range(ratio, "ratio")
        if scale_reference not in SCALE_REFERENCES:
            raise ValueError(f"unknown scale_reference {scale_reference!r}; available: {', '.join(SCALE_REFERENCES)}")
        self.scale_reference = scale_reference
        self.interpolation = _interpolation(interpolation)
        self.antialias = antialias
        if isinstance(sampler, str):
            if sampler == "beta":
                sampler_options = {"alpha": alpha, **sampler_options}
            sampler = get_sampler(sampler, **sampler_options)
        elif sampler_options:
            raise TypeError(f"sampler options {sorted(sampler_options)} need a sampler name, not an object")
        self.sampler = sampler
        self._log_ratio = tuple(float(v) for v in torch.log(torch.tensor(self.ratio)))

    # -- sampling ---------------------------------------------------------------------------
    def choose_box(
        self, boxes: Tensor, scores: Tensor | None = None, generator: torch.Generator | None = None
    ) -> int:
        """See :func:`choose_box`."""
        return choose_box(boxes, scores, generator)

    def make_params(
        self,
        image_size: Sequence[int],
        boxes: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        scores: Tensor | None = None,
        box_index: int | None = None,
    ) -> CropParams:
        """Draw one crop.

        Args:
            image_size: ``(height, width)`` of the image in pixels.
            boxes: ``(k, 4)`` normalised ``x0, y0, x1, y1`` box set, or ``None`` (warm-up:
                plain ``RandomResizedCrop``).
            generator: optional seeded ``torch.Generator``; ``None`` uses torch's global RNG.
            scores: ``(k,)`` weights for choosing the box (uniform if ``None``).
            box_index: use this box instead of choosing one (pair-consistent views).

        Returns:
            ``dict(top, left, height, width, box_index)``, a crop inside the image.
        """
        height, width = int(image_size[0]), int(image_size[1])
        if height < 1 or width < 1:
            raise ValueError(f"image_size must be a positive (height, width); got {tuple(image_size)}")
        if boxes is None:
            ref_h, ref_w = float(height), float(width)
            if self.scale_reference == "box":  # no box: the whole image is the box
                ref_h, ref_w = self._box_reference(ref_h, ref_w, height, width)
            h, w, found = self._draw_size(ref_h * ref_w, height, width, ref_h, ref_w, generator)
            if found:
                top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator))
            else:  # RandomResizedCrop's centred fallback
                top, left = (height - h) // 2, (width - w) // 2
            return {"top": top, "left": left, "height": h, "width": w, "box_index": -1}

        box_list = boxes.tolist()
        count = len(box_list)
        if count == 0:
            raise ValueError("cannot choose a box from an empty set")
        uniforms = torch.rand(_BOX_PATH_DRAWS, generator=generator, dtype=torch.float64).tolist()
        if box_index is None:
            box_index = 0 if count == 1 else _pick_index(uniforms[0], scores, count)
        elif not 0 <= box_index < count:
            raise ValueError(f"box_index {box_index} is outside the box set of {count} boxes")
        x0, y0, x1, y1 = _checked_box(box_list, box_index)
        box_h, box_w = (y1 - y0) * height, (x1 - x0) * width
        if self.scale_reference == "box":
            ref_h, ref_w = self._box_reference(box_h, box_w, height, width)
        else:
            ref_h, ref_w = height, width
        h, w = self._size_from_uniforms(uniforms[1:], ref_h * ref_w, height, width, ref_h, ref_w)

        # The paper's range: the crop's centre anywhere on the box, the crop inside the image.
        low_top, high_top = y0 * height - h / 2, y1 * height - h / 2
        low_left, high_left = x0 * width - w / 2, x1 * width - w / 2
        centre = np.array([(low_top + high_top) / 2, (low_left + high_left) / 2])
        low = np.array([min(max(low_top, 0.0), height - h), min(max(low_left, 0.0), width - w)], dtype=np.float64)
        high = np.array([min(max(high_top, 0.0), height - h), min(max(high_left, 0.0), width - w)], dtype=np.float64)
        extent = np.array([box_h, box_w])
        top, left = (float(v) for v in self.sampler(low, high, centre, extent, generator))
        top = min(max(int(round(top)), 0), height - h)
        left = min(max(int(round(left)), 0), width - w)
        return {"top": top, "left": left, "height": h, "width": w, "box_index": int(box_index)}

    def _box_reference(self, box_h: float, box_w: float, height: int, width: int) -> tuple[float, float]:
        """The region whose area ``scale`` refers to with ``scale_reference="box"``, in pixels.

        A large box shrinks the reference so the largest crop is the image: with scale (1, 4)
        a whole-image box then crops 25-100 % of the image, not always all of it.
        """
        ref_h, ref_w = max(box_h, 1.0), max(box_w, 1.0)
        shrink = min(1.0, math.sqrt(height * width / (self.scale[1] * ref_h * ref_w)))
        return ref_h * shrink, ref_w * shrink

    def _size_from_uniforms(
        self, uniforms: Sequence[float], area: float, height: int, width: int, ref_h: float, ref_w: float
    ) -> tuple[int, int]:
        """RandomResizedCrop's size rule (10 tries, then the fallback) from 20 uniform draws."""
        (scale_low, scale_high), (log_low, log_high) = self.scale, self._log_ratio
        for attempt in range(10):
            target_area = area * (scale_low + (scale_high - scale_low) * uniforms[2 * attempt])
            aspect = math.exp(log_low + (log_high - log_low) * uniforms[2 * attempt + 1])
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return h, w
        return self._fallback_size(height, width, ref_h, ref_w)

    def _draw_size(
        self, area: float, height: int, width: int, ref_h: float, ref_w: float, generator: torch.Generator | None
    ) -> tuple[int, int, bool]:
        """RandomResizedCrop's size rule for a reference area; the crop must fit ``height x width``.

        Returns ``(h, w, found)``; ``found`` is False when all 10 tries failed (fallback size).
        """
        for _ in range(10):
            target_area = area * float(torch.empty(1).uniform_(self.scale[0], self.scale[1], generator=generator))
            # float32 log/exp exactly as torchvision, so seeded warm-up crops equal RandomResizedCrop's.
            log_aspect = torch.empty(1).uniform_(self._log_ratio[0], self._log_ratio[1], generator=generator)
            aspect = float(torch.exp(log_aspect))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return h, w, True
        h, w = self._fallback_size(height, width, ref_h, ref_w)
        return h, w, False

    def _fallback_size(self, height: int, width: int, ref_h: float, ref_w: float) -> tuple[int, int]:
        """The whole reference region, cut to the nearest allowed aspect ratio, inside the image."""
        in_ratio = ref_w / ref_h
        if in_ratio < self.ratio[0]:
            w, h = ref_w, ref_w / self.ratio[0]
        elif in_ratio > self.ratio[1]:
            h, w = ref_h, ref_h * self.ratio[1]
        else:
            h, w = ref_h, ref_w
        return min(max(int(round(h)), 1), height), min(max(int(round(w)), 1), width)

    # -- applying ---------------------------------------------------------------------------
    def __call__(
        self,
        img: Image.Image | Tensor,
        boxes: Tensor | None = None,
        params: CropParams | None = None,
        *,
        scores: Tensor | None = None,
        box_index: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Image.Image | Tensor:
        """Crop and resize ``img`` (PIL image or ``(..., H, W)`` tensor) to ``size``.

        Passing ``params`` (from :meth:`make_params`) replays that crop exactly.
        """
        if params is None:
            params = self.make_params(image_size_of(img), boxes, generator, scores=scores, box_index=box_index)
        return self.apply(img, params)

    def apply(self, img: Image.Image | Tensor, params: CropParams) -> Image.Image | Tensor:
        """Crop ``params`` out of ``img`` and resize it to ``size``."""
        return TF.resized_crop(
            img,
            params["top"],
            params["left"],
            params["height"],
            params["width"],
            list(self.size),
            self.interpolation,
            antialias=self.antialias,
        )

    def __repr__(self) -> str:
        return (
            f"ContrastiveCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, sampler={self.sampler!r}, "
            f"scale_reference={self.scale_reference!r}, interpolation={self.interpolation.value})"
        )


def _checked_box(boxes: list[list[float]], index: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = boxes[index]
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):  # also false for NaN
        raise ValueError(
            f"box {index} {[x0, y0, x1, y1]} is not a valid normalised x0, y0, x1, y1 box "
            "(finite, inside [0, 1], x0 < x1, y0 < y1)"
        )
    return x0, y0, x1, y1


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width); got {size}")
    return size  # type: ignore[return-value]


def _range(values: Sequence[float], name: str) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or low <= 0:
        raise ValueError(f"{name} must be an increasing pair of positive numbers (low, high); got {tuple(values)}")
    return low, high


def _interpolation(value: InterpolationMode | str) -> InterpolationMode:
    if isinstance(value, InterpolationMode):
        return value
    try:
        return InterpolationMode(str(value).lower())
    except ValueError:
        allowed = ", ".join(m.value for m in InterpolationMode)
        raise ValueError(f"unknown interpolation {value!r}; available: {allowed}") from None

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
from .sizes import height_width

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
    """The index of one box of ``boxes`` ``(k, 4)``, drawn with probability proportional to ``scores``.

    ``scores`` ``(k,)``: non-negative weights; ``None``, all zero or non-finite means uniform.
    Draws nothing when ``k == 1``. Adapters call this once per *sample* and pass the index to
    every view's :meth:`ContrastiveCrop.make_params`, so that both views crop the same object.
    """
    count = len(boxes)
    weights = _weights(scores, count)
    if count == 1:
        return 0
    return _pick_index(float(torch.rand(1, generator=generator, dtype=torch.float64)), weights, count)


def _weights(scores: Tensor | Sequence[float] | None, count: int) -> list[float] | None:
    """``scores`` as a list of ``count`` floats; ``ValueError`` for an empty set or lengths that differ."""
    if count == 0:
        raise ValueError("cannot choose a box from an empty set")
    if scores is None:
        return None
    if isinstance(scores, (Tensor, np.ndarray)):
        shape: object = tuple(scores.shape)
        values = scores.tolist() if scores.ndim == 1 else None
    else:
        values = [float(v) for v in scores]
        shape = (len(values),)
    if values is None or len(values) != count:
        raise ValueError(f"scores must hold one weight per box, shape ({count},); got shape {shape}")
    return values


def _pick_index(u: float, weights: list[float] | None, count: int) -> int:
    """Turn one uniform draw ``u`` in ``[0, 1)`` into a box index, weighted by ``weights``."""
    if weights is not None:
        weights = [max(w, 0.0) for w in weights]
        total = sum(weights)
        if math.isfinite(total) and total > 0:
            target, cumulative = u * total, 0.0
            for index, weight in enumerate(weights):
                cumulative += weight
                if target < cumulative:
                    return index
            return count - 1
    return min(int(u * count), count - 1)


def _box_rows(boxes: Tensor | np.ndarray | Sequence[Sequence[float]]) -> list[list[float]]:
    """Every box of a ``(k, 4)`` tensor, array or list as floats, all checked (in plain Python:
    cheaper than tensor ops for an image's few boxes), or a ``ValueError``."""
    if isinstance(boxes, (Tensor, np.ndarray)):
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(
                f"boxes must have shape (k, 4) as x0, y0, x1, y1; got {tuple(boxes.shape)}"
                + (" (one box? pass [[x0, y0, x1, y1]])" if boxes.ndim == 1 else "")
            )
        rows = boxes.tolist()
    else:
        try:
            rows = [list(row) for row in boxes]
        except TypeError:
            raise ValueError(f"boxes must be a (k, 4) tensor, array or list of [x0, y0, x1, y1]; got {boxes!r}") from None
        if any(len(row) != 4 for row in rows):
            raise ValueError(f"boxes must have shape (k, 4) as x0, y0, x1, y1; got rows of lengths {[len(r) for r in rows]}")
    for index, (x0, y0, x1, y1) in enumerate(rows):
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):  # also false for NaN
            raise ValueError(
                f"box {index} {[x0, y0, x1, y1]} is not a valid normalised x0, y0, x1, y1 box "
                "(finite, inside [0, 1], x0 < x1, y0 < y1)"
            )
    return rows


# One random call per view with a box set (torch's ~10 us per call would dominate): 1 draw for
# the box, 2 per size try, and 2 for the position when the sampler has a ``unit_quantile``.
_BOX_PATH_DRAWS = 1 + 2 * 10


class ContrastiveCrop:
    """The framework-neutral view crop of ContrastiveCrop (Peng et al., CVPR 2022).

    The crop's size is drawn as torchvision's ``RandomResizedCrop`` draws it (10 tries, then a
    centred fallback). Without boxes the position is uniform too: warm-up crops are
    ``RandomResizedCrop``'s, with the same seed its exact draws. With a box set, one box is
    chosen (weighted by score) and the centre sampler places the crop's top-left in the paper's
    range ``box_edge * H - h / 2``, clamped to ``[0, H - h]``.

    Args (allowed values: docs/configuration.md):
        size: output ``(height, width)`` or one int for a square.
        scale: range of the crop's area, a fraction of the image (of the chosen box with
            ``scale_reference="box"``, where a box with ``scale[1] * box_area`` above the image
            is shrunk to ``image_area / scale[1]``: small objects get crops of their own size).
        ratio: range of the crop's aspect ratio ``width / height``.
        sampler: a registered sampler name (``beta``, ``uniform``, ``gaussian``) or a sampler object.
        alpha: ``Beta(alpha, alpha)`` of the ``beta`` sampler (paper: 0.1 on CIFAR, 0.6 on ImageNet).
        scale_reference: ``"image"`` (the paper) or ``"box"``.
        interpolation, antialias: torchvision's resize (an ``InterpolationMode`` or its name).
        sampler_options: other options of the sampler (``sigma`` for ``gaussian``).

    Images keep their mode (a grayscale or RGBA PIL image gives a grayscale or RGBA crop).
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
        self.size = height_width(size, "size")
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
        # A sampler low + (high - low) * q(u) takes its draws from the crop's one call.
        quantile = getattr(sampler, "unit_quantile", None)
        self._quantile = quantile if callable(quantile) else None
        self._draws = _BOX_PATH_DRAWS + (2 if self._quantile is not None else 0)

    # -- sampling ---------------------------------------------------------------------------
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
            return self._warmup_params(height, width, generator)
        return self._box_params(height, width, _box_rows(boxes), generator, scores, box_index)

    def _warmup_params(self, height: int, width: int, generator: torch.Generator | None) -> CropParams:
        """No boxes: RandomResizedCrop's draws, in its order."""
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

    def _box_params(
        self, height: int, width: int, box_list: list[list[float]], generator: torch.Generator | None,
        scores: Tensor | None, box_index: int | None,
    ) -> CropParams:
        """A box set: the box, the size and the position from one random call (``_BOX_PATH_DRAWS``)."""
        count = len(box_list)
        weights = _weights(scores, count)
        uniforms = torch.rand(self._draws, generator=generator, dtype=torch.float64).tolist()
        if box_index is None:
            box_index = 0 if count == 1 else _pick_index(uniforms[0], weights, count)
        elif isinstance(box_index, bool) or not isinstance(box_index, (int, np.integer)) or not 0 <= box_index < count:
            raise ValueError(f"box_index {box_index!r} is outside the box set of {count} boxes (an int in [0, {count}))")
        box = box_list[box_index]
        extent = ((box[3] - box[1]) * height, (box[2] - box[0]) * width)
        if self.scale_reference == "box":
            ref_h, ref_w = self._box_reference(*extent, height, width)
        else:
            ref_h, ref_w = height, width
        h, w = self._size_from_uniforms(uniforms, ref_h * ref_w, height, width, ref_h, ref_w)
        top, left = self._place(uniforms, box, extent, h, w, height, width, generator)
        return {"top": top, "left": left, "height": h, "width": w, "box_index": int(box_index)}

    def _place(
        self, uniforms: list[float], box: list[float], extent: tuple[float, float], h: int, w: int,
        height: int, width: int, generator: torch.Generator | None,
    ) -> tuple[int, int]:
        """The crop's top-left in the paper's range: the centre anywhere on the box, the crop inside the image."""
        x0, y0, x1, y1 = box
        low_top, high_top = y0 * height - h / 2, y1 * height - h / 2
        low_left, high_left = x0 * width - w / 2, x1 * width - w / 2
        max_top, max_left = height - h, width - w
        low = (min(max(low_top, 0.0), max_top), min(max(low_left, 0.0), max_left))
        high = (min(max(high_top, 0.0), max_top), min(max(high_left, 0.0), max_left))
        if self._quantile is not None:
            top = low[0] + (high[0] - low[0]) * self._quantile(uniforms[-2])
            left = low[1] + (high[1] - low[1]) * self._quantile(uniforms[-1])
        else:
            centre = np.array([(low_top + high_top) / 2, (low_left + high_left) / 2])
            placed = self.sampler(np.array(low), np.array(high), centre, np.array(extent), generator)
            top, left = (float(v) for v in placed)
        return min(max(int(round(top)), 0), max_top), min(max(int(round(left)), 0), max_left)

    def _box_reference(self, box_h: float, box_w: float, height: int, width: int) -> tuple[float, float]:
        """The region whose area ``scale`` refers to with ``scale_reference="box"``, in pixels.

        A large box shrinks the reference so the largest crop is the image: with scale (1, 4)
        a whole-image box then crops 25-100 % of the image, not always all of it.
        """
        ref_h, ref_w = max(box_h, 1.0), max(box_w, 1.0)
        shrink = min(1.0, math.sqrt(height * width / (self.scale[1] * ref_h * ref_w)))
        return ref_h * shrink, ref_w * shrink

    def _draw_size(
        self, area: float, height: int, width: int, ref_h: float, ref_w: float, generator: torch.Generator | None
    ) -> tuple[int, int, bool]:
        """RandomResizedCrop's size rule, drawn try by try as torchvision draws it: ``(h, w, found)``,
        ``found`` False for the fallback size (all 10 tries failed)."""
        for _ in range(10):
            target_area = area * float(torch.empty(1).uniform_(self.scale[0], self.scale[1], generator=generator))
            # float32 log/exp exactly as torchvision, so seeded warm-up crops equal RandomResizedCrop's.
            log_aspect = torch.empty(1).uniform_(self._log_ratio[0], self._log_ratio[1], generator=generator)
            aspect = float(torch.exp(log_aspect))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return h, w, True
        return (*self._fallback_size(height, width, ref_h, ref_w), False)

    def _size_from_uniforms(
        self, uniforms: Sequence[float], area: float, height: int, width: int, ref_h: float, ref_w: float
    ) -> tuple[int, int]:
        """The same rule from ``uniforms[1:21]`` (float64, plain Python: no torch call per try)."""
        (scale_low, scale_high), (log_low, log_high) = self.scale, self._log_ratio
        for attempt in range(1, 21, 2):
            target_area = area * (scale_low + (scale_high - scale_low) * uniforms[attempt])
            aspect = math.exp(log_low + (log_high - log_low) * uniforms[attempt + 1])
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return h, w
        return self._fallback_size(height, width, ref_h, ref_w)

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
        """Crop and resize ``img`` (PIL image or ``(..., H, W)`` tensor) to ``size``; ``params``
        (from :meth:`make_params`) replays that crop exactly."""
        if params is None:
            params = self.make_params(image_size_of(img), boxes, generator, scores=scores, box_index=box_index)
        return self.apply(img, params)

    def apply(self, img: Image.Image | Tensor, params: CropParams) -> Image.Image | Tensor:
        """Crop ``params`` out of ``img`` and resize it to ``size``."""
        top, left, height, width = params["top"], params["left"], params["height"], params["width"]
        return TF.resized_crop(img, top, left, height, width, list(self.size), self.interpolation, antialias=self.antialias)

    def __repr__(self) -> str:
        return (
            f"ContrastiveCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, sampler={self.sampler!r}, "
            f"scale_reference={self.scale_reference!r}, interpolation={self.interpolation.value})"
        )


def _range(values: Sequence[float], name: str) -> tuple[float, float]:
    """``(low, high)`` as floats: a pair of finite numbers with ``0 < low <= high``."""
    allowed = f"{name} must be an increasing pair of positive numbers (low, high)"
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, Tensor)):
        raise TypeError(f"{allowed}; got {values!r}")
    if len(values) != 2:
        raise ValueError(f"{allowed}; got {tuple(values)!r} ({len(values)} values)")
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{allowed}; got {tuple(values)!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or low <= 0:
        raise ValueError(f"{allowed}; got {tuple(values)}")
    return low, high


def _interpolation(value: InterpolationMode | str) -> InterpolationMode:
    if isinstance(value, InterpolationMode):
        return value
    try:
        return InterpolationMode(str(value).lower())
    except ValueError:
        allowed = ", ".join(m.value for m in InterpolationMode)
        raise ValueError(f"unknown interpolation {value!r}; available: {allowed}") from None

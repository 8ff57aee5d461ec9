"""ContrastiveCrop: RandomResizedCrop's crop size, with the crop's position drawn inside a box."""

from __future__ import annotations

import copy
import inspect
import math
import pickle
import warnings
from bisect import bisect_right
from itertools import accumulate
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode

from .box_sets import _as_boxes, box_hint, dtype_of
from .plugins import get_sampler, lookup, takes_option
from .samplers import check_sampler, quantile_value, sampler_error
from .sizes import height_width, integer, real_number

CropParams = dict[str, int]
"""``dict(top, left, height, width, box_index)`` in pixels; ``box_index`` is -1 without boxes."""

SCALE_REFERENCES = ("image", "box")
TENSOR_INTERPOLATIONS = (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT, InterpolationMode.BILINEAR,
                         InterpolationMode.BICUBIC)
"""The interpolations torchvision resizes tensor images with (``box``, ``hamming``, ``lanczos``: PIL images only)."""
_FLOAT32 = torch.finfo(torch.float32)  # warm-up scale and ratio are drawn in float32, as RandomResizedCrop's
_BOX_PATH_DRAWS = 1 + 2 * 10  # one torch.rand per view: 1 for the box, 2 per size try (+2 with a unit_quantile)
_OPTIONS = ("size", "scale", "ratio", "sampler", "scale_reference", "interpolation", "antialias")  # assignable
_BOOL = frozenset((torch.bool, np.dtype(bool)))  # True / False are no coordinates or weights: a set, one hash per view


def image_size_of(img: Image.Image | Tensor) -> tuple[int, int]:
    """``(height, width)`` of a PIL image or a ``(..., C, H, W)`` tensor; ``ValueError`` for an empty image."""
    if isinstance(img, Image.Image):
        width, height = img.size
    elif not isinstance(img, Tensor):
        raise TypeError(f"expected a PIL image or a tensor (..., C, H, W); got {type(img).__name__}")
    elif img.ndim < 3:  # torchvision's resize cannot take (H, W)
        one = " (one channel? pass img[None])" if img.ndim == 2 else ""
        raise ValueError(f"a tensor image must have shape (..., C, H, W); got {tuple(img.shape)}{one}")
    else:
        channels, height, width = img.shape[-3:]
        if channels < 1:
            raise ValueError(f"a tensor image (..., C, H, W) needs at least one channel; got shape {tuple(img.shape)}")
        if channels > 4 and width in (1, 2, 3, 4):  # (..., H, W, C), e.g. torch.from_numpy(np.array(pil)), LA: 2
            raise ValueError(f"a tensor image of shape {tuple(img.shape)} looks like (..., H, W, C) (else: {width} "
                             f"pixels wide, {channels} channels); ContrastiveCrop takes (..., C, H, W): "
                             f"pass img.{'permute(2, 0, 1)' if img.ndim == 3 else 'movedim(-1, -3)'}")
    if height < 1 or width < 1:
        raise ValueError(f"cannot crop an empty image of size (height, width) = ({height}, {width})")
    return int(height), int(width)


def choose_box(boxes: Tensor, scores: Tensor | None = None, generator: torch.Generator | None = None) -> int:
    """The index of one box of ``boxes`` ``(k, 4)``, drawn with probability proportional to ``scores`` ``(k,)``
    (``None``, all zero or non-finite: uniform; no draw when ``k == 1``); adapters pass it to every view of a sample.
    ``ValueError`` for an empty set, boxes of another shape (as :meth:`ContrastiveCrop.make_params`), scores of
    another length or a negative finite score."""
    count = len(_box_rows(boxes))
    weights = _weights(scores, count)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _bad_generator(generator)
    if count == 1:
        return 0
    return _pick_index(float(torch.rand(1, generator=generator, dtype=torch.float64)), weights, count)


def _weights(scores: Tensor | Sequence[float] | None, count: int) -> list[float] | None:
    """``scores`` as a list of ``count`` floats; ``ValueError`` for an empty set, lengths that differ or a negative
    finite score."""
    if count == 0:
        raise ValueError("cannot choose a box from an empty set")
    if scores is None:
        return None
    array = isinstance(scores, (Tensor, np.ndarray))
    if not (array or isinstance(scores, (list, tuple))):  # a set's order is not the boxes'; a dict's keys, digits
        raise ValueError(f"scores must be one non-negative number per box, shape ({count},); got {scores!r}")
    if (dtype := scores.dtype if array else dtype_of(scores)) in _BOOL:  # float(True) is 1.0: a mask would weigh
        raise TypeError(f"scores must have a floating point or integer dtype (one weight per box); got {dtype}")
    try:
        values = None if array and scores.ndim != 1 else [float(v) for v in (scores.tolist() if array else scores)]
    except (TypeError, ValueError):  # text, None, complex (in a list or an array), a number for the whole set
        raise ValueError(f"scores must be one non-negative number per box, shape ({count},); got {scores!r}") from None
    if values is None or len(values) != count:
        shape = tuple(scores.shape) if array else (len(values),)
        raise ValueError(f"scores must hold one weight per box, shape ({count},); got shape {shape}")
    if any(-math.inf < value < 0 for value in values):  # a store's scores are >= 0; clamped, -1 would never be drawn
        raise ValueError(f"scores must be >= 0 (box weights; non-finite ones mean a uniform choice); got {values}")
    return values


def _pick_index(u: float, weights: list[float] | None, count: int) -> int:
    """Turn one uniform draw ``u`` in ``[0, 1)`` into a box index, weighted by ``weights``."""
    if weights is not None and all(map(math.isfinite, weights)):  # -inf too: uniform, as NaN and +inf
        total = sum(weights)
        if total == math.inf:  # finite weights whose sum overflows: the same weights, scaled by the largest
            weights = [weight / max(weights) for weight in weights]
            total = sum(weights)
        if total > 0:  # the first index whose running sum exceeds u * total
            return min(bisect_right(list(accumulate(weights)), u * total), count - 1)
    return min(int(u * count), count - 1)


def _box_rows(boxes: Tensor | np.ndarray | Sequence[Sequence[float]]) -> list[list[float]]:
    """Every box of a ``(k, 4)`` tensor, array or list as checked floats (plain Python: cheaper for a few boxes)."""
    if not (isinstance(boxes, (Tensor, np.ndarray)) and boxes.ndim == 2 and boxes.shape[-1] == 4
            and boxes.dtype not in _BOOL):
        boxes = _as_boxes(boxes, "boxes", empty_ok=True, dtype=torch.float64)  # a list; a shape, type or bool named
    rows = boxes.tolist()
    try:
        for index, (x0, y0, x1, y1) in enumerate(rows):
            if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):  # also false for NaN
                raise ValueError(f"box {index} {[x0, y0, x1, y1]} is not a valid normalised x0, y0, x1, y1 box "
                                 f"(finite, inside [0, 1], x0 < x1, y0 < y1){box_hint([x0, y0, x1, y1])}")
        return rows
    except TypeError:  # an array of values that are not numbers (text, None)
        raise ValueError(f"boxes must be a (k, 4) tensor, array or list of [x0, y0, x1, y1]; got {boxes!r}") from None


class ContrastiveCrop:
    """The framework-neutral view crop of ContrastiveCrop (Peng et al., CVPR 2022): the crop's size is drawn as
    torchvision's ``RandomResizedCrop`` draws it (without boxes: exactly its crops); with a box set, one box is chosen
    (weighted by score) and the centre sampler places the crop's top-left in the paper's range
    ``box_edge * H - h / 2``, clamped to ``[0, H - h]``. Images keep their mode (grayscale, RGBA).

    Args (defaults and allowed values, each refused with a ``ValueError`` / ``TypeError``: docs/configuration.md):
    ``size`` (``(height, width)`` or one int), ``scale`` (area range, of the image or, with ``scale_reference="box"``,
    of the box), ``ratio`` (``width / height``), ``sampler`` (a registered name with ``sampler_options``, or a sampler
    object), ``alpha`` (for a named sampler that takes it; ``None``: its own), ``interpolation``, ``antialias``.
    """

    def __init__(self, size: int | Sequence[int], scale: Sequence[float] = (0.2, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), sampler: str | Any = "beta", alpha: float | None = None,
                 scale_reference: str = "image",
                 interpolation: InterpolationMode | str | int = InterpolationMode.BILINEAR, antialias: bool = True,
                 **sampler_options: Any) -> None:
        self.size = height_width(size, "size")
        self.scale, self.ratio = _range(scale, "scale"), _range(ratio, "ratio")
        if scale_reference not in SCALE_REFERENCES:
            raise ValueError(f"unknown scale_reference {scale_reference!r}; available: {', '.join(SCALE_REFERENCES)}")
        self.scale_reference = scale_reference
        if scale_reference == "image" and self.scale[1] > 1:  # never fits: RandomResizedCrop's centred fallback
            percent = " (in percent? (8, 100) is (0.08, 1.0))" if self.scale[0] >= 1 else ""
            raise ValueError(f"scale must be at most 1 with scale_reference='image': it is a fraction of the image's "
                             f"area, and a larger crop falls back to a centred one{percent}; got {self.scale}")
        if not isinstance(antialias, (bool, np.bool_)):  # 'no' or 0.0 would be passed on as truthy or falsy
            raise TypeError(f"antialias must be True or False; got {antialias!r}")
        self.interpolation, self.antialias = _interpolation(interpolation), bool(antialias)
        if isinstance(sampler, str):
            name = sampler
            takes_alpha = takes_option(lookup("sampler", name).factory, "alpha")
            try:
                sampler = get_sampler(name, **({"alpha": alpha} if takes_alpha and alpha is not None else {}),
                                      **sampler_options)
            except TypeError as error:  # a misspelt argument of the crop (min_scale, scal) lands among the options
                if not sampler_options:
                    raise
                raise TypeError(f"{error}; ContrastiveCrop's own arguments: {_own_arguments()}") from None
            if alpha is not None and not takes_alpha:  # it would be dropped, silently
                warnings.warn(f"ContrastiveCrop: alpha={alpha!r} is no option of sampler {name!r}, which ignores it "
                              "(leave alpha out, or pass its own options, e.g. sigma for 'gaussian')",
                              UserWarning, stacklevel=2)
        elif sampler_options:
            raise TypeError(f"sampler options {sorted(sampler_options)} need a sampler name, not an object "
                            f"(ContrastiveCrop's own arguments: {_own_arguments()})")
        elif alpha is not None:  # the object keeps its own options: a given alpha would be dropped silently
            warnings.warn(f"ContrastiveCrop: alpha={alpha!r} is ignored with a sampler object ({sampler!r}), which "
                          "keeps its own options: build the object with it (e.g. BetaSampler(alpha=...)), or pass "
                          "sampler='beta' with alpha", UserWarning, stacklevel=2)
        if not callable(sampler):
            raise TypeError(f"sampler must be a registered name or a callable sampler; got {type(sampler).__name__}")
        check_sampler(sampler)  # once here, not in a DataLoader worker
        self.sampler = sampler
        self._log_ratio = tuple(float(v) for v in torch.log(torch.tensor(self.ratio)))
        quantile = getattr(sampler, "unit_quantile", None)  # low + (high - low) * q(u): u from the crop's call
        self._quantile = quantile if callable(quantile) else None
        self._draws = _BOX_PATH_DRAWS + (2 if self._quantile is not None else 0)

    def __setattr__(self, name: str, value: Any) -> None:
        """An option assigned once the crop is built (``crop.scale = (0.4, 1.0)``, as on torchvision's
        ``RandomResizedCrop``) is checked and what derives from it made again, as the constructor does."""
        if "_draws" not in self.__dict__ or name not in _OPTIONS + ("alpha",):
            super().__setattr__(name, value)
        elif name == "alpha":  # no attribute of the crop: it would be ignored
            raise AttributeError("ContrastiveCrop's alpha belongs to its sampler: set crop.sampler.alpha, or assign "
                                 "crop.sampler = get_sampler('beta', alpha=...)")
        else:
            options = {key: getattr(self, key) for key in _OPTIONS}
            self.__dict__.update(vars(ContrastiveCrop(**{**options, name: value})))

    def make_params(self, image_size: Sequence[int], boxes: Tensor | None = None,
                    generator: torch.Generator | None = None, *, scores: Tensor | None = None,
                    box_index: int | None = None) -> CropParams:
        """Draw one crop inside an image of ``image_size`` ``(height, width)`` pixels: :data:`CropParams`. ``boxes``:
        ``(k, 4)`` normalised ``x0, y0, x1, y1`` (tensor, array or list; every box checked, ``ValueError``) or ``None``
        (warm-up: plain ``RandomResizedCrop``); ``scores`` ``(k,)`` weigh the choice of box, unless ``box_index`` names
        it (pair-consistent views); draws from ``generator``, else torch's global RNG."""
        try:
            height, width = image_size
        except (TypeError, ValueError):
            height = width = None
        if type(height) is not int or type(width) is not int:  # numpy or tensor integers; None for anything else
            height, width = integer(height), integer(width)
        if height is None or width is None or height < 1 or width < 1:
            shown = tuple(image_size) if isinstance(image_size, (tuple, list, torch.Size)) else repr(image_size)
            raise ValueError(f"image_size must be a positive (height, width); got {shown}")
        if generator is not None and not isinstance(generator, torch.Generator):  # the hot path: no call
            raise _bad_generator(generator)
        if boxes is None:
            return self._warmup_params(height, width, generator)
        return self._box_params(height, width, _box_rows(boxes), generator, scores, box_index)

    def _warmup_params(self, height: int, width: int, generator: torch.Generator | None) -> CropParams:
        """No boxes: RandomResizedCrop's draws, in its order (the whole image is the box)."""
        ref = (float(height), float(width))
        ref_h, ref_w = self._box_reference(*ref, height, width) if self.scale_reference == "box" else ref
        # float32 draws, log and exp exactly as torchvision's, one try at a time.
        tries = ((float(torch.empty(1).uniform_(*self.scale, generator=generator)),
                  float(torch.exp(torch.empty(1).uniform_(*self._log_ratio, generator=generator)))) for _ in range(10))
        h, w, found = self._size(tries, height, width, ref_h, ref_w)
        if not found:  # RandomResizedCrop's centred fallback
            return {"top": (height - h) // 2, "left": (width - w) // 2, "height": h, "width": w, "box_index": -1}
        top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator))
        left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator))
        return {"top": top, "left": left, "height": h, "width": w, "box_index": -1}

    def _box_params(self, height: int, width: int, box_list: list[list[float]], generator: torch.Generator | None,
                    scores: Tensor | None, box_index: int | None) -> CropParams:
        """A box set: the box, the size and the position from one random call (``_BOX_PATH_DRAWS``)."""
        count = len(box_list)
        weights = _weights(scores, count)
        uniforms = torch.rand(self._draws, generator=generator, dtype=torch.float64).tolist()
        if box_index is None:
            box_index = 0 if count == 1 else _pick_index(uniforms[0], weights, count)
        elif (number := integer(box_index)) is None or not 0 <= number < count:  # 1.0 and True too, never truncated
            raise ValueError(f"box_index {box_index!r} is outside the box set of {count} boxes "
                             f"(an int in [0, {count}))")
        box = box_list[box_index]
        extent = ((box[3] - box[1]) * height, (box[2] - box[0]) * width)
        ref_h, ref_w = self._box_reference(*extent, height, width) if self.scale_reference == "box" else (height, width)
        (s0, s1), (r0, r1) = self.scale, self._log_ratio
        tries = ((s0 + (s1 - s0) * uniforms[i], math.exp(r0 + (r1 - r0) * uniforms[i + 1])) for i in range(1, 21, 2))
        h, w, _ = self._size(tries, height, width, ref_h, ref_w)
        top, left = self._place(uniforms, box, extent, h, w, height, width, generator)
        return {"top": top, "left": left, "height": h, "width": w, "box_index": int(box_index)}

    def _place(self, uniforms: list[float], box: list[float], extent: tuple[float, float], h: int, w: int,
               height: int, width: int, generator: torch.Generator | None) -> tuple[int, int]:
        """The crop's top-left in the paper's range: the centre anywhere on the box, the crop inside the image."""
        x0, y0, x1, y1 = box
        first_top, last_top = y0 * height - h / 2, y1 * height - h / 2
        first_left, last_left = x0 * width - w / 2, x1 * width - w / 2
        max_top, max_left = height - h, width - w  # scalar arithmetic: the hot path of every view
        low = (min(max(first_top, 0.0), max_top), min(max(first_left, 0.0), max_left))
        high = (min(max(last_top, 0.0), max_top), min(max(last_left, 0.0), max_left))
        if self._quantile is not None:  # q clamped to [0, 1], so the centre stays in its range; NaN stays NaN
            quantiles = self._quantile(uniforms[-2]), self._quantile(uniforms[-1])
            try:  # a one-element tensor or array too, as check_sampler reads it
                q_top, q_left = quantile_value(quantiles[0]), quantile_value(quantiles[1])
            except (TypeError, ValueError, RuntimeError):
                raise sampler_error(self.sampler, f"unit_quantile values {quantiles}") from None
            top = low[0] + (high[0] - low[0]) * min(max(q_top, 0.0), 1.0)
            left = low[1] + (high[1] - low[1]) * min(max(q_left, 0.0), 1.0)
        else:
            centre = np.array([(first_top + last_top) / 2, (first_left + last_left) / 2])
            placed = self.sampler(np.array(low), np.array(high), centre, np.array(extent), generator)
            try:  # free on the good path; a plugin's sampler returning something else is named
                top, left = float(placed[0]), float(placed[1])
                if len(placed) != 2:
                    raise ValueError
            except (TypeError, ValueError, IndexError, KeyError):
                raise sampler_error(self.sampler, repr(placed)) from None
            top, left = min(max(top, low[0]), high[0]), min(max(left, low[1]), high[1])  # its range; NaN stays NaN
        try:
            return min(max(int(round(top)), 0), max_top), min(max(int(round(left)), 0), max_left)
        except (ValueError, OverflowError):  # NaN or inf
            raise sampler_error(self.sampler, f"a crop at (top, left) = ({top}, {left})") from None

    def _box_reference(self, box_h: float, box_w: float, height: int, width: int) -> tuple[float, float]:
        """The region ``scale`` refers to with ``scale_reference="box"``, shrunk so the largest crop is the image."""
        ref_h, ref_w = max(box_h, 1.0), max(box_w, 1.0)
        shrink = min(1.0, math.sqrt(height * width / (self.scale[1] * ref_h * ref_w)))
        return ref_h * shrink, ref_w * shrink

    def _size(self, tries: Iterable[tuple[float, float]], height: int, width: int, ref_h: float, ref_w: float
              ) -> tuple[int, int, bool]:
        """RandomResizedCrop's size rule over ``(scale, aspect)`` tries: ``(h, w, found)`` (not found: its fallback)."""
        for scale, aspect in tries:
            target_area = ref_h * ref_w * scale
            w, h = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return h, w, True
        h, w = ref_h, ref_w
        if ref_w / ref_h < self.ratio[0]:
            h = ref_w / self.ratio[0]
        elif ref_w / ref_h > self.ratio[1]:
            w = ref_h * self.ratio[1]
        return min(max(int(round(h)), 1), height), min(max(int(round(w)), 1), width), False

    def __call__(self, img: Image.Image | Tensor, boxes: Tensor | None = None, params: CropParams | None = None, *,
                 scores: Tensor | None = None, box_index: int | None = None,
                 generator: torch.Generator | None = None) -> Image.Image | Tensor:
        """Crop and resize ``img`` (PIL image or ``(..., H, W)`` tensor) to ``size``; ``params``
        (from :meth:`make_params`) replays that crop exactly."""
        if params is None:
            params = self.make_params(image_size_of(img), boxes, generator, scores=scores, box_index=box_index)
        elif not isinstance(params, dict):
            raise TypeError(f"params must be the dict of make_params or None; got {_type_name(params)}")
        else:  # a replay: the crop must lie in this image (outside, PIL and torch pad with black, silently)
            height, width = image_size_of(img)
            try:
                top, left, h, w = (params[key] for key in ("top", "left", "height", "width"))
                fits = 0 <= top and 0 <= left and 1 <= h and 1 <= w and top + h <= height and left + w <= width
            except (KeyError, TypeError):
                fits = False
            if not fits:
                raise ValueError(f"params {params} are no crop of this image of (height, width) = ({height}, {width}); "
                                 "replay the top, left, height and width that make_params drew for its size")
        return self.apply(img, params)

    def apply(self, img: Image.Image | Tensor, params: CropParams) -> Image.Image | Tensor:
        """Crop ``params`` out of ``img`` and resize it to ``size``."""
        flat = isinstance(img, Tensor) and img.ndim > 4  # torchvision resizes up to (B, C, H, W): flatten the rest
        box = (params["top"], params["left"], params["height"], params["width"])
        try:
            out = TF.resized_crop(img.flatten(0, -4) if flat else img, *box, list(self.size), self.interpolation,
                                  antialias=self.antialias)
        except (NotImplementedError, ValueError) as error:  # checked only on failure: free on the hot path
            if isinstance(img, Tensor) and self.interpolation not in TENSOR_INTERPOLATIONS:
                allowed = ", ".join(mode.value for mode in TENSOR_INTERPOLATIONS)
                raise ValueError(f"interpolation {self.interpolation.value!r} resizes PIL images only; torchvision "
                                 f"cannot resize a tensor image with it (allowed for tensors: {allowed}): choose one "
                                 "of those, or crop PIL images") from error
            raise
        return out.unflatten(0, img.shape[:-3]) if flat else out

    def __copy__(self) -> ContrastiveCrop:
        """A copy sharing the sampler; no pickling (a closure's sampler is fine under 'fork')."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def __deepcopy__(self, memo: dict[int, Any]) -> ContrastiveCrop:
        """A deep copy of every attribute (a function sampler, as ``copy.deepcopy`` copies functions, is shared)."""
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied

    def __getstate__(self) -> dict[str, Any]:
        """The crop as a spawned DataLoader worker receives it (pickled; ``copy`` does not call it); a sampler that
        cannot be pickled (a closure) is named here, not by the worker's "Can't pickle local object"."""
        try:
            pickle.dumps(self.sampler)
        except Exception as error:  # PicklingError, AttributeError or TypeError, as the object decides
            raise TypeError(f"ContrastiveCrop: its sampler {self.sampler!r} cannot be pickled ({error}), so DataLoader "
                            "workers started with 'spawn' or 'forkserver' cannot receive it; register a class or a "
                            "module-level function (no closure, no lambda) as its factory's result, or use the 'fork' "
                            "start method") from None
        return self.__dict__

    def __repr__(self) -> str:
        return (f"ContrastiveCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, sampler={self.sampler!r}, "
                f"scale_reference={self.scale_reference!r}, interpolation={self.interpolation.value})")


def _own_arguments() -> str:
    """ContrastiveCrop's named arguments, for an unknown one taken as a sampler option (error path only)."""
    return ", ".join(name for name in inspect.signature(ContrastiveCrop).parameters if name != "sampler_options")


def _bad_generator(generator: object) -> TypeError:
    return TypeError(f"generator must be a torch.Generator or None; got {_type_name(generator)}")


def _type_name(value: object) -> str:
    """The type of a misplaced argument, with a hint for a tensor (``crop(img, *store.get(i))`` passes the scores)."""
    kind = type(value)
    name = kind.__name__ if kind.__module__ in ("builtins", "torch") else f"{kind.__module__}.{kind.__qualname__}"
    return name + (" (the scores of store.get(i)? pass them as scores=...)" if isinstance(value, Tensor) else "")


def _range(values: Sequence[float], name: str) -> tuple[float, float]:
    """``(low, high)`` as floats: a pair of finite numbers with ``0 < low <= high``."""
    allowed = f"{name} must be an increasing pair of positive numbers (low, high)"
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, Tensor)):
        raise TypeError(f"{allowed}; got {values!r}")
    if len(values) != 2:
        raise ValueError(f"{allowed}; got {tuple(values)!r} ({len(values)} values)")
    low, high = (real_number(v) for v in values)  # text and bools are refused, not parsed
    if low is None or high is None:
        raise TypeError(f"{allowed}; got {tuple(values)!r}")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or low <= 0:
        raise ValueError(f"{allowed}; got {tuple(values)}")
    if low < _FLOAT32.tiny or high > _FLOAT32.max:  # float32 draws: 0 (log -inf) or inf, then NaN / overflow per view
        raise ValueError(f"{allowed} between {_FLOAT32.tiny:.4g} and {_FLOAT32.max:.4g} (drawn in float32, as "
                         f"RandomResizedCrop draws them); got {tuple(values)}")
    return low, high


def _interpolation(value: InterpolationMode | str | int) -> InterpolationMode:
    """A mode, its name, or PIL's constant (``Image.BICUBIC``, as torchvision's ``RandomResizedCrop`` takes it)."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return InterpolationMode(Image.Resampling(value).name.lower())
        return value if isinstance(value, InterpolationMode) else InterpolationMode(str(value).lower())
    except ValueError:
        allowed = [m.value for m in InterpolationMode]
        constants = ", ".join(f"Image.{m.name}" for m in Image.Resampling if m.name.lower() in allowed)
        raise ValueError(f"unknown interpolation {value!r}; available: {', '.join(allowed)}, or PIL's constants "
                         f"({constants})") from None

"""Padded per-image box sets: what a localizer returns and what the box store keeps. Coordinates are normalised
``x0, y0, x1, y1`` in ``[0, 1]`` (``x`` along the image's width, ``y`` along its height), ``x0 < x1``, ``y0 < y1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .sizes import as_tensor, checked_int, integer

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)
"""The box of the whole image, normalised ``x0, y0, x1, y1``: the fallback when nothing is found."""

_PROBLEMS = {1: "is not finite", 2: "lies outside [0, 1]", 3: "is inverted or empty (need x0 < x1 and y0 < y1)"}


def box_hint(box: Sequence[float]) -> str:
    """Why a refused ``box`` ``[x0, y0, x1, y1]`` may be in another form: pixels, or ``[x, y, width, height]``
    (COCO's ``bbox``); ``""`` when neither fits. Called on the error path only."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if all(math.isfinite(v) and v >= 0 for v in box) and max(x0, y0, x1, y1) > 1:
        return " (in pixels? divide x0, x1 by the image's width and y0, y1 by its height)"
    if 0 <= min(box) and max(box) <= 1 and (x1 <= x0 or y1 <= y0) and x0 + x1 <= 1 and y0 + y1 <= 1:
        return " ([x, y, width, height], as COCO's bbox? pass [x, y, x + width, y + height])"
    return ""


def validate_boxes(boxes: Tensor | Sequence[Sequence[float]], *, sample: object = None) -> None:
    """Raise ``ValueError`` unless every row of ``boxes`` (k, 4) (a tensor, array or list of ``[x0, y0, x1, y1]``)
    is finite, inside ``[0, 1]`` and not inverted or empty (bools: ``TypeError``); ``sample`` names the image."""
    boxes = _as_boxes(boxes, f"boxes of sample {sample}")
    validate_box_sets(boxes[None], torch.tensor([len(boxes)], device=boxes.device), samples=[sample])


def _as_boxes(boxes: object, what: str, *, empty_ok: bool = False, dtype: torch.dtype = torch.float32) -> Tensor:
    """``boxes`` as a float ``(k, 4)`` tensor (``empty_ok``: an empty one as ``(0, 4)``; a float tensor keeps its
    dtype), or ``ValueError`` naming ``what`` (a ragged list, text, another shape, ...); ``TypeError`` for bools."""
    if isinstance(boxes, (list, tuple)) and boxes and all(isinstance(row, Tensor) for row in boxes):
        try:  # rows as tensors, e.g. list(boxes): torch.as_tensor takes one-element tensors only
            boxes = torch.stack([row.detach().cpu() for row in boxes])
        except RuntimeError:  # rows of other lengths: named below as a ragged list
            pass
    if _is_bool(boxes):  # a tensor, array or list of True / False: a mask
        raise TypeError(f"{what} must have a floating point or integer dtype (x0, y0, x1, y1); got {dtype_of(boxes)}")
    floating = isinstance(boxes, Tensor) and boxes.is_floating_point()
    try:
        boxes = boxes if floating else as_tensor(boxes, dtype)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a (k, 4) tensor, array or list of [x0, y0, x1, y1]; got {boxes!r}") from None
    boxes = boxes.reshape(0, 4) if empty_ok and boxes.numel() == 0 else boxes
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        one = " (one box? pass [[x0, y0, x1, y1]])" if boxes.shape == (4,) else ""
        raise ValueError(f"{what} must have shape (k, 4) as x0, y0, x1, y1; got {tuple(boxes.shape)}{one}")
    return boxes


def dtype_of(values: object) -> object:
    """The dtype of a tensor or array, the dtype torch infers for a list or tuple (``torch.bool`` for one holding
    ``True`` or ``False`` anywhere: a mask, or a flag among numbers, is no coordinate or weight), else ``None``."""
    if isinstance(values, (list, tuple)):
        if _holds_bool(values):  # torch reads [True, 0.5] as floats
            return torch.bool
        try:
            return torch.as_tensor(values).dtype
        except (TypeError, ValueError, RuntimeError):  # ragged, text: the caller's conversion names it
            return None
    return getattr(values, "dtype", None)


def _holds_bool(values: list | tuple) -> bool:
    return any(_holds_bool(v) if isinstance(v, (list, tuple)) else isinstance(v, (bool, np.bool_)) for v in values)


def _is_bool(values: object) -> bool:
    return str(dtype_of(values)) in ("torch.bool", "bool")


def validate_box_sets(boxes: Tensor, counts: Tensor, samples: Sequence[object] | Tensor | None = None,
                      scores: Tensor | None = None, given: Tensor | None = None) -> None:
    """Batched :func:`validate_boxes` of padded ``(N, K, 4)`` boxes with ``(N,)`` counts, and of their ``(N, K)``
    ``scores`` (finite, ``>= 0``) when given; ``samples`` (N,) names each row's image (its dataset index) in the
    message, default the row; ``given``: ``boxes`` as given, before their float32 cast (to name a box it empties)."""
    valid = torch.arange(boxes.shape[1], device=counts.device) < counts[:, None]  # boxes on a GPU too
    # Per-box problem code (0: none), the first problem of _PROBLEMS that applies.
    code = torch.zeros(boxes.shape[:-1], dtype=torch.int64, device=boxes.device)
    code[~((boxes[..., 0] < boxes[..., 2]) & (boxes[..., 1] < boxes[..., 3]))] = 3
    code[~((boxes >= 0) & (boxes <= 1)).all(dim=-1)] = 2
    code[~torch.isfinite(boxes).all(dim=-1)] = 1
    code *= valid
    if code.any():
        i, k = (int(v) for v in code.nonzero()[0])
        sample = i if samples is None else samples[i]
        sample = int(sample) if isinstance(sample, Tensor) else sample
        box = [round(float(v), 4) for v in boxes[i, k]]
        if given is not None and code[i, k] == 3 and (x := given[i, k].tolist())[0] < x[2] and x[1] < x[3]:
            raise ValueError(f"box {k} of sample {sample} {x} ({given.dtype}) collapses to the empty box {box} when "
                             "stored as float32 (the box store's dtype, resolution about 1.2e-07 near 1, half that "
                             "near 0.5): an empty box cannot be sampled; widen it or leave it out")
        raise ValueError(f"box {k} of sample {sample} {_PROBLEMS[int(code[i, k])]}: {box}; "
                         f"boxes are normalised x0, y0, x1, y1 in [0, 1]{box_hint(box)}")
    if scores is not None:
        bad = valid & ~(torch.isfinite(scores) & (scores >= 0))
        if bad.any():
            i, k = (int(v) for v in bad.nonzero()[0])
            where = f"image {i}" if samples is None else f"sample {int(samples[i])}"
            score = float(scores[i, k])
            stored = " (stored as float32: a score above about 3.4e38 becomes inf)" if score == math.inf else ""
            raise ValueError(f"score {k} of {where} must be finite and >= 0; got {score}{stored}")


def best_first(boxes: Tensor, scores: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """``boxes`` (N, K, 4) and ``scores`` (N, K) with each row's first ``counts[i]`` boxes in order of score, best
    first (stable: ties keep their order), the padding after them; scores must be ``>= 0``."""
    padding = torch.arange(boxes.shape[1], device=counts.device) >= counts[:, None]
    order = torch.where(padding, -1.0, scores).argsort(dim=1, descending=True, stable=True)
    return boxes.gather(1, order[..., None].expand(-1, -1, 4)), scores.gather(1, order)


@dataclass(eq=False)  # compared and hashed as objects: == of their tensors was "ambiguous" (compare the fields)
class BoxSets:
    """Box sets for a batch of ``N`` images, padded to ``K`` boxes each; ``box_sets[i]`` (an int ``i``) is image
    ``i``'s ``(boxes (k, 4), scores (k,))``. Invalid fields are a ``TypeError`` / ``ValueError`` naming them.

    Attributes:
        boxes: ``(N, K, 4)`` float, normalised ``x0, y0, x1, y1``; rows past ``counts[i]`` are padding.
        scores: ``(N, K)`` float, non-negative, in the localizer's order (the built-ins: highest first, but
            ``components``' cores after every component); padding rows are 0.
        counts: ``(N,)`` integer (int64 from the built-ins), number of valid boxes per image, each in ``[1, K]``.
        fallback: ``(N,)`` bool, ``True`` where nothing was found and the set is :data:`WHOLE_IMAGE`.
    """

    boxes: Tensor
    scores: Tensor
    counts: Tensor
    fallback: Tensor

    def __post_init__(self) -> None:
        kinds = {"boxes": "a floating point", "scores": "a floating point", "counts": "an integer",
                 "fallback": "a bool"}
        for field, kind in kinds.items():
            value = getattr(self, field)
            if not isinstance(value, Tensor):
                raise TypeError(f"BoxSets.{field} must be a tensor; got {type(value).__name__}")
            if kind != ("a bool" if value.dtype == torch.bool else "a floating point" if value.is_floating_point()
                        else "a complex" if value.is_complex() else "an integer"):
                raise TypeError(f"BoxSets.{field} must have {kind} dtype; got {value.dtype}")
        if self.scores.ndim != 2:
            raise ValueError(f"BoxSets.scores must have shape (N, K); got {tuple(self.scores.shape)}")
        n, k = self.scores.shape
        if self.boxes.shape != (n, k, 4) or self.counts.shape != (n,) or self.fallback.shape != (n,):
            shapes = ", ".join(f"{f} {tuple(getattr(self, f).shape)}" for f in kinds)
            raise ValueError(f"inconsistent BoxSets shapes: {shapes}; expected (N, K, 4), (N, K), (N,), (N,)")
        if n and (int(self.counts.min()) < 1 or int(self.counts.max()) > k):
            raise ValueError(f"counts must lie in [1, {k}]; got {self.counts.tolist()}")
        validate_box_sets(self.boxes, self.counts, scores=self.scores)

    @classmethod
    def from_lists(cls, boxes: list[Tensor], scores: list[Tensor] | None = None, max_boxes: int | None = None
                   ) -> "BoxSets":
        """Pad a list of ``(k_i, 4)`` box tensors, arrays or lists (and ``(k_i,)`` scores, one per box, default 1)
        into a ``BoxSets``, keeping the first ``max_boxes`` (an int ``>= 1`` or ``None``: all) of each; an empty entry
        becomes :data:`WHOLE_IMAGE`."""
        max_boxes = checked_int(max_boxes, "max_boxes", 1, or_none=True)
        if not hasattr(boxes, "__len__"):  # None, a number, a generator
            raise TypeError("BoxSets.from_lists takes a list of (k_i, 4) box tensors, arrays or lists, one per image; "
                            f"got {boxes!r}")
        n = len(boxes)
        boxes = [_as_boxes(entry, f"boxes of image {i}", empty_ok=True) for i, entry in enumerate(boxes)]
        if scores is not None:
            if not hasattr(scores, "__len__"):
                raise TypeError("scores must be a list of (k_i,) score tensors, arrays or lists, one per image, or "
                                f"None; got {scores!r}")
            if len(scores) != n:
                raise ValueError(f"got {len(scores)} score lists for {n} box lists")
            if bools := [i for i, s in enumerate(scores) if _is_bool(s)]:
                raise TypeError(f"scores of image {bools[0]} must have a floating point or integer dtype (one weight "
                                f"per box); got {dtype_of(scores[bools[0]])}")
            try:
                scores = [as_tensor(s, torch.float32).reshape(-1) for s in scores]
            except (TypeError, ValueError, RuntimeError):
                raise ValueError(f"scores must be lists of (k_i,) numbers, one per image; got {scores!r}") from None
            for i, (b, s) in enumerate(zip(boxes, scores)):
                if len(s) != len(b):
                    raise ValueError(f"image {i} has {len(b)} boxes but {len(s)} scores (one score per box)")
        sizes = [min(len(b), max_boxes) if max_boxes else len(b) for b in boxes]
        k = max([1, *sizes])
        out_boxes, out_scores = torch.zeros(n, k, 4), torch.zeros(n, k)
        for i, (b, size) in enumerate(zip(boxes, sizes)):
            out_boxes[i, : max(size, 1)] = b[:size] if size else torch.tensor(WHOLE_IMAGE)
            out_scores[i, : max(size, 1)] = 1.0 if scores is None or not size else scores[i][:size]
        counts = torch.tensor([max(size, 1) for size in sizes], dtype=torch.int64)
        return cls(out_boxes, out_scores, counts, torch.tensor([size == 0 for size in sizes], dtype=torch.bool))

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if integer(index) is None:  # a slice: "only one element tensors can be converted to Python scalars"
            raise TypeError(f"BoxSets[i] takes one image index (an int) and gives its (boxes, scores); got {index!r}; "
                            "for several images: BoxSets(boxes[i:j], scores[i:j], counts[i:j], fallback[i:j])")
        count = int(self.counts[index])
        return self.boxes[index, :count], self.scores[index, :count]

    @property
    def max_boxes(self) -> int:
        """``K``, the padded number of boxes per image."""
        return self.boxes.shape[1]

    def areas(self) -> Tensor:
        """``(N, K)`` box areas as fractions of the image; 0 for padding rows."""
        wh = (self.boxes[..., 2:] - self.boxes[..., :2]).clamp_min(0)
        return wh.prod(-1) * (torch.arange(self.max_boxes, device=self.counts.device) < self.counts[:, None])

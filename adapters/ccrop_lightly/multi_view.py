"""Several views of one image, all cropped around the same box: the pair consistency of ContrastiveCrop."""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor

from ccrop_plugins import choose_box

from .view_transform import CCropViewTransform, ImageLike


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

"""How good are a strategy's view pairs? Measured against ground-truth object boxes.

Everything here works on crop *rectangles*, not pixels: a view is the normalised
``x0, y0, x1, y1`` rectangle (in ``[0, 1]``, ``x`` along the width) that a crop cuts out of
its image before resizing. Object boxes use the same convention.

Definitions (per pair of views ``a``, ``b`` of one image with ground-truth boxes ``g_j``):

- a view *covers* object ``j`` when ``area(view & g_j) / area(g_j) >= 0.5``;
- **false-positive pair**: no object is covered by both views;
- **object coverage**: the fraction of views that cover at least one object;
- **pair spread**: the IoU of the two views (lower = more varied pairs);
- **object share**: the mean over both views of ``area(view & g_s) / area(view)``, where
  ``s`` is the object the pair has most in common, i.e. the ``j`` maximising
  ``min(coverage_a(j), coverage_b(j))`` (for a pair that is not a false positive this is a
  shared object); a pair whose views touch no common object scores 0. Areas are box areas,
  so "on the object" means "inside its box".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ccrop_plugins import choose_box

from ccrop_cli.experiment.strategies import CropStrategy

COVER_THRESHOLD = 0.5
"""A view covers an object when it holds at least this fraction of the object's box."""

BoxSet = tuple[Tensor, Tensor]
"""``(boxes (k, 4), scores (k,))`` of one image, normalised ``x0, y0, x1, y1``."""


@dataclass(frozen=True)
class PairQuality:
    """The four pair-quality figures of a set of view pairs (see the module docstring).

    Attributes:
        false_positive_rate: fraction of pairs whose views share no covered object, in [0, 1].
        object_coverage: fraction of views covering at least half of some object, in [0, 1].
        pair_spread: mean IoU of the two views of a pair, in [0, 1].
        object_share: mean fraction of a view's area on the pair's shared object, in [0, 1].
        pairs: number of pairs measured.
    """

    false_positive_rate: float
    object_coverage: float
    pair_spread: float
    object_share: float
    pairs: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def union_box(boxes: Tensor) -> Tensor:
    """The smallest box ``(1, 4)`` holding every box of ``boxes`` ``(k, 4)``, ``k >= 1``."""
    return torch.cat([boxes[:, :2].amin(dim=0), boxes[:, 2:].amax(dim=0)])[None]


def oracle_box_sets(gt_boxes: Sequence[np.ndarray], strategy: CropStrategy) -> list[BoxSet | None]:
    """The best box sets a localizer could give ``strategy``: built from ground truth.

    Args:
        gt_boxes: per image, ``(k, 4)`` ground-truth boxes (normalised ``x0, y0, x1, y1``).
        strategy: the strategy the boxes are for.

    Returns:
        Per image ``(boxes, scores)``, or ``None`` for an image without objects:
        for the paper's single-box strategy (``localizer == "bbox"``), the union box of all
        objects with score 1 (the best the paper's one box can be); otherwise the ground-truth
        boxes scored by their *area*, as the ``components`` localizer scores blobs by heatmap
        mass, which grows with the object's size. ``rrc`` gets the same sets and ignores them.
    """
    sets: list[BoxSet | None] = []
    for boxes in gt_boxes:
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        if len(boxes) == 0:
            sets.append(None)
        elif strategy.localizer == "bbox":
            sets.append((union_box(boxes), torch.ones(1)))
        else:
            sets.append((boxes, _areas(boxes)))
    return sets


def sample_view_pairs(
    strategy: CropStrategy,
    image_size: tuple[int, int],
    box_sets: Sequence[BoxSet | None],
    pairs_per_image: int,
    generator: torch.Generator,
    alpha: float = 0.6,
) -> tuple[Tensor, Tensor, Tensor]:
    """Sample ``pairs_per_image`` view pairs of every image with ``strategy``'s crop.

    With boxes, one box is chosen per *pair* (:func:`ccrop_plugins.choose_box`, weighted by
    score) and both views are cropped around it (pair-consistent). The paper's strategy
    (``localizer == "bbox"``) uses the union of the given boxes as its single box; ``rrc``
    ignores boxes, and an image whose set is ``None`` gets RandomResizedCrop views.

    Args:
        strategy: one of :data:`ccrop_cli.experiment.strategies.STRATEGIES`.
        image_size: ``(height, width)`` in pixels, the same for every image.
        box_sets: per image ``(boxes (k, 4), scores (k,))`` or ``None``.
        pairs_per_image: pairs drawn per image, ``>= 1``.
        generator: seeded ``torch.Generator``; the same seed gives the same pairs.
        alpha: ``Beta(alpha, alpha)`` of the centre sampler.

    Returns:
        ``views_a (P, 4)``, ``views_b (P, 4)``: normalised ``x0, y0, x1, y1`` crop
        rectangles, and ``image_index (P,)`` int64, with ``P = len(box_sets) * pairs_per_image``.
    """
    if int(pairs_per_image) < 1:
        raise ValueError(f"pairs_per_image must be a positive integer; got {pairs_per_image}")
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be a positive (height, width); got {tuple(image_size)}")
    crop = strategy.make_crop((height, width), alpha=alpha)
    params_a: list[list[int]] = []
    params_b: list[list[int]] = []
    for box_set in box_sets:
        boxes = scores = None
        if strategy.uses_boxes and box_set is not None:
            boxes, scores = box_set
            if strategy.localizer == "bbox" and len(boxes) > 1:
                boxes, scores = union_box(boxes), torch.ones(1)
        for _ in range(int(pairs_per_image)):
            index = None if boxes is None else choose_box(boxes, scores, generator)
            for out in (params_a, params_b):
                p = crop.make_params((height, width), boxes, generator, scores=scores, box_index=index)
                out.append([p["left"], p["top"], p["left"] + p["width"], p["top"] + p["height"]])
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    views_a = torch.tensor(params_a, dtype=torch.float32).reshape(-1, 4) / scale
    views_b = torch.tensor(params_b, dtype=torch.float32).reshape(-1, 4) / scale
    image_index = torch.arange(len(box_sets)).repeat_interleave(int(pairs_per_image))
    return views_a, views_b, image_index


def pair_quality(
    views_a: Tensor, views_b: Tensor, image_index: Tensor, gt_boxes: Sequence[np.ndarray]
) -> PairQuality:
    """The pair-quality figures of view pairs against ground-truth boxes.

    Args:
        views_a: ``(P, 4)`` first views, normalised ``x0, y0, x1, y1``.
        views_b: ``(P, 4)`` second views.
        image_index: ``(P,)`` the image of each pair, indexing ``gt_boxes``.
        gt_boxes: per image ``(k, 4)`` ground-truth boxes; ``k`` may be 0 (every pair of
            that image is then a false positive with no coverage and no share).

    Returns:
        A :class:`PairQuality`.
    """
    views_a = torch.as_tensor(views_a, dtype=torch.float32)
    views_b = torch.as_tensor(views_b, dtype=torch.float32)
    image_index = torch.as_tensor(image_index, dtype=torch.int64)
    if views_a.ndim != 2 or views_a.shape[-1] != 4 or views_a.shape != views_b.shape:
        raise ValueError(
            f"views_a and views_b must both have shape (P, 4); got {tuple(views_a.shape)} and {tuple(views_b.shape)}"
        )
    if image_index.shape != views_a.shape[:1]:
        raise ValueError(f"image_index must have shape ({len(views_a)},); got {tuple(image_index.shape)}")
    if len(views_a) == 0:
        raise ValueError("no view pairs to measure")
    if int(image_index.min()) < 0 or int(image_index.max()) >= len(gt_boxes):
        raise ValueError(f"image_index must lie in [0, {len(gt_boxes) - 1}] (one entry per image of gt_boxes)")
    objects, valid = _padded(gt_boxes)
    objects, valid = objects[image_index], valid[image_index]  # (P, K, 4), (P, K)

    cover_a = _coverage(views_a, objects) * valid  # (P, K) fraction of each object inside the view
    cover_b = _coverage(views_b, objects) * valid
    covered_a, covered_b = cover_a >= COVER_THRESHOLD, cover_b >= COVER_THRESHOLD
    shared = (covered_a & covered_b).any(dim=1)
    covering = torch.cat([covered_a.any(dim=1), covered_b.any(dim=1)])

    # The object the pair has most in common; no share where the views touch no common object.
    common = torch.minimum(cover_a, cover_b)
    best_common, target = common.max(dim=1)
    target_box = objects.gather(1, target[:, None, None].expand(-1, 1, 4))[:, 0]
    share = (_share(views_a, target_box) + _share(views_b, target_box)) / 2
    share = torch.where(best_common > 0, share, torch.zeros_like(share))

    return PairQuality(
        false_positive_rate=float((~shared).float().mean()),
        object_coverage=float(covering.float().mean()),
        pair_spread=float(_pairwise_iou(views_a, views_b).mean()),
        object_share=float(share.mean()),
        pairs=len(views_a),
    )


def box_recall(predicted: Sequence[Tensor], gt_boxes: Sequence[np.ndarray], iou: float = 0.5) -> float:
    """Fraction of ground-truth objects matched by some predicted box with IoU ``>= iou``.

    Args:
        predicted: per image ``(k, 4)`` predicted boxes (normalised ``x0, y0, x1, y1``).
        gt_boxes: per image ``(m, 4)`` ground-truth boxes.
        iou: the match threshold.

    Returns:
        Recall in ``[0, 1]``; 0 if there are no ground-truth objects at all.
    """
    _check_box_lists(predicted, gt_boxes, iou)
    matched, total = _matches(gt_boxes, predicted, iou)
    return matched / total if total else 0.0


def box_precision(predicted: Sequence[Tensor], gt_boxes: Sequence[np.ndarray], iou: float = 0.5) -> float:
    """Fraction of predicted boxes that match some ground-truth object with IoU ``>= iou``.

    Same arguments as :func:`box_recall`; 0 if nothing was predicted.
    """
    _check_box_lists(predicted, gt_boxes, iou)
    matched, total = _matches(predicted, gt_boxes, iou)
    return matched / total if total else 0.0


def object_hit_rate(predicted: Sequence[Tensor], gt_boxes: Sequence[np.ndarray]) -> float:
    """Fraction of ground-truth objects whose centre lies inside some predicted box.

    Looser than :func:`box_recall` (a box around two objects hits both; a whole-image box hits
    everything): read it with the boxes per image and the precision. Same arguments; 0 if
    there are no ground-truth objects.
    """
    _check_box_lists(predicted, gt_boxes, 0.5)
    hits = total = 0
    for boxes, objects in zip(predicted, gt_boxes):
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        objects = torch.as_tensor(np.asarray(objects, dtype=np.float32)).reshape(-1, 4)
        centres = (objects[:, :2] + objects[:, 2:]) / 2
        inside = (centres[:, None, :] >= boxes[None, :, :2]) & (centres[:, None, :] <= boxes[None, :, 2:])
        hits += int(inside.all(dim=2).any(dim=1).sum())
        total += len(objects)
    return hits / total if total else 0.0


def _check_box_lists(predicted: Sequence, gt_boxes: Sequence, iou: float) -> None:
    if len(predicted) != len(gt_boxes):
        raise ValueError(
            f"got predicted boxes for {len(predicted)} images but ground truth for {len(gt_boxes)}; "
            "give one box list per image to both"
        )
    if not 0.0 < float(iou) <= 1.0:
        raise ValueError(f"iou must lie in (0, 1]; got {iou}")


def _matches(queries: Sequence, references: Sequence, iou: float) -> tuple[int, int]:
    """How many query boxes (over all images) have IoU ``>= iou`` with some reference box."""
    query, query_valid = _padded(queries)
    reference, reference_valid = _padded(references)
    overlap = _iou_matrix(query, reference) * reference_valid[:, None, :]  # (N, Kq, Kr)
    hit = (overlap >= float(iou)).any(dim=2) & query_valid
    return int(hit.sum()), int(query_valid.sum())


def _padded(box_lists: Sequence) -> tuple[Tensor, Tensor]:
    """Pad per-image ``(k_i, 4)`` boxes to ``(N, K, 4)`` with a ``(N, K)`` validity mask."""
    tensors = [torch.as_tensor(np.asarray(b, dtype=np.float32)).reshape(-1, 4) for b in box_lists]
    k = max([1, *(len(t) for t in tensors)])
    boxes = torch.zeros(len(tensors), k, 4)
    valid = torch.zeros(len(tensors), k, dtype=torch.bool)
    for i, t in enumerate(tensors):
        boxes[i, : len(t)] = t
        valid[i, : len(t)] = True
    return boxes, valid


def _areas(boxes: Tensor) -> Tensor:
    return (boxes[..., 2:] - boxes[..., :2]).clamp_min(0).prod(dim=-1)


def _intersection(views: Tensor, boxes: Tensor) -> Tensor:
    """Intersection areas of views ``(P, 4)`` with boxes ``(P, K, 4)`` -> ``(P, K)``."""
    low = torch.maximum(views[:, None, :2], boxes[..., :2])
    high = torch.minimum(views[:, None, 2:], boxes[..., 2:])
    return (high - low).clamp_min(0).prod(dim=-1)


def _coverage(views: Tensor, boxes: Tensor) -> Tensor:
    """Fraction of each box ``(P, K, 4)`` that lies inside the view ``(P, 4)`` -> ``(P, K)``."""
    return _intersection(views, boxes) / _areas(boxes).clamp_min(1e-12)


def _share(views: Tensor, boxes: Tensor) -> Tensor:
    """Fraction of each view ``(P, 4)`` that lies inside its box ``(P, 4)`` -> ``(P,)``."""
    return _intersection(views, boxes[:, None])[:, 0] / _areas(views).clamp_min(1e-12)


def _pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of matching rows of ``a`` and ``b`` ``(P, 4)`` -> ``(P,)``."""
    inter = _intersection(a, b[:, None])[:, 0]
    return inter / (_areas(a) + _areas(b) - inter).clamp_min(1e-12)


def _iou_matrix(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box of ``a`` ``(N, Ka, 4)`` with every box of ``b`` ``(N, Kb, 4)`` -> ``(N, Ka, Kb)``."""
    low = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    high = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = (high - low).clamp_min(0).prod(dim=-1)
    union = _areas(a)[:, :, None] + _areas(b)[:, None, :] - inter
    return inter / union.clamp_min(1e-12)

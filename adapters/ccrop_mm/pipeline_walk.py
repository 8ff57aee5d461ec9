"""Read a train pipeline once: its ContrastiveCrop steps, their order, and the deterministic head the refresh reuses.

``Compose``, ``RandomApply``, ``RandomChoice`` keep children in ``transforms``; MultiView
keeps them in ``transforms`` and ``pipelines``. Walking those attributes finds a transform
wherever a config puts it, without importing any framework's wrapper classes.
"""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any, Iterator, NamedTuple

from mmengine.logging import print_log

from .transforms import BaseContrastiveCrop, ChooseContrastiveBox, StoreUser

_CHILD_ATTRIBUTES = ("transforms", "pipelines", "transform", "pipeline")
# Steps that move what lies where in the image, so a normalised box of the image before them does not fit it after.
# Resizing the whole image (Resize, ResizeEdge, RandomResize) keeps a normalised box where it was: not listed.
_MOVES = re.compile("Flip|Crop|Rotat|Affine|Shear|Translate|Pad|Perspective|Elastic")
# torchvision's automatic augmentations: fixed sets of operations that include shear, translation and rotation.
_TORCHVISION_AUGMENTS = ("AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix")
_RESIZED_CROP = re.compile("ResizedCrop|EfficientNetRandomCrop")


def iter_transforms(root: Any) -> Iterator[Any]:
    """Yield ``root`` and every transform nested in it, depth first, each object once."""
    return (item for item, _ in _walk(root))


def _walk(root: Any) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """:func:`iter_transforms` with the transforms that hold each one (outermost first; plain lists left out)."""
    seen: set[int] = set()
    stack: list[tuple[Any, tuple[Any, ...]]] = [(root, ())]
    while stack:
        item, owners = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item, owners
        if isinstance(item, (list, tuple)):
            stack.extend((child, owners) for child in reversed(item))
            continue
        children: list[Any] = []
        if _is_torchvision(getattr(item, "t", None)):  # mmpretrain's 'torchvision/...' wrapper holds it in .t
            children.append(item.t)
        for name in _CHILD_ATTRIBUTES:
            child = getattr(item, name, None)
            if isinstance(child, (list, tuple)):
                children.extend(child)
            elif child is not None and not inspect.isroutine(child):
                children.append(child)  # a nested Compose, not a bound method
        stack.extend((child, (*owners, item)) for child in reversed(children))


def find_instances(root: Any, kind: type | tuple[type, ...]) -> list[Any]:
    """Every transform in ``root`` (a pipeline, a transform or a list) that is a ``kind``."""
    return [item for item in iter_transforms(root) if isinstance(item, kind)]


class CheckedSteps(NamedTuple):
    """What :func:`check_steps` reads from a train pipeline.

    Attributes:
        store_users: every ContrastiveCrop and ChooseContrastiveBox step, however nested.
        head: the top-level steps before the first ContrastiveCrop, ``ChooseContrastiveBox`` left out (normally
            ``LoadImageFromFile``): the refresh pass loads its un-augmented images with them.
        crop_size: ``(height, width)`` output of the first ContrastiveCrop.
        backend: that crop's ``mmcv.imresize`` backend.
        plain_views: the view pipelines (of ``MultiView``) and the branches (of ``RandomChoice``) that crop with a
            RandomResizedCrop and no ContrastiveCrop beside ones that crop with ContrastiveCrop, e.g.
            ``'view pipeline 2 of MultiView (RandomResizedCrop)'``: their views ignore the boxes.
    """

    store_users: list[StoreUser]
    head: list[Any]
    crop_size: tuple[int, int]
    backend: str
    plain_views: list[str]


def check_steps(dataset: Any, several_boxes: bool) -> CheckedSteps:
    """Check the pipeline of ``dataset`` (one that holds a pipeline) for ContrastiveCrop and read its parts.

    Args:
        several_boxes: the hook keeps more than one box per image, so both views must crop
            around one box chosen before ``MultiView`` by ``ChooseContrastiveBox`` (a pipeline of
            one view per sample, a supervised one, needs no choice).

    Raises:
        ValueError / TypeError: no ContrastiveCrop, a missing ``ChooseContrastiveBox``, a random
            step before the ContrastiveCrop steps, a step that moves image content before ContrastiveCrop in a view
            or a RandomResizedCrop or a second ContrastiveCrop after it (:func:`_misplaced_step`), a ContrastiveCrop
            above a MultiView whose views hold none, or a second ``ChooseContrastiveBox`` inside the views.
    """
    steps = pipeline_steps(dataset)
    crops = find_instances(steps, BaseContrastiveCrop)
    if not crops:
        raise ValueError(
            "ContrastiveCropHook found no ContrastiveCrop in train_dataloader.dataset.pipeline; "
            "replace RandomResizedCrop in the view pipeline with dict(type='ContrastiveCrop', ...) "
            "(or remove the hook)"
        )
    first_crop = next(i for i, step in enumerate(steps) if find_instances(step, BaseContrastiveCrop))
    _check_not_after_views(steps[:first_crop])
    _check_views_after_crop(steps, first_crop)
    # The refresh sees the image as the crop does: every step before it but the box choice, which leaves it unchanged
    # (and may come first: it reads only sample_idx).
    head = [step for step in steps[:first_crop] if not isinstance(step, ChooseContrastiveBox)]
    _check_loading(steps[first_crop], head)
    if several_boxes:
        _check_box_choice(steps, first_crop)
    _check_step_order(steps)
    return CheckedSteps(find_instances(steps, StoreUser), head, crops[0].size, crops[0].backend, _plain_views(steps))


def pipeline_steps(dataset: Any) -> list[Any]:
    """The top-level steps of the pipeline of ``dataset`` (one that holds a pipeline)."""
    return list(getattr(dataset.pipeline, "transforms", dataset.pipeline))


def _check_box_choice(steps: list[Any], first_crop: int) -> None:
    """With several boxes per image, refuse views of a pair that may crop around different boxes: no
    ``ChooseContrastiveBox`` before the step that holds the first ContrastiveCrop (``steps[first_crop]``) when it cuts
    two or more views (else one view per sample: nothing to pair), or a second one inside it
    (:func:`_check_one_box_choice`)."""
    pairs = any(len(_views(item)) > 1 for item in iter_transforms(steps))
    if pairs and not any(isinstance(step, ChooseContrastiveBox) for step in steps[:first_crop]):
        at = next((i for i, s in enumerate(steps) if find_instances(s, ChooseContrastiveBox)), None)
        wrapped = None if at is None else type(steps[at]).__name__
        if wrapped is None:
            where = ""
        elif wrapped == ChooseContrastiveBox.__name__:
            where = "(it comes after the step that cuts the views now) "
        elif at < first_crop and wrapped == "Compose":  # runs once per sample, but is read among top-level steps only
            where = "as a step of its own, not inside Compose (the hook looks for it among the pipeline's own steps) "
        else:
            where = (f"as a step of its own, not inside {wrapped} (there each view chooses its own box, or some "
                     "samples none) ")
        raise ValueError(
            "ContrastiveCropHook keeps several boxes per image, so both views must crop around the same "
            f"one: put dict(type='ChooseContrastiveBox') before MultiView in the train pipeline {where}"
            "(or use localizer='bbox' / max_boxes=1)"
        )
    _check_one_box_choice(steps[first_crop])


def optional_crops(steps: Any) -> list[tuple[str, float]]:
    """Every ContrastiveCrop of ``steps`` (any of its classes) inside a ``RandomApply`` (mmcv's ``prob``,
    torchvision's ``p``) below 1: where it lies, named as configs write it (``'ContrastiveCrop (in MultiView >
    Compose > RandomApply, prob=0.5)'``), and that probability. In the other draws the crop is skipped, so the view is
    the whole image, not a crop around the box."""
    found = []
    for item, owners in _walk(steps):
        if not isinstance(item, BaseContrastiveCrop):
            continue
        chances = [_chance(owner) for owner in owners if type(owner).__name__ == "RandomApply"]
        chances = [chance for chance in chances if chance is not None and chance < 1]
        if chances:
            names = [type(owner).__name__ for owner in owners]  # mmcv keeps RandomApply's list as a Compose
            path = " > ".join(name for i, name in enumerate(names) if not (i and names[i - 1] == "RandomApply"
                                                                           and name == "Compose"))
            chance = min(chances)
            found.append((f"ContrastiveCrop (in {path}, prob={chance:g})", chance))
    return found


def _chance(step: Any) -> float | None:
    """A ``RandomApply``'s probability: mmcv's ``prob``, torchvision's ``p``."""
    value = getattr(step, "prob", getattr(step, "p", None))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _plain_views(steps: list[Any]) -> list[str]:
    """Where views are cut by a RandomResizedCrop instead of ContrastiveCrop, beside views that ContrastiveCrop cuts:
    the view pipelines of a ``MultiView`` (``pipelines``) and the branches of a ``RandomChoice`` (mmcv's, or
    torchvision's through ``torchvision/RandomChoice``; ``transforms``) that hold a RandomResizedCrop and no
    ContrastiveCrop, e.g. ``'view pipeline 2 of MultiView (RandomResizedCrop)'``,
    ``'branch 2 of RandomChoice (torchvision/RandomResizedCrop)'``."""
    found = []
    for owner in iter_transforms(steps):
        views, kind = getattr(owner, "pipelines", None), "view pipeline"
        if type(owner).__name__ == "RandomChoice":  # its transforms are alternatives, not one sequence
            views, kind = getattr(owner, "transforms", None), "branch"
        if not isinstance(views, (list, tuple)) or not find_instances(owner, BaseContrastiveCrop):
            continue
        for number, view in enumerate(views, 1):
            crop = next((item for item in iter_transforms(view) if _RESIZED_CROP.search(type(item).__name__)), None)
            if crop is not None and not find_instances(view, BaseContrastiveCrop):
                found.append(f"{kind} {number} of {_step_name(owner)} ({_step_name(crop)})")
    return found


def warn_optional_crops(crops: list[tuple[str, float]]) -> None:
    """Log (a warning in the run's log, once: the pipeline is read once before training) every ContrastiveCrop that a
    ``RandomApply`` skips at random (:func:`optional_crops`' ``(where, probability)``): those views were the whole
    image, without a word (images of the crop's size, CIFAR's 32 px, stack with the cut views)."""
    for found, chance in crops:
        print_log(f"ContrastiveCrop: {found} is skipped in {1 - chance:.0%} of the draws, so those views are the whole "
                  "image, not a crop around the box; put ContrastiveCrop outside RandomApply (as its own step of the "
                  "view pipeline; RandomApply may keep the other steps)", logger="current", level=logging.WARNING)


def _check_not_after_views(head: list[Any]) -> None:
    """Refuse ContrastiveCrop after a ``MultiView`` (a step with view ``pipelines``): it would get the list of views
    (a ``TypeError`` in a DataLoader worker, or a misplaced-step error naming a view's flip)."""
    views = next((step for step in head if isinstance(getattr(step, "pipelines", None), (list, tuple))), None)
    if views is not None:
        name = _step_name(views)
        raise ValueError(f"ContrastiveCrop comes after {name} in train_dataloader.dataset.pipeline: {name} has made "
                         "the list of views by then, and ContrastiveCrop cuts one image; put it inside the view "
                         f"pipeline of {name} (transforms=[[dict(type='ContrastiveCrop', ...), ...]]) in place of "
                         "RandomResizedCrop")


def _check_views_after_crop(steps: list[Any], first_crop: int) -> None:
    """Refuse a ContrastiveCrop above a later ``MultiView`` of two or more views whose view pipelines hold none: every
    view of a sample would be a copy of its one crop (a ContrastiveCrop or RandomResizedCrop in the views as well is
    :func:`_misplaced_step`'s: it cuts the crop again)."""
    if any(_views(item) for item in iter_transforms(steps[first_crop])):
        return  # the crop is inside the views
    for step in steps[first_crop + 1 :]:
        crops = (item for item in iter_transforms(step)
                 if isinstance(item, BaseContrastiveCrop) or _RESIZED_CROP.search(type(item).__name__))
        if len(_views(step)) > 1 and next(crops, None) is None:
            name = _step_name(step)
            raise ValueError(
                f"ContrastiveCrop comes before {name} in train_dataloader.dataset.pipeline, and the view pipelines of "
                f"{name} hold none: every view of a sample would be a copy of one crop (the views of a pair differing "
                f"only by the later steps); move it into the view pipeline of {name} (transforms=[[dict(type="
                "'ContrastiveCrop', ...), ...]]), where each view is cut on its own"
            )


def _views(step: Any) -> list[Any]:
    """The view pipeline of each view a ``MultiView`` makes (its ``transforms``, one entry per view; no MultiView: an
    empty list)."""
    if not isinstance(getattr(step, "pipelines", None), (list, tuple)):
        return []
    views = getattr(step, "transforms", None)
    return list(views if isinstance(views, (list, tuple)) else step.pipelines)


def _check_one_box_choice(crop_step: Any) -> None:
    """Refuse a ``ChooseContrastiveBox`` inside the step that holds the first ContrastiveCrop (``MultiView``) when one
    comes before it too (else the missing-choice error of :func:`_check_box_choice` says it): each view would choose
    again, so the views of a pair could crop around different boxes."""
    if find_instances(crop_step, ChooseContrastiveBox):
        name = type(crop_step).__name__
        raise ValueError(
            "ContrastiveCropHook keeps several boxes per image, so both views must crop around the same one: the "
            f"ChooseContrastiveBox inside {name} chooses again for each view (the views of a pair could crop around "
            f"different boxes); remove it from {name} and keep the one before {name}"
        )


def _check_loading(crop_step: Any, head: list[Any]) -> None:
    """Refuse a loading step (``LoadImageFromFile``) inside the step that holds the first ContrastiveCrop (each view
    loading its image) when none comes before it: the refresh loads its images with ``head`` alone."""
    if any(type(step).__name__.startswith("Load") for step in head):
        return
    load = next((item for item in iter_transforms(crop_step) if type(item).__name__.startswith("Load")), None)
    if load is not None:
        name, holder = _step_name(load), type(crop_step).__name__
        raise ValueError(
            f"{name} is inside {holder} in train_dataloader.dataset.pipeline, and no step before {holder} loads the "
            f"image: the refresh pass loads the un-augmented images with the top-level steps before {holder}, so it "
            f"would get none (KeyError('img') at the first refresh, after the warm-up); move {name} before {holder} "
            "(it then loads each image once for all its views)"
        )


def _check_step_order(steps: list[Any]) -> None:
    """Refuse a step whose place makes the boxes miss the image they cut (see :func:`_misplaced_step`)."""
    found = _misplaced_step(steps)
    if found is None:
        return
    step, where = found
    name = _step_name(step)
    view = "a view pipeline (MultiView's, or a Compose) of train_dataloader.dataset.pipeline"
    if where == "top" and _resizes_whole_image(step):
        said = (f"{name} comes before ContrastiveCrop/ChooseContrastiveBox in train_dataloader.dataset.pipeline: the "
                "refresh pass reuses the steps before them, so it would localize objects in images resized at random, "
                "another size at every read, not in the images as they are")
        # After ContrastiveCrop it would resize the view, not the image: the views would not have the crop's size.
        advice = (f"move {name} into the view pipeline, before ContrastiveCrop (resizing the whole image there "
                  "leaves the normalised boxes right)")
    elif where == "top":
        said = (f"{name} comes before ContrastiveCrop/ChooseContrastiveBox in train_dataloader.dataset.pipeline: the "
                "refresh pass reuses the steps before them, so it would localize objects in randomly changed images "
                "(flipped, cropped) and the boxes would not fit the images the views are cut from")
        advice = f"move {name} into the view pipeline, after ContrastiveCrop"
    elif where == "after":
        said = (f"{name} comes after ContrastiveCrop in {view}: it would cut ContrastiveCrop's crop again (a random "
                "part of it), silently undoing the box-aware crop")
        advice = ""
    elif where == "twice":
        said = (f"ContrastiveCrop comes twice in {view}: the second would cut the first's crop again, placed with the "
                "boxes of the whole image")
        advice = "keep one ContrastiveCrop per view"
    elif where == "twice-top":
        holder = next((_step_name(top) for top in steps if top is not step
                       and any(item is step for item in iter_transforms(top))), None)
        said = ("ContrastiveCrop comes twice on each view: as a top-level step of train_dataloader.dataset.pipeline "
                f"and again after it{f' in {holder}' if holder else ''}; the second would cut the first's crop again, "
                "placed with the boxes of the whole image")
        advice = ("keep one ContrastiveCrop per view, in the view pipeline of MultiView (transforms=[[dict(type="
                  "'ContrastiveCrop', ...), ...]])")
    elif _is_random(step):
        said = (f"{name} comes before ContrastiveCrop in {view}: the boxes are made on the images without it, so a "
                "view it changed (flipped, cropped) would be cut around boxes that do not fit it")
        advice = f"move {name} after ContrastiveCrop"
    else:
        said = (f"{name} comes before ContrastiveCrop in {view}: the refresh pass makes the boxes on the images "
                f"without it (it reuses only the steps before MultiView), so every view would be cut around boxes "
                f"that do not fit the image {name} made (cropped, padded, flipped)")
        advice = (f"move {name} before MultiView (the refresh then sees it too) or after ContrastiveCrop (resizing "
                  "the whole image, Resize or ResizeEdge, may stay: the boxes are normalised)")
    if _RESIZED_CROP.search(type(step).__name__) or not advice:  # left in beside ContrastiveCrop: moving it is no fix
        advice = f"ContrastiveCrop replaces {name} and takes its arguments: remove {name}"
    raise ValueError(f"{said}; {advice}")


def _misplaced_step(steps: list[Any]) -> tuple[Any, str] | None:
    """The first step whose place makes the boxes miss and where it is ('top', 'view', 'after', 'twice', 'twice-top'),
    or ``None``.

    Each sequence is read: the top-level steps, and every ``Compose`` (a MultiView view); the branches of MultiView and
    RandomChoice are not one sequence. Before the first ContrastiveCrop of the top-level steps (what the refresh
    reuses) a random step is refused (``'top'``). Before it in a nested sequence, a step that moves image content
    (crop, pad, flip, rotation...), random or not, is refused (``'view'``): the refresh does not see it; colour changes
    and resizing the whole image leave the normalised boxes right. After it in the same sequence, a
    RandomResizedCrop would cut the crop again (``'after'``), and so would a second ContrastiveCrop (``'twice'``; after
    a top-level one, in MultiView's views or not: ``'twice-top'``). Steps holding a box step are left out (the box
    choice reads only ``sample_idx``).
    """
    sequences = [steps] + [list(item.transforms) for item in iter_transforms(steps) if type(item).__name__ == "Compose"]
    for index, sequence in enumerate(sequences):
        crop_at = next((i for i, step in enumerate(sequence) if find_instances(step, BaseContrastiveCrop)), None)
        if crop_at is None:
            continue
        for step in sequence[:crop_at]:
            for item in iter_transforms(step):
                if find_instances(item, StoreUser):
                    continue
                if index == 0 and _is_random(item):
                    return item, "top"
                if index > 0 and _moves_content(item):
                    return item, "view"
        for step in sequence[crop_at + 1 :]:
            for item in iter_transforms(step):
                if isinstance(item, BaseContrastiveCrop):
                    return item, "twice" if index else "twice-top"
                if _RESIZED_CROP.search(type(item).__name__):
                    return item, "after"
    return None


def _step_name(step: Any) -> str:
    """A step's name as a config writes its type: ``RandomFlip``, ``torchvision/RandomHorizontalFlip``."""
    kind = type(step).__name__
    return f"torchvision/{kind}" if _is_torchvision(step) else kind


def _is_torchvision(step: Any) -> bool:
    return step is not None and type(step).__module__.startswith("torchvision.transforms")


def _moves_content(step: Any) -> bool:
    kind = type(step).__name__
    return bool(_MOVES.search(kind)) or (_is_torchvision(step) and kind in _TORCHVISION_AUGMENTS)


def _resizes_whole_image(step: Any) -> bool:
    """``Resize``, ``ResizeEdge``, ``RandomResize``, ``RandomChoiceResize``, ``torchvision/Resize``: the whole image
    scaled, nothing moved (a resized crop cuts too: not one of them)."""
    kind = type(step).__name__
    return "Resize" in kind and not _RESIZED_CROP.search(kind) and not _moves_content(step)


def _is_random(step: Any) -> bool:
    """mmcv marks random transforms with ``@cache_randomness``; the rest are named ``Random*`` or take a ``prob``;
    torchvision's draw with ``get_params`` (``ColorJitter``, ``GaussianBlur``) or are its automatic augmentations."""
    kind = type(step)
    return bool(getattr(kind, "_methods_with_randomness", None)) or kind.__name__.startswith("Random") or (
        hasattr(step, "prob") and not isinstance(step, (list, tuple))
    ) or (_is_torchvision(step) and (hasattr(kind, "get_params") or kind.__name__ in _TORCHVISION_AUGMENTS))

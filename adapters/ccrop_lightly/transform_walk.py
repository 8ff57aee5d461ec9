"""Find a step by its class name inside a torchvision or lightly transform, however nested.

torchvision's ``Compose``, ``RandomApply``, ``RandomChoice``, ``RandomOrder`` (v1 and v2) keep their steps in
``transforms``; lightly's view transforms keep a ``Compose`` in ``transform``; ``nn.Sequential`` holds modules.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Iterator

import torch

_CHILD_ATTRIBUTES = ("transforms", "transform")
# Random steps that move what lies where in the image: after them a normalised box of the image no longer fits it.
# (Also lightly's RandomRotate, RandomRotateDegrees, RandomResizedCropWithLocation, RandomResizedCropAndFlip.)
RANDOM_GEOMETRY = re.compile(r"^Random\w*(Crop|Flip|Rotat|Affine|Perspective|ZoomOut)|^(RandAugment|AutoAugment|"
                             r"TrivialAugmentWide|AugMix|ElasticTransform|ScaleJitter)$")
RESIZED_CROP = re.compile("ResizedCrop")
# A ContrastiveCrop belongs in one place only, a view's ``crop`` argument (it cuts the view around a box). Anywhere
# else (in the view's steps after it, in the dataset's own transform; inside RandomApply or not) it is a second
# random crop, made without boxes, so the box is lost: refused.
CONTRASTIVE_CROP = re.compile("^ContrastiveCrop$")
_NOTHING = re.compile("(?!)")  # matches no class name: the walk enters every step


def find_step(transform: Any, pattern: re.Pattern[str]) -> str | None:
    """The first step of ``transform`` (depth first) whose class, or a base class, has a name matching ``pattern``,
    named with where it lies, e.g. ``'RandomResizedCrop (in Compose > RandomApply)'``; ``None`` if none matches."""
    for item, owners in _walk(transform, pattern):
        if _matches(item, pattern):
            return _where(item, owners)
    return None


def walk_steps(transform: Any) -> Iterator[Any]:
    """Every step of ``transform`` (itself first), depth first, each once: the steps of ``Compose``,
    ``RandomApply``, lightly's view transforms, ``nn.Sequential`` and ``nn.ModuleList``, however nested."""
    for item, _ in _walk(transform, _NOTHING):
        yield item


def _matches(item: Any, pattern: re.Pattern[str]) -> bool:
    return any(pattern.search(kind.__name__) for kind in type(item).__mro__)  # a subclass of a matching step too


def _where(item: Any, owners: tuple[Any, ...]) -> str:
    name = type(item).__name__
    return f"{name} (in {' > '.join(type(owner).__name__ for owner in owners)})" if owners else name


def _walk(transform: Any, stop: re.Pattern[str]) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every step of ``transform``, depth first, each once, with the steps that hold it (outermost first); the
    steps of one matching ``stop`` are not entered."""
    seen: set[int] = set()
    stack: list[tuple[Any, tuple[Any, ...]]] = [(transform, ())]
    while stack:
        item, owners = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item, owners
        if _matches(item, stop):
            continue
        if isinstance(item, (list, tuple, torch.nn.ModuleList, torch.nn.Sequential)):
            stack.extend((child, owners) for child in reversed(list(item)))
            continue
        for attribute in _CHILD_ATTRIBUTES:
            child = getattr(item, attribute, None)
            if isinstance(child, (list, tuple)) or (callable(child) and not inspect.isroutine(child)):
                stack.append((child, (*owners, item)))


def check_dataset_transform(dataset: Any, who: str) -> None:
    """Refuse a training dataset whose own transform moves image content at random (``RandomResizedCrop``, a flip,
    a rotation, lightly's ``SimCLRTransform``, a ``ContrastiveCrop``, inside ``RandomApply`` or not...), looked up
    through ``Subset``, ``ConcatDataset``, ``IndexedDataset`` and ``LightlyDataset``: each view would be cut around
    boxes the refresh made on another draw of its image. ``who`` (``CCropCollate``, ``the refresh loader``) begins
    the message. Fixed steps (``Resize``, ``ToTensor``) change every read alike, so the boxes still fit."""
    seen: set[int] = set()
    stack = [dataset]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        transform = getattr(item, "transform", None)
        crop = find_step(transform, CONTRASTIVE_CROP)
        step = crop or find_step(transform, RANDOM_GEOMETRY)
        if step is not None:
            if crop:
                what = ("cuts each image at random, without boxes, on every read, before the views' own "
                        "ContrastiveCrop (a second random crop: ")
                fix = (": the views' ContrastiveCrop (CCropSimCLRTransform's, or CCropViewTransform's crop "
                       "argument) cuts every image around its box")
            else:
                what = "changes each image at random on every read ("
                fix = (" and put the random steps in the views, after the crop (CCropSimCLRTransform's options, "
                       "or CCropViewTransform(crop, transform))")
            raise ValueError(
                f"{who}: the dataset's own transform holds {step}, which {what}the refresh localizes one draw, the "
                "views are cut from another), so the boxes would not fit the images they cut; build the dataset "
                f"without a transform (fixed steps such as Resize may stay){fix}"
            )
        stack.append(getattr(item, "dataset", None))
        stack.extend(getattr(item, "datasets", None) or [])

"""Find a step by its class name inside a torchvision or lightly transform, however nested.

torchvision's ``Compose``, ``RandomApply``, ``RandomChoice``, ``RandomOrder`` (v1 and v2) keep their steps in
``transforms``; lightly's view transforms keep a ``Compose`` in ``transform``; ``nn.Sequential`` holds modules.
"""

from __future__ import annotations

import inspect
import re
import warnings
from typing import Any, Iterator

import torch

_CHILD_ATTRIBUTES = ("transforms", "transform")
# Random steps that move what lies where in the image: after them a normalised box of the image no longer fits it.
# (Also lightly's RandomRotate, RandomRotateDegrees, RandomResizedCropWithLocation, RandomResizedCropAndFlip.)
RANDOM_GEOMETRY = re.compile(r"^Random\w*(Crop|Flip|Rotat|Affine|Perspective|ZoomOut)|^(RandAugment|AutoAugment|"
                             r"TrivialAugmentWide|AugMix|ElasticTransform|ScaleJitter)$")
RESIZED_CROP = re.compile("ResizedCrop")


def find_step(transform: Any, pattern: re.Pattern[str]) -> str | None:
    """The first step of ``transform`` (depth first) whose class, or a base class, has a name matching ``pattern``,
    named with where it lies, e.g. ``'RandomResizedCrop (in Compose > RandomApply)'``; ``None`` if none matches."""
    for item, owners in _walk(transform, pattern):
        if _matches(item, pattern):
            return _where(item, owners)
    return None


def optional_crops(transform: Any) -> list[str]:
    """Every ContrastiveCrop of ``transform`` inside a ``RandomApply`` (torchvision v1 or v2) whose ``p`` is below 1,
    named with where it lies and that ``p``, e.g. ``'ContrastiveCrop (in Compose > RandomApply, p=0.5)'``: in the
    other draws the step is skipped, so the image goes on uncut."""
    found = []
    for item, owners in _walk(transform, CONTRASTIVE_CROP):
        if not _matches(item, CONTRASTIVE_CROP):
            continue
        chances = [float(owner.p) for owner in owners if type(owner).__name__ == "RandomApply"
                   and isinstance(getattr(owner, "p", None), (int, float)) and owner.p < 1]
        if chances:
            found.append(f"{_where(item, owners)[:-1]}, p={min(chances):g})")
    return found


CONTRASTIVE_CROP = re.compile("^ContrastiveCrop$")


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


def warn_optional_crops(transform: Any, where: str, advice: str, stacklevel: int = 3) -> None:
    """Warn (``UserWarning``, once per message) about every ContrastiveCrop of ``transform`` that a ``RandomApply``
    skips at random (:func:`optional_crops`); ``where`` names the transform, ``advice`` what to do."""
    for found in optional_crops(transform):
        chance = found.rsplit("p=", 1)[1].rstrip(")")
        warnings.warn(f"{where} holds {found}: in {1 - float(chance):.0%} of the draws RandomApply skips it, so the "
                      f"image goes on uncut by it, silently; {advice}", UserWarning, stacklevel=stacklevel)


def check_dataset_transform(dataset: Any, who: str) -> None:
    """Refuse a training dataset whose own transform moves image content at random (``RandomResizedCrop``, a flip,
    a rotation, lightly's ``SimCLRTransform``...), looked up through ``Subset``, ``ConcatDataset``,
    ``IndexedDataset`` and ``LightlyDataset``: each view would be cut around boxes the refresh made on another draw of
    its image. ``who`` (``CCropCollate``, ``the refresh loader``) begins the message. Fixed steps (``Resize``,
    ``ToTensor``) change every read alike, so the boxes still fit."""
    seen: set[int] = set()
    stack = [dataset]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        warn_optional_crops(getattr(item, "transform", None), f"{who}: the dataset's own transform",
                            "remove it from the dataset's transform (build the dataset without one): the views' own "
                            "ContrastiveCrop cuts every image around its box", stacklevel=4)
        step = find_step(getattr(item, "transform", None), RANDOM_GEOMETRY)
        if step is not None:
            raise ValueError(
                f"{who}: the dataset's own transform holds {step}, which changes each image at random on every "
                "read (the refresh localizes one draw, the views are cut from another), so the boxes would not fit "
                "the images they cut; "
                "build the dataset without a transform (fixed steps such as Resize may stay) and put the random "
                "steps in the views, after the crop (CCropSimCLRTransform's options, or CCropViewTransform(crop, "
                "transform))"
            )
        stack.append(getattr(item, "dataset", None))
        stack.extend(getattr(item, "datasets", None) or [])

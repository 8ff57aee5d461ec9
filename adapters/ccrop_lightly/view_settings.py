"""What the refresh pass takes from the training views: their size and their normalisation."""

from __future__ import annotations

from typing import Any

from torchvision import transforms as transforms_v1
from torchvision.transforms import v2 as transforms_v2

from .multi_view import CCropMultiViewTransform
from .transform_walk import walk_steps
from .view_transform import CCropViewTransform

_PRESETS = ("SimCLRTransform", "MoCoV2Transform", "SimCLRViewTransform")  # lightly's, with a CCrop twin


def refresh_settings(transform: Any) -> tuple[tuple[int, int], dict[str, list[float]] | None]:
    """The ``(height, width)`` and normalisation the refresh pass should use for ``transform``.

    ``transform`` is a :class:`CCropMultiViewTransform` (its first view counts: the global
    view of a multi-crop), a :class:`CCropViewTransform`, or a collate function holding one
    as ``.transform`` (:class:`~ccrop_lightly.CCropCollate`). The size is the view's crop
    size; the normalisation is the first ``Normalize`` step found in the view's transform
    (inside ``Compose``, ``nn.Sequential``, ``RandomApply``..., however nested; ``None`` when it has none).
    """
    view = (
        getattr(transform, "transform", None)
        if not isinstance(transform, (CCropMultiViewTransform, CCropViewTransform))
        else transform
    )
    if isinstance(view, CCropMultiViewTransform):
        view = view.transforms[0]
    if not isinstance(view, CCropViewTransform):
        raise TypeError(
            "transform must be a CCropMultiViewTransform (CCropSimCLRTransform, ...), a CCropViewTransform or a "
            f"CCropCollate; got {type(transform).__name__}{instead_of(transform)}"
        )
    return view.crop.size, _find_normalize(view.transform)


def instead_of(transform: Any) -> str:
    """What to pass instead of a lightly transform (which cannot crop around boxes) or of a single view."""
    if isinstance(transform, CCropViewTransform):
        return ": a single view; pass CCropMultiViewTransform([view, view]) for a pair cut around the same box"
    name = type(transform).__name__
    if not type(transform).__module__.startswith("lightly"):
        return ""
    if name in _PRESETS:
        return (f": lightly's {name} cannot crop around boxes; use ccrop_lightly's CCrop{name}, which takes the same "
                "arguments (plus alpha, sampler, scale_reference)")
    if name == "SimSiamTransform":  # MoCo v2's views, argument for argument
        return (": lightly's SimSiamTransform cannot crop around boxes; use ccrop_lightly's CCropMoCoV2Transform, "
                "which takes the same arguments (the same views; plus alpha, sampler, scale_reference)")
    return (f": lightly's {name} cannot crop around boxes; build its views as CCropViewTransform(ContrastiveCrop(size, "
            "scale=...), T.Compose([...the view's other steps])) in a CCropMultiViewTransform([...]) (docs/lightly.md, "
            "'Other views')")


def _find_normalize(transform: Any) -> dict[str, list[float]] | None:
    """The first ``Normalize`` step of ``transform``, depth first, as ``{"mean": [...], "std": [...]}``.

    The walk enters ``nn.Sequential`` and ``nn.ModuleList`` as well as ``Compose``: torchvision documents
    ``nn.Sequential`` of its transforms as their scriptable form, and a refresh that missed its ``Normalize``
    would localize unnormalised images while the views are normalised, silently."""
    for step in walk_steps(transform):
        if isinstance(step, (transforms_v1.Normalize, transforms_v2.Normalize)):
            return {"mean": [float(v) for v in step.mean], "std": [float(v) for v in step.std]}
    return None

"""The four crop strategies that the demo, ``ccrop bench pairs`` and ``ccrop study`` compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ccrop_plugins import ContrastiveCrop


@dataclass(frozen=True)
class CropStrategy:
    """How a view pair is cropped.

    Attributes:
        name: short key used on the command line (``rrc``, ``paper``, ``multi``, ``multi-box``).
        label: a human-readable label for tables and plots.
        localizer: the localizer that refreshes boxes, or ``None`` for plain RandomResizedCrop.
        scale_reference: ``"image"`` (the paper) or ``"box"`` (crop area relative to the box).
        scale: the crop's area range (relative to ``scale_reference``).
        localizer_options: options for the localizer (``max_boxes``, ``min_area``, ``core_level``).
    """

    name: str
    label: str
    localizer: str | None
    scale_reference: str = "image"
    scale: tuple[float, float] = (0.2, 1.0)
    localizer_options: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_boxes(self) -> bool:
        return self.localizer is not None

    def make_crop(self, size: int, alpha: float = 0.6, **options: Any) -> ContrastiveCrop:
        """The view crop of this strategy (without boxes it is RandomResizedCrop)."""
        return ContrastiveCrop(size, scale=self.scale, alpha=alpha, scale_reference=self.scale_reference, **options)


# The box sets' localizer adds the cores of joined or haloed components to free slots (measured on four
# looks of scenes in docs/benchmarks/localize.md: recall up on each, hit rate and false-positive pairs
# no worse).
BOX_SET_OPTIONS: dict[str, Any] = {"core_level": 0.3}

STRATEGIES: dict[str, CropStrategy] = {
    s.name: s
    for s in (
        CropStrategy("rrc", "RandomResizedCrop", None),
        CropStrategy("paper", "ContrastiveCrop (paper, one box)", "bbox"),
        CropStrategy("multi", "ContrastiveCrop (box sets)", "components", localizer_options=dict(BOX_SET_OPTIONS)),
        # Crops of 1-4x the chosen box's area: the view holds the object and some context. With
        # 20-100% of the box (the image-relative default) a view rarely holds half of the object
        # (see docs/benchmarks/pairs.md for the sweep).
        CropStrategy(
            "multi-box", "ContrastiveCrop (box sets, box scale)", "components", scale_reference="box", scale=(1.0, 4.0),
            localizer_options=dict(BOX_SET_OPTIONS),
        ),
    )
}


def get_strategy(name: str) -> CropStrategy:
    """The strategy called ``name``, or a ``ValueError`` listing the available ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]

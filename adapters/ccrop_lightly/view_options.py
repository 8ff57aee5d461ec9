"""The checks of the SimCLR views' options, named as lightly names them, and their ``Normalize`` step."""

from __future__ import annotations

import numbers
from typing import Any

from lightly.transforms.torchvision_v2_compatibility import torchvision_transforms as T


def normalize_step(normalize: Any) -> Any:
    """``Normalize`` of lightly's ``{"mean": [...], "std": [...]}`` dict; a ``ValueError`` naming what is missing."""
    missing = [key for key in ("mean", "std") if key not in normalize] if isinstance(normalize, dict) else None
    if missing is None or missing:
        lacks = f" (no {' or '.join(repr(key) for key in missing)})" if missing else ""
        raise ValueError(f"normalize must be a dict with 'mean' and 'std', as lightly's IMAGENET_NORMALIZE, or None "
                         f"(no normalisation); got {normalize!r}{lacks}")
    return T.Normalize(mean=normalize["mean"], std=normalize["std"])


def check_view_options(probabilities: dict[str, Any], jitter: dict[str, Any]) -> None:
    """Probabilities in [0, 1] and colour-jitter factors >= 0 (their hue product at most 0.5), named; torchvision's
    own messages name ``p`` or ``brightness``, and lightly's blur took any ``prob`` (2 meant always)."""
    for name, value in probabilities.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1]; got {value!r}")
    for name, value in jitter.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0 (a colour-jitter factor); got {value!r}")
    if jitter["cj_strength"] * jitter["cj_hue"] > 0.5:
        raise ValueError(f"cj_strength * cj_hue must be at most 0.5 (torchvision's hue range); got "
                         f"{jitter['cj_strength']} * {jitter['cj_hue']}")

"""The checks of the SimCLR views' options, named as lightly names them, and their ``Normalize`` step."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from lightly.transforms.torchvision_v2_compatibility import torchvision_transforms as T


def normalize_step(normalize: Any) -> Any:
    """``Normalize`` of lightly's ``{"mean": [...], "std": [...]}`` dict; a ``ValueError`` naming what is missing."""
    missing = [key for key in ("mean", "std") if key not in normalize] if isinstance(normalize, dict) else None
    if missing is None or missing:
        lacks = f" (no {' or '.join(repr(key) for key in missing)})" if missing else ""
        raise ValueError(f"normalize must be a dict with 'mean' and 'std', as lightly's IMAGENET_NORMALIZE, or None "
                         f"(no normalisation); got {normalize!r}{lacks}")
    mean, std = (_numbers(normalize[key]) for key in ("mean", "std"))
    if mean is None or std is None or len(mean) != len(std) or len(mean) not in (1, 3) or min(std) <= 0:
        raise ValueError(f"normalize needs 'mean' and 'std' of 3 numbers (one per RGB channel; or 1 for all), "
                         f"each std > 0, as lightly's IMAGENET_NORMALIZE; got mean={normalize['mean']!r}, "
                         f"std={normalize['std']!r}")
    return T.Normalize(mean=mean, std=std)


def _numbers(values: Any) -> list[float] | None:
    """``values`` (a number, a sequence, a numpy array or a tensor ``(n,)`` or ``()``) as a list of finite floats, or
    ``None`` when it is not a sequence of finite real numbers."""
    if isinstance(values, torch.Tensor):  # lightly's SimCLRTransform (torchvision's Normalize) takes tensors
        values = values.tolist()  # a bool or complex tensor gives bools or complex numbers: refused below
    if isinstance(values, numbers.Real):
        values = [values]
    try:
        floats = [float(v) for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    except TypeError:  # not iterable
        return None
    return floats if len(floats) == len(list(values)) and all(math.isfinite(v) for v in floats) else None


def check_sigmas(sigmas: Any) -> None:
    """Lightly's blur draws its sigma uniformly from ``sigmas``: a ``(low, high)`` pair with ``0 <= low <= high``."""
    pair = None if isinstance(sigmas, (str, bytes)) else _numbers(sigmas)
    if pair is None or len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
        raise ValueError(f"sigmas must be the blur's (low, high) sigma range with 0 <= low <= high, e.g. lightly's "
                         f"(0.1, 2); got {sigmas!r}")


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

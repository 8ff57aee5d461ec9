"""Checked numbers: image and crop sizes (an int or a ``(height, width)`` pair), counts, indices, real options."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Set
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


def height_width(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int ``s``, or a sequence ``[s]`` of one (torchvision's rule), means ``(s,
    s)``. ``TypeError`` for anything but an int or one or two ints (``8.7``, ``'abc'``, ``True``: never truncated),
    ``ValueError`` for another length or a value below 1; both name ``name`` and the value."""
    message = f"{name} must be a positive int or (height, width); got {size!r}"
    if integer(size) is not None:
        values: tuple = (size, size)
    elif isinstance(size, (str, bytes, bool, Set, Mapping)):  # a set or dict has no (height, width) order
        raise TypeError(message)
    else:
        try:
            values = tuple(size)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(message) from None
        values = values * 2 if len(values) == 1 else values
        if len(values) != 2:
            raise ValueError(f"{message} ({len(values)} values)")
    height, width = (integer(v) for v in values)
    if height is None or width is None:
        raise TypeError(f"{name} must be a positive int or (height, width) of ints; got {size!r}")
    if height < 1 or width < 1:
        raise ValueError(message)
    return height, width


def is_bool(value: object) -> bool:
    """Whether ``value`` is a flag rather than a number: ``True``/``False``, ``numpy.bool_`` or a bool array or tensor
    (``operator.index`` and ``float`` read them as 0 and 1)."""
    return isinstance(value, (bool, np.bool_)) or str(getattr(value, "dtype", None)) in ("bool", "torch.bool")


def as_tensor(values: object, dtype: torch.dtype | None = None) -> Tensor:
    """``torch.as_tensor(values, dtype)``, also for a numpy array with negative strides (``a[::-1]``), which torch
    refuses: it is copied first."""
    if isinstance(values, np.ndarray) and any(stride < 0 for stride in values.strides):
        values = values.copy()
    return torch.as_tensor(values, dtype=dtype)


def real_number(value: object) -> float | None:
    """``value`` as a float if it is a number (``int``, ``float``, numpy, a one-element tensor), else ``None``: bools
    (:func:`is_bool`) and text are refused rather than parsed."""
    if isinstance(value, (str, bytes)) or is_bool(value):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def integer(value: object) -> int | None:
    """``value`` as an int if it is an integer of any kind (``int``, numpy, a one-element integer tensor), else
    ``None``: bools (:func:`is_bool`) and floats are refused rather than truncated."""
    if is_bool(value) or isinstance(value, Tensor) and value.is_floating_point():
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def checked_int(value: object, name: str, low: int, high: int | None = None, *, or_none: bool = False) -> int | None:
    """``value`` as an int in ``[low, high]`` (``None`` kept if ``or_none``), or ``ValueError`` naming ``name``."""
    number = integer(value)
    if number is not None and number >= low and (high is None or number <= high) or value is None and or_none:
        return number
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name} must be an integer {allowed}{' or None' if or_none else ''}; got {value!r}")


def checked_real(value: object, name: str, allowed: str, ok: Callable[[float], bool], *, or_none: bool = False
                 ) -> float | None:
    """``value`` as a float for which ``ok`` holds (``None`` kept when ``or_none``), else ``ValueError(f"{name} must
    {allowed}; got {value}")``; bools and text are refused (text shown quoted), NaN fails every ``ok``."""
    if value is None and or_none:
        return None
    number = real_number(value)
    if number is None or not ok(number):
        raise ValueError(f"{name} must {allowed}; got {repr(value) if isinstance(value, (str, bytes)) else value}")
    return number

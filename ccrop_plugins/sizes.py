"""Image and crop sizes: an int or a ``(height, width)`` pair of positive ints."""

from __future__ import annotations

import operator
from typing import Sequence


def height_width(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int ``s`` means ``(s, s)``.

    Raises:
        TypeError: ``size`` is not an int or a pair of ints (``8.7``, ``'abc'``, ``True``);
            floats are refused rather than truncated.
        ValueError: a pair of the wrong length or a value below 1.
        Both name ``name`` and the value.
    """
    if isinstance(size, (str, bytes)) or isinstance(size, bool):
        raise TypeError(f"{name} must be a positive int or (height, width); got {size!r}")
    try:
        operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        height = width = _positive(size, name, size)
        return height, width
    try:
        values = tuple(size)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a positive int or (height, width); got {size!r}") from None
    if len(values) != 2:
        raise ValueError(f"{name} must be a positive int or (height, width); got {size!r} ({len(values)} values)")
    return _positive(values[0], name, size), _positive(values[1], name, size)


def _positive(value: object, name: str, size: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int or (height, width); got {size!r}")
    try:
        number = operator.index(value)  # ints, numpy ints; refuses floats instead of truncating
    except TypeError:
        raise TypeError(f"{name} must be a positive int or (height, width) of ints; got {size!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive int or (height, width); got {size!r}")
    return number

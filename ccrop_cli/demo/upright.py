"""EXIF orientation of the user's images (``ccrop demo --data``, ``ccrop viz --exif``).

Images with an EXIF orientation (phone photos: OpenCV turns them upright, PIL does not) are taken upright,
as phones, viewers, browsers and labelling tools show them: ``ccrop demo`` trains on, refreshes, draws and
measures upright copies (:mod:`ccrop_cli.demo.resized`, ``PIL.ImageOps.exif_transpose``), and the
``width``/``height`` and boxes of ``annotations.json`` are those of the upright image (:func:`upright_size`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

_EXIF_ORIENTATION = 0x0112
TURNING = (5, 6, 7, 8)
"""EXIF orientations that turn the image by 90 degrees (width and height swap when it is shown upright)."""


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation of an open image: 2-8 when it is shown turned or mirrored, else 1 (none, or a value
    outside 1-8, which ``PIL.ImageOps.exif_transpose`` and OpenCV ignore too)."""
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    return orientation if orientation in range(2, 9) else 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an open image as it is shown, after its EXIF orientation (see the module docstring)."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in TURNING else (width, height)


_TO_STORED = {  # the stored pixel (x, y) of upright pixel (u, v), normalised, per orientation (exif_transpose undone)
    2: lambda u, v: (1 - u, v),
    3: lambda u, v: (1 - u, 1 - v),
    4: lambda u, v: (u, 1 - v),
    5: lambda u, v: (v, u),
    6: lambda u, v: (v, 1 - u),
    7: lambda u, v: (1 - v, 1 - u),
    8: lambda u, v: (1 - v, u),
}


def boxes_to_stored(boxes: np.ndarray, orientation: int) -> np.ndarray:
    """Normalised ``(k, 4)`` boxes ``x0, y0, x1, y1`` of the upright image (as ``annotations.json`` gives them) in
    the stored pixels of an image of EXIF ``orientation`` (as PIL, and so Lightly, reads it)."""
    if orientation not in _TO_STORED:
        return boxes
    x0, y0 = _TO_STORED[orientation](boxes[:, 0], boxes[:, 1])
    x1, y1 = _TO_STORED[orientation](boxes[:, 2], boxes[:, 3])
    return np.stack([np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)], axis=1)


def orientations(root: Path, names: list[str]) -> dict[str, int]:
    """``{name: EXIF orientation (2-8)}`` of the images of ``root`` shown turned or mirrored (headers only; a file
    that cannot be opened is left to the caller's reading)."""
    found = {}
    for name in names:
        try:
            with Image.open(root / name) as image:
                orientation = exif_orientation(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            continue
        if orientation != 1:
            found[name] = orientation
    return found

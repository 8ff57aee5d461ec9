"""EXIF orientation of the user's images (``ccrop demo --data``, ``ccrop viz``).

Images with an EXIF orientation (phone photos: OpenCV turns them upright, PIL does not) are taken upright,
as phones, viewers, browsers and labelling tools show them: ``ccrop demo`` trains on, refreshes, draws and
measures upright copies (:mod:`ccrop_cli.demo.resized`, ``PIL.ImageOps.exif_transpose``), and the
``width``/``height`` and boxes of ``annotations.json`` are those of the upright image (:func:`upright_size`).
"""

from __future__ import annotations

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

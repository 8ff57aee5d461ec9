"""``ccrop demo --data DIR``: the images' contents, checked before any training.

:func:`check_images` refuses what the two frameworks' loaders would read differently: 16- and 32-bit images
(PIL turns them nearly white, OpenCV scales them), other colour spaces, and (unless the caller turns them
upright) images with an EXIF orientation; and images under :data:`MIN_SIDE` pixels on a side, too small to
localise anything in. Grayscale and palette images become RGB; RGBA images lose their alpha channel (each pixel
keeps its colour), as in both frameworks' loaders. :func:`check_listable` refuses file names MMPretrain's list of
images cannot hold.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ccrop_cli.demo.upright import exif_orientation
from ccrop_cli.errors import UserError, some_names

EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")
"""PIL modes of at most 8 bits per channel, which both frameworks' loaders turn into the same RGB."""

MIN_SIDE = 16
"""The smallest image side (pixels) taken: the generated scenes' smallest. A view of 20 % of a 16 px image is about
7 px wide; a 1x1 or 200x1 image has no object to localise and its views are one stretched pixel (the demo ran on
them and wrote a report of meaningless boxes)."""


def check_images(root: Path, filenames: list[str], upright: bool = False) -> dict[str, int]:
    """Open and decode every image (a JPEG at 1/8 scale); refuse what the frameworks would read differently.

    Args:
        upright: whether the caller turns images with an EXIF orientation upright for both frameworks
            (``ccrop demo``'s copy, :mod:`ccrop_cli.demo.resized`); else they are refused.

    Returns:
        ``{file name: EXIF orientation (2-8)}`` of the images shown turned or mirrored.

    Raises:
        UserError: naming the files (the first few) that cannot be opened or decoded (truncated), have more than 8
            bits per channel (PIL mode ``I;16``, ``I``, ``F``; convert them to 8 bits), have a side under
            :data:`MIN_SIDE` pixels, are in another colour space
            (``LAB``: PIL and OpenCV make different RGB of it), or carry an EXIF rotation
            and ``upright`` is false (save them upright, e.g. with ``PIL.ImageOps.exif_transpose``).
    """
    unreadable, deep, other, small, turned = [], [], [], [], {}
    for name in filenames:
        try:
            with Image.open(Path(root) / name) as image:
                if image.mode not in EIGHT_BIT_MODES:
                    (deep if image.mode[0] in "IF" else other).append(f"{name} (mode {image.mode})")
                if min(image.size) < MIN_SIDE:
                    small.append(f"{name} ({image.width}x{image.height} px)")
                orientation = exif_orientation(image)
                if orientation != 1:
                    turned[name] = orientation
                # Decode the pixels too: a truncated file opens, then PIL (Lightly) fails in a worker while
                # OpenCV (MMPretrain) reads it with a grey tail. A JPEG decodes at 1/8 scale (fast).
                image.draft("RGB", (image.width // 8 + 1, image.height // 8 + 1))
                image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            unreadable.append(f"{name} ({type(error).__name__}: {error})")
    rotated = [] if upright else [f"{name} (orientation {value})" for name, value in turned.items()]
    for found, problem in (
        (unreadable, "cannot be read as images"),
        (small, f"are smaller than {MIN_SIDE} px on a side (the smallest taken: a smaller image has no object to "
                f"localise, its views are a few stretched pixels); remove them or use larger images"),
        (deep, f"have more than 8 bits per channel (allowed modes: {', '.join(EIGHT_BIT_MODES)}); convert them "
               "to 8-bit RGB or grayscale"),
        (other, f"are in a colour space the two frameworks' loaders turn into RGB differently (allowed modes: "
                f"{', '.join(EIGHT_BIT_MODES)}); convert them to RGB"),
        (rotated, "carry an EXIF rotation that the two frameworks' loaders apply differently; save them upright "
                  "(e.g. PIL.ImageOps.exif_transpose)"),
    ):
        if found:
            raise UserError(f"--data {root}: {len(found)} file(s) {problem}: {some_names(found)}")
    return turned


def check_listable(root: Path, filenames: list[str]) -> None:
    """Refuse names that cannot be one line of a UTF-8 list of images (``--framework mmpretrain`` hands its
    ``CustomDataset`` such a list): names in another encoding (a Latin-1 ``caf\xe9.jpg`` from an old zip file or
    Windows share) or with a line break.

    Raises:
        UserError: naming the first few (as Python escapes them) and how to rename them.
    """
    odd = [name for name in filenames if "\n" in name or "\r" in name or not _is_utf8(name)]
    if odd:
        raise UserError(
            f"--data {root}: {len(odd)} file name(s) are not one line of UTF-8: "
            f"{some_names([ascii(name) for name in odd])}; MMPretrain reads the images from a UTF-8 list, one name a "
            "line: rename them (e.g. convmv -f latin1 -t utf-8 -r --notest DIR), or use --framework lightly"
        )


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # a name of other bytes decodes to lone surrogates, which do not encode
    except UnicodeEncodeError:
        return False
    return True

"""``ccrop demo --data DIR``: the user's image folder and its optional ``annotations.json``.

The folder is ``DIR/<class>/<image>`` or flat (``DIR/<image>``); file names are relative to
``DIR`` with ``/`` separators, in the order both frameworks list them (class folders searched recursively).

``DIR/annotations.json``, when present, follows COCO detection conventions::

    {"images": [{"id": 0, "file_name": "cats/001.png", "width": 64, "height": 64}, ...],
     "annotations": [{"image_id": 0, "bbox": [x, y, w, h]}, ...]}

``bbox`` is in pixels (top-left corner, width, height); ``width``/``height`` may be left out
(they are then read from the image file; declared, they must have the file's shape, at any scale: boxes are
normalised by them). ``file_name`` is the path relative to ``DIR``; a bare file name
(``"001.png"``) or a path with the exporting tool's own prefix (``"./cats/001.png"``,
``"export/images/cats/001.png"``) names the one image of ``DIR`` whose path it ends like (several: an error).
Every problem is a :class:`UserError` that names the file, the entry and what is wrong. ``ccrop demo`` skips the
entries (and boxes) of files that are not in ``DIR`` (a folder made of part of a labelled set) and says so; boxes
reaching past their image are clipped, and the demo names them.

Only the files both frameworks read are images here (``IMAGE_EXTENSIONS``, torchvision's list; a ``.gif``
is ignored, as Lightly ignores it). :func:`check_images` refuses, before any training, what the two
frameworks' loaders would read differently: 16- and 32-bit images (PIL turns them nearly white, OpenCV
scales them). Grayscale and palette images become RGB; RGBA images lose their alpha channel (each pixel
keeps its colour), as in both frameworks' loaders.

Images with an EXIF orientation (phone photos: OpenCV turns them upright, PIL does not) are taken upright,
as phones, viewers, browsers and labelling tools show them: ``ccrop demo`` trains on, refreshes, draws and
measures upright copies (:mod:`ccrop_cli.demo.resized`, ``PIL.ImageOps.exif_transpose``), and the
``width``/``height`` and boxes of ``annotations.json`` are those of the upright image (:func:`upright_size`).
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ccrop_cli.errors import UserError
from ccrop_cli.output.image_folder import IMAGE_EXTENSIONS, is_image, list_image_files

ANNOTATIONS = "annotations.json"
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")
"""PIL modes of at most 8 bits per channel, which both frameworks' loaders turn into the same RGB."""
_EXIF_ORIENTATION = 0x0112
TURNING = (5, 6, 7, 8)
"""EXIF orientations that turn the image by 90 degrees (width and height swap when it is shown upright)."""
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mpg", ".hevc", ".m4v", ".webm", ".mpeg")
"""Lightly's video extensions (``lightly.data._helpers.VIDEO_EXTENSIONS``, any case): one such file anywhere
under the folder makes ``LightlyDataset`` a video dataset."""


OTHER_PICTURE_EXTENSIONS = (
    ".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".svg", ".ico", ".psd", ".tga", ".exr", ".hdr",
    ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf",
)
"""Picture formats that neither framework reads as images of a folder (not in torchvision's list; any case): phone
photos in HEIC, raw camera files, animations. Ignored as the frameworks ignore them, and named
(:func:`ignored_pictures`)."""


def ignored_pictures(root: Path) -> str | None:
    """A line naming the pictures under ``root`` that are not images of the folder (``OTHER_PICTURE_EXTENSIONS``:
    ``.HEIC`` phone photos, raw camera files), or ``None``: they are left out of training and of the report."""
    found = sorted(
        Path(folder, name).relative_to(root).as_posix()
        for folder, _dirs, names in os.walk(root)
        for name in names
        if name.lower().endswith(OTHER_PICTURE_EXTENSIONS)
    )
    if not found:
        return None
    counts = ", ".join(f"{ext} {count}" for ext, count in Counter(posixpath.splitext(n)[1] for n in found).items())
    return (
        f"{len(found)} picture(s) in formats neither framework reads ({counts}; e.g. {found[0]}) are left out: "
        "convert them to JPEG or PNG to use them"
    )


def list_images(root: Path) -> list[str]:
    """The images of ``root`` in dataset-index order, as both frameworks list them
    (:func:`ccrop_cli.output.image_folder.list_image_files`: class folders searched recursively, or flat).

    Raises:
        UserError: ``root`` is not a folder, holds no images, holds images at the top *and* sub-folders
            (the frameworks would read only the sub-folders and silently drop the top-level images), or has a
            class folder without images (hidden ones such as ``.ipynb_checkpoints`` included: torchvision's
            ``ImageFolder`` refuses it), holds a video file (``LightlyDataset`` would read videos, not images), a
            link to one of its own folders (the frameworks follow links: its images would repeat), an image name
            that links to a missing file (Lightly lists it, then fails on it), or macOS metadata files with an image
            name (AppleDouble ``._*`` files, a ``__MACOSX`` folder: the frameworks would list them as images).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--data {root}: not a folder (expected DIR/<class>/<image> or DIR/<image>)")
    entries = list(os.scandir(root))
    folders = sorted(entry.name for entry in entries if entry.is_dir())
    top = sorted(entry.name for entry in entries if entry.is_file() and is_image(entry.name))
    _check_walk(root)  # first: a __MACOSX folder beside the images is named as such, not as a class folder
    _check_layout(root, folders, top)
    try:
        files = list_image_files(root)
    except UserError:
        others = ignored_pictures(root)
        raise UserError(
            f"--data {root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} in DIR and in DIR/<class>/)"
            + ("" if others is None else f"; {others}")
        ) from None
    _check_classes(root, folders, files)
    return files


def _check_layout(root: Path, folders: list[str], top: list[str]) -> None:
    """Images at the top *and* sub-folders: the frameworks would read only the sub-folders."""
    if folders and top:
        raise UserError(
            f"--data {root}: holds {len(top)} images at the top ({', '.join(top[:3])}{', ...' if len(top) > 3 else ''})"
            f" and sub-folders ({', '.join(folders[:3])}{', ...' if len(folders) > 3 else ''}); Lightly and MMPretrain"
            " read a folder either flat (DIR/<image>) or by class (DIR/<class>/<image>) and would drop the top-level"
            " images: move them into a sub-folder, or the sub-folders out"
        )


def _check_walk(root: Path) -> None:
    """Links to one of the folder's own ancestors, image names linking to missing files, video files, macOS
    metadata files."""
    videos: list[str] = []
    broken: list[str] = []
    apple: list[str] = []
    for folder, dirs, names in os.walk(root):  # links not followed here; the frameworks follow them
        videos += [Path(folder, n).relative_to(root).as_posix() for n in names if n.lower().endswith(VIDEO_EXTENSIONS)]
        broken += [Path(folder, n).relative_to(root).as_posix() for n in names
                   if is_image(n) and not os.path.exists(Path(folder, n))]  # a link to nothing
        apple += [Path(folder, n).relative_to(root).as_posix() for n in names
                  if n.startswith("._") and is_image(n) and _is_apple_double(Path(folder, n))]
        here = os.path.realpath(folder)
        for link in (Path(folder, name) for name in dirs):
            target = os.path.realpath(link)
            if link.is_symlink() and (here == target or here.startswith(target + os.sep)):  # the folder or an ancestor
                raise UserError(
                    f"--data {root}: {link.relative_to(root).as_posix()} links back to a folder above it; "
                    "the frameworks follow links, so its images would be listed again and again (up to the system's "
                    "link depth): "
                    "remove the link"
                )
    if broken:
        raise UserError(
            f"--data {root}: {len(broken)} link(s) to missing files: {', '.join(sorted(broken)[:3])}"
            f"{', ...' if len(broken) > 3 else ''}; Lightly lists them as images (and fails on them in a worker):"
            " remove them or restore their targets"
        )
    _refuse_apple_double(root, sorted(apple))
    videos.sort()
    if videos:
        raise UserError(
            f"--data {root}: holds {len(videos)} video file(s) "
            f"({', '.join(videos[:3])}{', ...' if len(videos) > 3 else ''});"
            " Lightly reads a folder with any video in it as a video dataset of frames (which needs PyAV and"
            " torchvision<=0.25), not as images: move them out of the folder"
        )


def _is_apple_double(path: Path) -> bool:
    """Whether ``path`` is an AppleDouble file (a Mac's metadata of file ``X``, written as ``._X`` on disks and in zip
    files without Mac metadata): it starts with the format's magic number."""
    try:
        with open(path, "rb") as file:
            return file.read(4) == b"\x00\x05\x16\x07"
    except OSError:
        return False


def _refuse_apple_double(root: Path, apple: list[str]) -> None:
    if apple:
        macosx = any(name.split("/", 1)[0] == "__MACOSX" for name in apple)
        raise UserError(
            f"--data {root}: {len(apple)} macOS metadata file(s) with an image name: {', '.join(apple[:3])}"
            f"{', ...' if len(apple) > 3 else ''}; a Mac writes one ('._' + the file's name) beside each file it"
            " copies onto a non-Mac disk or into a zip file: they hold no image, but both frameworks would list them as"
            f" images. Delete them: find {shlex.quote(str(root))} -name '._*' -delete"
            + (f"; rm -r {shlex.quote(str(root / '__MACOSX'))}" if macosx else "")
        )


def _check_classes(root: Path, folders: list[str], files: list[str]) -> None:
    """A class folder without images (hidden ones included): torchvision's ``ImageFolder`` refuses it, MMPretrain's
    ``CustomDataset`` keeps it as a class without samples (a warning in its log)."""
    used = {name.split("/", 1)[0] for name in files}
    empty = [folder for folder in folders if folder not in used]
    if empty:
        hidden = [folder for folder in empty if folder.startswith(".")]
        raise UserError(
            f"--data {root}: {len(empty)} class folder(s) hold no images: {', '.join(empty[:5])}"
            f"{', ...' if len(empty) > 5 else ''}; Lightly (torchvision's ImageFolder) refuses a class without images"
            " and MMPretrain keeps it as a class with no samples: remove these folders or put images in them"
            + (f" (hidden folders count as classes too, e.g. {hidden[0]})" if hidden else "")
        )


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation of an open image: 2-8 when it is shown turned or mirrored, else 1 (none, or a value
    outside 1-8, which ``PIL.ImageOps.exif_transpose`` and OpenCV ignore too)."""
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    return orientation if orientation in range(2, 9) else 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an open image as it is shown, after its EXIF orientation (see the module docstring)."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in TURNING else (width, height)


def check_images(root: Path, filenames: list[str], upright: bool = False) -> dict[str, int]:
    """Open and decode every image (a JPEG at 1/8 scale); refuse what the frameworks would read differently.

    Args:
        upright: whether the caller turns images with an EXIF orientation upright for both frameworks
            (``ccrop demo``'s copy, :mod:`ccrop_cli.demo.resized`); else they are refused.

    Returns:
        ``{file name: EXIF orientation (2-8)}`` of the images shown turned or mirrored.

    Raises:
        UserError: naming the files (the first few) that cannot be opened or decoded (truncated), have more than 8
            bits per channel (PIL mode ``I;16``, ``I``, ``F``; convert them to 8 bits), are in another colour space
            (``LAB``: PIL and OpenCV make different RGB of it), or carry an EXIF rotation
            and ``upright`` is false (save them upright, e.g. with ``PIL.ImageOps.exif_transpose``).
    """
    unreadable, deep, other, turned = [], [], [], {}
    for name in filenames:
        try:
            with Image.open(Path(root) / name) as image:
                if image.mode not in EIGHT_BIT_MODES:
                    (deep if image.mode[0] in "IF" else other).append(f"{name} (mode {image.mode})")
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
        (deep, f"have more than 8 bits per channel (allowed modes: {', '.join(EIGHT_BIT_MODES)}); convert them "
               "to 8-bit RGB or grayscale"),
        (other, f"are in a colour space the two frameworks' loaders turn into RGB differently (allowed modes: "
                f"{', '.join(EIGHT_BIT_MODES)}); convert them to RGB"),
        (rotated, "carry an EXIF rotation that the two frameworks' loaders apply differently; save them upright "
                  "(e.g. PIL.ImageOps.exif_transpose)"),
    ):
        if found:
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            raise UserError(f"--data {root}: {len(found)} file(s) {problem}: {shown}")
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
            f"--data {root}: {len(odd)} file name(s) are not one line of UTF-8: {', '.join(map(ascii, odd[:3]))}"
            f"{', ...' if len(odd) > 3 else ''}; MMPretrain reads the images from a UTF-8 list, one name a line: rename"
            " them (e.g. convmv -f latin1 -t utf-8 -r --notest DIR), or use --framework lightly"
        )


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # a name of other bytes decodes to lone surrogates, which do not encode
    except UnicodeEncodeError:
        return False
    return True


def load_user_annotations(
    root: Path, filenames: list[str], notes: list[str] | None = None
) -> dict[str, np.ndarray] | None:
    """Ground-truth boxes of ``root/annotations.json``, or ``None`` when the folder has none.

    Args:
        root: the image folder.
        filenames: its images (from :func:`list_images`); every ``file_name`` must be one of them, unless:
        notes: a list (``ccrop demo``): ``images`` entries whose ``file_name`` is no image of ``root`` (a folder
            made of part of a labelled set, with the whole set's annotations) are then skipped with their
            annotations (still an error when *no* entry names an image of ``root``: file names of another layout);
            a line saying so is appended here, and one for boxes reaching more than 1 px past their image (clipped,
            as always; many such boxes suggest ``[x0, y0, x1, y1]`` boxes written as ``bbox``), and one for the
            boxes not measured (always left out): crowd regions (``iscrowd`` 1; as in COCO's evaluation) and boxes of
            zero width or height.

    Returns:
        ``{file_name: (k, 4) float32 boxes}``, normalised ``x0, y0, x1, y1`` clipped to the
        image, for every image listed in ``images`` (``k`` may be 0).

    Raises:
        UserError: naming the file and the malformed entry.
    """
    path = Path(root) / ANNOTATIONS
    if not path.is_file():
        return None
    coco = _read_coco(path)
    absent: list[str] | None = None if notes is None else []
    sizes = _image_sizes(path, coco["images"], Path(root), set(filenames), absent)
    boxes: dict[Any, list[list[float]]] = {image_id: [] for image_id, entry in sizes.items() if entry is not None}
    found: dict[str, list[str]] = {"past": [], "crowd": [], "empty": []}  # boxes clipped / not measured
    for position, ann in enumerate(coco["annotations"]):
        image_id, box = _annotation(path, position, ann, sizes, found)
        if image_id in boxes and box is not None:  # else a box not measured, or of a skipped (absent) image
            boxes[image_id].append(box)
    if notes is not None:
        notes += _box_notes(root, absent or [], found, sum(len(b) for b in boxes.values()))
    return {
        name: np.asarray(boxes[image_id], dtype=np.float32).reshape(-1, 4)
        for image_id, (name, _, _) in ((image_id, sizes[image_id]) for image_id in boxes)
    }


def _read_coco(path: Path) -> dict[str, Any]:
    """The object of ``annotations.json``, with its ``images`` and ``annotations`` lists (``annotations`` left out:
    an image-info file, as COCO's test sets ship, lists no objects)."""
    try:
        coco = json.loads(path.read_text(encoding="utf-8-sig"))  # JSON is UTF-8; Windows tools write a BOM
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot be read ({error})") from None
    if not isinstance(coco, dict):
        raise UserError(f"{path}: expected an object with 'images' and 'annotations'; got {type(coco).__name__}")
    if "images" not in coco:
        raise UserError(
            f"{path}: no 'images' list (keys: {', '.join(map(repr, list(coco)[:5])) or 'none'}"
            f"{', ...' if len(coco) > 5 else ''}); the demo reads COCO detection"
            ' files: {"images": [{"id": 1, "file_name": "a.jpg"}, ...], "annotations": [{"image_id": 1, "bbox": '
            '[x, y, w, h]}, ...]}'
        )
    coco.setdefault("annotations", [])
    for key in ("images", "annotations"):
        if not isinstance(coco.get(key), list):
            raise UserError(f"{path}: '{key}' must be a list; got {_kind(coco.get(key))}")
    return coco


def _box_notes(root: Path, absent: list[str], found: dict[str, list[str]], measured: int) -> list[str]:
    """The log lines of :func:`load_user_annotations`: entries skipped, boxes clipped or not measured."""
    notes = []
    if absent:
        notes.append(f"{ANNOTATIONS} lists {len(absent)} image(s) that are not in {root} ({', '.join(absent[:3])}"
                     f"{', ...' if len(absent) > 3 else ''}): skipped, with their boxes")
    if found["past"]:
        notes.append(
            f"{ANNOTATIONS}: {len(found['past'])} of {measured} boxes reach more than 1 px past their image "
            f"(e.g. {found['past'][0]}) and were clipped to it; 'bbox' is [x, y, w, h] in pixels (boxes written as "
            "[x0, y0, x1, y1] look like this)"
        )
    if found["crowd"]:
        notes.append(f"{ANNOTATIONS}: {len(found['crowd'])} crowd annotation(s) (iscrowd 1, e.g. {found['crowd'][0]})"
                     " are not measured: one box around many objects, which COCO's evaluation ignores too")
    if found["empty"]:
        notes.append(f"{ANNOTATIONS}: {len(found['empty'])} box(es) of zero width or height (e.g. "
                     f"{found['empty'][0]}) are not measured: they cover no object")
    return notes


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _image_sizes(
    path: Path, images: list, root: Path, known: set[str], absent: list[str] | None = None
) -> dict[Any, tuple[str, int, int]]:
    """``{id: (file_name, width, height)}`` of the ``images`` entries, checked; ids of ``absent`` files map to
    ``None`` (see :func:`load_user_annotations`)."""
    sizes: dict[Any, Any] = {}
    first_absent: UserError | None = None
    entry_of: dict[str, tuple[int, Any]] = {}  # file_name -> (position, id) of its entry
    by_base: dict[str, list[str]] = {}
    for known_name in sorted(known):
        by_base.setdefault(posixpath.basename(known_name).lower(), []).append(known_name)
    for position, image in enumerate(images):
        where = f"{path}: images[{position}]"
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise UserError(f"{where} must be an object with 'id' and 'file_name' (a string); got {image!r:.80}")
        image_id, name = image["id"], image["file_name"].replace("\\", "/")
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            raise UserError(f"{where}: 'id' must be an integer or a string; got {image_id!r}")
        if image_id in sizes:
            raise UserError(f"{where}: id {image_id!r} is used twice")
        try:
            name = _match_file_name(where, name, root, known, by_base)
        except _NotInFolder as error:
            if absent is None:
                raise
            first_absent = first_absent or UserError(str(error))
            absent.append(name)
            sizes[image_id] = None
            continue
        if name in entry_of:  # one box list per file: the other entry's boxes would be dropped
            first, first_id = entry_of[name]
            raise UserError(
                f"{where}: file_name {name!r} is also images[{first}] (id {first_id!r}); give each image one entry"
                " and point all its annotations at that entry's id"
            )
        entry_of[name] = (position, image_id)
        with Image.open(root / name) as opened:
            (file_width, file_height), orientation = upright_size(opened), exif_orientation(opened)
        width, height = image.get("width", file_width), image.get("height", file_height)
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for v in (width, height)
        ):
            raise UserError(f"{where}: 'width' and 'height' must be positive finite numbers; got {width!r}, {height!r}")
        # Boxes are normalised by the declared size: a uniformly resized image keeps them, another shape does not.
        if abs(file_width / width - file_height / height) > 1.0 / width + 1.0 / height:
            raise UserError(f"{where}: width x height {width}x{height} is not the shape of {name} "
                            f"({file_width}x{file_height}{_shown_turned(orientation)}): its boxes would land elsewhere"
                            " on the image (was it cropped, padded or turned after labelling?); give the"
                            f"{' upright' if orientation != 1 else ''} image's size and boxes in its pixels")
        sizes[image_id] = (name, int(width), int(height))
    if first_absent is not None and len(entry_of) == 0:
        raise UserError(
            f"{first_absent}; none of the {len(images)} entries of 'images' names an image of the folder (file names"
            " of another layout?)"
        )
    return sizes


def _shown_turned(orientation: int) -> str:
    if orientation == 1:
        return ""
    return f" as shown: its EXIF orientation {orientation} turns or mirrors the stored pixels, as phones and viewers do"


def _match_file_name(where: str, name: str, root: Path, known: set[str], by_base: dict[str, list[str]]) -> str:
    """The image of DIR that ``file_name`` names: the path relative to DIR (``./`` allowed), else the one image
    whose path ends like ``file_name`` (a bare file name, or a path of the exporting tool's own root), in the same
    case or else in any case (names written on macOS or Windows, whose disks ignore case: ``IMG_1.jpg`` for
    ``IMG_1.JPG``). ``by_base``: the images by lower-case file name."""
    if name in known:
        return name
    normal = posixpath.normpath(name) if name else name
    if normal in known:
        return normal
    candidates = by_base.get(posixpath.basename(normal).lower(), [])
    for fold in (str, str.lower):  # the same case first
        found = [candidate for candidate in candidates if _ends_alike(fold(normal), fold(candidate))]
        if found:
            break
    if len(found) == 1:
        return found[0]
    if found:
        raise UserError(
            f"{where}: file_name {name!r} matches {len(found)} images ({', '.join(found[:3])}"
            f"{', ...' if len(found) > 3 else ''}); give its path relative to {root}"
        )
    raise _NotInFolder(f"{where}: file_name {name!r} is not an image under {root}")


def _ends_alike(path: str, other: str) -> bool:
    """Whether one path ends with the other (whole names: ``x/a.png`` and ``a.png``, not ``ba.png``)."""
    return path == other or path.endswith("/" + other) or other.endswith("/" + path)


class _NotInFolder(UserError):
    """A ``file_name`` that names no image of the folder (skipped when the caller allows absent files)."""


def _annotation(path: Path, position: int, ann: Any, sizes: dict, found: dict) -> tuple[Any, list[float] | None]:
    """``(image_id, normalised x0, y0, x1, y1)`` of one annotation, checked and clipped (noted in ``found["past"]``
    when it reached more than 1 px past the image); the box is ``None`` for a crowd region (``iscrowd`` 1) or a box of
    zero width or height (noted in ``found["crowd"]``, ``found["empty"]``): not measured, as in COCO's evaluation."""
    where = f"{path}: annotations[{position}]"
    if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann:
        raise UserError(f"{where} must be an object with 'image_id' and 'bbox'; got {ann!r:.80}")
    image_id, bbox = ann["image_id"], ann["bbox"]
    if image_id not in sizes:
        twin = next((known for known in sizes if str(known) == str(image_id)), None)  # 1 and "1" differ in JSON
        raise UserError(f"{where}: image_id {image_id!r} is not the id of any entry of 'images'" + (
            "" if twin is None else f" (an entry has id {twin!r}, a {type(twin).__name__}: write both ids alike)"))
    if sizes[image_id] is None:  # an image not in the folder (skipped): its boxes are not checked
        return image_id, None
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    ):
        raise UserError(f"{where}: 'bbox' must be [x, y, w, h], four finite numbers in pixels; got {bbox!r:.80}")
    x, y, w, h = (float(v) for v in bbox)
    if w < 0 or h < 0:
        raise UserError(f"{where}: 'bbox' [x, y, w, h] needs w > 0 and h > 0; got {bbox}")
    if w == 0 or h == 0 or ann.get("iscrowd") in (1, True):  # exporters write empty boxes for unlabelled points
        found["empty" if w == 0 or h == 0 else "crowd"].append(f"annotations[{position}] {bbox}")
        return image_id, None
    _, width, height = sizes[image_id]
    if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
        found["past"].append(f"annotations[{position}] {bbox} in a {width}x{height} image")
    box = [max(x, 0.0) / width, max(y, 0.0) / height, min(x + w, width) / width, min(y + h, height) / height]
    if box[0] >= box[2] or box[1] >= box[3]:
        raise UserError(f"{where}: 'bbox' {bbox} lies outside its {width}x{height} image")
    return image_id, box

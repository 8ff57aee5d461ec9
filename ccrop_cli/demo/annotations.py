"""``ccrop demo --data DIR``: the optional ``DIR/annotations.json`` (COCO boxes), read and checked.

It follows COCO detection conventions::

    {"images": [{"id": 0, "file_name": "cats/001.png", "width": 64, "height": 64}, ...],
     "annotations": [{"image_id": 0, "bbox": [x, y, w, h]}, ...]}

``bbox`` is in pixels (top-left corner, width, height); ``width``/``height`` may be left out
(they are then read from the image file; declared, whole numbers of pixels, they must have the file's shape, at any
scale: boxes are normalised by them); ``image_id`` is an integer or a string, ``iscrowd`` (optional) 0 or 1.
``file_name`` is the path relative to ``DIR``; a bare file name
(``"001.png"``) or a path with the exporting tool's own prefix (``"./cats/001.png"``,
``"export/images/cats/001.png"``) names the one image of ``DIR`` whose path it ends like (several: an error).
Every problem is a :class:`UserError` that names the file, the entry and what is wrong. ``ccrop demo`` skips the
entries (and boxes) of files that are not in ``DIR`` (a folder made of part of a labelled set) and says so; boxes
reaching past their image are clipped, and the demo names them. Sizes and boxes are those of the image shown
upright (:mod:`ccrop_cli.demo.upright`).
"""

from __future__ import annotations

import json
import math
import posixpath
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ccrop_cli.demo.upright import exif_orientation, upright_size
from ccrop_cli.errors import UserError, some_names

ANNOTATIONS = "annotations.json"


def load_user_annotations(
    root: Path, filenames: list[str], notes: list[str] | None = None
) -> dict[str, np.ndarray] | None:
    """Ground-truth boxes of ``root/annotations.json``, or ``None`` when the folder has none.

    Args:
        root: the image folder.
        filenames: its images (from :func:`~ccrop_cli.demo.listing.list_images`); every ``file_name`` must be one of
            them, unless:
        notes: a list (``ccrop demo``): ``images`` entries whose ``file_name`` is no image of ``root`` (a folder
            made of part of a labelled set, with the whole set's annotations) are then skipped with their
            annotations (still an error when *no* entry names an image of ``root``: file names of another layout);
            a line saying so is appended here, and one for boxes reaching more than 1 px past their image (clipped,
            as always; many such boxes suggest ``[x0, y0, x1, y1]`` boxes written as ``bbox``), and one for the
            boxes not measured (always left out): crowd regions (``iscrowd`` 1; as in COCO's evaluation) and boxes of
            zero width or height (also once normalised and stored as float32).

    Returns:
        ``{file_name: (k, 4) float32 boxes}``, normalised ``x0, y0, x1, y1`` clipped to the
        image, for every image listed in ``images`` (``k`` may be 0).

    Raises:
        UserError: naming the file and the malformed entry; or every box lying inside its image's first pixel
            (normalised boxes, as YOLO's, where COCO's pixels are expected).
    """
    path = Path(root) / ANNOTATIONS
    if not path.is_file():
        if path.exists():  # a folder: read as "no ground truth", the measure skipped without a word
            raise UserError(f"{path} is not a file (a folder?); {ANNOTATIONS} must be a COCO JSON file of the "
                            "images' boxes, or absent (no ground truth)")
        return None
    coco = _read_coco(path)
    absent: list[str] | None = None if notes is None else []
    sizes = _image_sizes(path, coco["images"], Path(root), set(filenames), absent)
    boxes: dict[Any, list[list[float]]] = {image_id: [] for image_id, entry in sizes.items() if entry is not None}
    found: dict[str, list[str]] = {"past": [], "crowd": [], "empty": [], "unit": []}  # clipped / not measured / tiny
    for position, ann in enumerate(coco["annotations"]):
        image_id, box = _annotation(path, position, ann, sizes, found)
        if image_id in boxes and box is not None:  # else a box not measured, or of a skipped (absent) image
            boxes[image_id].append(box)
    measured = sum(len(b) for b in boxes.values())
    if measured and len(found["unit"]) == measured:
        raise UserError(f"{path}: every 'bbox' lies inside its image's first pixel (e.g. {found['unit'][0]}): 'bbox' "
                        "is [x, y, w, h] in pixels; normalised boxes (YOLO's, or divided by the image size) must be "
                        "multiplied by the image's width and height")
    if notes is not None:
        notes += _box_notes(root, absent or [], found, measured)
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
        notes.append(f"{ANNOTATIONS} lists {len(absent)} image(s) that are not in {root} ({some_names(absent)}): "
                     "skipped, with their boxes")
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
        by_base.setdefault(_folded(posixpath.basename(known_name)), []).append(known_name)
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
        if not all(  # 0.5 (a normalised size) divided by zero as int(0.5); 48.5 was cut to 48
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 1
            and float(v).is_integer() for v in (width, height)
        ):
            raise UserError(f"{where}: 'width' and 'height' must be whole numbers of pixels >= 1; got {width!r}, "
                            f"{height!r}")
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
    ``IMG_1.JPG``), and in either Unicode form (macOS writes ``é`` as ``e`` + an accent, NFD; labelling tools write
    it as one letter, NFC). ``by_base``: the images by :func:`_folded` file name."""
    if name in known:
        return name
    normal = posixpath.normpath(name) if name else name
    if normal in known:
        return normal
    candidates = by_base.get(_folded(posixpath.basename(normal)), [])
    for fold in (_composed, _folded):  # the same case first
        found = [candidate for candidate in candidates if _ends_alike(fold(normal), fold(candidate))]
        if found:
            break
    if len(found) == 1:
        return found[0]
    if found:
        raise UserError(
            f"{where}: file_name {name!r} matches {len(found)} images ({some_names(found)}); "
            f"give its path relative to {root}"
        )
    raise _NotInFolder(f"{where}: file_name {name!r} is not an image under {root}")


def _composed(name: str) -> str:
    """``name`` in Unicode's composed form (NFC): one code point per accented letter, as most tools write names."""
    return unicodedata.normalize("NFC", name)


def _folded(name: str) -> str:
    """``name`` composed (NFC) and in lower case: how names are compared when nothing matches exactly."""
    return _composed(name).lower()


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
    if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):  # a list: unhashable; True matched id 1
        raise UserError(f"{where}: 'image_id' must be an integer or a string (the id of an entry of 'images'); "
                        f"got {image_id!r:.80}")
    if ann.get("iscrowd", 0) not in (0, 1):  # "1" was read as not crowd
        raise UserError(f"{where}: 'iscrowd' must be 0 or 1 (1: a crowd region, not measured); "
                        f"got {ann['iscrowd']!r:.80}")
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
    if not all(np.float32(box[i]) < np.float32(box[i + 2]) for i in (0, 1)):  # empty once stored as float32
        found["empty"].append(f"annotations[{position}] {bbox}")
        return image_id, None
    if x + w <= 1 and y + h <= 1:  # inside the image's first pixel: normalised, as YOLO's, if every box is
        found["unit"].append(f"annotations[{position}] {bbox}")
    return image_id, box

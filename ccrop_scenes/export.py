"""Write :class:`~ccrop_scenes.generator.Scenes` to disk and read boxes back.

Layout written by :func:`write_image_folder`::

    root/
        annotations.json            # COCO-style boxes, see below
        00_disc/00000.png
        00_disc/00013.png
        01_square/00001.png
        ...

The class folders sort alphabetically in label order, so
``torchvision.datasets.ImageFolder``, lightly's ``LightlyDataset`` and
MMPretrain's ``CustomDataset`` assign folder index ``c`` to label ``c``. The
file stem is the image's index in the ``Scenes``.

``annotations.json`` follows COCO detection conventions:

* ``images``: ``{"id", "file_name", "width", "height", "label"}``; ``id`` is
  the index in the ``Scenes``, ``file_name`` is relative to ``root`` with
  ``/`` separators.
* ``annotations``: ``{"id", "image_id", "category_id", "bbox", "area",
  "iscrowd"}``; ``bbox`` is ``[x, y, w, h]`` in pixels (top-left corner,
  integers because boxes are pixel-tight), ``area`` the object's pixel count.
* ``categories``: ``{"id", "name"}`` with ``id`` equal to the label
  (0-based, unlike the 1-based COCO dataset itself).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ccrop_scenes.generator import Scenes

__all__ = ["ANNOTATIONS_FILE", "load_annotations", "load_labels", "write_image_folder"]

#: Name of the COCO-style annotation file inside the image-folder root.
ANNOTATIONS_FILE = "annotations.json"

_FORMATS = {"png": "PNG", "bmp": "BMP", "jpg": "JPEG", "jpeg": "JPEG"}


def write_image_folder(
    scenes: Scenes, root: str | Path, *, image_format: str = "png", overwrite: bool = False
) -> Path:
    """Write ``scenes`` as an image folder with a COCO-style annotation file.

    Args:
        scenes: The dataset to write.
        root: Output directory; created if missing.
        image_format: ``"png"`` (lossless, default), ``"bmp"`` or
            ``"jpg"``/``"jpeg"`` (lossy: pixels will not round-trip).
        overwrite: Allow writing into a non-empty ``root``. Existing files
            with the same names are replaced; other files are left alone.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``image_format`` is not supported.
        FileExistsError: If ``root`` is non-empty and ``overwrite`` is false.
    """
    fmt = image_format.lower()
    if fmt not in _FORMATS:
        raise ValueError(f"image_format must be one of {sorted(_FORMATS)}, got {image_format!r}")
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"{root} is not empty; pass overwrite=True to write into it")
    for name in scenes.class_names:
        (root / name).mkdir(parents=True, exist_ok=True)

    file_names = _file_names(scenes, fmt)
    for image, file_name in zip(scenes.images, file_names):
        Image.fromarray(image).save(root / file_name, format=_FORMATS[fmt])
    coco = _coco_dict(scenes, file_names)
    (root / ANNOTATIONS_FILE).write_text(json.dumps(coco, indent=1))
    return root


def _file_names(scenes: Scenes, extension: str) -> list[str]:
    """Relative ``<class_name>/<index>.<extension>`` path of every image."""
    width = max(5, len(str(len(scenes) - 1)))
    return [
        f"{scenes.class_names[int(label)]}/{index:0{width}d}.{extension}"
        for index, label in enumerate(scenes.labels)
    ]


def _coco_dict(scenes: Scenes, file_names: list[str]) -> dict:
    """COCO-style ``{"images", "annotations", "categories"}`` for ``scenes``."""
    height, width = scenes.images.shape[1:3]
    scale = np.array([width, height, width, height], dtype=np.float64)
    images, annotations = [], []
    for index, (label, boxes, file_name) in enumerate(zip(scenes.labels, scenes.boxes, file_names)):
        images.append(
            {
                "id": index,
                "file_name": file_name,
                "width": int(width),
                "height": int(height),
                "label": int(label),
            }
        )
        pixel_areas = np.bincount(scenes.masks[index].ravel(), minlength=len(boxes) + 1)
        for slot, (box, category) in enumerate(zip(boxes, scenes.object_labels[index])):
            x0, y0, x1, y1 = (int(v) for v in np.rint(box * scale))
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": index,
                    "category_id": int(category),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": int(pixel_areas[slot + 1]),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": c, "name": name} for c, name in enumerate(scenes.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _read_coco(root: str | Path) -> dict:
    """Parse ``root/annotations.json``."""
    return json.loads((Path(root) / ANNOTATIONS_FILE).read_text())


def load_annotations(root: str | Path) -> dict[str, np.ndarray]:
    """Read the ground-truth boxes written by :func:`write_image_folder`.

    Args:
        root: The image-folder root holding ``annotations.json``.

    Returns:
        Mapping from ``file_name`` (relative to ``root``, ``/`` separators)
        to a ``float32`` ``(k, 4)`` array of boxes ``[x0, y0, x1, y1]``
        normalised to ``[0, 1]`` by image width and height, in annotation
        order (``k`` may be 0 for images without annotations).
    """
    coco = _read_coco(root)
    try:
        by_id = {image["id"]: image for image in coco["images"]}
        lists: dict[int, list[list[float]]] = {image_id: [] for image_id in by_id}
        for ann in coco["annotations"]:
            image = by_id[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            width, height = image["width"], image["height"]
            lists[ann["image_id"]].append([x / width, y / height, (x + w) / width, (y + h) / height])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise ValueError(
            f"{Path(root) / ANNOTATIONS_FILE} is not a file write_image_folder wrote "
            f"({type(error).__name__}: {error}); "
            "for other COCO files (width/height left out, './' names) use "
            "ccrop_cli.demo.user_data.load_user_annotations(root, file_names), which names the bad entry"
        ) from None
    return {
        by_id[image_id]["file_name"]: np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        for image_id, boxes in lists.items()
    }


def load_labels(root: str | Path) -> dict[str, int]:
    """Read the image labels written by :func:`write_image_folder`.

    Args:
        root: The image-folder root holding ``annotations.json``.

    Returns:
        Mapping from ``file_name`` (relative to ``root``) to the image label.
    """
    return {image["file_name"]: int(image["label"]) for image in _read_coco(root)["images"]}


def folder_command(generate: Callable[..., Scenes], prog: str, description: str, argv: list[str] | None = None) -> int:
    """``python -m <prog> OUT [--images N] [--size S] [--seed S] [--overwrite]``: write ``generate``'s scenes as an
    image folder with ``annotations.json`` (the command of each generated look). Bad values are one usage line that
    names the option (exit status 2)."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    add_out_argument(parser, "output folder (an image folder with annotations.json)")
    parser.add_argument("--images", type=count_option, default=400, help="scenes to write (default 400)")
    parser.add_argument("--size", type=size_option, default=64, help="image side in pixels, 16 to 1024 (default 64)")
    add_seed_argument(parser)
    add_overwrite_argument(parser)
    args = parser.parse_args(argv)
    check_output_folder(parser, args.out, args.overwrite)
    need, available = args.images * args.size**2 * 4, available_memory()  # RGB images and masks: 4 bytes a pixel
    if available is not None and need > available:  # else granted lazily, then filled until the system kills it
        parser.error(f"{args.images} images of {args.size} px need {need / 2**30:.1f} GiB of memory while they are "
                     f"generated, more than the {available / 2**30:.1f} GiB available here; use fewer --images or a "
                     "smaller --size")
    try:
        generate(1, image_size=args.size, seed=args.seed)  # the sizes' checks, before the long part
    except ValueError as error:
        parser.error(_too_small(generate, args.size, error))
    try:
        scenes = generate(args.images, image_size=args.size, seed=args.seed)
        write_image_folder(scenes, args.out, overwrite=True)
        left_out = _remove_empty_class_folders(Path(args.out), scenes.class_names)
    except (ValueError, OSError) as error:  # a folder that cannot be written: one usage line
        parser.error(str(error))
    except MemoryError as error:  # --size 1024 --images 100000: numpy's text names the array
        parser.error(f"{args.images} images of {args.size} px do not fit in memory ({error}); use fewer --images or "
                     "a smaller --size")
    print(f"wrote {args.images} images to {args.out}")
    if left_out:
        print(f"note: {len(left_out)} of {len(scenes.class_names)} classes drew no image ({', '.join(left_out)}); "
              "their empty folders are left out (image-folder readers such as Lightly's refuse a class folder "
              "without images), so such a reader numbers the classes present from 0; the labels in "
              f"{ANNOTATIONS_FILE} keep the generator's numbers. More --images draw every class")
    return 0


def _remove_empty_class_folders(root: Path, class_names: list[str]) -> list[str]:
    """Remove the class folders :func:`write_image_folder` made for classes that drew no image (``--images 6`` of
    10 classes); return their names. ``ccrop demo --data`` and torchvision's ``ImageFolder`` refuse such a folder."""
    empty = [name for name in class_names if (root / name).is_dir() and not any((root / name).iterdir())]
    for name in empty:
        (root / name).rmdir()
    return empty


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of ``/proc/meminfo``; else free pages), or
    None where neither can be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


MAX_SIZE = 1024
"""The largest ``--size`` of the commands (the ``ccrop`` commands' largest image side)."""


def count_option(text: str) -> int:
    """``--images``: an integer >= 1 (argparse type; its error names the option)."""
    return _int_option(text, 1, None, "a positive integer")


def size_option(text: str) -> int:
    """``--size``: an image side in pixels, 16 (the generator's smallest) to :data:`MAX_SIZE`."""
    return _int_option(text, 16, MAX_SIZE, f"an image side in pixels from 16 to {MAX_SIZE}")


def seed_option(text: str) -> int:
    """``--seed``: an integer >= 0."""
    return _int_option(text, 0, None, "an integer >= 0")


def out_option(text: str) -> Path:
    """``OUT``: a folder, ``~`` expanded (a quoted ``"~/x"`` made a folder named ``~``); an empty path (a script's
    ``"$OUT"`` with OUT unset) is refused: ``Path("")`` is the current folder, which ``--overwrite`` filled."""
    import argparse
    import os

    if not text:
        raise argparse.ArgumentTypeError("empty path (an unset variable in \"$OUT\"?); give a folder, e.g. scenes")
    return Path(os.path.expanduser(text))


def add_out_argument(parser: Any, help_text: str) -> None:
    """The commands' ``OUT`` (:func:`out_option`)."""
    parser.add_argument("out", type=out_option, help=help_text)


def add_seed_argument(parser: Any) -> None:
    """The commands' ``--seed`` (:func:`seed_option`)."""
    parser.add_argument("--seed", type=seed_option, default=0, help="random seed, an integer >= 0 (default 0)")


def _int_option(text: str, low: int, high: int | None, what: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {what}; got {value}")
    return value


def _too_small(generate: Callable[..., Scenes], size: int, error: ValueError) -> str:
    """The generator's refusal of ``--size`` in the command's words: the smallest size its objects fit."""
    for larger in range(size + 1, MAX_SIZE + 1):
        try:
            generate(1, image_size=larger, seed=0)
        except ValueError:
            continue
        return (f"--size {size} is too small for these scenes' smallest objects; the smallest --size taken is "
                f"{larger} ({str(error).split(';')[0]})")
    return f"--size {size}: {error}"


def add_overwrite_argument(parser: Any) -> None:
    """The commands' ``--overwrite`` (``write_image_folder``'s ``overwrite=True``)."""
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty OUT (files of the same names are replaced, others kept)")


def check_output_folder(parser: Any, out: str, overwrite: bool) -> None:
    """A command's OUT, before anything is generated: a usage error (``parser.error``, exit 2) for a file, or for a
    non-empty folder without ``--overwrite`` (the command line's words, not ``write_image_folder``'s)."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        parser.error(f"OUT {root} is a file, not a folder; give a folder (created if missing)")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        parser.error(f"OUT {root} is not empty; pass --overwrite to write into it (files of the same names are "
                     "replaced, others kept), or give a new folder")

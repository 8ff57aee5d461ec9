"""``ccrop demo --data DIR`` on large images: a resized copy of the folder, made once, that both frameworks read.

The demo trains on 32 px views and refreshes at 64 px, yet the frameworks' loaders decode every image at its
full size in every epoch and at every refresh: on a folder of photos (say 1024 x 768 JPEGs) most of the
demo's time went to decoding. :func:`resized_copy` writes, into ``OUT/data/resized``, each image whose
shortest side exceeds ``side`` (:func:`copy_side`: twice the larger of the view and refresh sizes, 128 px at
the defaults) shrunk uniformly to that shortest side, converted to RGB as Lightly's loader converts it
(PNG data, under the image's own name, so names and dataset-index order stay those of ``DIR``); smaller
images are copied byte for byte. A uniform resize keeps the normalised boxes of ``DIR/annotations.json``
(they are read from ``DIR``, against the original sizes). Images with an EXIF orientation (phone photos) are
written upright (``PIL.ImageOps.exif_transpose``, whatever their size), as they are shown and as
:mod:`ccrop_cli.demo.user_data` reads their boxes: OpenCV (MMPretrain) would turn them, PIL (Lightly) would not.
A folder with no image larger than ``side`` and none turned is used as it is (nothing is copied).
``OUT/data/resized.json`` records the source files (size, mtime) and ``side``: a later run into the same
``OUT`` reuses a matching copy. The copy is written into ``OUT/data/resized.partial`` and renamed once complete, so a
run stopped while copying (Ctrl-C) leaves no half copy: the next run makes it again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from PIL import Image, ImageOps

from ccrop_cli.demo.config import DemoConfig
from ccrop_cli.demo.upright import TURNING, exif_orientation
from ccrop_cli.errors import UserError

COPY_FOLDER = Path("data") / "resized"
MANIFEST = Path("data") / "resized.json"
SIDE_FACTOR = 2
"""The copy's shortest side, in multiples of ``max(image_size, refresh_size)``: a 20 % area crop of the copy
(RandomResizedCrop's smallest) still spans more than a view's side, so views are not upsampled."""


def copy_side(config: DemoConfig) -> int:
    """The shortest side of the resized copies for ``config``'s view and refresh sizes."""
    return SIDE_FACTOR * max(config.image_size, config.refresh_size)


def resized_copy(root: Path, names: list[str], out: Path, side: int) -> tuple[Path, int, float]:
    """The folder to train on: ``root`` itself, or a copy in ``out`` with the large images shrunk.

    Args:
        root: the user's image folder; names: its images (:func:`~ccrop_cli.demo.user_data.list_images`,
            already checked by :func:`~ccrop_cli.demo.user_data.check_images`).
        out: the demo's output folder; side: the copies' shortest side in pixels.

    Returns:
        ``(folder, resized, seconds)``: the folder (``root`` when no image's shortest side exceeds ``side`` and
        none has an EXIF orientation), how many images were shrunk, and the time the copy took (0 when reused or
        not made).

    Raises:
        UserError: ``out/data/resized`` exists but was not made by the demo (it is never removed then),
            ``root`` lies inside it, or the copy cannot be written.
    """
    sizes, turned = {}, set()
    for name in names:
        with Image.open(root / name) as image:
            sizes[name] = image.size
            if exif_orientation(image) != 1:
                turned.add(name)
    large = [name for name in names if min(sizes[name]) > side]
    if not large and not turned:
        return root, 0, 0.0
    folder, manifest_path = out / COPY_FOLDER, out / MANIFEST
    if root.resolve().is_relative_to(folder.resolve()):
        raise UserError(
            f"--data {root} lies inside {folder}, where the demo writes its resized copy of --data: give the "
            "original folder, or another --out"
        )
    manifest = {"source": str(root.resolve()), "side": side, "upright": True,  # copies before it were not
                "files": {name: _stamp(root / name) for name in names}}
    if folder.is_dir() and manifest_path.is_file():
        try:
            if json.loads(manifest_path.read_text()) == manifest:
                return folder, len(large), 0.0
        except (OSError, ValueError):
            pass
        manifest_path.unlink()
        shutil.rmtree(folder)
    elif folder.exists():
        raise UserError(
            f"--out {out}: {folder} exists but was not made by ccrop demo (no {MANIFEST.name} beside it); the demo "
            "writes its resized copy of --data there: remove it or choose another --out"
        )
    started = time.perf_counter()
    partial = folder.with_name(folder.name + ".partial")  # renamed once complete: a stopped copy is made again
    try:
        if partial.exists():
            shutil.rmtree(partial)
        for name in names:
            _copy(root / name, partial / name, sizes[name], side, name in turned)
        partial.rename(folder)
        manifest_path.write_text(json.dumps(manifest, indent=1))
    except OSError as error:  # a full disk, or OUT/data a file
        raise UserError(f"--out {out}: cannot write the resized copy of --data in {folder}: {error}") from None
    return folder, len(large), time.perf_counter() - started


def _stamp(path: Path) -> list[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _copy(source: Path, target: Path, size: tuple[int, int], side: int, turned: bool) -> None:
    """``source`` upright (when ``turned``: it has an EXIF orientation) and shrunk to shortest side ``side`` (RGB,
    PNG data), or copied as it is when neither."""
    target.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    if min(width, height) <= side and not turned:
        shutil.copyfile(source, target)
        return
    scale = min(1.0, side / min(width, height))
    new_size = (max(side, round(width * scale)), max(side, round(height * scale))) if scale < 1 else size
    with Image.open(source) as image:
        sideways = exif_orientation(image) in TURNING
        image.draft("RGB", new_size)  # a JPEG decodes at 1/2, 1/4 or 1/8 scale, no smaller than new_size
        upright = ImageOps.exif_transpose(image).convert("RGB")
    if scale < 1:
        upright = upright.resize(new_size[::-1] if sideways else new_size, Image.LANCZOS)
    upright.save(target, format="PNG", compress_level=1)

"""The dataset-index <-> file-name convention of an image folder, as the frameworks read it.

Index ``i`` of a box store is image ``i`` of the dataset that trained with it. The frameworks list a folder in
the same order, but not the same files:

- :func:`list_image_files`, torchvision ``ImageFolder`` and ``LightlyDataset``: the files with one of
  torchvision's extensions (``IMAGE_EXTENSIONS``, ``.tiff`` and ``.webp`` among them), hidden ones (``.name``)
  included.

  - with class sub-folders (``root/<class>/<image>``): class folders sorted by name, then the files of each
    folder (and its sub-folders) sorted by path;
  - without sub-folders (``root/<image>``): ``LightlyDataset`` order, files sorted by name.

- :func:`list_mmpretrain_files`, MMPretrain ``CustomDataset(data_root=root)`` (no ``ann_file``): only the files
  with one of its default extensions (``MMPRETRAIN_EXTENSIONS``: no ``.tiff``, no ``.webp``), and none whose
  name starts with ``.`` (mmengine's folder listing skips hidden files; it searches hidden folders).

  - ``with_label=True`` (its default; class sub-folders, each folder searched recursively): the order above;
  - ``with_label=False``: every file under ``root``, sub-folders included, sorted by path.

On a folder with class sub-folders (or a flat one, with ``with_label=False``) that holds neither ``.tiff`` /
``.webp`` files nor hidden files, the two lists are the same. :func:`mmpretrain_listings` gives the lists an
MMPretrain run may have trained on; the ``images`` digest its ``ContrastiveCropHook`` saves tells which.

File names are relative to ``root`` with ``/`` separators, as ``LightlyDataset.get_filenames()``
returns them and as :func:`ccrop_cli.output.box_json.export_boxes` keys them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ccrop_cli.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""torchvision's ``IMG_EXTENSIONS`` (lower case; matched case-insensitively)."""

MMPRETRAIN_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif")
"""MMPretrain ``CustomDataset``'s default ``extensions`` (``mmpretrain/datasets/custom.py``, mmpretrain 1.x; also
``ImageNet.IMG_EXTENSIONS``), matched case-insensitively: torchvision's without ``.tiff`` and ``.webp``. Copied
here so that listing a folder imports no mmpretrain."""


def list_image_files(root: str | Path) -> list[str]:
    """The image files of ``root`` in dataset-index order, as torchvision ``ImageFolder`` and ``LightlyDataset``
    list them (see the module docstring).

    Raises:
        UserError: (a ``ValueError``) if ``root`` is not a directory or holds no image files.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder {str(root)!r} is not a directory")
    class_dirs = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    files: list[str] = []
    if class_dirs:
        for class_dir in class_dirs:
            found = []
            for folder, _dirs, names in sorted(os.walk(root / class_dir, followlinks=True)):
                found += [Path(folder, name) for name in sorted(names) if is_image(name)]
            files += sorted(path.relative_to(root).as_posix() for path in found)
    else:
        files = sorted(entry.name for entry in os.scandir(root) if entry.is_file() and is_image(entry.name))
    if not files:
        raise UserError(
            f"image folder {str(root)!r} holds no images with extensions {', '.join(IMAGE_EXTENSIONS)}"
        )
    return files


def list_mmpretrain_files(root: str | Path, *, with_label: bool = True,
                          extensions: tuple[str, ...] = MMPRETRAIN_EXTENSIONS) -> list[str]:
    """The image files of ``root`` in dataset-index order as MMPretrain ``CustomDataset(data_root=root,
    with_label=with_label, extensions=extensions)`` lists them without an ``ann_file`` (its ``get_samples`` over
    mmengine's ``LocalBackend.list_dir_or_file``; see the module docstring); empty where it finds none (it raises).

    Raises:
        UserError: (a ``ValueError``) if ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder {str(root)!r} is not a directory")
    extensions = tuple(extension.lower() for extension in extensions)

    def valid(names: Iterator[str]) -> list[str]:
        return [name for name in sorted(names) if name.lower().endswith(extensions)]

    if not with_label:
        return [Path(name).as_posix() for name in valid(_mmengine_files(str(root), str(root)))]
    # find_folders: every folder of root, hidden ones included (mmengine skips hidden *files* only)
    class_dirs = sorted(entry.name for entry in os.scandir(root) if _mmengine_kind(entry) == "dir")
    return [Path(class_dir, name).as_posix() for class_dir in class_dirs
            for name in valid(_mmengine_files(str(root / class_dir), str(root / class_dir)))]


def mmpretrain_listings(root: str | Path) -> dict[str, list[str]]:
    """The lists of ``root``'s images an MMPretrain run may have trained on, by how its dataset read the folder,
    the most likely first: ``CustomDataset`` with its default extensions (``with_label`` True, then False), the
    torchvision / Lightly list (``ccrop demo --framework mmpretrain`` hands ``CustomDataset`` that list as its
    ``ann_file``), and ``CustomDataset`` with torchvision's extensions (a config that adds ``.tiff`` / ``.webp``).
    Lists of no image are left out."""
    try:
        torchvision = list_image_files(root)
    except UserError:
        torchvision = []
    listings = {
        "MMPretrain CustomDataset": list_mmpretrain_files(root),
        "CustomDataset(with_label=False)": list_mmpretrain_files(root, with_label=False),
        "torchvision ImageFolder / Lightly": torchvision,
        "CustomDataset(extensions=torchvision's)": list_mmpretrain_files(root, extensions=IMAGE_EXTENSIONS),
        "CustomDataset(with_label=False, extensions=torchvision's)":
            list_mmpretrain_files(root, with_label=False, extensions=IMAGE_EXTENSIONS),
    }
    return {label: files for label, files in listings.items() if files}


def is_image(name: str) -> bool:
    """Whether file ``name`` has one of ``IMAGE_EXTENSIONS`` (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _mmengine_kind(entry: os.DirEntry) -> str | None:
    """``"file"``, ``"dir"`` or ``None`` (skipped) for ``entry``, as mmengine's ``list_dir_or_file`` sorts it: a
    hidden file is skipped, a hidden folder is not; links are followed."""
    if not entry.name.startswith(".") and entry.is_file():
        return "file"
    return "dir" if os.path.isdir(entry.path) else None


def _mmengine_files(folder: str, root: str) -> Iterator[str]:
    """The files under ``folder``, relative to ``root``, as mmengine's ``list_dir_or_file(list_dir=False,
    recursive=True)`` yields them."""
    for entry in os.scandir(folder):
        kind = _mmengine_kind(entry)
        if kind == "file":
            yield os.path.relpath(entry.path, root)
        elif kind == "dir":
            yield from _mmengine_files(entry.path, root)

"""The dataset-index <-> file-name convention of an image folder, as the frameworks read it.

Index ``i`` of a box store is image ``i`` of the dataset that trained with it. For a folder:

- with class sub-folders (``root/<class>/<image>``): torchvision ``ImageFolder`` order, which
  ``LightlyDataset`` and MMPretrain ``CustomDataset`` share: class folders sorted by name,
  then the files of each folder (and its sub-folders) sorted by path;
- without sub-folders (``root/<image>``): ``LightlyDataset`` order, files sorted by name.

File names are relative to ``root`` with ``/`` separators, as ``LightlyDataset.get_filenames()``
returns them and as :func:`ccrop_cli.output.box_json.export_boxes` keys them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ccrop_cli.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""torchvision's ``IMG_EXTENSIONS`` (lower case; matched case-insensitively)."""


def list_image_files(root: str | Path) -> list[str]:
    """The image files of ``root`` in dataset-index order (see the module docstring).

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


def is_image(name: str) -> bool:
    """Whether file ``name`` has one of ``IMAGE_EXTENSIONS`` (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)

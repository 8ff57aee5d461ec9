"""``ccrop demo --data DIR``: the images of the user's folder, listed as both frameworks list them.

The folder is ``DIR/<class>/<image>`` or flat (``DIR/<image>``); file names are relative to
``DIR`` with ``/`` separators, in the order both frameworks list them (class folders searched recursively).
Only the files both frameworks read are images here (``IMAGE_EXTENSIONS``, torchvision's list; a ``.gif``
is ignored, as Lightly ignores it). :func:`list_images` refuses, before any training, a layout the frameworks
would read otherwise than it looks (see its ``Raises``).
"""

from __future__ import annotations

import os
import posixpath
import shlex
import stat
from collections import Counter
from pathlib import Path

from ccrop_cli.errors import UserError, some_names
from ccrop_cli.output.image_folder import IMAGE_EXTENSIONS, is_image, list_image_files

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
            link to one of its own folders or an ancestor (the frameworks follow links: its images would repeat), an
            image name that links to a missing file (Lightly lists it, then fails on it) or is a named pipe or device
            (reading it would wait for ever), or macOS metadata files with an image name (AppleDouble ``._*`` files,
            a ``__MACOSX`` folder: the frameworks would list them as images), or a Synology ``@eaDir`` folder (its
            thumbnails would be listed as images, or it as a class).
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
            f"--data {root}: holds {len(top)} images at the top ({some_names(top)}) and sub-folders "
            f"({some_names(folders)}); Lightly and MMPretrain"
            " read a folder either flat (DIR/<image>) or by class (DIR/<class>/<image>) and would drop the top-level"
            " images: move them into a sub-folder, or the sub-folders out"
        )


def _check_walk(root: Path) -> None:
    """Synology ``@eaDir`` folders, links to one of the folder's own ancestors or to another folder of ``root``,
    image names that are pipes or devices or link to missing files, video files, macOS metadata files."""
    videos: list[str] = []
    broken: list[str] = []
    special: list[str] = []
    apple: list[str] = []
    synology: list[str] = []
    top = os.path.realpath(root)
    for folder, dirs, names in os.walk(root):  # links not followed here; the frameworks follow them
        synology += [Path(folder, "@eaDir").relative_to(root).as_posix()] if "@eaDir" in dirs else []
        videos += [Path(folder, n).relative_to(root).as_posix() for n in names if n.lower().endswith(VIDEO_EXTENSIONS)]
        for name in filter(is_image, names):  # one stat each: a link to nothing, a pipe or device (open() waits)
            kind = _file_kind(Path(folder, name))
            if kind is None or not stat.S_ISREG(kind):
                (broken if kind is None else special).append(Path(folder, name).relative_to(root).as_posix())
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
            if link.is_symlink() and (target == top or target.startswith(top + os.sep)):  # a folder of DIR itself
                raise UserError(
                    f"--data {root}: {link.relative_to(root).as_posix()} links to "
                    f"{Path(target).relative_to(top).as_posix()}, a folder of DIR itself; the frameworks follow links, "
                    "so its images would be listed twice (or, with a link back, again and again): remove the link"
                )
    if synology:
        raise UserError(
            f"--data {root}: {len(synology)} Synology @eaDir folder(s): {some_names(sorted(synology))}; a Synology NAS"
            " writes thumbnails (SYNOPHOTO_THUMB_*.jpg) into them, which both frameworks would list as images (or as a"
            f" class). Delete them: find {shlex.quote(str(root))} -name @eaDir -type d -prune -exec rm -r {{}} +"
        )
    if special:
        raise UserError(
            f"--data {root}: {len(special)} image name(s) are not regular files (a named pipe, socket or device): "
            f"{some_names(sorted(special))}; reading one would wait for ever: remove them"
        )
    if broken:
        raise UserError(
            f"--data {root}: {len(broken)} link(s) to missing files: {some_names(sorted(broken))};"
            " Lightly lists them as images (and fails on them in a worker):"
            " remove them or restore their targets"
        )
    _refuse_apple_double(root, sorted(apple))
    videos.sort()
    if videos:
        raise UserError(
            f"--data {root}: holds {len(videos)} video file(s) "
            f"({some_names(videos)});"
            " Lightly reads a folder with any video in it as a video dataset of frames (which needs PyAV and"
            " torchvision<=0.25), not as images: move them out of the folder"
        )


def _file_kind(path: Path) -> int | None:
    """``st_mode`` of what ``path`` names (links followed), or ``None`` for a link to a missing file."""
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


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
            f"--data {root}: {len(apple)} macOS metadata file(s) with an image name: {some_names(apple)};"
            " a Mac writes one ('._' + the file's name) beside each file it"
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

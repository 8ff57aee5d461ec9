"""``ccrop viz``: draw the box sets and sampled view pairs of a user's image folder to PNG files.

::

    ccrop viz path/to/images --boxes boxes.json --out viz/            # from exported boxes (ccrop demo's too)
    ccrop viz path/to/images --checkpoint last.ckpt --out viz/        # from a training checkpoint

Box-store index ``i`` is file ``i`` of :func:`ccrop_cli.output.image_folder.list_image_files`
(torchvision ``ImageFolder`` / ``LightlyDataset`` order), or, for the MM adapter's checkpoint (its
``ContrastiveCropHook`` saves ``checkpoint['ccrop']``), file ``i`` as MMPretrain's ``CustomDataset`` lists the folder
(:func:`~ccrop_cli.output.image_folder.mmpretrain_listings`: without ``.tiff`` / ``.webp`` and hidden files; the
``images`` digest the hook saves picks the list it trained on). A JSON file keyed by file name
(``ccrop_cli.output.box_json``) is matched by name; a checkpoint (or a JSON keyed by index, as
``export_boxes(store, None, path)`` writes) must hold one box set per image of the folder, and where it holds an
``images`` digest, the folder's list must match it.
A checkpoint is read with ``torch.load(weights_only=True)`` (see
:func:`~ccrop_cli.output.box_json.load_store_from_checkpoint`). Bad input (a missing, malformed
or foreign file, a bad option) ends with one line ``ccrop viz: error: ...`` and exit status 2. When the folder
holds an ``annotations.json`` (COCO boxes, read as ``ccrop demo --data`` reads them), ground-truth boxes are
drawn too.

Images with an EXIF orientation (phone photos) are drawn as the box store saw them, which depends on the loader
that trained it: ``--exif stored`` (Lightly reads the stored pixels with PIL) or ``--exif upright`` (MMPretrain
reads JPEG and PNG files upright with OpenCV, as viewers show them; OpenCV ignores a WebP file's orientation, so
draw those ``stored``). Without ``--exif``, such images among those drawn are a one-line error that says so; the
ground truth (upright, as ``annotations.json`` gives it) is drawn in either frame.

Writes ``box_sets.png`` (the first ``--images`` images with their boxes) and
``pairs_<n>.png`` for the first ``--pair-images`` images: ``--pairs`` view pairs of
RandomResizedCrop and of ``--strategy`` with the stored boxes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ccrop_cli.demo.upright import boxes_to_stored, orientations, upright_size
from ccrop_cli.demo.user_data import load_user_annotations
from ccrop_cli.errors import UserError, some_names
from ccrop_cli.experiment.pair_quality import sample_view_pairs
from ccrop_cli.experiment.strategies import STRATEGIES, get_strategy
from ccrop_cli.option_types import check_alpha, check_output_folder, check_outside, seed, user_path
from ccrop_cli.output.box_json import (
    CheckpointBoxes, check_images, import_boxes, read_checkpoint_boxes,
)
from ccrop_cli.output.image_folder import MMPRETRAIN_EXTENSIONS, list_image_files, mmpretrain_listings
from ccrop_cli.output.pictures import draw_box_sets, draw_view_pairs
from ccrop_plugins import BoxStore, images_digest


LIMITS = {"pairs": 16, "images": 256, "pair_images": 64, "display_size": 1024}
"""Upper bounds of the drawing options: pictures a person can look at (``--pairs 2000`` drew for minutes a PNG
4,000 panels wide; ``--images 10000`` a grid taller than matplotlib's 65,536 pixels; ``--display-size 20000`` held
1.2 GB per image)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_folder", type=user_path, help="root/<class>/<image> or root/<image>")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--boxes", type=user_path, help="a box JSON file written by export_boxes")
    source.add_argument(
        "--checkpoint", type=user_path,
        help="a checkpoint holding a BoxStore.state_dict(), e.g. the Lightning callback's or the mm hook's "
        "(the folder then listed as MMPretrain's CustomDataset lists it: no .tiff, .webp or hidden files) "
        "(read with torch.load(weights_only=True): tensors and numbers only, never code)",
    )
    parser.add_argument("--out", type=user_path, required=True, help="output folder for the PNG files")
    parser.add_argument("--pairs", type=int, default=3,
                        help=f"view pairs drawn per strategy and image (default 3, at most {LIMITS['pairs']})")
    parser.add_argument(
        "--strategy", default="multi", choices=[name for name in STRATEGIES if name != "rrc"],
        help="the ContrastiveCrop strategy drawn beside RandomResizedCrop (default multi)",
    )
    parser.add_argument("--images", type=int, default=16,
                        help=f"images in box_sets.png (default 16, at most {LIMITS['images']})")
    parser.add_argument("--pair-images", type=int, default=4,
                        help=f"images that get a pairs_<n>.png (default 4, at most {LIMITS['pair_images']})")
    parser.add_argument("--display-size", type=int, default=128,
                        help="side the images are resized to for drawing "
                             f"(default 128, at most {LIMITS['display_size']})")
    parser.add_argument("--alpha", type=float, default=0.6, help="Beta(alpha, alpha) of the crop centre")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the view pairs drawn")
    parser.add_argument(
        "--exif", choices=("stored", "upright"), default=None,
        help="images with an EXIF orientation (phone photos): draw their stored pixels, as Lightly (PIL) trains on "
        "them, or upright, as MMPretrain (OpenCV) reads JPEG and PNG; needed only when the images drawn have one",
    )


def load_files_and_store(folder: Path, boxes: Path | None, checkpoint: Path | None) -> tuple[list[str], BoxStore]:
    """The image files of ``folder`` in the index order of the box store (``--boxes`` or ``--checkpoint``), and the
    store: the torchvision / Lightly list, or for an mm hook's checkpoint MMPretrain's (:func:`_mm_hook_files`)."""
    saved = None if checkpoint is None else read_checkpoint_boxes(checkpoint)
    if saved is not None and saved.mm_hook:  # listed as its dataset listed the folder, not as torchvision does
        files, store = _mm_hook_files(folder, saved, checkpoint), saved.store
    else:
        files = list_image_files(folder)
        if saved is None:
            store = _json_store(files, boxes)
        else:
            check_images(checkpoint, saved, files)
            store = saved.store
    if len(store) != len(files):
        raise UserError(
            f"the box store holds {len(store)} samples but {folder} has {len(files)} images; "
            "was it saved for another dataset (or another file order)?"
        )
    return files, store


def _json_store(files: list[str], boxes: Path) -> BoxStore:
    """The box store for ``files`` (dataset order) from a JSON file of :mod:`~ccrop_cli.output.box_json`."""
    store = import_boxes(boxes, keys=files)
    samples = json.loads(Path(boxes).read_text()).get("samples", {})
    missing = sum(name not in samples and str(index) not in samples for index, name in enumerate(files))
    if missing:  # drawn without boxes, as if the localizer had found none
        print(f"ccrop viz: {missing} of {len(files)} images have no entry in {boxes} (drawn without boxes)")
    return store


def _mm_hook_files(folder: Path, saved: CheckpointBoxes, checkpoint: Path) -> list[str]:
    """The files of ``folder`` in the index order of the mm hook's store ``saved``: the list of
    :func:`mmpretrain_listings` whose digest is the saved ``images`` one (without one, the first of the store's
    count); a one-line :class:`UserError` when none is."""
    listings = mmpretrain_listings(folder)
    count = len(saved.store)
    if saved.images is None:
        found = next((files for files in listings.values() if len(files) == count), None)
    else:
        found = next((files for files in listings.values()
                      if len(files) == count and images_digest(files) == saved.images), None)
    if found is not None:
        return found
    mm, unlabelled, torchvision = (len(listings.get(label, ())) for label in
                                   ("MMPretrain CustomDataset", "CustomDataset(with_label=False)",
                                    "torchvision ImageFolder / Lightly"))
    listed = (f"{folder} has {mm} images as MMPretrain's CustomDataset lists it (extensions "
              f"{', '.join(MMPRETRAIN_EXTENSIONS)}, any case; no hidden files"
              + ("" if unlabelled == mm else f"; {unlabelled} with with_label=False")
              + f"), {torchvision} as torchvision / Lightly do")
    if saved.images is None or all(len(files) != count for files in listings.values()):
        raise UserError(
            f"the box store of the mm hook's checkpoint {checkpoint} holds {count} samples but {listed}; "
            f"was it saved for another dataset?{_CONCAT_HINT}"
        )
    raise UserError(
        f"the boxes in the mm hook's checkpoint {checkpoint} were made on another list of {count} images: {listed}, "
        "and no list of them is the one it trained on (its images digest): other files or another order; each box "
        f"would be drawn on another image; give the folder it was trained on{_CONCAT_HINT}"
    )


# A ConcatDataset run's store holds its parts' images one after the other (docs/mmpretrain.md).
_CONCAT_HINT = (" (a run on a ConcatDataset of folders: give a folder that lists their images in the parts' order, "
                "such as their parent folder when the parts are its subfolders in name order)")


def run(args: argparse.Namespace) -> int:
    for name, most in LIMITS.items():
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer; got {getattr(args, name)}")
        if getattr(args, name) > most:
            raise UserError(f"--{name.replace('_', '-')} must be at most {most} (a picture to look at); "
                            f"got {getattr(args, name)}")
    check_alpha(args.alpha)
    check_outside(args.out, "--out", args.image_folder, f"the image folder {args.image_folder}",
                  "the PNG files would be read as images of the folder (one more class) by the next ccrop viz and by "
                  "training; choose an --out outside it")
    if args.out.exists() and not args.out.is_dir():  # named first, as before; a missing --out is created below
        check_output_folder(args.out)
    if (args.out / "report.json").is_file():  # a demo's folder: its box_sets.png was replaced without a word
        raise UserError(f"--out {args.out} holds a ccrop demo's output ({args.out / 'report.json'}); ccrop viz would "
                        "overwrite its box_sets.png: choose another --out")
    strategy = get_strategy(args.strategy)
    files, store = load_files_and_store(args.image_folder, args.boxes, args.checkpoint)
    upright, turned = _exif_frame(args, files)
    # Read as ccrop demo --data reads it (width/height optional, './' or bare file names, named errors): the generated
    # scenes' reader raised KeyError: 'width' on the demo's documented format.
    annotations = load_user_annotations(args.image_folder, files)
    # After the inputs are read: a refused box file left an empty --out behind.
    check_output_folder(args.out)  # a file of that name was mkdir's FileExistsError traceback

    shown = files[: args.images]
    images = np.stack([_display_image(args.image_folder, name, args.display_size, upright) for name in shown])
    predicted = [_boxes_of(store, index) for index in range(len(shown))]
    truth = None if annotations is None else [_truth(annotations, name, turned, upright) for name in shown]
    truth = None if truth is None else [np.zeros((0, 4)) if boxes is None else boxes for boxes in truth]
    written = [draw_box_sets(images, predicted, truth, args.out / "box_sets.png", titles=shown)]

    generator = torch.Generator().manual_seed(args.seed)
    for index, name in enumerate(files[: args.pair_images]):
        picture = _display_image(args.image_folder, name, args.display_size, upright)
        with Image.open(args.image_folder / name) as opened:
            width, height = upright_size(opened) if upright else opened.size
        size = (height, width)
        box_set = store.get(index)
        pairs = {}
        for row_strategy in (get_strategy("rrc"), strategy):
            views_a, views_b, _ = sample_view_pairs(row_strategy, size, [box_set], args.pairs, generator, args.alpha)
            pairs[row_strategy.label] = list(zip(views_a.tolist(), views_b.tolist()))
        written.append(
            draw_view_pairs(
                picture,
                pairs,
                args.out / f"pairs_{index}.png",
                ground_truth=None if annotations is None else _truth(annotations, name, turned, upright),
            )
        )
    _remove_stale_pairs(args.out, min(args.pair_images, len(files)))
    print(f"ccrop viz: {len(files)} images, box store version {store.version}; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


def _remove_stale_pairs(out: Path, count: int) -> None:
    """Remove an earlier run's ``pairs_<n>.png`` for ``n >= count``: left beside this run's, they passed for its
    pictures (a rerun with fewer ``--pair-images``)."""
    for path in out.glob("pairs_*.png"):
        number = path.stem.removeprefix("pairs_")
        if number.isdigit() and int(number) >= count and path.is_file():
            path.unlink()


def _exif_frame(args: argparse.Namespace, files: list[str]) -> tuple[bool, dict[str, int]]:
    """Whether to draw the images upright (``--exif upright``), and ``{name: EXIF orientation}`` of the images drawn
    that have one; without ``--exif`` they are refused: the box store's frame depends on the loader that trained."""
    turned = orientations(args.image_folder, files[: max(args.images, args.pair_images)])
    if turned and args.exif is None:
        named = some_names([f"{name} (orientation {value})" for name, value in turned.items()])
        raise UserError(
            f"{len(turned)} of the images to draw carry an EXIF orientation ({named})"
            "; the box store's boxes are in the pixels its training read: the stored ones with Lightly (PIL), the"
            " upright ones with MMPretrain (OpenCV). Say which to draw: --exif stored or --exif upright"
        )
    return args.exif == "upright", turned


def _truth(annotations: dict[str, np.ndarray], name: str, turned: dict[str, int], upright: bool) -> np.ndarray | None:
    """The ground-truth boxes of ``name`` (upright, as ``annotations.json`` gives them) in the frame drawn."""
    boxes = annotations.get(name)
    if boxes is None or upright or name not in turned:
        return boxes
    return boxes_to_stored(boxes, turned[name])


def _display_image(folder: Path, name: str, size: int, upright: bool = False) -> np.ndarray:
    """Image ``name`` of ``folder`` in RGB as training sees it (:func:`ccrop_lightly.to_rgb`: 16-bit images scaled by
    1/257, 32-bit float ones refused; turned by its EXIF orientation when ``upright``), ``size x size`` pixels; a
    one-line :class:`UserError` for what cannot be drawn."""
    from ccrop_lightly import to_rgb  # the Lightly adapter's conversion, imported only when images are drawn

    try:
        with Image.open(folder / name) as image:
            try:
                rgb = to_rgb(ImageOps.exif_transpose(image) if upright else image)
            except ValueError as error:
                raise UserError(f"cannot draw image {name} of {folder}: {error}") from None
            # Small images (generated scenes) keep their pixels; photos are shrunk smoothly.
            resample = Image.NEAREST if max(rgb.size) <= size else Image.BILINEAR
            return np.asarray(rgb.resize((size, size), resample))
    except (OSError, SyntaxError, ValueError) as error:  # truncated, not an image
        if isinstance(error, UserError):
            raise
        raise UserError(f"cannot read image {name} of {folder}: {type(error).__name__}: {error}") from None


def _boxes_of(store: BoxStore, index: int) -> np.ndarray:
    box_set = store.get(index)
    return np.zeros((0, 4)) if box_set is None else box_set[0].numpy()

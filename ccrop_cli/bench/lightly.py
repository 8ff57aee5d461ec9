"""``ccrop bench lightly``: the Lightly adapter's speed, measured side by side in one run.

1. DataLoader throughput (images/s) of ``CCropCollate(CCropSimCLRTransform)`` on a filled box
   store vs lightly's ``SimCLRTransform`` + ``MultiViewCollate`` on the same images, with
   the same batch size and persistent workers (target: ratio >= 0.95).
2. The refresh pass (core ``refresh_boxes``: forward, heatmaps, localizer, store update)
   vs a bare ``torch.no_grad()`` forward loop of the same feature extractor over the same
   loader (target: ratio >= 0.9).

Both sides alternate epoch by epoch (ours, theirs, theirs, ours, ...), ``--repeats`` timed
epochs each, after one untimed epoch that starts the workers. Each ratio is the median of the
per-round speed ratios with their interquartile range, in wall time and in CPU time (this
process and its DataLoader workers) side by side (:mod:`ccrop_cli.bench.rounds`); throughputs
are each side's median epoch in wall time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from ccrop_cli.errors import UserError
from ccrop_cli.option_types import check_alpha, positive_int, side, threads, user_path, view_side, workers
from ccrop_plugins import BoxSets, BoxStore, refresh_boxes

from .rounds import Ratio, Timings, interleaved


IMAGES, IMAGE_SIZE = 512, 64
"""The generated scenes' count and side when no ``--folder`` is given."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", type=user_path, help="an image folder to use (default: generate scenes)")
    parser.add_argument("--images", type=positive_int, default=None, help=f"generated images (default {IMAGES})")
    parser.add_argument("--image-size", type=side, default=None,
                        help=f"side of the generated images (default {IMAGE_SIZE})")
    parser.add_argument("--input-size", type=view_side, default=32,
                        help="view and refresh resolution, 16 to 1024 (default 32)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per batch, both sides")
    parser.add_argument("--workers", type=workers, default=2,
                        help="DataLoader workers for both sides (default 2)")
    parser.add_argument("--repeats", type=positive_int, default=7,
                        help="timed epochs per side, interleaved (default 7)")
    parser.add_argument("--threads", type=threads, default=None,
                        help="torch threads in the main process (default: torch's own)")
    parser.add_argument("--alpha", type=float, default=0.1, help="Beta(alpha, alpha) of the crop centre")


def _write_scenes(root: Path, count: int, size: int) -> dict[str, "torch.Tensor"]:
    """Write generated scenes as an image folder; return each file's ground-truth boxes (k, 4)."""
    from PIL import Image

    from ccrop_scenes import generate_scenes

    scenes = generate_scenes(count, image_size=size, objects_per_image=(1, 3), object_area=(0.05, 0.15), seed=0)
    boxes = {}
    for index, (image, label) in enumerate(zip(scenes.images, scenes.labels)):
        name = f"{scenes.class_names[int(label)]}/{index:05d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / name)
        boxes[name] = torch.as_tensor(scenes.boxes[index])
    return boxes


def _side_by_side(ours: Callable[[], int], theirs: Callable[[], int], repeats: int) -> Timings:
    """Seconds per epoch of ``ours`` and ``theirs`` (wall, and CPU including the workers), interleaved."""
    return interleaved({"ours": ours, "theirs": theirs}, repeats, children=True)


def _drain(loader) -> Callable[[], int]:
    def run() -> int:
        count = 0
        for views, _, _ in loader:
            count += len(views[0])
        return count

    return run


def _cifar_resnet18() -> torch.nn.Module:
    import torchvision
    from torch import nn

    resnet = torchvision.models.resnet18(weights=None)
    resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    resnet.maxpool = nn.Identity()
    return resnet


def _check_arguments(args: argparse.Namespace) -> None:
    """``--alpha`` and ``--folder`` as one-line errors before any work (the folder read as ``ccrop demo --data``
    reads it)."""
    check_alpha(args.alpha)
    if args.folder is not None and (args.images is not None or args.image_size is not None):
        raise UserError("--images and --image-size size the generated scenes; they do not apply with --folder "
                        "(every image of the folder is used)")
    if args.folder is None:
        from ccrop_scenes import generate_scenes

        try:  # the generator's own size check, on one tiny scene
            generate_scenes(1, image_size=args.image_size or IMAGE_SIZE, objects_per_image=(1, 3),
                            object_area=(0.05, 0.15), seed=0)
        except ValueError as error:
            raise UserError(f"--image-size {args.image_size}: {error}") from None
    if args.folder is not None:
        from ccrop_cli.demo.image_checks import check_images
        from ccrop_cli.demo.user_data import list_images

        try:  # a truncated or fake image: one line now, not a DataLoader worker's traceback after the timing
            check_images(Path(args.folder), list_images(Path(args.folder)), upright=True)
        except UserError as error:
            raise UserError(str(error).replace("--data ", "--folder ", 1)) from None


def run(args: argparse.Namespace) -> int:
    from lightly.data import LightlyDataset

    _check_arguments(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        folder, true_boxes = args.folder, None
        if folder is None:
            folder = Path(scratch) / "scenes"
            true_boxes = _write_scenes(folder, args.images or IMAGES, args.image_size or IMAGE_SIZE)
        plain = LightlyDataset(str(folder))
        count = len(plain)
        print(f"ccrop bench lightly: {count} images from {folder}, input {args.input_size} px, "
              f"batch {args.batch_size}, {args.workers} workers, {args.repeats} timed epochs per side, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        store, refresh = _time_refresh(plain, args)  # also fills the store for the collate
        if true_boxes is not None:
            # An untrained ResNet finds whole-image boxes; the collate is timed on the
            # scenes' true object boxes (1 to 3 per image), as a trained model would give.
            names = plain.get_filenames()
            store.update(range(count), BoxSets.from_lists([true_boxes[name] for name in names]))
        summary = store.summary()
        collate = _time_collate(plain, folder, store, args)
    _print_results(count, refresh, collate, summary)
    return 0


def _loader_options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(batch_size=args.batch_size, shuffle=True, drop_last=False, num_workers=args.workers,
                persistent_workers=args.workers > 0)


def _time_refresh(plain: Any, args: argparse.Namespace) -> tuple[BoxStore, Timings]:
    """Refresh pass vs a bare no-grad forward over the same refresh loader."""
    from ccrop_lightly import feature_extractor, make_refresh_loader

    extractor = feature_extractor(_cifar_resnet18()).eval()
    store = BoxStore(len(plain))
    refresh_loader = make_refresh_loader(
        plain, args.input_size, batch_size=args.batch_size, num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )

    def bare_forward() -> int:
        seen = 0
        with torch.no_grad():
            for images, _ in refresh_loader:
                extractor(images)
                seen += len(images)
        return seen

    def refresh() -> int:
        return refresh_boxes(extractor, refresh_loader, store, progress=False).images

    return store, _side_by_side(refresh, bare_forward, args.repeats)


def _time_collate(plain: Any, folder: Path, store: BoxStore, args: argparse.Namespace) -> Timings:
    """CCropCollate(CCropSimCLRTransform) vs lightly's SimCLRTransform + MultiViewCollate."""
    from lightly.data import LightlyDataset, MultiViewCollate
    from lightly.transforms import SimCLRTransform
    from torch.utils.data import DataLoader

    from ccrop_lightly import CCropCollate, CCropSimCLRTransform

    ours = DataLoader(
        plain, collate_fn=CCropCollate(CCropSimCLRTransform(input_size=args.input_size, alpha=args.alpha), store,
                                       dataset=plain),
        **_loader_options(args),
    )
    theirs = DataLoader(
        LightlyDataset(str(folder), transform=SimCLRTransform(input_size=args.input_size)),
        collate_fn=MultiViewCollate(), **_loader_options(args),
    )
    return _side_by_side(_drain(ours), _drain(theirs), args.repeats)


def _print_results(count: int, refresh: Timings, collate: Timings, summary: dict[str, float]) -> None:
    print("\nspeed ratios: median of the per-round ratios [interquartile range], wall and CPU (process + workers)\n")
    print("| measure | wall | CPU | target | detail (wall medians) |")
    print("|---|---|---|---|---|")
    rows = (
        ("collate: CCropCollate(CCropSimCLRTransform) / lightly SimCLRTransform + MultiViewCollate", collate,
         ">= 0.95", f"; store: {summary['mean_boxes']:.2f} boxes per image, mean area {summary['mean_box_area']:.3f}"),
        ("refresh: refresh_boxes pass / bare no_grad forward (ResNet-18, CIFAR stem)", refresh, ">= 0.9", ""),
    )
    for label, timings, target, note in rows:
        wall, cpu = (Ratio.of(clock["theirs"], clock["ours"]) for clock in (timings.wall, timings.cpu))
        ours, theirs = (count / statistics.median(timings.wall[side]) for side in ("ours", "theirs"))
        print(f"| {label} | {wall.text()} | {cpu.text()} | {target} | {ours:.0f} vs {theirs:.0f} images/s{note} |")

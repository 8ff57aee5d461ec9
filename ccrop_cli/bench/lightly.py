"""``ccrop bench lightly``: the Lightly adapter's speed, measured side by side in one run.

1. DataLoader throughput (images/s) of ``CCropCollate(CCropSimCLRTransform)`` on a filled box
   store vs lightly's ``SimCLRTransform`` + ``MultiViewCollate`` on the same images, with
   the same batch size and persistent workers (target: ratio >= 0.95).
2. The refresh pass (core ``refresh_boxes``: forward, heatmaps, localizer, store update)
   vs a bare ``torch.no_grad()`` forward loop of the same feature extractor over the same
   loader (target: ratio >= 0.9).

Both sides alternate epoch by epoch, ``--repeats`` timed epochs each, after one untimed
epoch that starts the workers. Throughputs are from each side's best epoch (the least
disturbed by other load on the machine); ratios are reported as best-vs-best and as the
median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ccrop_plugins import BoxSets, BoxStore, refresh_boxes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", type=Path, help="an image folder to use (default: generate scenes)")
    parser.add_argument("--images", type=int, default=512, help="generated images (default 512)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the generated images (default 64)")
    parser.add_argument("--input-size", type=int, default=32, help="view and refresh resolution (default 32)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for both sides (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per side (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the main process")
    parser.add_argument("--alpha", type=float, default=0.1)


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


def _epoch_seconds(run_epoch: Callable[[], int]) -> float:
    started = time.perf_counter()
    run_epoch()
    return time.perf_counter() - started


def _side_by_side(first: Callable[[], int], second: Callable[[], int], repeats: int) -> tuple[float, float, list[float]]:
    """Best (least disturbed) seconds of ``first`` and ``second``, and each round's speed ratio first / second."""
    first(), second()  # untimed: start persistent workers, warm caches
    times_a, times_b, ratios = [], [], []
    for _ in range(repeats):
        a, b = _epoch_seconds(first), _epoch_seconds(second)
        times_a.append(a)
        times_b.append(b)
        ratios.append(b / a)  # speed of first relative to second
    return min(times_a), min(times_b), ratios


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


def run(args: argparse.Namespace) -> int:
    from lightly.data import LightlyDataset

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        folder, true_boxes = args.folder, None
        if folder is None:
            folder = Path(scratch) / "scenes"
            true_boxes = _write_scenes(folder, args.images, args.image_size)
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


Timing = tuple[float, float, list[float]]  # best seconds of ours, best of theirs, ratio per round


def _loader_options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(batch_size=args.batch_size, shuffle=True, drop_last=False, num_workers=args.workers,
                persistent_workers=args.workers > 0)


def _time_refresh(plain: Any, args: argparse.Namespace) -> tuple[BoxStore, Timing]:
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


def _time_collate(plain: Any, folder: Path, store: BoxStore, args: argparse.Namespace) -> Timing:
    """CCropCollate(CCropSimCLRTransform) vs lightly's SimCLRTransform + MultiViewCollate."""
    from lightly.data import LightlyDataset, MultiViewCollate
    from lightly.transforms import SimCLRTransform
    from torch.utils.data import DataLoader

    from ccrop_lightly import CCropCollate, CCropSimCLRTransform

    ours = DataLoader(
        plain, collate_fn=CCropCollate(CCropSimCLRTransform(input_size=args.input_size, alpha=args.alpha), store, dataset=plain),
        **_loader_options(args),
    )
    theirs = DataLoader(
        LightlyDataset(str(folder), transform=SimCLRTransform(input_size=args.input_size)),
        collate_fn=MultiViewCollate(), **_loader_options(args),
    )
    return _side_by_side(_drain(ours), _drain(theirs), args.repeats)


def _print_results(count: int, refresh: Timing, collate: Timing, summary: dict[str, float]) -> None:
    refresh_s, bare_s, refresh_ratio = refresh
    ours_s, theirs_s, collate_ratio = collate
    print()
    print(f"{'measurement (best epoch)':<44}{'images/s':>10}")
    print(f"{'lightly SimCLRTransform + MultiViewCollate':<44}{count / theirs_s:>10.0f}")
    print(f"{'ccrop CCropCollate(CCropSimCLRTransform)':<44}{count / ours_s:>10.0f}")
    print(f"{'bare no_grad forward (ResNet-18 CIFAR stem)':<44}{count / bare_s:>10.0f}")
    print(f"{'ccrop refresh pass (forward + boxes)':<44}{count / refresh_s:>10.0f}")
    print()
    print(f"collate ratio ccrop / lightly: best {theirs_s / ours_s:.3f}, median of rounds "
          f"{statistics.median(collate_ratio):.3f} (target >= 0.95); rounds {', '.join(f'{r:.3f}' for r in collate_ratio)}")
    print(f"  store used: {summary['mean_boxes']:.2f} boxes per image, mean box area {summary['mean_box_area']:.3f}")
    print(f"refresh ratio refresh / bare forward: best {bare_s / refresh_s:.3f}, median of rounds "
          f"{statistics.median(refresh_ratio):.3f} (target >= 0.9); rounds {', '.join(f'{r:.3f}' for r in refresh_ratio)}")

"""``ccrop bench speed``: the core's speed, measured side by side with what it replaces.

Three comparisons, each timed in interleaved rounds in one run (so machine load hits both
sides alike), reported as the median over rounds:

1. one ``ContrastiveCrop`` view (with a box set) vs torchvision's ``RandomResizedCrop`` on the
   same 500x375 PIL image, resized to 224 (target: ratio <= 1.05);
2. the ``bbox`` localizer vs the reference rule as the paper's code runs it, a Python loop over
   maps (re-implemented below), on the same heatmaps: 512 maps of 4x4 features upsampled to
   32x32 (target >= 20x) and 256 maps of 7x7 upsampled to 224x224 (target >= 5x); the heatmap
   computation is timed on neither side;
3. ``components`` throughput in maps/s at 224x224 (aim: 5,000+), with the default
   ``label_resolution`` and with ``label_resolution=None`` (exact labelling).

Prints a Markdown table for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import RandomResizedCrop

from ccrop_plugins import ContrastiveCrop, get_localizer, heatmaps_from_features
from ccrop_plugins.box_sets import WHOLE_IMAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per comparison (median reported)")
    parser.add_argument("--crops", type=int, default=300, help="crops per side per round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--seed", type=int, default=0)


def reference_bbox(heatmaps: Tensor, threshold: float = 0.1) -> Tensor:
    """The reference rule as the paper's code applies it, one map at a time.

    Per map: which rows and columns have a maximum above ``threshold`` (an int mask each),
    ``torch.nonzero`` of each mask, its first and last index divided by the map's size, and a
    per-map box tensor; the boxes are stacked at the end. Returns ``(N, 4)`` normalised
    ``x0, y0, x1, y1`` with the reference's ``last / size`` far edges; a map with nothing above
    the threshold gets the whole image (the reference code fails on it instead).
    """
    boxes = []
    for heatmap in heatmaps:
        height, width = heatmap.shape
        row_hits = (heatmap.max(dim=1).values > threshold).int()
        col_hits = (heatmap.max(dim=0).values > threshold).int()
        rows = torch.nonzero(row_hits).view(-1)
        cols = torch.nonzero(col_hits).view(-1)
        if len(rows) == 0:
            boxes.append(torch.tensor(WHOLE_IMAGE))
            continue
        y0, y1 = rows[[0, -1]] / height
        x0, x1 = cols[[0, -1]] / width
        boxes.append(torch.stack([x0, y0, x1, y1]))
    return torch.stack(boxes)


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _interleaved(sides: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Time every side once per round, alternating the order, after one warm-up call each."""
    for fn in sides.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            times[name].append(_seconds(sides[name]))
    return times


def _median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def _scene_image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(375, 500, 3), dtype=np.uint8))


def _maps(count: int, feature_size: int, size: int, seed: int) -> Tensor:
    """Heatmaps of random 8-channel features with a brighter blob, as a backbone gives."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(count, 8, feature_size, feature_size, generator=generator)
    blob = torch.zeros(feature_size, feature_size)
    blob[feature_size // 4 : feature_size // 2 + 1, feature_size // 4 : feature_size // 2 + 1] = 3.0
    return heatmaps_from_features(features + blob, size=size)


Row = tuple[str, str, str, str]


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [_crop_row(args), *_bbox_rows(args), *_components_rows(args)]
    print(
        f"ccrop bench speed: torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"{platform.machine()}, median of {args.rounds} interleaved rounds\n"
    )
    print("| measure | result | target | detail |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


def _crop_row(args: argparse.Namespace) -> Row:
    """One view: ContrastiveCrop with a box set vs RandomResizedCrop, same image, same size."""
    image = _scene_image(args.seed)
    boxes = torch.tensor([[0.20, 0.15, 0.65, 0.80], [0.55, 0.30, 0.95, 0.70]])
    scores = torch.tensor([2.0, 1.0])
    ccrop = ContrastiveCrop(224, sampler="beta", alpha=0.6)
    rrc = RandomResizedCrop(224, scale=ccrop.scale, ratio=ccrop.ratio, antialias=True)  # same crop sizes on both sides
    crop_times = _interleaved(
        {
            "rrc": lambda: [rrc(image) for _ in range(args.crops)],
            "ccrop": lambda: [ccrop(image, boxes, scores=scores) for _ in range(args.crops)],
        },
        args.rounds,
    )
    crop_ratio = _median_ratio(crop_times["ccrop"], crop_times["rrc"])
    per_view = statistics.median(crop_times["ccrop"]) / args.crops * 1e6
    per_rrc = statistics.median(crop_times["rrc"]) / args.crops * 1e6
    return (
        "ContrastiveCrop view / RandomResizedCrop (500x375 PIL -> 224)",
        f"{crop_ratio:.3f}",
        "<= 1.05",
        f"{per_view:.0f} us vs {per_rrc:.0f} us per view",
    )


def _bbox_rows(args: argparse.Namespace) -> list[Row]:
    """bbox vs the reference per-map loop, on the same heatmaps (heatmaps not timed)."""
    bbox = get_localizer("bbox", threshold=0.1)
    rows = []
    for count, feature_size, size, target in ((512, 4, 32, 20.0), (256, 7, 224, 5.0)):
        maps = _maps(count, feature_size, size, args.seed)
        ours = bbox(maps).boxes[:, 0]
        theirs = reference_bbox(maps)
        # Same boxes: equal near edges, far edges one pixel apart (ours (last + 1) / size).
        pixel = torch.tensor([1 / size, 1 / size, 1 / size, 1 / size])
        if not bool(((ours - theirs).abs() <= pixel + 1e-6).all()):
            raise RuntimeError("bbox and the reference rule disagree by more than one pixel")
        times = _interleaved({"reference": lambda: reference_bbox(maps), "bbox": lambda: bbox(maps)}, args.rounds)
        speedup = _median_ratio(times["reference"], times["bbox"])
        rows.append(
            (
                f"bbox speed-up over the reference loop ({count} maps, {feature_size}x{feature_size} -> {size}x{size})",
                f"{speedup:.1f}x",
                f">= {target:.0f}x",
                f"{statistics.median(times['bbox']) * 1e3:.1f} ms vs {statistics.median(times['reference']) * 1e3:.1f} ms",
            )
        )
    return rows


def _components_rows(args: argparse.Namespace) -> list[Row]:
    """components throughput at 224x224, pooled (default) and exact labelling."""
    maps = _maps(256, 7, 224, args.seed + 1)
    pooled = get_localizer("components")
    exact = get_localizer("components", label_resolution=None)
    times = _interleaved({"pooled": lambda: pooled(maps), "exact": lambda: exact(maps)}, args.rounds)
    rows = []
    for name, label, aim in (
        ("pooled", f"components maps/s at 224x224 (label_resolution={pooled.label_resolution})", ">= 5000"),
        ("exact", "components maps/s at 224x224 (label_resolution=None, exact)", "-"),
    ):
        rate = len(maps) / statistics.median(times[name])
        rows.append((label, f"{rate:,.0f}", aim, f"{statistics.median(times[name]) * 1e3:.1f} ms per 256 maps"))
    return rows

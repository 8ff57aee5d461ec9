"""``ccrop bench speed``: the core's speed, measured side by side with what it replaces.

Three comparisons, each timed in interleaved rounds in one run (ours, reference, reference,
ours, ...: machine load hits both sides alike), reported as the median of the per-round ratios
with their interquartile range, in wall time and in process CPU time side by side
(:mod:`ccrop_cli.bench.rounds`):

1. one ``ContrastiveCrop`` view (with a box set) vs torchvision's ``RandomResizedCrop`` with the
   same scale and ratio ranges on the same 500x375 PIL image, resized to 224 (target: time
   ratio <= 1.02), and the parameter sampling alone (``make_params`` vs ``get_params``);
2. the ``bbox`` localizer vs the reference rule as the paper's code runs it, a Python loop over
   maps (re-implemented below), on the same heatmaps: 512 maps of 4x4 features upsampled to
   32x32 (target >= 20x) and 256 maps of 7x7 upsampled to 224x224 (target >= 5x); the heatmap
   computation is timed on neither side;
3. ``components`` throughput in maps/s at 224x224 (aim: 10,000+, issue 9), with the default
   ``label_resolution``, with ``label_resolution=None`` (exact labelling), with Otsu's threshold and with
   the demo's cores (``core_level=0.3``): the median of the
   per-round rates.

Prints a Markdown table for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import RandomResizedCrop

from ccrop_cli.experiment.strategies import BOX_SET_OPTIONS
from ccrop_cli.option_types import MAX_CROPS, crops, positive_int, seed, threads
from ccrop_plugins import ContrastiveCrop, get_localizer, heatmaps_from_features
from ccrop_plugins.box_sets import WHOLE_IMAGE

from .rounds import Ratio, interleaved


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=positive_int, default=9,
                        help="interleaved rounds per comparison, the median of the per-round ratios reported")
    parser.add_argument("--crops", type=crops, default=300,
                        help=f"crops per side per round, 1 to {MAX_CROPS} (default 300)")
    parser.add_argument("--threads", type=threads, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed")


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


Row = tuple[str, str, str, str, str]  # measure, wall, CPU, target, detail


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [_crop_row(args), _params_row(args), *_bbox_rows(args), *_components_rows(args)]
    print(
        f"ccrop bench speed: torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"{platform.machine()}, {args.rounds} interleaved rounds; median of the per-round ratios "
        "[interquartile range], in wall time and in process CPU time\n"
    )
    print("| measure | wall | CPU | target | detail (wall medians) |")
    print("|---|---|---|---|---|")
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
    times = interleaved(
        {
            "ccrop": lambda: [ccrop(image, boxes, scores=scores) for _ in range(args.crops)],
            "rrc": lambda: [rrc(image) for _ in range(args.crops)],
        },
        args.rounds,
    )
    wall, cpu = (Ratio.of(clock["ccrop"], clock["rrc"]) for clock in (times.wall, times.cpu))
    per_view, per_rrc = (statistics.median(times.wall[side]) / args.crops * 1e6 for side in ("ccrop", "rrc"))
    return (
        "ContrastiveCrop view (box set) / RandomResizedCrop, time (500x375 PIL -> 224)",
        wall.text(),
        cpu.text(),
        "<= 1.02",
        f"{per_view:.0f} us vs {per_rrc:.0f} us per view",
    )


def _params_row(args: argparse.Namespace) -> Row:
    """The sampling alone: ``make_params`` with a box set vs RandomResizedCrop's ``get_params``.

    A view's time is mostly the resize, the same function on both sides, whose cost follows the
    crop sizes drawn in a round; this row times the part the box path changes.
    """
    image = _scene_image(args.seed)
    boxes = torch.tensor([[0.20, 0.15, 0.65, 0.80], [0.55, 0.30, 0.95, 0.70]])
    scores = torch.tensor([2.0, 1.0])
    ccrop = ContrastiveCrop(224, sampler="beta", alpha=0.6)
    size = (image.height, image.width)
    times = interleaved(
        {
            "ccrop": lambda: [ccrop.make_params(size, boxes, scores=scores) for _ in range(args.crops)],
            "rrc": lambda: [RandomResizedCrop.get_params(image, ccrop.scale, ccrop.ratio) for _ in range(args.crops)],
        },
        args.rounds,
    )
    wall, cpu = (Ratio.of(clock["ccrop"], clock["rrc"]) for clock in (times.wall, times.cpu))
    per_view, per_rrc = (statistics.median(times.wall[side]) / args.crops * 1e6 for side in ("ccrop", "rrc"))
    return (
        "crop parameters alone: make_params (box set) / RandomResizedCrop.get_params, time",
        wall.text(),
        cpu.text(),
        "-",
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
        times = interleaved({"bbox": lambda: bbox(maps), "reference": lambda: reference_bbox(maps)}, args.rounds)
        wall, cpu = (Ratio.of(clock["reference"], clock["bbox"]) for clock in (times.wall, times.cpu))
        rows.append(
            (
                f"bbox speed-up over the reference loop ({count} maps, {feature_size}x{feature_size} -> {size}x{size})",
                wall.text(1, "x"),
                cpu.text(1, "x"),
                f">= {target:.0f}x",
                f"{statistics.median(times.wall['bbox']) * 1e3:.1f} ms vs "
                f"{statistics.median(times.wall['reference']) * 1e3:.1f} ms",
            )
        )
    return rows


def _components_rows(args: argparse.Namespace) -> list[Row]:
    """components throughput at 224x224: pooled (default) and exact labelling, Otsu's threshold, and the demo's
    cores."""
    maps = _maps(256, 7, 224, args.seed + 1)
    pooled = get_localizer("components")
    exact = get_localizer("components", label_resolution=None)
    otsu = get_localizer("components", threshold="otsu")
    cores = get_localizer("components", threshold="otsu", **BOX_SET_OPTIONS)
    calls = {"pooled": lambda: pooled(maps), "exact": lambda: exact(maps), "otsu": lambda: otsu(maps),
             "cores": lambda: cores(maps)}
    times = interleaved(calls, args.rounds)
    rows = []
    for name, label, aim in (
        ("pooled", f"components maps/s at 224x224 (label_resolution={pooled.label_resolution})", ">= 10000"),
        ("exact", "components maps/s at 224x224 (label_resolution=None, exact)", "-"),
        ("otsu", "components maps/s at 224x224 (threshold='otsu')", "-"),
        ("cores", f"components maps/s at 224x224 (threshold='otsu', core_level={cores.core_level}: the demo's)", "-"),
    ):
        counts = [float(len(maps))] * args.rounds
        wall, cpu = (Ratio.of(counts, clock[name]) for clock in (times.wall, times.cpu))  # per-round rates
        detail = f"{statistics.median(times.wall[name]) * 1e3:.1f} ms per 256 maps"
        rows.append((label, wall.text(0), cpu.text(0), aim, detail))
    return rows

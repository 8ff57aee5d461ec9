"""``ccrop bench mm``: MMPretrain pipeline and refresh throughput, measured side by side in one run.

1. Pipeline: mmpretrain's SimCLR view pipeline (MultiView of crop, flip, colour jitter,
   grayscale, blur, then PackInputs) on in-memory images, with ``ContrastiveCrop`` (a filled
   box store, ChooseContrastiveBox first) vs mmpretrain's own ``RandomResizedCrop``; speed
   ratio, target >= 0.98.
2. Refresh: ``refresh_boxes`` over the hook's extraction batches vs a bare no-grad forward of
   the same feature module over the same (pre-decoded) batches. The feature module is the
   backbone (its last output, the hook's default) or, with ``--stage layer3``, the backbone
   up to that stage (``stage_features``, as ``ContrastiveCropHook(feature_stages=...)`` builds
   it), so both sides stop at the chosen stage. Speed ratio, target >= 0.95 (issue 9: the
   refresh at a stage costs <= 1.25x the bare forward to it, a speed ratio >= 0.8).

Both comparisons run in interleaved rounds (ours, reference, reference, ours, ...) and report
the median of the per-round ratios with their interquartile range, in wall time and in process
CPU time side by side (:mod:`ccrop_cli.bench.rounds`). ``--threads 1`` gives the cleanest
CPU-time figures (idle torch threads spin and count as CPU time).

The refresh row also moves with glibc's allocator: a pass's forwards fault in fresh pages (zeroed
by the kernel, in system time) as often as the heap's history makes them, and that history differs
between the two sides and from run to run (measured: 28K-50K faults per pass, the sides up to 22K
apart, either side ahead, up to 4 % of a pass). Calling ``malloc_trim(0)`` and ``gc.collect()``
before each timed call does not close that gap (still up to 19K apart in 3 of 14 runs), so the
rounds do not do it. For figures without the allocator's part, run the bench with
``MALLOC_TRIM_THRESHOLD_=1000000000 MALLOC_MMAP_THRESHOLD_=1000000000`` in the environment: glibc
then keeps the memory it frees, and neither side faults.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from torch.utils.data import Dataset

from ccrop_cli.errors import UserError
from ccrop_cli.option_types import numpy_seed, positive_int, threads, view_side

from .rounds import Ratio, Timings, interleaved


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=positive_int, default=64, help="number of distinct source images")
    parser.add_argument("--image-size", type=view_side, nargs=2, default=(375, 500), metavar=("H", "W"),
                        help="source image height and width, 16 to 1024 px (default 375 500)")
    parser.add_argument("--crop-size", type=view_side, default=224, help="view side, 16 to 1024 px (default 224)")
    parser.add_argument("--samples", type=positive_int, default=100, help="pipeline calls per variant and round")
    parser.add_argument("--rounds", type=positive_int, default=9,
                        help="interleaved rounds, the median of the per-round ratios reported")
    parser.add_argument("--refresh-size", type=view_side, default=64,
                        help="refresh image size, 16 to 1024 px (default 64)")
    parser.add_argument("--refresh-images", type=positive_int, default=256, help="images of the refresh pass")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per batch of the refresh pass")
    parser.add_argument("--localizer", default="components", help="localizer of the refresh pass")
    parser.add_argument("--heatmap", default="channel_sum", help="heatmap rule of the refresh pass")
    parser.add_argument("--threshold", default=None,
                        help="localizer threshold: k in [0, 1), 'mean' or 'otsu' (default: the localizer's, 0.1 for "
                        "the built-ins)")
    parser.add_argument("--core-level", type=float, default=None,
                        help="components' core_level (the configs' box sets use 0.3; default: none)")
    parser.add_argument("--stage", default=None,
                        help="backbone stage of the refresh features, e.g. layer3 (default: its last output)")
    parser.add_argument("--threads", type=threads, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--same-draws", action=argparse.BooleanOptionalAction, default=True,
                        help="both pipelines draw the same flips/jitters/blurs in a round (default: yes)")
    parser.add_argument("--only", choices=("pipeline", "refresh"), default=None,
                        help="run one comparison only (default: both)")
    parser.add_argument("--seed", type=numpy_seed, default=0, help="random seed")


class _SameDraws:
    """A bench-only step after the crop that reseeds numpy's global generator, per run and view.

    Both pipelines then draw the same flips, jitters, grayscale and blur sizes in the same
    round (common random numbers), so a round's ratio is not moved by which views happened to
    get the costly blur; the crops still draw from their own distributions. It costs the same
    few microseconds on both sides.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.run, self.view = enabled, -1, 0

    def next_run(self) -> None:
        self.run, self.view = self.run + 1, 0

    def __call__(self, results: dict) -> dict:
        if self.enabled:
            np.random.seed((self.run * 1_000_003 + self.view) % 2**32)
            self.view += 1
        return results


def _pipeline(crop: dict, with_chooser: bool, same_draws: _SameDraws):
    from mmengine.dataset import Compose

    view = [
        crop,
        same_draws,
        dict(type="RandomFlip", prob=0.5),
        dict(type="RandomApply", prob=0.8,
             transforms=[dict(type="ColorJitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)]),
        dict(type="RandomGrayscale", prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
        dict(type="GaussianBlur", magnitude_range=(0.1, 2.0), magnitude_std="inf", prob=0.5),
    ]
    steps = [dict(type="ChooseContrastiveBox")] if with_chooser else []
    steps += [dict(type="MultiView", num_views=2, transforms=[view]), dict(type="PackInputs")]
    return Compose(steps)


def _run_pipeline(pipeline, same_draws: _SameDraws, images: list[np.ndarray], samples: int) -> None:
    same_draws.next_run()
    for i in range(samples):
        pipeline({"img": images[i % len(images)], "sample_idx": i % len(images), "img_shape": images[0].shape[:2]})


def run(args: argparse.Namespace) -> int:
    import ccrop_mm  # noqa: F401  (registers the transforms)
    from mmengine.registry import init_default_scope

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    init_default_scope("mmpretrain")
    _check_refresh_options(args)  # before the pipeline comparison, which takes a while; with --only pipeline too
    pipeline = _pipeline_timings(args) if args.only in (None, "pipeline") else None
    refresh = _refresh_timings(args) if args.only in (None, "refresh") else None
    height, width = args.image_size
    print(f"ccrop bench mm: torch {torch.__version__}, {torch.get_num_threads()} torch threads, {args.rounds} "
          "interleaved rounds; speed ratios, median of the per-round ratios [interquartile range], "
          "in wall time and in process CPU time\n")
    print("| measure | wall | CPU | target | detail (wall medians) |")
    print("|---|---|---|---|---|")
    if pipeline is not None:
        _print_row(f"pipeline: ContrastiveCrop / RandomResizedCrop (SimCLR, 2 views, {height}x{width} -> "
                   f"{args.crop_size}, {args.samples} samples a round)", pipeline, "ContrastiveCrop",
                   "RandomResizedCrop", ">= 0.98", args.samples, "samples/s")
    if refresh is not None:
        _print_row(f"refresh: refresh_boxes / bare no-grad forward to {args.stage or 'the last stage'} (ResNet-18, "
                   f"{args.refresh_images} images of {args.refresh_size} px, batch {args.batch_size}, "
                   f"{args.heatmap}, {args.localizer}, threshold "
                   f"{args.threshold or 'the default'}"
                   f"{'' if args.core_level is None else f', core_level {args.core_level}'})",
                   refresh, "refresh", "forward",
                   ">= 0.95 (issue 9: >= 0.80)", args.refresh_images, "images/s")
    return 0


def _print_row(label: str, timings: Timings, ours: str, reference: str, target: str, count: int, unit: str) -> None:
    wall, cpu = (Ratio.of(clock[reference], clock[ours]) for clock in (timings.wall, timings.cpu))  # speed ratios
    ours_rate, reference_rate = (count / statistics.median(timings.wall[side]) for side in (ours, reference))
    detail = f"{ours_rate:.1f} vs {reference_rate:.1f} {unit}"
    print(f"| {label} | {wall.text()} | {cpu.text()} | {target} | {detail} |")


def _pipeline_timings(args: argparse.Namespace) -> Timings:
    """Seconds per round of the ContrastiveCrop and RandomResizedCrop pipelines, interleaved."""
    from ccrop_mm.pipeline_walk import find_instances
    from ccrop_mm.transforms import StoreUser
    from ccrop_plugins import BoxStore, get_localizer

    rng = np.random.default_rng(args.seed)
    height, width = args.image_size
    images = [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(args.images)]
    # A filled store: the multi-object localizer on smooth random heatmaps.
    store = BoxStore(args.images, max_boxes=4)
    maps = torch.nn.functional.interpolate(torch.rand(args.images, 1, 7, 7), size=(56, 56), mode="bilinear")[:, 0]
    store.update(torch.arange(args.images), get_localizer("components", threshold=0.5, max_boxes=4)(maps))
    ours_draws, theirs_draws = _SameDraws(args.same_draws), _SameDraws(args.same_draws)
    ours = _pipeline(dict(type="ContrastiveCrop", scale=args.crop_size, crop_ratio_range=(0.2, 1.0), alpha=0.6,
                          backend="pillow"), with_chooser=True, same_draws=ours_draws)
    for step in find_instances(ours, StoreUser):
        step.attach_store(store)
    theirs = _pipeline(dict(type="RandomResizedCrop", scale=args.crop_size, crop_ratio_range=(0.2, 1.0),
                            backend="pillow"), with_chooser=False, same_draws=theirs_draws)
    return interleaved({"ContrastiveCrop": lambda: _run_pipeline(ours, ours_draws, images, args.samples),
                        "RandomResizedCrop": lambda: _run_pipeline(theirs, theirs_draws, images, args.samples)},
                       args.rounds)


class _RandomImages(Dataset):
    """``count`` seeded uint8 images ``(3, size, size)`` with their index: a map-style dataset."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(index)
        return torch.randint(0, 256, (3, self.size, self.size), generator=g, dtype=torch.uint8), index


def _threshold(text: str | None) -> float | str | None:
    """``--threshold``: a number, or an adaptive rule name (checked by the localizer); ``None``: not given."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _check_refresh_options(args: argparse.Namespace) -> None:
    """The refresh's localizer, threshold, core level, heatmap rule and stage, as ``refresh_boxes`` will build them.

    Raises:
        UserError: naming the option and the allowed values.
    """
    from mmpretrain.models.backbones import ResNet

    from ccrop_plugins import HeatmapPipeline, build_localizer, stage_features

    threshold = _threshold(args.threshold)
    checks = [  # each as refresh_boxes builds it (the store's max_boxes offered to a localizer that takes it)
        ("--localizer", lambda: build_localizer(args.localizer, max_boxes=4)),
        ("--threshold", lambda: build_localizer(args.localizer, max_boxes=4, threshold=threshold)),
        ("--core-level", lambda: args.core_level is None
         or build_localizer(args.localizer, max_boxes=4, threshold=threshold, options={"core_level": args.core_level})),
        ("--heatmap", lambda: HeatmapPipeline(args.heatmap)),
        ("--stage", lambda: args.stage is None or stage_features(ResNet(depth=18, out_indices=(3,)), args.stage)),
    ]
    for option, check in checks:
        try:
            check()
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{option}: {error.args[0] if error.args else error}") from None


def _refresh_timings(args: argparse.Namespace) -> Timings:
    """Seconds per round of the refresh pass and of a bare no-grad forward of the same feature module."""
    from mmpretrain.models.backbones import ResNet

    from ccrop_mm.extraction import Normaliser, extraction_loader
    from ccrop_plugins import BoxStore, refresh_boxes, stage_features

    backbone = ResNet(depth=18, out_indices=(3,))
    features = backbone if args.stage is None else stage_features(backbone, args.stage)
    features.eval()  # mmpretrain's ResNet.train() returns None, so no chaining
    loader = extraction_loader(_RandomImages(args.refresh_images, args.refresh_size), args.batch_size, 0)
    batches = [batch for batch in loader]  # decoded once: both passes read the same tensors
    normalise = Normaliser(None)
    device = torch.device("cpu")
    store = BoxStore(args.refresh_images, max_boxes=4)

    def forward() -> None:
        with torch.no_grad():
            for images, _ in batches:
                features(normalise(images, device))

    def refresh() -> None:
        refresh_boxes(features, ((normalise(x, device), i) for x, i in batches), store, args.localizer,
                      args.heatmap, threshold=_threshold(args.threshold), progress=False,
                      localizer_options=None if args.core_level is None else {"core_level": args.core_level})

    return interleaved({"refresh": refresh, "forward": forward}, args.rounds)

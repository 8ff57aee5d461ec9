"""``ccrop bench mm``: MMPretrain pipeline and refresh throughput, measured side by side in one run.

1. Pipeline: mmpretrain's SimCLR view pipeline (MultiView of crop, flip, colour jitter,
   grayscale, blur, then PackInputs) on in-memory images, with ``ContrastiveCrop`` (a filled
   box store, ChooseContrastiveBox first) vs mmpretrain's own ``RandomResizedCrop``. Target >= 0.95.
2. Refresh: ``ContrastiveCropHook``'s loader + ``refresh_boxes`` images/s vs a bare no-grad
   backbone forward over the same loader. Target >= 0.9.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import Dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=64, help="number of distinct source images")
    parser.add_argument("--image-size", type=int, nargs=2, default=(375, 500), metavar=("H", "W"))
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=150, help="pipeline calls per variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--refresh-size", type=int, default=64, help="refresh image size (px)")
    parser.add_argument("--refresh-images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--localizer", default="components")
    parser.add_argument("--seed", type=int, default=0)


def _pipeline(crop: dict, with_chooser: bool):
    from mmengine.dataset import Compose

    view = [
        crop,
        dict(type="RandomFlip", prob=0.5),
        dict(type="RandomApply", prob=0.8,
             transforms=[dict(type="ColorJitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)]),
        dict(type="RandomGrayscale", prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
        dict(type="GaussianBlur", magnitude_range=(0.1, 2.0), magnitude_std="inf", prob=0.5),
    ]
    steps = [dict(type="ChooseContrastiveBox")] if with_chooser else []
    steps += [dict(type="MultiView", num_views=2, transforms=[view]), dict(type="PackInputs")]
    return Compose(steps)


def _time_pipeline(pipeline, images: list[np.ndarray], samples: int) -> float:
    started = time.perf_counter()
    for i in range(samples):
        pipeline({"img": images[i % len(images)], "sample_idx": i % len(images), "img_shape": images[0].shape[:2]})
    return samples / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> int:
    import ccrop_mm  # noqa: F401  (registers the transforms)
    from mmengine.registry import init_default_scope

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    init_default_scope("mmpretrain")
    best = _pipeline_rates(args)
    pipeline_ratio = best["ContrastiveCrop"] / best["RandomResizedCrop"]
    forward_rate, refresh_rate = _refresh_rates(args)
    refresh_ratio = refresh_rate / forward_rate

    height, width = args.image_size
    print(f"pipeline ({height}x{width} -> {args.crop_size}, 2 views, SimCLR augmentations, {args.samples} samples x {args.rounds} rounds, best):")
    print(f"  RandomResizedCrop  {best['RandomResizedCrop']:8.1f} samples/s")
    print(f"  ContrastiveCrop    {best['ContrastiveCrop']:8.1f} samples/s")
    print(f"  ratio              {pipeline_ratio:8.3f}   (target >= 0.95)")
    print(f"refresh (ResNet-18, {args.refresh_images} images of {args.refresh_size} px, batch {args.batch_size}, localizer {args.localizer}):")
    print(f"  bare no-grad forward  {forward_rate:8.1f} images/s")
    print(f"  refresh_boxes pass    {refresh_rate:8.1f} images/s")
    print(f"  ratio                 {refresh_ratio:8.3f}   (target >= 0.9)")
    return 0


def _pipeline_rates(args: argparse.Namespace) -> dict[str, float]:
    """Best samples/s of the ContrastiveCrop and RandomResizedCrop pipelines, in alternating rounds."""
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
    ours = _pipeline(dict(type="ContrastiveCrop", scale=args.crop_size, crop_ratio_range=(0.2, 1.0), alpha=0.6,
                          backend="pillow"), with_chooser=True)
    for step in find_instances(ours, StoreUser):
        step.attach_store(store)
    theirs = _pipeline(dict(type="RandomResizedCrop", scale=args.crop_size, crop_ratio_range=(0.2, 1.0),
                            backend="pillow"), with_chooser=False)
    best = {"ContrastiveCrop": 0.0, "RandomResizedCrop": 0.0}
    for _ in range(args.rounds):  # alternate, so load on a shared machine hits both alike
        best["RandomResizedCrop"] = max(best["RandomResizedCrop"], _time_pipeline(theirs, images, args.samples))
        best["ContrastiveCrop"] = max(best["ContrastiveCrop"], _time_pipeline(ours, images, args.samples))
    return best


class _RandomImages(Dataset):
    """``count`` seeded uint8 images ``(3, size, size)`` with their index: a map-style dataset."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(index)
        return torch.randint(0, 256, (3, self.size, self.size), generator=g, dtype=torch.uint8), index


def _refresh_rates(args: argparse.Namespace) -> tuple[float, float]:
    """Best images/s of a bare no-grad backbone forward and of the refresh pass, same batches."""
    from mmpretrain.models.backbones import ResNet

    from ccrop_mm.extraction import Normaliser, extraction_loader
    from ccrop_plugins import BoxStore, refresh_boxes

    backbone = ResNet(depth=18, out_indices=(3,))
    backbone.eval()  # mmpretrain's ResNet.train() returns None, so no chaining
    loader = extraction_loader(_RandomImages(args.refresh_images, args.refresh_size), args.batch_size, 0)
    batches = [batch for batch in loader]  # decoded once: both passes read the same tensors
    normalise = Normaliser(None)
    device = torch.device("cpu")
    refresh_store = BoxStore(args.refresh_images, max_boxes=4)
    forward_rate = refresh_rate = 0.0
    for _ in range(args.rounds):
        started = time.perf_counter()
        with torch.no_grad():
            for images_batch, _ in batches:
                backbone(normalise(images_batch, device))
        forward_rate = max(forward_rate, args.refresh_images / (time.perf_counter() - started))
        started = time.perf_counter()
        refresh_boxes(backbone, ((normalise(x, device), i) for x, i in batches), refresh_store, args.localizer,
                      threshold=0.1, progress=False)
        refresh_rate = max(refresh_rate, args.refresh_images / (time.perf_counter() - started))
    return forward_rate, refresh_rate

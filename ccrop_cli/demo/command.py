"""``ccrop demo``: generated scenes -> SimCLR with ContrastiveCrop on the CPU -> pictures and a report.

The demo uses the multi-object, small-object scenes (2-4 small objects of one class per
image) by default: that is where the paper's single box drifts back to the whole image and
box sets make a visible difference. ``--setting single`` shows the paper's own setting.

Output folder (``--out``, default ``outputs/demo``)::

    data/train/...            the generated image folder and annotations.json
    heatmaps.png              images and the trained backbone's heatmaps
    box_sets.png              predicted box sets (red) vs ground truth (green)
    paper_boxes.png           the paper's single box (red) vs ground truth
    view_pairs.png            view pairs: RandomResizedCrop / paper / box sets / box sets at box scale,
                              cropped around the trained model's boxes
    view_pairs_oracle.png     the same around ground-truth boxes (a perfect localizer)
    report.md, report.json    box recall after each refresh, pair quality, time split
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ccrop_cli.demo.config import MMPRETRAIN, QUICK, DemoConfig, DemoRun
from ccrop_cli.experiment.pair_quality import box_precision, box_recall, oracle_box_sets, pair_quality, sample_view_pairs
from ccrop_cli.experiment.scene_settings import SCENE_SETTINGS, get_scene_setting, write_split
from ccrop_cli.experiment.strategies import STRATEGIES, get_strategy
from ccrop_cli.output import pictures
from ccrop_plugins import BoxSets, get_localizer, heatmaps_from_features
from ccrop_scenes import load_annotations

FRAMEWORKS = ("lightly", "mmpretrain")
PAIRS_PER_IMAGE = 4
PICTURE_IMAGES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoConfig()
    parser.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    parser.add_argument("--quick", action="store_true", help="a tiny run for tests: 64 images, 2 epochs (well under a minute)")
    parser.add_argument("--framework", default="lightly", choices=FRAMEWORKS, help="training framework (default: lightly)")
    parser.add_argument("--setting", default=None, choices=list(SCENE_SETTINGS),
                        help=f"scene setting (default: {defaults.setting})")
    parser.add_argument(
        "--epochs", type=int, default=None,
        help=f"training epochs (default: {defaults.epochs}; {MMPRETRAIN['epochs']} with --framework mmpretrain)",
    )
    parser.add_argument("--warmup-epochs", type=int, default=None)
    parser.add_argument("--interval", type=int, default=None)
    parser.add_argument(
        "--images", type=int, default=None,
        help=f"training images (default: {defaults.images}; {MMPRETRAIN['images']} with --framework mmpretrain)",
    )
    parser.add_argument("--threshold", type=float, default=None, help="localizer threshold k (default 0.5; paper: 0.1)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.framework == "mmpretrain" and not args.quick:
        values.update(MMPRETRAIN)
    for name in ("setting", "epochs", "warmup_epochs", "interval", "images", "threshold", "seed"):
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    config = DemoConfig(**values)
    get_scene_setting(config.setting)
    if config.batch_size > config.images:
        raise ValueError(f"--images {config.images} must be at least the batch size {config.batch_size}")
    if config.epochs <= config.warmup_epochs:
        raise ValueError(
            f"--epochs {config.epochs} must exceed --warmup-epochs {config.warmup_epochs}: "
            "the boxes are refreshed after the warm-up and used in the epochs after it"
        )
    return config


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setting = get_scene_setting(config.setting)
    print(f"ccrop demo: {setting.label}, {config.images} images, {config.epochs} epochs, framework {args.framework}")
    train_root = write_split(setting, out / "data" / "train", config.images, config.scene_size, seed=config.seed)
    started = time.perf_counter()
    if args.framework == "lightly":
        demo_run = _train_lightly(config, train_root, progress=not args.no_progress)
    else:
        from ccrop_cli.demo.mm_run import train_mmpretrain

        demo_run = train_mmpretrain(config, train_root, out / "mm_work_dir", progress=not args.no_progress)
    wall = time.perf_counter() - started
    report = write_outputs(out, config, args.framework, train_root, demo_run, wall)
    print((out / "report.md").read_text())
    print(f"pictures and report in {out} ({report['seconds']['total']:.0f} s)")
    return 0


def _train_lightly(config: DemoConfig, train_root: Path, progress: bool) -> DemoRun:
    from ccrop_lightly import feature_extractor

    from ccrop_cli.experiment.pretrain import pretrain_simclr

    result = pretrain_simclr(
        train_root,
        "multi",
        image_size=config.image_size,
        refresh_size=config.refresh_size,
        epochs=config.epochs,
        batch_size=config.batch_size,
        warmup_epochs=config.warmup_epochs,
        interval=config.interval,
        threshold=config.threshold,
        alpha=config.alpha,
        seed=config.seed,
        num_workers=config.num_workers,
        progress=progress,
        on_refresh=lambda record: print(
            f"  refresh after epoch {record.epoch + 1}: {record.stats.mean_boxes:.2f} boxes/image, "
            f"mean box area {record.stats.mean_box_area:.2f}, {record.stats.seconds:.1f} s",
            flush=True,
        ),
    )
    refreshes = [
        (r.epoch, r.stats.as_dict(), [r.box_sets[i][0] for i in range(len(r.box_sets))]) for r in result.refreshes
    ]
    return DemoRun(
        feature_fn=feature_extractor(result.backbone),
        filenames=result.filenames,
        refreshes=refreshes,
        train_seconds=result.train_seconds,
        refresh_seconds=result.refresh_seconds,
        epoch_losses=result.epoch_losses,
    )


# -- outputs ------------------------------------------------------------------------------------
def load_images(root: Path, filenames: Sequence[str]) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB images of ``filenames`` under ``root``."""
    return np.stack([np.asarray(Image.open(root / name).convert("RGB")) for name in filenames])


def compute_heatmaps(feature_fn: Any, images: np.ndarray, image_size: int) -> np.ndarray:
    """Heatmaps ``(N, H, W)`` in ``[0, 1]`` at the images' resolution, from the trained backbone.

    The images are resized to ``image_size`` and normalised with ImageNet statistics, as the
    refresh pass sees them.
    """
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    batch = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0
    batch = torch.nn.functional.interpolate(batch, size=(image_size, image_size), mode="bilinear", antialias=True)
    batch = (batch - mean) / std
    module = feature_fn if isinstance(feature_fn, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    with torch.no_grad():
        features = feature_fn(batch)
    if module is not None:
        module.train(was_training)
    if isinstance(features, (tuple, list)):
        features = features[-1]
    return heatmaps_from_features(features, size=images.shape[1:3]).numpy()


def _box_lists(box_sets: BoxSets) -> list[torch.Tensor]:
    return [box_sets[i][0] for i in range(len(box_sets))]


def _quality(strategy: str, sets: list | None, gt: list[np.ndarray], size: int, alpha: float) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    sets = sets if sets is not None else [None] * len(gt)
    views_a, views_b, index = sample_view_pairs(get_strategy(strategy), (size, size), sets, PAIRS_PER_IMAGE, generator, alpha)
    return pair_quality(views_a, views_b, index, gt).as_dict()


def write_outputs(
    out: Path, config: DemoConfig, framework: str, train_root: Path, demo_run: DemoRun, wall_seconds: float
) -> dict[str, Any]:
    """Pictures, ``report.json`` and ``report.md``; returns the report dict."""
    annotations = load_annotations(train_root)
    gt = [annotations[name] for name in demo_run.filenames]
    images = load_images(train_root, demo_run.filenames)
    heatmaps = compute_heatmaps(demo_run.feature_fn, images, config.refresh_size)
    # The final model's boxes with both localizers, on the same heatmaps.
    multi_sets = get_localizer("components", threshold=config.threshold, max_boxes=4)(torch.as_tensor(heatmaps))
    paper_sets = get_localizer("bbox", threshold=config.threshold)(torch.as_tensor(heatmaps))
    multi_boxes, paper_boxes = _box_lists(multi_sets), _box_lists(paper_sets)

    shown = slice(0, min(PICTURE_IMAGES, len(images)))
    files = {
        "heatmaps": pictures.draw_heatmaps(images[shown], heatmaps[shown], out / "heatmaps.png"),
        "box_sets": pictures.draw_box_sets(images[shown], multi_boxes[shown], gt[shown], out / "box_sets.png"),
        "paper_boxes": pictures.draw_box_sets(images[shown], paper_boxes[shown], gt[shown], out / "paper_boxes.png"),
    }
    # View pairs of the image with the most objects among the first few.
    pick = int(np.argmax([len(g) for g in gt[: PICTURE_IMAGES]]))
    predicted_sets = {"paper": [(paper_sets[pick])], "multi": [multi_sets[pick]], "multi-box": [multi_sets[pick]]}
    view_pairs: dict[str, list] = {}
    generator = torch.Generator().manual_seed(config.seed)
    for name in ("rrc", "paper", "multi", "multi-box"):
        strategy = get_strategy(name)
        sets = predicted_sets.get(name, [None])
        a, b, _ = sample_view_pairs(strategy, images.shape[1:3], sets, 3, generator, config.alpha)
        view_pairs[strategy.label] = [(a[i].tolist(), b[i].tolist()) for i in range(len(a))]
    files["view_pairs"] = pictures.draw_view_pairs(images[pick], view_pairs, out / "view_pairs.png", ground_truth=gt[pick])
    # The same with ground-truth boxes: what each strategy does once the localizer finds the objects.
    oracle_pairs: dict[str, list] = {}
    for name in ("rrc", "paper", "multi", "multi-box"):
        strategy = get_strategy(name)
        a, b, _ = sample_view_pairs(strategy, images.shape[1:3], oracle_box_sets([gt[pick]], strategy), 3, generator, config.alpha)
        oracle_pairs[strategy.label] = [(a[i].tolist(), b[i].tolist()) for i in range(len(a))]
    files["view_pairs_oracle"] = pictures.draw_view_pairs(
        images[pick], oracle_pairs, out / "view_pairs_oracle.png", ground_truth=gt[pick]
    )

    size = config.scene_size
    refreshes = []
    for epoch, stats, boxes in demo_run.refreshes:
        refreshes.append(
            {
                "epoch": epoch + 1,
                "box_recall": box_recall(boxes, gt, iou=0.5),
                "box_precision": box_precision(boxes, gt, iou=0.5),
                "mean_boxes": stats["mean_boxes"],
                "mean_box_area": stats["mean_box_area"],
                "fallback_fraction": stats["fallback_fraction"],
                "seconds": stats["seconds"],
            }
        )
    final_recall = {
        "multi (box sets)": box_recall(multi_boxes, gt, iou=0.5),
        "paper (one box)": box_recall(paper_boxes, gt, iou=0.5),
    }
    predicted = {"rrc": None, "paper": list(zip(paper_boxes, _scores(paper_sets))),
                 "multi": list(zip(multi_boxes, _scores(multi_sets))), "multi-box": list(zip(multi_boxes, _scores(multi_sets)))}
    quality = {}
    for name in STRATEGIES:
        strategy = get_strategy(name)
        quality[name] = {
            "label": strategy.label,
            "oracle": _quality(name, None if name == "rrc" else oracle_box_sets(gt, strategy), gt, size, config.alpha),
            "predicted": _quality(name, predicted[name], gt, size, config.alpha),
        }
    report = {
        "framework": framework,
        "config": config.__dict__,
        "setting": get_scene_setting(config.setting).label,
        "refreshes": refreshes,
        "final_box_recall": final_recall,
        "pair_quality": quality,
        "epoch_losses": demo_run.epoch_losses,
        "seconds": {
            "training": demo_run.train_seconds,
            "refreshes": demo_run.refresh_seconds,
            "refresh_share": demo_run.refresh_seconds / max(demo_run.train_seconds + demo_run.refresh_seconds, 1e-9),
            "total": wall_seconds,
        },
        "pictures": {key: path.name for key, path in files.items()},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(_markdown(report))
    return report


def _scores(box_sets: BoxSets) -> list[torch.Tensor]:
    return [box_sets[i][1] for i in range(len(box_sets))]


def _markdown(report: dict[str, Any]) -> str:
    config, seconds = report["config"], report["seconds"]
    lines = [
        "# ccrop demo report",
        "",
        f"Framework {report['framework']}; scenes: {report['setting']}; {config['images']} images of "
        f"{config['scene_size']} px, views {config['image_size']} px, refresh at {config['refresh_size']} px; "
        f"{config['epochs']} epochs "
        f"(warm-up {config['warmup_epochs']}, refresh every {config['interval']}), threshold k = {config['threshold']}.",
        "",
        "## Box recall at IoU 0.5 against ground truth, after each refresh (box sets)",
        "",
        "| after epoch | recall | precision | boxes / image | mean box area | fallback | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["refreshes"]:
        lines.append(
            f"| {r['epoch']} | {r['box_recall']:.2f} | {r['box_precision']:.2f} | {r['mean_boxes']:.2f} "
            f"| {r['mean_box_area']:.2f} | {r['fallback_fraction']:.2f} | {r['seconds']:.1f} |"
        )
    final = report["final_box_recall"]
    lines += [
        "",
        "Final model, same heatmaps: recall "
        + ", ".join(f"{name} {value:.2f}" for name, value in final.items())
        + " (the paper's one box can only match an image's single object).",
        "",
        f"## Pair quality ({PAIRS_PER_IMAGE} pairs per image), with ground-truth (oracle) and predicted boxes",
        "",
        "| strategy | false-positive pairs (oracle / predicted) | object coverage | pair IoU | object share |",
        "|---|---|---|---|---|",
    ]
    for values in report["pair_quality"].values():
        o, p = values["oracle"], values["predicted"]
        lines.append(
            f"| {values['label']} | {o['false_positive_rate']:.2f} / {p['false_positive_rate']:.2f} "
            f"| {o['object_coverage']:.2f} / {p['object_coverage']:.2f} | {o['pair_spread']:.2f} / {p['pair_spread']:.2f} "
            f"| {o['object_share']:.2f} / {p['object_share']:.2f} |"
        )
    lines += [
        "",
        "## Time",
        "",
        f"Training {seconds['training']:.1f} s, refreshes {seconds['refreshes']:.1f} s "
        f"({100 * seconds['refresh_share']:.1f} % of the two), whole demo {seconds['total']:.1f} s.",
        "",
        "Pictures: " + ", ".join(f"`{name}`" for name in report["pictures"].values()),
        "",
    ]
    return "\n".join(lines)

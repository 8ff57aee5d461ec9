"""The demo's outputs: pictures, ``report.json`` and ``report.md`` from a finished run.

Every number is measured on the run's training images against their ground-truth boxes:
box recall and precision after each refresh, the final model's boxes with both localizers,
and the pair quality of every crop strategy with ground-truth (oracle) and predicted boxes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ccrop_cli.demo.config import DemoConfig, DemoRun
from ccrop_cli.experiment.pair_quality import box_precision, box_recall, oracle_box_sets, pair_quality, sample_view_pairs
from ccrop_cli.experiment.scene_settings import get_scene_setting
from ccrop_cli.experiment.store_snapshot import box_lists
from ccrop_cli.experiment.strategies import STRATEGIES, get_strategy
from ccrop_cli.output import pictures
from ccrop_plugins import BoxSets, eval_mode, get_localizer, heatmaps_from_features
from ccrop_scenes import load_annotations

PAIRS_PER_IMAGE = 4
PICTURE_IMAGES = 16
PICTURE_STRATEGIES = ("rrc", "paper", "multi", "multi-box")
OUTPUT_FILES = (
    "heatmaps.png", "box_sets.png", "paper_boxes.png", "view_pairs.png", "view_pairs_oracle.png", "report.json", "report.md",
)
"""What :func:`write_outputs` writes into the output folder."""


def load_images(root: Path, filenames: Sequence[str]) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB images of ``filenames`` under ``root``."""
    return np.stack([np.asarray(Image.open(root / name).convert("RGB")) for name in filenames])


def compute_heatmaps(feature_fn: Any, images: np.ndarray, image_size: int) -> np.ndarray:
    """Heatmaps ``(N, H, W)`` in ``[0, 1]`` at the images' resolution, from the trained backbone.

    The images are resized to ``image_size`` and normalised with ImageNet statistics, as the
    refresh pass sees them; a module runs in eval mode (its own flags restored after).
    """
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    batch = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0
    batch = torch.nn.functional.interpolate(batch, size=(image_size, image_size), mode="bilinear", antialias=True)
    batch = (batch - mean) / std
    with eval_mode(feature_fn), torch.no_grad():
        features = feature_fn(batch)
    if isinstance(features, (tuple, list)):
        features = features[-1]
    return heatmaps_from_features(features, size=images.shape[1:3]).numpy()


def write_outputs(
    out: Path, config: DemoConfig, framework: str, train_root: Path, demo_run: DemoRun, wall_seconds: float
) -> dict[str, Any]:
    """Pictures, ``report.json`` and ``report.md``; returns the report dict."""
    annotations = load_annotations(train_root)
    gt = [annotations[name] for name in demo_run.filenames]
    images = load_images(train_root, demo_run.filenames)
    heatmaps = torch.as_tensor(compute_heatmaps(demo_run.feature_fn, images, config.refresh_size))
    # The final model's boxes with both localizers, on the same heatmaps.
    final = {
        "multi": get_localizer("components", threshold=config.threshold, max_boxes=4)(heatmaps),
        "paper": get_localizer("bbox", threshold=config.threshold)(heatmaps),
    }
    files = _pictures(out, images, heatmaps.numpy(), final, gt, config)
    multi_boxes, paper_boxes = box_lists(final["multi"]), box_lists(final["paper"])
    report = {
        "framework": framework,
        "config": config.__dict__,
        "setting": get_scene_setting(config.setting).label,
        "refreshes": [_refresh_row(epoch, stats, boxes, gt) for epoch, stats, boxes in demo_run.refreshes],
        "final_box_recall": {
            "multi (box sets)": box_recall(multi_boxes, gt, iou=0.5),
            "paper (one box)": box_recall(paper_boxes, gt, iou=0.5),
        },
        "pair_quality": _pair_quality_table(final, gt, config),
        "epoch_losses": demo_run.epoch_losses,
        "seconds": _time_split(demo_run, wall_seconds),
        "pictures": {key: path.name for key, path in files.items()},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(_markdown(report))
    return report


def _pictures(
    out: Path, images: np.ndarray, heatmaps: np.ndarray, final: dict[str, BoxSets], gt: list[np.ndarray], config: DemoConfig
) -> dict[str, Path]:
    """Heatmaps, box sets and the view pairs of one image (predicted and ground-truth boxes)."""
    shown = slice(0, min(PICTURE_IMAGES, len(images)))
    multi_boxes, paper_boxes = box_lists(final["multi"]), box_lists(final["paper"])
    files = {
        "heatmaps": pictures.draw_heatmaps(images[shown], heatmaps[shown], out / "heatmaps.png"),
        "box_sets": pictures.draw_box_sets(images[shown], multi_boxes[shown], gt[shown], out / "box_sets.png"),
        "paper_boxes": pictures.draw_box_sets(images[shown], paper_boxes[shown], gt[shown], out / "paper_boxes.png"),
    }
    # View pairs of the image with the most objects among the first few.
    pick = int(np.argmax([len(g) for g in gt[:PICTURE_IMAGES]]))
    predicted = {"paper": [final["paper"][pick]], "multi": [final["multi"][pick]], "multi-box": [final["multi"][pick]]}
    generator = torch.Generator().manual_seed(config.seed)
    pairs = _view_pairs(images[pick], lambda name, strategy: predicted.get(name, [None]), generator, config.alpha)
    files["view_pairs"] = pictures.draw_view_pairs(images[pick], pairs, out / "view_pairs.png", ground_truth=gt[pick])
    # The same with ground-truth boxes: what each strategy does once the localizer finds the objects.
    oracle = _view_pairs(images[pick], lambda name, strategy: oracle_box_sets([gt[pick]], strategy), generator, config.alpha)
    files["view_pairs_oracle"] = pictures.draw_view_pairs(
        images[pick], oracle, out / "view_pairs_oracle.png", ground_truth=gt[pick]
    )
    return files


def _view_pairs(image: np.ndarray, sets_of: Any, generator: torch.Generator, alpha: float) -> dict[str, list]:
    """Three view pairs of ``image`` per picture strategy, boxes from ``sets_of(name, strategy)``."""
    view_pairs: dict[str, list] = {}
    for name in PICTURE_STRATEGIES:
        strategy = get_strategy(name)
        a, b, _ = sample_view_pairs(strategy, image.shape[:2], sets_of(name, strategy), 3, generator, alpha)
        view_pairs[strategy.label] = [(a[i].tolist(), b[i].tolist()) for i in range(len(a))]
    return view_pairs


def _refresh_row(epoch: int, stats: dict[str, float], boxes: list[torch.Tensor], gt: list[np.ndarray]) -> dict[str, Any]:
    """One refresh of the run, scored against ground truth."""
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "box_recall": box_recall(boxes, gt, iou=0.5),
        "box_precision": box_precision(boxes, gt, iou=0.5),
    }
    row.update({key: stats[key] for key in ("mean_boxes", "mean_box_area", "fallback_fraction", "seconds")})
    return row


def _pair_quality_table(final: dict[str, BoxSets], gt: list[np.ndarray], config: DemoConfig) -> dict[str, Any]:
    """Pair quality of every strategy with oracle and with the final model's boxes."""
    def with_scores(box_sets: BoxSets) -> list:
        return [box_sets[i] for i in range(len(box_sets))]

    predicted = {"rrc": None, "paper": with_scores(final["paper"]),
                 "multi": with_scores(final["multi"]), "multi-box": with_scores(final["multi"])}
    quality = {}
    for name in STRATEGIES:
        strategy = get_strategy(name)
        oracle = None if name == "rrc" else oracle_box_sets(gt, strategy)
        quality[name] = {
            "label": strategy.label,
            "oracle": _quality(name, oracle, gt, config.scene_size, config.alpha),
            "predicted": _quality(name, predicted[name], gt, config.scene_size, config.alpha),
        }
    return quality


def _quality(strategy: str, sets: list | None, gt: list[np.ndarray], size: int, alpha: float) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    sets = sets if sets is not None else [None] * len(gt)
    views_a, views_b, index = sample_view_pairs(get_strategy(strategy), (size, size), sets, PAIRS_PER_IMAGE, generator, alpha)
    return pair_quality(views_a, views_b, index, gt).as_dict()


def _time_split(demo_run: DemoRun, wall_seconds: float) -> dict[str, float]:
    busy = demo_run.train_seconds + demo_run.refresh_seconds
    return {
        "training": demo_run.train_seconds,
        "refreshes": demo_run.refresh_seconds,
        "refresh_share": demo_run.refresh_seconds / max(busy, 1e-9),
        "total": wall_seconds,
    }


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

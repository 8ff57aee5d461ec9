"""The demo's outputs: pictures, ``report.json`` and ``report.md`` from a finished run.

Every number is measured on the run's training images against their ground-truth boxes:
box recall and precision after each refresh, the final model's boxes (box sets, and the
paper's one box as their union), the object hit rate, and the pair quality of every crop
strategy with ground-truth (oracle) and predicted boxes. A user's folder without
``annotations.json`` gets box statistics and pictures only (recall fields are ``null``).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ccrop_cli.demo.config import DemoConfig, DemoRun
from ccrop_cli.demo.user_data import ANNOTATIONS
from ccrop_cli.experiment.pair_quality import (
    box_precision,
    box_recall,
    object_hit_rate,
    oracle_box_sets,
    pair_quality,
    sample_view_pairs,
)
from ccrop_cli.experiment.scene_settings import get_scene_setting
from ccrop_cli.experiment.store_snapshot import box_lists
from ccrop_cli.experiment.strategies import BOX_SET_OPTIONS, STRATEGIES, get_strategy
from ccrop_cli.output import pictures
from ccrop_cli.output.box_json import export_boxes
from ccrop_plugins import BoxSets, HeatmapPipeline, eval_mode, get_localizer
from ccrop_scenes import load_annotations

PAIRS_PER_IMAGE = 4
PICTURE_IMAGES = 16
PICTURE_STRATEGIES = ("rrc", "paper", "multi", "multi-box")
BOXES = "boxes.json"
"""The final box store, keyed by file name, as ``ccrop viz --boxes`` reads it (:func:`export_boxes`)."""
OUTPUT_FILES = (
    "heatmaps.png", "box_sets.png", "paper_boxes.png", "view_pairs.png", "view_pairs_oracle.png",
    "report.json", "report.md", BOXES,
)
"""What :func:`write_outputs` writes into the output folder."""


def load_images(root: Path, filenames: Sequence[str], size: int | None = None) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB images of ``filenames`` under ``root``.

    ``size``: resize every image to ``size x size`` (a user's folder mixes sizes); ``None``
    keeps the stored size, which must then be the same for all.
    """
    def load(name: str) -> np.ndarray:
        image = Image.open(root / name).convert("RGB")
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        return np.asarray(image)

    return np.stack([load(name) for name in filenames])


def compute_heatmaps(feature_fn: Any, images: np.ndarray, image_size: int, heatmap: str = "channel_sum") -> np.ndarray:
    """Heatmaps ``(N, H, W)`` in ``[0, 1]`` at the images' resolution, from the trained backbone.

    The images are resized to ``image_size`` and normalised with ImageNet statistics, as the
    refresh pass sees them; a module runs in eval mode (its own flags restored after).
    ``feature_fn`` returns a feature map, a tuple/list (last item used) or ``{stage: map}``
    (fused, as in the refresh pass); a rule with dataset statistics (``ddt``) is fitted on
    these images first.
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
    pipeline = HeatmapPipeline(heatmap)
    if pipeline.fits:
        pipeline.finalize(pipeline.fit(features))
    return pipeline(features, images.shape[1:3]).numpy()


def union_boxes(box_sets: BoxSets) -> BoxSets:
    """The paper's one box from a box set: the smallest box around every box of each image."""
    lists = box_lists(box_sets)
    boxes = torch.stack([torch.cat([b[:, :2].amin(dim=0), b[:, 2:].amax(dim=0)]) for b in lists])[:, None]
    n = len(lists)
    return BoxSets(boxes=boxes, scores=torch.ones(n, 1), counts=torch.ones(n, dtype=torch.long),
                   fallback=box_sets.fallback.clone())


def write_outputs(
    out: Path, config: DemoConfig, framework: str, train_root: Path, demo_run: DemoRun, wall_seconds: float,
    annotations: dict[str, np.ndarray] | None | str = "generated", resized: str | None = None,
) -> dict[str, Any]:
    """Pictures, ``report.json``, ``report.md`` and the run's final boxes (``boxes.json``); returns the report dict.

    ``annotations``: ``"generated"`` reads the generated scenes' ``annotations.json``; a
    user's folder passes its boxes (``{file_name: (k, 4)}``, images not listed are not
    measured) or ``None`` (no ground truth: box statistics and pictures only). ``resized``: with ``--data``, what
    the demo did to large images (``train_root`` is then that copy), added to both reports.
    """
    if isinstance(annotations, str):
        annotations = load_annotations(train_root)
    user_data = config.data is not None
    images = load_images(train_root, demo_run.filenames, config.refresh_size if user_data else None)
    heatmaps = torch.as_tensor(compute_heatmaps(demo_run.feature_fn, images, config.refresh_size, config.heatmap))
    multi = get_localizer("components", threshold=config.threshold, max_boxes=4, **BOX_SET_OPTIONS)(heatmaps)
    final = {"multi": multi, "paper": union_boxes(multi)}  # both from the same heatmaps and threshold
    gt = None if annotations is None else [annotations.get(name) for name in demo_run.filenames]
    files = _pictures(out, images, heatmaps.numpy(), final, gt, config)
    written = {path.name for path in files.values()}
    for name in OUTPUT_FILES:  # an earlier run's picture this run does not draw (view_pairs_oracle.png without
        if name.endswith(".png") and name not in written:  # ground truth) would pass for this run's
            (out / name).unlink(missing_ok=True)
    measured = [] if gt is None else [i for i, boxes in enumerate(gt) if boxes is not None]
    objects = sum(len(gt[i]) for i in measured)
    no_objects = bool(measured) and objects == 0
    if no_objects:  # recall and false-positive pairs of no objects mean nothing: report as without ground truth
        measured = []
    report = {
        "framework": framework,
        "config": {**config.__dict__, "stages": list(config.stages)},
        "setting": _setting_label(config, len(images), len(measured), annotations is not None, no_objects),
        "refreshes": _refresh_rows(demo_run, config.heatmap, gt, measured),
        "final_box_stats": _box_stats(final["multi"]),
        "final_box_recall": _final_recall(final, gt, measured),
        "final_object_hit_rate": (
            object_hit_rate([box_lists(final["multi"])[i] for i in measured], [gt[i] for i in measured])
            if measured else None
        ),
        "pair_quality": _pair_quality_table(final, gt, measured, images.shape[1], config) if measured else None,
        "epoch_losses": demo_run.epoch_losses,
        "seconds": _time_split(demo_run, wall_seconds),
        "pictures": {key: path.name for key, path in files.items()},
    }
    if resized is not None:  # only then: the generated scenes' report stays as it was
        report["resized"] = resized
    (out / BOXES).unlink(missing_ok=True)  # an earlier run's boxes would pass for this run's
    if demo_run.store is not None:
        export_boxes(demo_run.store, demo_run.filenames, out / BOXES)
        report["boxes"] = {"file": str(out / BOXES), "image_folder": str(train_root)}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(_markdown(report))
    return report


def _setting_label(config: DemoConfig, images: int, measured: int, annotated: bool, no_objects: bool = False) -> str:
    if config.data is None:
        return get_scene_setting(config.setting).label
    truth = f"ground truth for {measured} of them ({ANNOTATIONS})" if annotated else f"no {ANNOTATIONS}"
    if no_objects:
        truth = f"{ANNOTATIONS} lists no objects: nothing to measure"
    return f"your images in {config.data} ({images} images, {truth})"


def _box_stats(box_sets: BoxSets) -> dict[str, float]:
    boxes = box_lists(box_sets)
    areas = torch.cat([(b[:, 2:] - b[:, :2]).clamp_min(0).prod(dim=1) for b in boxes])
    return {"mean_boxes": float(np.mean([len(b) for b in boxes])), "mean_box_area": float(areas.mean()),
            "fallback_fraction": float(box_sets.fallback.float().mean())}


def _final_recall(final: dict[str, BoxSets], gt: list | None, measured: list[int]) -> dict[str, float | None]:
    """Recall at IoU 0.5 of the final model's boxes (``None`` without ground truth)."""
    recall: dict[str, float | None] = {}
    for label, name in (("multi (box sets)", "multi"), ("paper (one box)", "paper")):
        boxes = box_lists(final[name])
        recall[label] = (
            box_recall([boxes[i] for i in measured], [gt[i] for i in measured], iou=0.5) if measured else None
        )
    return recall


def _pictures(
    out: Path, images: np.ndarray, heatmaps: np.ndarray, final: dict[str, BoxSets], gt: list | None, config: DemoConfig
) -> dict[str, Path]:
    """Heatmaps, box sets and the view pairs of one image (predicted and, with ground truth, true boxes)."""
    shown = slice(0, min(PICTURE_IMAGES, len(images)))
    multi_boxes, paper_boxes = box_lists(final["multi"]), box_lists(final["paper"])
    shown_gt = None if gt is None else [np.zeros((0, 4)) if g is None else g for g in gt[shown]]
    files = {
        "heatmaps": pictures.draw_heatmaps(images[shown], heatmaps[shown], out / "heatmaps.png"),
        "box_sets": pictures.draw_box_sets(images[shown], multi_boxes[shown], shown_gt, out / "box_sets.png"),
        "paper_boxes": pictures.draw_box_sets(images[shown], paper_boxes[shown], shown_gt, out / "paper_boxes.png"),
    }
    # View pairs of the image with the most objects (or predicted boxes) among the first few.
    counts = [len(g) for g in shown_gt] if shown_gt is not None else [len(b) for b in multi_boxes[shown]]
    pick = int(np.argmax(counts))
    truth = None if shown_gt is None else shown_gt[pick]
    predicted = {"paper": [final["paper"][pick]], "multi": [final["multi"][pick]], "multi-box": [final["multi"][pick]]}
    generator = torch.Generator().manual_seed(config.seed)
    pairs = _view_pairs(images[pick], lambda name, strategy: predicted.get(name, [None]), generator, config.alpha)
    files["view_pairs"] = pictures.draw_view_pairs(images[pick], pairs, out / "view_pairs.png", ground_truth=truth)
    if truth is not None and len(truth):
        # The same with ground-truth boxes: what each strategy does once the localizer finds the objects.
        oracle = _view_pairs(
            images[pick], lambda name, strategy: oracle_box_sets([truth], strategy), generator, config.alpha
        )
        files["view_pairs_oracle"] = pictures.draw_view_pairs(
            images[pick], oracle, out / "view_pairs_oracle.png", ground_truth=truth
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


def _refresh_rows(demo_run: DemoRun, heatmap: str, gt: list | None, measured: list[int]) -> list[dict[str, Any]]:
    """Every refresh of the run (:func:`_refresh_row`). A rule with dataset statistics (``ddt``) is fitted on each
    pass and applies what the previous pass fitted (docs/plugins.md): the first refresh ran before its first fit,
    on the rule's fallback (``ddt``'s: ``distinctiveness``), and is marked ``before_first_fit``."""
    fits = HeatmapPipeline(heatmap).fits
    return [_refresh_row(epoch, stats, boxes, gt, measured, before_first_fit=fits and number == 0)
            for number, (epoch, stats, boxes) in enumerate(demo_run.refreshes)]


def _refresh_row(
    epoch: int, stats: dict[str, float], boxes: list[torch.Tensor], gt: list | None, measured: list[int],
    before_first_fit: bool = False,
) -> dict[str, Any]:
    """One refresh of the run: its box statistics, scored against ground truth where there is some."""
    row: dict[str, Any] = {"epoch": epoch + 1, "box_recall": None, "box_precision": None,
                           "before_first_fit": before_first_fit}
    if measured:
        chosen, truth = [boxes[i] for i in measured], [gt[i] for i in measured]
        row.update(box_recall=box_recall(chosen, truth, iou=0.5), box_precision=box_precision(chosen, truth, iou=0.5))
    row.update({key: stats[key] for key in ("mean_boxes", "mean_box_area", "fallback_fraction", "seconds")})
    return row


def _pair_quality_table(
    final: dict[str, BoxSets], gt: list, measured: list[int], size: int, config: DemoConfig
) -> dict[str, Any]:
    """Pair quality of every strategy with oracle and with the final model's boxes (measured images)."""
    truth = [gt[i] for i in measured]
    predicted = {"rrc": None, "paper": [final["paper"][i] for i in measured],
                 "multi": [final["multi"][i] for i in measured], "multi-box": [final["multi"][i] for i in measured]}
    quality = {}
    for name in STRATEGIES:
        strategy = get_strategy(name)
        oracle = None if name == "rrc" else oracle_box_sets(truth, strategy)
        quality[name] = {
            "label": strategy.label,
            "oracle": _quality(name, oracle, truth, size, config.alpha),
            "predicted": _quality(name, predicted[name], truth, size, config.alpha),
        }
    return quality


def _quality(strategy: str, sets: list | None, gt: list[np.ndarray], size: int, alpha: float) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    sets = sets if sets is not None else [None] * len(gt)
    views_a, views_b, index = sample_view_pairs(
        get_strategy(strategy), (size, size), sets, PAIRS_PER_IMAGE, generator, alpha
    )
    return pair_quality(views_a, views_b, index, gt).as_dict()


def _time_split(demo_run: DemoRun, wall_seconds: float) -> dict[str, float]:
    busy = demo_run.train_seconds + demo_run.refresh_seconds
    return {
        "training": demo_run.train_seconds,
        "refreshes": demo_run.refresh_seconds,
        "refresh_share": demo_run.refresh_seconds / max(busy, 1e-9),
        "total": wall_seconds,
    }


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _markdown(report: dict[str, Any]) -> str:
    config, seconds = report["config"], report["seconds"]
    stages = ", ".join(config["stages"]) or "last"
    size = "" if config["data"] else f"of {config['scene_size']} px, "
    lines = [
        "# ccrop demo report",
        "",
        f"Framework {report['framework']}; data: {report['setting']}; {config['images']} images {size}"
        f"views {config['image_size']} px, refresh at {config['refresh_size']} px; {config['epochs']} epochs "
        f"(warm-up {config['warmup_epochs']}, refresh every {config['interval']}); heatmap {config['heatmap']} "
        f"at stage {stages}, threshold {config['threshold']}."
        + (f" Trained on {report['resized']}." if "resized" in report else ""),
        "",
        "## Box recall at IoU 0.5 against ground truth, after each refresh (box sets)" if report["pair_quality"]
        else "## Box sets after each refresh (no ground truth)",
        "",
        "| after epoch | recall | precision | boxes / image | mean box area | fallback | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["refreshes"]:
        epoch = f"{r['epoch']} (before fit)" if r.get("before_first_fit") else r["epoch"]
        lines.append(
            f"| {epoch} | {_fraction(r['box_recall'])} | {_fraction(r['box_precision'])} | {r['mean_boxes']:.2f} "
            f"| {r['mean_box_area']:.2f} | {r['fallback_fraction']:.2f} | {r['seconds']:.1f} |"
        )
    if any(r.get("before_first_fit") for r in report["refreshes"]):
        lines += ["", f"Heatmap {config['heatmap']} is fitted on each refresh pass and applies that fit from the next "
                      "pass on: the refresh marked *before fit* ran on the rule's fallback (ddt's: distinctiveness)."]
    stats = report["final_box_stats"]
    lines += ["", f"Final model: {stats['mean_boxes']:.2f} boxes per image, "
                  f"mean box area {stats['mean_box_area']:.2f}, "
                  f"fallback (no box found) {stats['fallback_fraction']:.2f}."]
    lines += _markdown_truth(report) + _markdown_time(report, seconds)
    return "\n".join(lines)


def _markdown_truth(report: dict[str, Any]) -> list[str]:
    """Final recall and the pair-quality table, or a note that there is no ground truth."""
    if report["pair_quality"] is None:
        return ["", f"No ground truth ({ANNOTATIONS} in the data folder): box statistics and pictures only."]
    final = report["final_box_recall"]
    lines = [
        "",
        "Final model, same heatmaps: recall "
        + ", ".join(f"{name} {value:.2f}" for name, value in final.items())
        + f"; object hit rate (object centre inside a box) {report['final_object_hit_rate']:.2f}"
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
            f"| {o['object_coverage']:.2f} / {p['object_coverage']:.2f} "
            f"| {o['pair_spread']:.2f} / {p['pair_spread']:.2f} "
            f"| {o['object_share']:.2f} / {p['object_share']:.2f} |"
        )
    return lines


def _markdown_time(report: dict[str, Any], seconds: dict[str, float]) -> list[str]:
    return [
        "",
        "## Time",
        "",
        f"Training {seconds['training']:.1f} s, refreshes {seconds['refreshes']:.1f} s "
        f"({100 * seconds['refresh_share']:.1f} % of the two), whole demo {seconds['total']:.1f} s.",
        "",
        "Pictures: " + ", ".join(f"`{name}`" for name in report["pictures"].values()),
        "",
    ] + _markdown_boxes(report)


def _markdown_boxes(report: dict[str, Any]) -> list[str]:
    """Where the final boxes are and the ``ccrop viz`` command that draws them (none without a box store)."""
    if "boxes" not in report:
        return []
    folder, boxes = report["boxes"]["image_folder"], report["boxes"]["file"]
    viz = shlex.join(["ccrop", "viz", folder, "--boxes", boxes, "--out", str(Path(boxes).parent / "viz")])
    return [f"Final boxes: `{Path(boxes).name}`, keyed by the file names under `{folder}`; draw them: `{viz}`.", ""]

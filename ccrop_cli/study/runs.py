"""``ccrop study``'s runs: pre-train and evaluate each setting, strategy, box source and seed not yet done."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from lightly.data import LightlyDataset

from ccrop_scenes import load_annotations

from ccrop_cli.experiment.backbones import build_backbone
from ccrop_cli.experiment.evaluation import evaluate_backbone
from ccrop_cli.experiment.pair_quality import box_recall, oracle_box_sets, pair_quality, sample_view_pairs
from ccrop_cli.experiment.pretrain import PretrainResult, RefreshRecord, pretrain_simclr
from ccrop_cli.experiment.scene_settings import get_scene_setting, write_split
from ccrop_cli.study.config import StudyConfig
from ccrop_cli.study.report import boxes_of, variants

PAIRS_PER_IMAGE = 4
#: Per setting: the training folder, the test folder and the training ground-truth boxes.
Splits = dict[str, tuple[Path, Path, list[np.ndarray]]]


def write_splits(config: StudyConfig, out: Path) -> tuple[Splits, dict[str, dict[str, float]]]:
    """Each setting's training and test folders with the training ground truth, and the
    strategies' false-positive pair rates with ground-truth boxes."""
    splits: Splits = {}
    oracle: dict[str, dict[str, float]] = {}
    for setting_name in config.settings:
        setting = get_scene_setting(setting_name)
        data = out / "data" / setting_name
        train_root = write_split(setting, data / "train", config.train_images, config.scene_size, seed=1000)
        test_root = write_split(setting, data / "test", config.test_images, config.scene_size, seed=2000)
        gt = _ground_truth(train_root)
        splits[setting_name] = (train_root, test_root, gt)
        oracle[setting_name] = _oracle_false_positive_rates(config, gt)
    return splits, oracle


def run_missing(
    config: StudyConfig,
    args: argparse.Namespace,
    splits: Splits,
    runs: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    save: Callable[[], None],
    started: float,
) -> None:
    """Train and evaluate every run (and untrained baseline) not yet in ``runs``; ``save`` after each."""
    device = torch.device(config.device)
    # Seeds outermost: an interrupted study still has every setting and strategy for the first seeds.
    for seed in range(config.seeds):
        for setting_name in config.settings:
            train_root, test_root, gt = splits[setting_name]
            if not any(r["setting"] == setting_name and r["seed"] == seed for r in baselines):
                baselines.append(_random_init(config, setting_name, seed, train_root, test_root, device))
                save()
            for strategy_name, boxes in variants(config):
                if any(
                    (r["setting"], r["strategy"], boxes_of(r), r["seed"]) == (setting_name, strategy_name, boxes, seed)
                    for r in runs
                ):
                    continue
                print(
                    f"[{time.perf_counter() - started:7.0f} s] {setting_name} / {strategy_name} ({boxes} boxes) "
                    f"/ seed {seed}",
                    flush=True,
                )
                runs.append(_one_run(config, setting_name, strategy_name, boxes, seed, train_root, test_root, gt, args))
                save()


def _one_run(
    config: StudyConfig,
    setting: str,
    strategy_name: str,
    boxes: str,
    seed: int,
    train_root: Path,
    test_root: Path,
    gt: list[np.ndarray],
    args: argparse.Namespace,
) -> dict[str, Any]:
    strategy = config.strategy(strategy_name)
    began = time.perf_counter()
    source = "oracle" if boxes == "oracle" else "learned"
    result: PretrainResult = pretrain_simclr(
        train_root, strategy, config.pretrain_config(seed, source), progress=not args.no_progress
    )
    accuracy = evaluate_backbone(
        result.backbone, train_root, test_root, config.eval_size, object_view_size=config.image_size
    )
    # Warm-up views are RandomResizedCrop's: the false-positive rate before any refresh.
    warmup_quality = _pair_quality(config, "rrc", None, gt, seed)
    refreshes = [_refresh_entry(config, strategy_name, record, gt, seed) for record in result.refreshes]
    run = {
        "setting": setting,
        "strategy": strategy_name,
        "boxes": boxes,
        "seed": seed,
        **accuracy.as_dict(),
        "train_seconds": result.train_seconds,
        "refresh_seconds": result.refresh_seconds,
        "total_seconds": time.perf_counter() - began,
        "views_per_second": result.views_per_second,
        "epoch_losses": result.epoch_losses,
        "warmup_false_positive_rate": warmup_quality["false_positive_rate"],
        "refreshes": refreshes,
    }
    print(
        f"    {_figures(accuracy.as_dict())}  "
        f"train {result.train_seconds:.0f} s ({result.views_per_second:.0f} views/s)  "
        f"refresh {result.refresh_seconds:.1f} s"
        + (f"  recall {refreshes[-1]['box_recall']:.2f}  fp {refreshes[-1]['false_positive_rate']:.2f}"
           if refreshes else ""),
        flush=True,
    )
    return run


def _random_init(
    config: StudyConfig, setting: str, seed: int, train_root: Path, test_root: Path, device: torch.device
) -> dict[str, Any]:
    """Figures of the untrained backbone (weights from ``seed``): what pre-training must beat."""
    backbone, _ = build_backbone(config.backbone, seed)
    accuracy = evaluate_backbone(
        backbone.to(device), train_root, test_root, config.eval_size, object_view_size=config.image_size
    )
    print(f"    random init, seed {seed}: {_figures(accuracy.as_dict())}", flush=True)
    return {"setting": setting, "seed": seed, **accuracy.as_dict()}


def _figures(values: dict[str, float | None]) -> str:
    return "  ".join(f"{name} {value:.3f}" for name, value in values.items() if value is not None)


def _refresh_entry(
    config: StudyConfig, strategy: str, record: RefreshRecord, gt: list[np.ndarray], seed: int
) -> dict[str, Any]:
    box_sets = [record.box_sets[i] for i in range(len(record.box_sets))]
    quality = _pair_quality(config, strategy, box_sets, gt, seed)
    return {
        "epoch": record.epoch,
        "box_recall": box_recall([boxes for boxes, _ in box_sets], gt, iou=0.5),
        "false_positive_rate": quality["false_positive_rate"],
        "object_share": quality["object_share"],
        "pair_spread": quality["pair_spread"],
        **{k: v for k, v in record.stats.as_dict().items() if k != "version"},
    }


def _pair_quality(
    config: StudyConfig, strategy: str, box_sets: list | None, gt: list[np.ndarray], seed: int
) -> dict[str, float]:
    generator = torch.Generator().manual_seed(10_000 + seed)
    sets = box_sets if box_sets is not None else [None] * len(gt)
    size = (config.scene_size, config.scene_size)
    views_a, views_b, index = sample_view_pairs(config.strategy(strategy), size, sets, PAIRS_PER_IMAGE, generator,
                                                config.alpha)
    return pair_quality(views_a, views_b, index, gt).as_dict()


def _oracle_false_positive_rates(config: StudyConfig, gt: list[np.ndarray]) -> dict[str, float]:
    """Each strategy's false-positive pair rate with ground-truth boxes (the best a localizer can do)."""
    rates = {}
    for name in config.strategies:
        sets = oracle_box_sets(gt, config.strategy(name))
        rates[name] = _pair_quality(config, name, sets, gt, seed=0)["false_positive_rate"]
    return rates


def _ground_truth(root: Path) -> list[np.ndarray]:
    """Ground-truth boxes per image, in ``LightlyDataset`` index order (the box store's order)."""
    boxes = load_annotations(root)
    return [boxes[name] for name in LightlyDataset(str(root)).get_filenames()]

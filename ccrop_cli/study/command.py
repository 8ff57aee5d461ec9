"""``ccrop study``: does ContrastiveCrop (and its box-set form) learn better features here?

For every scene setting (``single``: one medium object; ``multi-small``: 2-4 small objects
of the image's class; ``mixed-small``: 2-4 small objects of different classes), crop
strategy (``rrc``, ``paper``, ``multi``, ``multi-box``), box source and seed: pre-train
SimCLR through the Lightly adapter (:func:`ccrop_cli.experiment.pretrain.pretrain_simclr`),
then score the frozen backbone on a held-out split of the same setting
(:func:`ccrop_cli.experiment.evaluation.evaluate_backbone`): a linear probe on each
ground-truth object's crop, the multi-label mAP of the classes in the image, and the
image label (linear probe and kNN).

Box sources (``--boxes``): ``learned`` boxes come from the localizer's refreshes;
``oracle`` boxes are the folder's ground truth, written to the box store at the same
refresh epochs, the ceiling of what any localizer can give the crop. After every refresh
the boxes are scored against ground truth (box recall at IoU 0.5) and view pairs sampled
from them for false-positive pairs (``ccrop_cli.experiment.pair_quality``).

Writes to ``--out``: ``results.json`` (every run, updated after each one, so an interrupted
study resumes where it stopped), ``results.md`` (means over seeds and paired differences
to RandomResizedCrop with a paired t-test) and three plots.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from lightly.data import LightlyDataset

from ccrop_plugins import HeatmapPipeline, RefreshSchedule
from ccrop_scenes import generate_scenes, load_annotations

from ccrop_cli.errors import UserError
from ccrop_cli.experiment.backbones import build_backbone, check_stage_names
from ccrop_cli.experiment.evaluation import evaluate_backbone
from ccrop_cli.experiment.pair_quality import box_recall, oracle_box_sets, pair_quality, sample_view_pairs
from ccrop_cli.experiment.pretrain import PretrainConfig, PretrainResult, RefreshRecord, pretrain_simclr
from ccrop_cli.experiment.scene_settings import NUM_CLASSES, SCENE_SETTINGS, get_scene_setting, write_split
from ccrop_cli.experiment.strategies import STRATEGIES, get_strategy
from ccrop_cli.experiment.strategies import CropStrategy
from ccrop_cli.option_types import (MAX_EPOCHS, check_output_folder, non_negative_int, positive_int, side, user_path,
                                    workers)
from ccrop_cli.study.report import boxes_of, variants, write_plots, write_table

PAIRS_PER_IMAGE = 4
MIN_STUDY_SIDE = 16
"""The smallest ``--image-size``, ``--refresh-size`` and ``--eval-size``: the generated scenes' smallest side."""
#: Per setting: the training folder, the test folder and the training ground-truth boxes.
Splits = dict[str, tuple[Path, Path, list[np.ndarray]]]


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of one study; the defaults are the CPU ceiling study of ``docs/results.md``.

    Defaults: mixed-class scenes of 2-4 small objects, RandomResizedCrop against box sets at
    box scale with learned and with ground-truth boxes, 5 seeds, 25 epochs of a convnet on 400
    scenes of 48 px (24 px views; 25 rather than 15 epochs: the ground-truth gain in mAP grew
    from 2.9 to 4.6 points); learned boxes from issue 9's best localizer. 15 runs of 20,000
    views each: about 15 minutes on 2 free cores (45-50 s per run measured), over an hour on a
    busy machine. ``PRESETS`` holds the others.

    Attributes:
        settings: scene setting names (``ccrop_cli.experiment.scene_settings``).
        strategies: crop strategy names.
        seeds: seeds ``0 .. seeds - 1`` (weights, shuffling, augmentation).
        backbone: ``convnet`` or ``resnet18``.
        scene_size: side of the generated images, pixels.
        image_size: side of the training views and of the evaluation input.
        refresh_size: side of the images the box refresh localizes in (the scenes' own size:
            an 8 x 8 heatmap instead of 4 x 4).
        train_images, test_images: images per split; the test split is a separately seeded
            draw of the same setting, used only for evaluation.
        epochs, warmup_epochs, interval, batch_size: the pre-training schedule.
        threshold, alpha: ContrastiveCrop's ``k`` (a number, or ``otsu``/``mean`` per image)
            and ``Beta(alpha, alpha)``.
        heatmap, stages: the heatmap rule and the backbone stages (dotted module names) the
            learned boxes come from (``None``: the last stage).
        num_workers: DataLoader workers (persistent).
        boxes: box sources for the strategies that use boxes: ``learned`` (the localizer),
            ``oracle`` (the folder's ground-truth boxes).
        eval_size: side the whole images are resized to for evaluation (``None``: the scenes'
            own size); object crops are always evaluated at their native size.
        cj_strength: colour-jitter strength of the SimCLR views (lightly's ``cj_strength``).
        box_scale: crop area range, relative to the chosen box, of box-scale strategies
            (``multi-box``).
        device: ``cpu`` or ``cuda`` (mixed precision, bfloat16, on CUDA).
    """

    settings: tuple[str, ...] = ("mixed-small",)
    strategies: tuple[str, ...] = ("rrc", "multi-box")
    seeds: int = 5
    backbone: str = "convnet"
    scene_size: int = 48
    image_size: int = 24
    refresh_size: int = 48
    train_images: int = 400
    test_images: int = 500
    epochs: int = 25
    warmup_epochs: int = 5
    interval: int = 5
    batch_size: int = 32
    threshold: float | str = "otsu"
    heatmap: str = "distinctiveness"
    stages: tuple[str, ...] | None = ("5",)  # the stride-2 stage of both backbones (docs/benchmarks/localize.md)
    alpha: float = 0.6
    num_workers: int = 2
    boxes: tuple[str, ...] = ("learned", "oracle")
    eval_size: int | None = None
    cj_strength: float = 0.5
    box_scale: tuple[float, float] = (1.0, 4.0)
    device: str = "cpu"

    def pretrain_config(self, seed: int, boxes: str = "learned") -> PretrainConfig:
        """One run's :class:`~ccrop_cli.experiment.pretrain.PretrainConfig` (validated)."""
        return PretrainConfig(
            backbone=self.backbone,
            image_size=self.image_size,
            refresh_size=self.refresh_size,
            epochs=self.epochs,
            batch_size=self.batch_size,
            warmup_epochs=self.warmup_epochs,
            interval=self.interval,
            threshold=self.threshold,
            heatmap=self.heatmap,
            stages=self.stages,
            alpha=self.alpha,
            seed=seed,
            num_workers=self.num_workers,
            box_source=boxes,
            cj_strength=self.cj_strength,
            device=self.device,
        )

    def strategy(self, name: str) -> CropStrategy:
        """The strategy ``name``; a box-scale one gets this study's ``box_scale``."""
        strategy = get_strategy(name)
        if strategy.scale_reference == "box":
            strategy = replace(strategy, scale=tuple(self.box_scale))
        return strategy

    def validate(self) -> None:
        """Every option as the user typed it, before any data is made: ``ValueError`` naming the option."""
        self._check_sizes()
        self._check_crop_options()
        self._check_device()
        self._check_stages()
        self._check_runs()

    def _check_sizes(self) -> None:
        """Epochs, seeds, image counts, the batch and the scene, view and heatmap sizes."""
        if self.epochs > MAX_EPOCHS:
            raise ValueError(f"--epochs must be an integer from 1 to {MAX_EPOCHS}; got {self.epochs}")
        for name in self.settings:
            setting = get_scene_setting(name)
            try:  # the generator's own checks of the scene size (one tiny scene)
                generate_scenes(1, image_size=self.scene_size, objects_per_image=setting.objects_per_image,
                                object_area=setting.object_area, mixed_classes=setting.mixed_classes,
                                num_classes=NUM_CLASSES)
            except ValueError as error:
                raise ValueError(f"--scene-size {self.scene_size} is too small for the {name} scenes "
                                 f"({error})") from None
        if self.seeds < 1:
            raise ValueError(f"--seeds must be a positive integer; got {self.seeds}")
        for name in ("train_images", "test_images"):  # labels are balanced: fewer images leave a class folder empty
            if getattr(self, name) < NUM_CLASSES:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)} is fewer than the scenes' "
                                 f"{NUM_CLASSES} "
                                 f"classes: every class folder needs an image (torchvision's ImageFolder refuses an "
                                 f"empty one); use at least {NUM_CLASSES}")
        if self.batch_size > self.train_images:
            raise ValueError(f"--batch-size {self.batch_size} exceeds --train-images {self.train_images}")
        for name in ("image_size", "refresh_size", "eval_size"):  # --image-size 1 trained on 1-pixel views and
            value = getattr(self, name)                              # reported their accuracies without a word
            if value is not None and value < MIN_STUDY_SIDE:
                raise ValueError(f"--{name.replace('_', '-')} must be at least {MIN_STUDY_SIDE} px (the generated "
                                 f"scenes' smallest side; a smaller view or heatmap holds no object to learn or "
                                 f"find); got {value}")

    def _check_crop_options(self) -> None:
        """Strategies, box sources, box scale, alpha, colour jitter and threshold, named as the user types them
        (were 'strategy rrc: alpha ...', 'cj_strength ...', 'threshold ...', from the pieces that check them again)."""
        for name in self.strategies:
            get_strategy(name)
        for source in self.boxes:
            if source not in BOX_SOURCES:
                raise ValueError(f"unknown box source {source!r}; available: {', '.join(BOX_SOURCES)}")
        if not 0 < self.box_scale[0] <= self.box_scale[1]:
            raise ValueError(f"--box-scale must be 0 < min <= max; got {tuple(self.box_scale)}")
        if self.box_scale[1] == float("inf"):
            raise ValueError(f"--box-scale must be finite (a crop's area relative to the box); got "
                             f"{tuple(self.box_scale)}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"--alpha must be a finite number > 0 (Beta(alpha, alpha) of the crop centre; the paper "
                             f"uses 0.1 to 1.0); got {self.alpha}")
        if not (math.isfinite(self.cj_strength) and self.cj_strength >= 0):
            raise ValueError(f"--cj-strength must be a finite number >= 0 (the colour jitter of the SimCLR views; "
                             f"default 0.5); got {self.cj_strength}")
        if not isinstance(self.threshold, str) and not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"--threshold must lie in [0, 1) (or be otsu/mean); got {self.threshold}")
        for name in self.strategies:  # each crop as every run builds it (scale, alpha), before any data is made
            try:
                self.strategy(name).make_crop(self.image_size, alpha=self.alpha)
            except (TypeError, ValueError) as error:
                raise ValueError(f"strategy {name}: {error}") from None

    def _check_device(self) -> None:
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"--device must be cpu, cuda or cuda:N; got {self.device!r}")
        if self.device != "cpu" and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device}: no CUDA device is available here "
                             "(torch.cuda.is_available() is False)")

    def _check_runs(self) -> None:
        """Sizes, schedule, threshold and stage names as every run checks them; a schedule that never refreshes; the
        heatmap rule."""
        try:
            self.pretrain_config(0)
        except ValueError as error:  # 'batch_size must be at least 2': named as the option the user typed
            text = str(error)
            for name in ("batch_size", "cj_strength", "image_size", "refresh_size", "warmup_epochs", "epochs"):
                if text.startswith(name):
                    text = f"--{name.replace('_', '-')}{text[len(name):]}"
                    break
            raise ValueError(text) from None
        box_strategies = [name for name in self.strategies if get_strategy(name).uses_boxes]
        if box_strategies and RefreshSchedule(self.warmup_epochs, self.interval).never_refreshes(self.epochs):
            raise ValueError(
                f"--epochs {self.epochs} and --warmup-epochs {self.warmup_epochs}, interval {self.interval}: the box "
                f"strategies ({', '.join(box_strategies)}) never refresh (no refresh after the last epoch), so every "
                "run would be RandomResizedCrop's; train longer or lower --warmup-epochs"
            )
        try:
            HeatmapPipeline(self.heatmap)
        except (KeyError, ValueError) as error:
            raise ValueError(f"--heatmap: {error.args[0] if error.args else error}") from None

    def _check_stages(self) -> None:
        """``--stages`` named as typed, with the backbone's stages (``--stages ''`` was the core's "a stage name must
        be a non-empty dotted module name; got ''", without the option or the names it takes)."""
        if not self.stages:
            return
        modules = [name for name, _ in build_backbone(self.backbone, 0)[0].named_modules() if name]
        check_stage_names(self.stages, modules, self.backbone)

BOX_SOURCES = ("learned", "oracle")

#: Named sizes (``--preset``); explicit options override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The study's defaults, spelled out.
    "cpu": {},
    # The test-sized study (``--quick``).
    "quick": dict(
        seeds=1, scene_size=32, image_size=32, refresh_size=32, train_images=32, test_images=32, epochs=2,
        warmup_epochs=1, interval=1, batch_size=16,
    ),
    # About 10 minutes on one modern GPU (an estimate: untested on CUDA): ResNet-18, 96 px scenes,
    # 48 px views, 2,000 training scenes, 100 epochs, the paper's warm-up and interval proportions.
    "gpu": dict(
        settings=("mixed-small",), strategies=("rrc", "paper", "multi-box"), boxes=("learned", "oracle"), seeds=3,
        backbone="resnet18", scene_size=96, image_size=48, refresh_size=96, train_images=2000, test_images=2000,
        epochs=100, warmup_epochs=20, interval=20, batch_size=256, num_workers=8, device="cuda",
    ),
}
QUICK = PRESETS["quick"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = StudyConfig()
    parser.add_argument("--out", default="outputs/study", type=user_path, help="output folder (default: outputs/study)")
    parser.add_argument("--quick", action="store_true", help="a tiny study for tests: 32 images, 2 epochs, 1 seed")
    parser.add_argument(
        "--preset", default=None, choices=list(PRESETS),
        help="named sizes: cpu (the defaults), quick (= --quick), gpu (ResNet-18, about 10 minutes on one GPU)",
    )
    parser.add_argument(
        "--boxes", nargs="+", default=None, choices=list(BOX_SOURCES),
        help="box sources of the box strategies: learned (localizer), oracle (ground truth; the ceiling)",
    )
    parser.add_argument("--device", default=None, help="cpu (default) or cuda (bfloat16 autocast)")
    parser.add_argument("--eval-size", type=side, default=None, help="evaluation image size (default: the scenes' own)")
    parser.add_argument("--cj-strength", type=float, default=None, help="colour-jitter strength of the views")
    parser.add_argument("--box-scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="crop area range relative to the box, for multi-box")
    parser.add_argument("--seeds", type=positive_int, default=None,
                        help=f"seeds per strategy (default {defaults.seeds})")
    parser.add_argument("--settings", nargs="+", default=None, choices=list(SCENE_SETTINGS), help="scene settings")
    parser.add_argument("--strategies", nargs="+", default=None, choices=list(STRATEGIES), help="crop strategies")
    parser.add_argument("--backbone", default=None, choices=["convnet", "resnet18"])
    parser.add_argument("--epochs", type=positive_int, default=None)
    parser.add_argument("--warmup-epochs", type=non_negative_int, default=None)
    parser.add_argument("--interval", type=positive_int, default=None)
    parser.add_argument("--train-images", type=positive_int, default=None)
    parser.add_argument("--test-images", type=positive_int, default=None)
    parser.add_argument("--image-size", type=side, default=None, help="training view size in pixels")
    parser.add_argument("--refresh-size", type=side, default=None, help="image size for the box refresh")
    parser.add_argument("--scene-size", type=side, default=None, help="generated image size in pixels")
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument(
        "--threshold", type=_threshold, default=None, help="localizer threshold k: a number (paper: 0.1), otsu or mean"
    )
    parser.add_argument("--heatmap", default=None,
                        help="heatmap rule of the learned boxes (default distinctiveness; paper: channel_sum)")
    parser.add_argument(
        "--stages", nargs="+", default=None,
        help="backbone stages (module names) of the learned boxes' heatmaps (default 5, the stride-2 stage; "
        "'last': the last stage, the paper's)",
    )
    parser.add_argument("--alpha", type=float, default=None, help="Beta(alpha, alpha) of the crop centre")
    parser.add_argument("--num-workers", type=workers, default=None,
                        help="DataLoader workers (default 2), at most 4 per CPU core")
    parser.add_argument("--fresh", action="store_true", help="ignore runs already in results.json")
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite results.md and the plots from results.json"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The :class:`StudyConfig` of the command line: defaults, then the preset, then explicit options."""
    preset = "quick" if args.quick else getattr(args, "preset", None)
    if args.quick and getattr(args, "preset", None) not in (None, "quick"):
        raise UserError(f"--quick and --preset {args.preset} contradict each other; give one")
    config = StudyConfig(**PRESETS[preset]) if preset else StudyConfig()
    if args.report_only:  # the study's options come from results.json: one given here would be ignored, silently
        given = [f"--{name.replace('_', '-')}" for name, value in sorted(vars(args).items())
                 if name not in ("out", "quick", "preset", "no_progress", "report_only", "func", "command")
                 and value not in (None, False)]
        if given:
            raise UserError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply with --report-only "
                            "(it rewrites the report of results.json, with that study's options); leave "
                            f"{'it' if len(given) == 1 else 'them'} out")
        return config  # not validated: replaced by results.json's (a gpu preset needs no CUDA device here)
    overrides: dict[str, Any] = {}
    for name in (
        "seeds", "backbone", "epochs", "warmup_epochs", "interval", "train_images", "test_images", "image_size",
        "scene_size", "refresh_size", "batch_size", "threshold", "alpha", "num_workers", "device", "eval_size",
        "cj_strength", "heatmap",
    ):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.settings:  # each once, as --boxes: a name given twice printed its rows of the tables again and again
        overrides["settings"] = tuple(dict.fromkeys(args.settings))
    if args.strategies:
        overrides["strategies"] = tuple(dict.fromkeys(args.strategies))
    if getattr(args, "boxes", None):
        overrides["boxes"] = tuple(dict.fromkeys(args.boxes))
    if getattr(args, "stages", None):
        overrides["stages"] = None if args.stages == ["last"] else tuple(args.stages)
    if getattr(args, "box_scale", None):
        overrides["box_scale"] = tuple(args.box_scale)
    if getattr(args, "boxes", None):
        box_strategies = [name for name, strategy in STRATEGIES.items() if strategy.uses_boxes]
        if not any(name in box_strategies for name in overrides.get("strategies", config.strategies)):
            raise UserError(f"--boxes applies to the box strategies ({', '.join(box_strategies)}); --strategies "
                            f"{' '.join(overrides.get('strategies', config.strategies))} has none")
    try:
        config = replace(config, **overrides)
        config.validate()
    except ValueError as error:  # bad option values: one line from `ccrop study`, not a traceback
        raise UserError(str(error)) from None
    return config


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = check_output_folder(args.out)
    results_file = out / "results.json"
    config, runs, baselines, command = _saved_runs(args, config, results_file)
    started = time.perf_counter()
    saved_oracle = _read_results(results_file).get("oracle_false_positive_rate") if args.report_only else None
    if saved_oracle:  # --report-only: the figures of results.json, no scenes generated
        splits, oracle = {}, saved_oracle
    else:
        splits, oracle = _write_splits(config, out)

    def save() -> None:  # after every run: an interrupted study resumes where it stopped
        _save(results_file, config, runs, oracle, baselines, command)

    if not args.report_only:
        _run_missing(config, args, splits, runs, baselines, save, started)
    save()
    summary = write_table(out / "results.md", config, runs, oracle, command=command, baselines=baselines)
    write_plots(out, config, runs, oracle)
    print(summary)
    print(f"study done in {time.perf_counter() - started:.0f} s; results in {out}")
    return 0


def _read_results(results_file: Path) -> dict[str, Any]:
    try:
        saved = json.loads(results_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:  # e.g. a write cut short
        raise UserError(f"{results_file} is not valid JSON ({error}); remove it, or start afresh with "
                        "--fresh") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("runs", []), list):
        raise UserError(f"{results_file} is not a study's results file; remove it, or start afresh with --fresh")
    return saved


def _saved_runs(
    args: argparse.Namespace, config: StudyConfig, results_file: Path
) -> tuple[StudyConfig, list[dict[str, Any]], list[dict[str, Any]], str]:
    """The config, runs, untrained baselines and command to start from.

    ``--report-only`` takes all four from ``results.json``; otherwise its runs are kept when
    the study differs from the saved one at most in the number of seeds (``--fresh``: never).
    """
    command = _command(args)
    if args.report_only:
        if not results_file.exists():
            raise UserError(f"--report-only needs {results_file}; run the study first")
        saved = _read_results(results_file)
        config = StudyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()
                                if k in _FIELDS})
        return config, saved["runs"], saved.get("random_init", []), saved.get("command", command)
    if results_file.exists() and not args.fresh:
        saved = _read_results(results_file)
        # Runs are keyed by seed: a study with more (or fewer) seeds resumes from the same runs.
        ours, theirs = _without_seeds(json.loads(json.dumps(asdict(config)))), _without_seeds(saved.get("config", {}))
        if ours == theirs:
            print(f"resuming: {len(saved['runs'])} runs already in {results_file}")
            return config, saved["runs"], saved.get("random_init", []), command
        changed = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        print(f"{results_file} holds a study with other {', '.join(changed)}: starting afresh (it will be overwritten)")
    return config, [], [], command


def _write_splits(config: StudyConfig, out: Path) -> tuple[Splits, dict[str, dict[str, float]]]:
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


def _run_missing(
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


_FIELDS = {f.name for f in fields(StudyConfig)}


def _threshold(text: str) -> float | str:
    if text in ("otsu", "mean"):
        return text
    try:
        return float(text)
    except ValueError:  # argparse would say "invalid _threshold value"
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), otsu or mean; got {text!r}") from None


def _without_seeds(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "seeds"}


def _save(
    path: Path,
    config: StudyConfig,
    runs: list[dict[str, Any]],
    oracle: dict[str, dict[str, float]],
    baselines: list[dict[str, Any]],
    command: str,
) -> None:
    payload = {
        "command": command,
        "config": asdict(config),
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
        "oracle_false_positive_rate": oracle,
        "random_init": baselines,
        "runs": runs,
    }
    partial = path.with_name(path.name + ".partial")  # written whole, then renamed: a study stopped while saving
    partial.write_text(json.dumps(payload, indent=1))  # keeps its last results.json, every finished run in it
    os.replace(partial, path)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this study (options left at their default are omitted)."""
    parts = ["ccrop study"]
    for name, value in sorted(vars(args).items()):
        if name in ("no_progress", "fresh", "report_only") or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts.append(f"{flag} {' '.join(map(str, value))}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)

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
import time
from pathlib import Path
from dataclasses import replace
from typing import Any

from ccrop_cli.errors import UserError
from ccrop_cli.experiment.scene_settings import SCENE_SETTINGS
from ccrop_cli.experiment.strategies import STRATEGIES
from ccrop_cli.option_types import (
    MAX_EPOCHS,
    MAX_SEEDS,
    check_output_folder,
    non_negative_int,
    positive_int,
    side,
    threshold,
    user_path,
    workers,
)
from ccrop_cli.study.config import BOX_SOURCES, PRESETS, QUICK, StudyConfig
from ccrop_cli.study.report import remove_report, write_plots, write_table
from ccrop_cli.study.results_file import read_results, save_results, saved_runs
from ccrop_cli.study.runs import run_missing, write_splits

__all__ = ["PRESETS", "QUICK", "StudyConfig", "add_arguments", "config_from_args", "run"]


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
        help="box sources of the box strategies: learned (localizer), oracle (ground truth; the ceiling) "
        f"(default: {' '.join(defaults.boxes)})",
    )
    parser.add_argument("--device", default=None, help="cpu (default) or cuda (bfloat16 autocast)")
    parser.add_argument("--eval-size", type=side, default=None, help="evaluation image size (default: the scenes' own)")
    parser.add_argument("--cj-strength", type=float, default=None,
                        help=f"colour-jitter strength of the views (default: {defaults.cj_strength})")
    parser.add_argument("--box-scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="crop area range relative to the box, for multi-box "
                             f"(default: {' '.join(f'{v:g}' for v in defaults.box_scale)})")
    parser.add_argument("--seeds", type=positive_int, default=None,
                        help=f"seeds per strategy, 1 to {MAX_SEEDS} (default {defaults.seeds})")
    parser.add_argument("--settings", nargs="+", default=None, choices=list(SCENE_SETTINGS),
                        help=f"scene settings (default: {' '.join(defaults.settings)})")
    parser.add_argument("--strategies", nargs="+", default=None, choices=list(STRATEGIES),
                        help=f"crop strategies (default: {' '.join(defaults.strategies)})")
    parser.add_argument("--backbone", default=None, choices=["convnet", "resnet18"],
                        help=f"backbone to pre-train (default: {defaults.backbone})")
    _add_training_options(parser, defaults)
    parser.add_argument("--fresh", action="store_true", help="ignore runs already in results.json")
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite results.md and the plots from results.json"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


_SIZE_OPTIONS = (  # option, type, help; the default is StudyConfig's field of the option's name
    ("--epochs", positive_int, f"pre-training epochs, 1 to {MAX_EPOCHS}"),
    ("--warmup-epochs", non_negative_int, "epochs before the first box refresh"),
    ("--interval", positive_int, "epochs between box refreshes"),
    ("--train-images", positive_int, "pre-training images per setting"),
    ("--test-images", positive_int, "evaluation images per setting"),
    ("--image-size", side, "training view size in pixels"),
    ("--refresh-size", side, "image size for the box refresh"),
    ("--scene-size", side, "generated image size in pixels"),
    ("--batch-size", positive_int, "pre-training batch size"),
)


def _add_training_options(parser: argparse.ArgumentParser, defaults: StudyConfig) -> None:
    """The sizes of each run: epochs, refresh schedule, images, sizes, batch, box stage and crop, workers."""
    for option, kind, text in _SIZE_OPTIONS:
        default = getattr(defaults, option[2:].replace("-", "_"))
        parser.add_argument(option, type=kind, default=None, help=f"{text} (default: {default})")
    parser.add_argument("--threshold", type=threshold, default=None,
                        help=f"localizer threshold k: a number (paper: 0.1), otsu or mean "
                             f"(default: {defaults.threshold})")
    parser.add_argument("--heatmap", default=None,
                        help="heatmap rule of the learned boxes (default distinctiveness; paper: channel_sum)")
    parser.add_argument(
        "--stages", nargs="+", default=None,
        help="backbone stages (module names) of the learned boxes' heatmaps (default 5, the stride-2 stage; "
        "'last': the last stage, the paper's)",
    )
    parser.add_argument("--alpha", type=float, default=None,
                        help=f"Beta(alpha, alpha) of the crop centre (default: {defaults.alpha})")
    parser.add_argument("--num-workers", type=workers, default=None,
                        help="DataLoader workers (default 2), at most 4 per CPU core")


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
    if args.report_only and not (Path(args.out) / "results.json").is_file():  # before --out is created: left empty
        raise UserError(f"--report-only needs {Path(args.out) / 'results.json'}; run the study first")
    out = check_output_folder(args.out)
    results_file = out / "results.json"
    config, runs, baselines, command = saved_runs(args, config, results_file)
    if not args.report_only and not runs:  # afresh: an earlier study's report would describe other runs
        remove_report(out)
    started = time.perf_counter()
    saved_oracle = read_results(results_file).get("oracle_false_positive_rate") if args.report_only else None
    if saved_oracle:  # --report-only: the figures of results.json, no scenes generated
        splits, oracle = {}, saved_oracle
    else:
        splits, oracle = write_splits(config, out)

    def save() -> None:  # after every run: an interrupted study resumes where it stopped
        save_results(results_file, config, runs, oracle, baselines, command)

    if not args.report_only:
        run_missing(config, args, splits, runs, baselines, save, started)
    save()
    summary = write_table(out / "results.md", config, runs, oracle, command=command, baselines=baselines)
    write_plots(out, config, runs, oracle)
    print(summary)
    print(f"study done in {time.perf_counter() - started:.0f} s; results in {out}")
    return 0

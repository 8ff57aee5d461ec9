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
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ccrop_cli.demo.config import MMPRETRAIN, QUICK, DemoConfig, DemoRun
from ccrop_cli.demo.report import OUTPUT_FILES, write_outputs
from ccrop_cli.errors import UserError
from ccrop_cli.experiment.scene_settings import SCENE_SETTINGS, get_scene_setting, write_split

FRAMEWORKS = ("lightly", "mmpretrain")


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
    for name in ("images", "epochs", "interval"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name} must be a positive integer; got {getattr(config, name)}")
    if config.warmup_epochs < 0:
        raise UserError(f"--warmup-epochs must be an integer >= 0; got {config.warmup_epochs}")
    if not 0.0 <= config.threshold < 1.0:
        raise UserError(f"--threshold must lie in [0, 1); got {config.threshold}")
    if config.batch_size > config.images:
        raise UserError(f"--images {config.images} must be at least the batch size {config.batch_size}")
    if config.epochs <= config.warmup_epochs:
        raise UserError(
            f"--epochs {config.epochs} must exceed --warmup-epochs {config.warmup_epochs}: "
            "the boxes are refreshed after the warm-up and used in the epochs after it"
        )
    return config


def check_writable(out: Path) -> None:
    """Create ``out`` and make sure every output file can be written there, before any training.

    Raises:
        UserError: naming the folder or the file that cannot be written.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UserError(f"--out {out} is not a writable folder: {error.strerror or error}") from None
    for name in OUTPUT_FILES:
        path = out / name
        if path.is_dir() or (path.exists() and not os.access(path, os.W_OK)):
            raise UserError(f"--out {out}: {name} exists and cannot be overwritten; remove it or choose another folder")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = Path(args.out)
    check_writable(out)
    setting = get_scene_setting(config.setting)
    print(f"ccrop demo: {setting.label}, {config.images} images, {config.epochs} epochs, framework {args.framework}")
    train_root = write_split(setting, out / "data" / "train", config.images, config.scene_size, seed=config.seed)
    started = time.perf_counter()
    demo_run = _train(args.framework, config, train_root, out, progress=not args.no_progress)
    wall = time.perf_counter() - started
    report = write_outputs(out, config, args.framework, train_root, demo_run, wall)
    print((out / "report.md").read_text())
    print(f"pictures and report in {out} ({report['seconds']['total']:.0f} s)")
    return 0


def _train(framework: str, config: DemoConfig, train_root: Path, out: Path, progress: bool) -> DemoRun:
    # Imported here: each run needs its own framework (an optional extra), not the other's.
    if framework == "lightly":
        from ccrop_cli.demo.lightly_run import train_lightly

        return train_lightly(config, train_root, progress=progress)
    from ccrop_cli.demo.mm_run import train_mmpretrain

    return train_mmpretrain(config, train_root, out / "mm_work_dir", progress=progress)

"""``ccrop demo``: generated scenes -> SimCLR with ContrastiveCrop on the CPU -> pictures and a report.

The demo uses the multi-object, small-object scenes (2-4 small objects of one class per
image) by default: that is where the paper's single box drifts back to the whole image and
box sets make a visible difference. ``--setting single`` shows the paper's own setting.
``--data DIR`` runs it on your own image folder (``DIR/<class>/<image>`` or flat); with a
COCO-style ``DIR/annotations.json`` the report measures the boxes against it.

Heatmaps come from the backbone's stride-1 and stride-2 stages (fused) with the ``distinctiveness``
rule, a per-image Otsu threshold and box sets with cores: the best setting measured on four kinds
of data (docs/benchmarks/localize.md). ``--heatmap channel_sum --stages 11 --threshold 0.1`` is
the paper's (the convnet's last stage is ``11``).

Output folder (``--out``, default ``outputs/demo``)::

    data/train/...            the generated image folder and annotations.json (not with --data)
    data/resized/...          with --data: copies of your images, large ones shrunk, phone photos with an EXIF
                              orientation upright (ccrop_cli.demo.resized)
    heatmaps.png              images and the trained backbone's heatmaps
    box_sets.png              predicted box sets (red) vs ground truth (green)
    paper_boxes.png           the paper's single box (red) vs ground truth
    view_pairs.png            view pairs: RandomResizedCrop / paper / box sets / box sets at box scale,
                              cropped around the trained model's boxes
    view_pairs_oracle.png     the same around ground-truth boxes (a perfect localizer)
    report.md, report.json    box recall after each refresh, pair quality, time split
    boxes.json                the box store as the last refresh left it, keyed by file name (export_boxes):
                              ccrop viz data/train --boxes boxes.json --out viz draws it (report.md: the command)
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ccrop_cli.demo.config import MMPRETRAIN, QUICK, DemoConfig, DemoRun
from ccrop_cli.demo.report import OUTPUT_FILES, write_outputs
from ccrop_cli.demo.resized import copy_side, resized_copy
from ccrop_cli.demo.user_data import (
    ANNOTATIONS,
    check_images,
    check_listable,
    ignored_pictures,
    list_images,
    load_user_annotations,
)
from ccrop_cli.errors import UserError, some_names
from ccrop_cli.experiment.scene_settings import SCENE_SETTINGS, get_scene_setting, write_split
from ccrop_cli.option_types import MAX_EPOCHS, check_output_folder, check_outside, threshold, user_path
from ccrop_plugins import RefreshSchedule

FRAMEWORKS = ("lightly", "mmpretrain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoConfig()
    parser.add_argument("--out", default="outputs/demo", type=user_path,
                        help="output folder (default: outputs/demo)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run for tests: 64 images, 2 epochs (well under a minute)")
    parser.add_argument("--framework", default="lightly", choices=FRAMEWORKS,
                        help="training framework (default: lightly)")
    parser.add_argument("--setting", default=None, choices=list(SCENE_SETTINGS),
                        help=f"scene setting (default: {defaults.setting})")
    parser.add_argument(
        "--epochs", type=int, default=None,
        help=f"training epochs (default: {defaults.epochs}; {MMPRETRAIN['epochs']} with --framework mmpretrain)",
    )
    parser.add_argument("--warmup-epochs", type=int, default=None,
                        help=f"epochs of RandomResizedCrop views before the first box refresh (default: "
                             f"{defaults.warmup_epochs}; {MMPRETRAIN['warmup_epochs']} with --framework mmpretrain)")
    parser.add_argument("--interval", type=int, default=None,
                        help=f"epochs between box refreshes (default: {defaults.interval})")
    parser.add_argument(
        "--images", type=int, default=None,
        help=f"training images (default: {defaults.images}; {MMPRETRAIN['images']} with --framework mmpretrain)",
    )
    parser.add_argument("--data", default=None, metavar="DIR", type=user_path,
                        help="your image folder (DIR/<class>/<image> or flat) instead of generated scenes; "
                             "DIR/annotations.json (COCO boxes), if present, is measured against")
    parser.add_argument("--threshold", type=threshold, default=None,
                        help=f"localizer threshold: k in [0, 1) or otsu/mean per image "
                             f"(default {defaults.threshold}; paper: 0.1)")
    parser.add_argument("--heatmap", default=None,
                        help=f"heatmap rule (default {defaults.heatmap}; paper: channel_sum)")
    parser.add_argument("--stages", nargs="+", default=None,
                        help=f"backbone stage(s) of the heatmap "
                             f"(default {' '.join(defaults.stages)}: stride 1 and 2, fused; "
                             f"mmpretrain: {' '.join(MMPRETRAIN['stages'])}); several are fused")
    parser.add_argument("--seed", type=int, default=None, help="data and training seed, in [0, 2**31) (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.framework == "mmpretrain":
        values.update(MMPRETRAIN if not args.quick else {"stages": MMPRETRAIN["stages"]})
    for name in ("setting", "epochs", "warmup_epochs", "interval", "images", "threshold", "seed", "heatmap", "data"):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "stages", None):
        values["stages"] = tuple(args.stages)
    if values.get("data") is not None:
        values.update(_data_sizes(Path(values["data"]), args, values))
    config = DemoConfig(**values)
    for name in ("images", "epochs", "interval"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name} must be a positive integer; got {getattr(config, name)}")
    if config.epochs > MAX_EPOCHS:
        raise UserError(f"--epochs must be an integer from 1 to {MAX_EPOCHS}; got {config.epochs}")
    if config.seed < 0:
        raise UserError(f"--seed must be an integer >= 0; got {config.seed}")
    if config.seed >= 2**31:  # torch's generators overflow past 2**63, NumPy (mmengine's seeding) past 2**32 - 1
        raise UserError(f"--seed must be an integer in [0, 2**31) (it seeds torch, NumPy and each DataLoader "
                        f"worker); got {config.seed}")
    if config.warmup_epochs < 0:
        raise UserError(f"--warmup-epochs must be an integer >= 0; got {config.warmup_epochs}")
    if not isinstance(config.threshold, str) and not 0.0 <= config.threshold < 1.0:
        raise UserError(f"--threshold must lie in [0, 1) (or be otsu/mean); got {config.threshold}")
    _check_heatmap(config.heatmap)
    if config.batch_size > config.images:
        raise UserError(f"--images {config.images} must be at least the batch size {config.batch_size}")
    if RefreshSchedule(config.warmup_epochs, config.interval, config.epochs).never_refreshes():
        first = (f"--warmup-epochs {config.warmup_epochs}" if config.warmup_epochs else
                 f"--interval {config.interval} when --warmup-epochs is 0 (the first refresh needs a trained epoch)")
        raise UserError(f"--epochs {config.epochs} must exceed {first}: the boxes are refreshed after the warm-up and "
                        "used in the epochs after it")
    config = replace(config, stages=_checked_stages(config, args.framework))  # before any scene or Runner
    if args.framework == "lightly":  # checks the stage names on the backbone; MMPretrain's: mm_run
        from ccrop_cli.demo.lightly_run import pretrain_config

        try:
            pretrain_config(config)
        except ValueError as error:
            raise UserError(str(error)) from None
    return config


def _data_sizes(root: Path, args: argparse.Namespace, values: dict[str, Any]) -> dict[str, Any]:
    """With ``--data`` the whole folder is the training set; the batch shrinks to fit a small one."""
    if args.images is not None:
        raise UserError("--images does not apply with --data: every image of the folder is used")
    if args.setting is not None:
        raise UserError("--setting chooses generated scenes; it does not apply with --data")
    images = len(list_images(root))
    if images < 2:
        raise UserError(f"--data {root}: needs at least 2 images; found {images}")
    batch_size = min(values.get("batch_size", DemoConfig.batch_size), images)
    return {"data": str(root), "images": images, "batch_size": batch_size}


def _checked_stages(config: DemoConfig, framework: str) -> tuple[str, ...]:
    """``--stages`` named as typed with the backbone's stages, as ``ccrop study`` does (the core's "unknown stage
    '99' of Sequential", and with mmpretrain only once the scenes were written and the Runner built). With
    mmpretrain a backbone stage may be named without its ``backbone.`` prefix (``layer3``, as the Lightly scripts
    take it): returned with it."""
    from ccrop_cli.experiment.backbones import build_backbone, check_stage_names

    stages = config.stages
    if framework == "lightly":
        modules = [name for name, _ in build_backbone("convnet", 0)[0].named_modules() if name]
        label, shown = "convnet", None
    else:
        from ccrop_cli.demo.mm_run import model_modules

        (modules, shown), label = model_modules(), "MMPretrain ResNet-18"
        stages = tuple(f"backbone.{stage}" if stage not in modules and f"backbone.{stage}" in modules else stage
                       for stage in stages)
    try:
        check_stage_names(stages, modules, label, last=False, shown=shown)
    except ValueError as error:
        raise UserError(str(error)) from None
    return stages


def _check_heatmap(name: str) -> None:
    from ccrop_plugins import HeatmapPipeline

    try:
        HeatmapPipeline(name)
    except (KeyError, ValueError) as error:
        raise UserError(f"--heatmap: {error}") from None


def check_writable(out: Path) -> None:
    """Create ``out`` and make sure every output file can be written there, before any training.

    Raises:
        UserError: naming the folder or the file that cannot be written.
    """
    check_output_folder(out)
    for name in OUTPUT_FILES:
        path = out / name
        if path.is_dir() or (path.exists() and not os.access(path, os.W_OK)):
            raise UserError(f"--out {out}: {name} exists and cannot be overwritten; remove it or choose another folder")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    data = getattr(args, "data", None)
    if data is not None:
        check_outside(args.out, "--out", data, f"--data {data}",
                      "the demo's pictures (and MMPretrain's work_dir) would land among your images, and the "
                      "frameworks would read that folder as one more class; choose an --out outside the data folder")
    config = config_from_args(args)
    check_writable(out)
    if config.data is not None:
        train_root = Path(config.data)
        names = list_images(train_root)
        turned = check_images(train_root, names, upright=True)  # errors before training
        if args.framework == "mmpretrain":
            check_listable(train_root, names)
        notes: list[str] = [] if not turned else [
            f"{len(turned)} image(s) carry an EXIF orientation ({some_names(list(turned))}): "
            "trained on, drawn and measured upright, as viewers show them;"
            f" the width/height and boxes of {ANNOTATIONS} are taken in the upright image's pixels"
        ]
        annotations: Any = load_user_annotations(train_root, names, notes)  # normalised by the originals' sizes
        for note in [ignored_pictures(train_root), *notes]:
            if note is not None:
                print(f"ccrop demo: {note}")
        label = f"your images in {train_root}" + ("" if annotations is not None else f" (no {ANNOTATIONS})")
        train_root, resized = _resized_copy(train_root, names, out, config, len(turned))
    else:
        setting = get_scene_setting(config.setting)
        label, annotations, resized = setting.label, "generated", None
        train_root = write_split(setting, out / "data" / "train", config.images, config.scene_size, seed=config.seed)
    print(f"ccrop demo: {label}, {config.images} images, {config.epochs} epochs, framework {args.framework}")
    started = time.perf_counter()
    demo_run = _train(args.framework, config, train_root, out, progress=not args.no_progress)
    wall = time.perf_counter() - started
    report = write_outputs(out, config, args.framework, train_root, demo_run, wall, annotations, resized)
    print((out / "report.md").read_text())
    print(f"pictures and report in {out} ({report['seconds']['total']:.0f} s)")
    return 0


def _resized_copy(root: Path, names: list[str], out: Path, config: DemoConfig, turned: int) -> tuple[Path, str | None]:
    """The folder both frameworks read: ``root``, or a copy with its large images shrunk and its ``turned`` images
    (EXIF orientation) upright (:mod:`.resized`)."""
    side = copy_side(config)
    folder, count, seconds = resized_copy(root, names, out, side)
    if folder == root:
        return root, None
    head = (f"resized copies of {count} of {len(names)} images" if count else f"copies of {len(names)} images")
    details = [f"shortest side over {side} px, shrunk to {side} px"] if count else []
    details += [f"{turned} with an EXIF orientation written upright"] if turned else []
    details += ["the rest copied as they are"] if count < len(names) else []
    note = f"{head} ({'; '.join(details)}) in {folder}" + (f", made in {seconds:.1f} s" if seconds else ", reused")
    print(f"ccrop demo: {note}")
    return folder, note


def _train(framework: str, config: DemoConfig, train_root: Path, out: Path, progress: bool) -> DemoRun:
    # Imported here: each run needs its own framework (an optional extra), not the other's.
    if framework == "lightly":
        from ccrop_cli.demo.lightly_run import train_lightly

        return train_lightly(config, train_root, progress=progress)
    from ccrop_cli.demo.mm_run import train_mmpretrain

    return train_mmpretrain(config, train_root, out / "mm_work_dir", progress=progress)

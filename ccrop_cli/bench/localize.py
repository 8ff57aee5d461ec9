"""``ccrop bench localize``: how well each heatmap rule, backbone stage and threshold finds the objects.

For every data kind (generated ``multi-small`` and ``single`` scenes, the ``second-look`` scenes
of :mod:`ccrop_scenes.second_look`, and any ``--data`` image folder with an ``annotations.json``)
and every seed, a small SimCLR backbone is pre-trained on the images
(:func:`ccrop_cli.experiment.pretrain.pretrain_simclr`, RandomResizedCrop views, i.e.
ContrastiveCrop's warm-up; or loaded from ``--checkpoints``). One forward pass of the
un-augmented images gives the feature maps of every stage (``last``, ``stride 4``,
``stride 2``, ``fused`` = last and stride 2, and ``stride 1+2`` = stride 1 and stride 2,
``ccrop demo``'s default; fused stages take the geometric mean of their maps). Then, for
every heatmap rule x stage x threshold, the ``components`` localizer's box sets, with the box-set
strategies' options (:data:`~ccrop_cli.experiment.strategies.BOX_SET_OPTIONS`: the cores), are
scored against the ground truth:

- **recall** / **precision**: ground-truth objects matched by a box / boxes matching an
  object, at IoU >= 0.5;
- **hit rate**: share of ground-truth objects whose centre lies inside some predicted box
  (a whole-image fallback box hits everything: read it with boxes/image and precision);
- **boxes/img**: mean boxes per image;
- **maps/s**: heatmaps + box sets per second after the forward (the refresh pass's own cost);
- **FP pairs**: false-positive rate of box-set view pairs (``multi`` strategy, 4 pairs per
  image of the first 64 images) drawn from the predicted boxes, :func:`~ccrop_cli.experiment.pair_quality.pair_quality`;
- **share@box**: object share of view pairs at box scale (``multi-box``), to compare with
  RandomResizedCrop's (printed under each table with the ground-truth boxes' figures).

Figures are means +- standard deviation over the seeds (``-`` with one seed). A dataset rule (``ddt``) is fitted on
the same pass it is applied to (in training it applies the previous refresh's statistics).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ccrop_plugins import HeatmapPipeline, get_localizer, stage_features
from ccrop_plugins.plugins import AUTOLOAD_ENV
from ccrop_scenes import load_annotations, write_image_folder
from ccrop_scenes.second_look import generate_second_look
from ccrop_scenes.third_look import generate_third_look

from ccrop_cli.demo.user_data import ANNOTATIONS, check_images, list_images, load_user_annotations
from ccrop_cli.errors import UserError
from ccrop_cli.experiment.backbones import build_backbone
from ccrop_cli.experiment.pair_quality import (
    box_precision,
    box_recall,
    object_hit_rate,
    oracle_box_sets,
    pair_quality,
    sample_view_pairs,
)
from ccrop_cli.experiment.scene_settings import NUM_CLASSES, SCENE_SETTINGS, get_scene_setting, write_split
from ccrop_cli.experiment.strategies import BOX_SET_OPTIONS, get_strategy
from ccrop_cli.option_types import (
    MAX_EPOCHS,
    check_output_file,
    check_output_folder,
    check_outside,
    epochs,
    non_negative_int,
    positive_int,
    seed,
    user_path,
)

# Stage names of ccrop_cli.experiment.backbones' Sequential models: the ReLU ending each stride.
# "stride 1+2" is ``ccrop demo``'s default (``--stages 2 5``: the stride-1 and stride-2 stages, fused).
STAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "convnet": {"last": ("11",), "stride 4": ("8",), "stride 2": ("5",), "fused": ("11", "5"),
                "stride 1+2": ("2", "5")},
    "resnet18": {"last": ("7",), "stride 4": ("6",), "stride 2": ("5",), "fused": ("7", "5"),
                 "stride 1+2": ("4", "5")},
}
RULES = ("channel_sum", "channel_norm", "distinctiveness", "ddt", "ncut")
THRESHOLDS: tuple[float | str, ...] = (0.1, 0.3, 0.5, 0.7, "mean", "otsu")
PAIRS_PER_IMAGE = 4
PAIR_IMAGES = 64  # view pairs are drawn from the first images only: sampling is the slow part
MAX_BOXES = 4
_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
SECOND_LOOK = "second-look"  # ccrop_scenes.second_look: scenes unlike the generator's, to check defaults off it
THIRD_LOOK = "third-look"  # ccrop_scenes.third_look: photograph-like scenes (not a default kind: slow to add)
KINDS = (*SCENE_SETTINGS, SECOND_LOOK, THIRD_LOOK)
_ITEM = {"data": "folder", "settings": "setting", "rules": "rule", "thresholds": "threshold", "seeds": "seed"}
METRICS = ("recall", "precision", "hit_rate", "boxes_per_image", "maps_per_second", "fp_pairs", "share_box")


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of the benchmark (the defaults take about 3 minutes of training per data kind and seed)."""

    images: int = 400
    scene_size: int = 64
    view_size: int = 32
    epochs: int = 10
    batch_size: int = 64
    backbone: str = "convnet"
    alpha: float = 0.6


QUICK = dict(images=24, scene_size=32, view_size=32, epochs=1, batch_size=12)
QUICK_THRESHOLDS: tuple[float | str, ...] = (0.3, "otsu")


@dataclass
class DataKind:
    """One kind of data of one seed: images ``(N, H, W, 3)`` uint8 and ground-truth boxes per image."""

    name: str
    root: Path
    filenames: list[str]
    images: np.ndarray
    gt: list[np.ndarray]


class _Once(argparse.Action):
    """A list option given twice kept only the last list (``--data a --data b`` measured b alone): recorded in
    ``args.given_twice`` and refused by :func:`run` with a one-line error."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, "_given", ())
        if self.dest in given and self.dest not in namespace.given_twice:
            namespace.given_twice = [*namespace.given_twice, self.dest]
        namespace._given = (*given, self.dest)
        setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(given_twice=[])
    parser.add_argument("--settings", nargs="*", default=["multi-small", "single", SECOND_LOOK], choices=list(KINDS),
                        action=_Once,
                        help=f"generated data kinds (default: multi-small single {SECOND_LOOK}; also {THIRD_LOOK})")
    parser.add_argument("--data", nargs="*", type=user_path, default=[], metavar="DIR", action=_Once,
                        help="image folders with annotations.json (COCO style) to measure as well")
    parser.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2], action=_Once,
                        help="seeds of the data and the backbone, one pre-training per data kind and seed")
    parser.add_argument("--checkpoints", type=user_path, default=None, metavar="DIR",
                        help="backbones DIR/<kind>_s<seed>.pt with their training recipe: loaded when present (one "
                             "trained with other --epochs/--images/sizes/--backbone is refused), else trained and "
                             "saved")
    parser.add_argument("--rules", nargs="+", default=None, action=_Once,
                        help=f"heatmap rules (default: {' '.join(RULES)}; those of a plugin not loaded are left out)")
    parser.add_argument("--thresholds", nargs="+", type=_threshold, default=None, action=_Once,
                        help="thresholds k in [0, 1) or mean/otsu (default: 0.1 0.3 0.5 0.7 mean otsu)")
    parser.add_argument("--images", type=positive_int, default=None,
                        help=f"images per data kind (default {BenchConfig.images})")
    parser.add_argument("--epochs", type=epochs, default=None,
                        help=f"pre-training epochs, 1 to {MAX_EPOCHS} (default {BenchConfig.epochs})")
    parser.add_argument("--backbone", default="convnet", choices=list(STAGES), help="backbone to pre-train")
    parser.add_argument("--quick", action="store_true", help="a tiny run for tests (24 images, 1 epoch, 2 thresholds)")
    parser.add_argument("--json", type=user_path, default=None, metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--top", type=non_negative_int, default=12, help="rows per table, best recall first; 0: all")


def _threshold(text: str) -> float | str:
    """``--thresholds``: ``mean``, ``otsu`` or a number in [0, 1)."""
    if text in ("mean", "otsu"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), mean or otsu; got {text!r}")
    return value


def _thresholds(args: argparse.Namespace) -> tuple[float | str, ...]:
    if args.thresholds is None:
        return QUICK_THRESHOLDS if args.quick else THRESHOLDS
    return tuple(args.thresholds)


def _check_inputs(args: argparse.Namespace) -> None:
    """Unknown heatmap rules and --data folders without annotations: one-line errors before any training."""
    for rule in args.rules:
        try:
            HeatmapPipeline(rule)
        except (KeyError, ValueError) as error:
            hint = f" ({AUTOLOAD_ENV} is set: installed plugins are not loaded)" if _no_autoload() else ""
            raise UserError(f"--rules: {error.args[0] if error.args else error}{hint}") from None
    images = args.images if args.images is not None else (QUICK["images"] if args.quick else BenchConfig.images)
    if args.settings and images < NUM_CLASSES:  # torchvision's 'Found no valid file for the classes ...' traceback
        raise UserError(f"--images {images} is fewer than the generated scenes' {NUM_CLASSES} classes: every class "
                        f"folder needs an image (torchvision's ImageFolder refuses an empty one); use at least "
                        f"{NUM_CLASSES}")
    for folder in args.data:
        # the folder, its images and annotations.json, as `ccrop demo --data` reads them
        measured = min(len(_user_boxes(Path(folder))), images)
        if measured < 2:  # pretrain_simclr's 'batch_size must be at least 2' traceback
            raise UserError(f"--data {folder}: {measured} image to pre-train on and measure (--images {images}); "
                            "SimCLR contrasts each view pair with the rest of a batch: needs at least 2")
    if not args.settings and not args.data:
        raise UserError(f"nothing to measure: --settings is empty and no --data is given; name settings "
                        f"({', '.join(KINDS)}) or image folders with annotations.json")
    repeated = sorted({seed for seed in args.seeds if args.seeds.count(seed) > 1})
    if repeated:  # measured twice, the mean and spread would count one seed as two
        raise UserError(f"--seeds lists {', '.join(map(str, repeated))} more than once; give each seed once")
    if args.checkpoints is not None:
        check_output_folder(args.checkpoints, "--checkpoints")


def _check_outputs_outside_data(args: argparse.Namespace) -> None:
    """``--json`` or ``--checkpoints`` inside a ``--data`` folder, refused before anything is created: ``--json
    d1/annotations.json`` replaced the folder's ground truth; ``--checkpoints d1/ck`` was left there, and read as one
    more class folder (which then blamed the user's data)."""
    for folder in args.data:
        for option, path, what in (("--json", args.json, "the figures would replace or join the folder's files; "
                                    "choose a --json file"),
                                   ("--checkpoints", args.checkpoints, "the backbones' files would land among the "
                                    "images, read as one more class folder; choose a --checkpoints folder")):
            if path is not None:
                check_outside(path, option, folder, f"--data {folder}", f"{what} outside the data folder")


def _no_autoload() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("1", "true", "yes")  # ccrop_plugins' reading


def _default_rules() -> list[str]:
    """:data:`RULES` less those no loaded plugin registers (``ddt``, ``ncut``: ``ccrop_extras``), with a note."""
    available, missing = [], []
    for rule in RULES:
        try:
            HeatmapPipeline(rule)
            available.append(rule)
        except (KeyError, ValueError):
            missing.append(rule)
    if missing:
        why = f"{AUTOLOAD_ENV} is set" if _no_autoload() else "no loaded plugin registers them"
        print(f"note: --rules default leaves out {', '.join(missing)} ({why}; the ccrop_extras plugin adds "
              f"them); measuring {', '.join(available)}", file=sys.stderr, flush=True)
    return available


def _check_clashes(args: argparse.Namespace) -> None:
    """Two data kinds of one checkpoint name (``--data a/scenes b/scenes``, ``--data x/single`` and the setting
    ``single``) shared ``DIR/<name>_s<seed>.pt``: the second was measured with the first's backbone."""
    if args.checkpoints is None:
        return
    owners: dict[str, str] = {}
    for kind in [*args.settings, *(str(Path(d)) for d in args.data)]:
        name, label = (kind, f"the setting {kind}") if kind in KINDS else (Path(kind).name, f"--data {kind}")
        if name in owners:
            raise UserError(f"--checkpoints: {owners[name]} and {label} would share one checkpoint file "
                            f"{name}_s<seed>.pt (the second measured with the first's backbone); give the folders "
                            "distinct last names, or measure them in separate runs with other --checkpoints folders")
        owners[name] = label


def run(args: argparse.Namespace) -> int:
    if args.given_twice:  # argparse kept the last list only: '--data a --data b' measured b alone
        name = args.given_twice[0]
        raise UserError(f"--{name} given twice; list every {_ITEM.get(name, 'value')} after one --{name}")
    if args.rules is None:
        args.rules = _default_rules()
    for name in ("settings", "rules", "thresholds", "data"):  # a name given twice: measured and printed twice
        if getattr(args, name):
            setattr(args, name, list(dict.fromkeys(getattr(args, name))))
    _check_outputs_outside_data(args)
    _check_clashes(args)
    _check_inputs(args)
    if args.json:
        check_output_file(args.json, "--json")
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    values.update({k: v for k, v in (("images", args.images), ("epochs", args.epochs)) if v is not None})
    config = BenchConfig(backbone=args.backbone, **values)
    thresholds = _thresholds(args)
    kinds = list(args.settings) + [str(Path(d)) for d in args.data]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ccrop-bench-localize-") as scratch:
        for kind in kinds:
            per_seed = []
            for data_seed in args.seeds:
                data = load_kind(kind, data_seed, config, Path(scratch))
                backbone = trained_backbone(data, data_seed, config, args.checkpoints)
                per_seed.append(measure(backbone, data, config, args.rules, thresholds))
            results[kind] = summarise(per_seed)
            print(format_table(kind, results[kind], args.seeds, args.top), flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"config": asdict(config), "seeds": args.seeds, "results": results}, indent=1)
        )
    return 0


# -- data and backbones ---------------------------------------------------------------------------
def load_kind(kind: str, seed: int, config: BenchConfig, scratch: Path) -> DataKind:
    """A generated setting (written under ``scratch``, data seed = ``seed``) or an annotated folder."""
    if kind in SCENE_SETTINGS:
        root = write_split(get_scene_setting(kind), scratch / f"{kind}_s{seed}", config.images, config.scene_size, seed)
    elif kind in (SECOND_LOOK, THIRD_LOOK):
        root = scratch / f"{kind}_s{seed}"
        generate = generate_second_look if kind == SECOND_LOOK else generate_third_look
        write_image_folder(generate(config.images, image_size=config.scene_size, seed=seed), root, overwrite=True)
    else:
        root = Path(kind)
    boxes = load_annotations(root) if kind in KINDS else _user_boxes(root)
    generated = kind in KINDS
    filenames = sorted(boxes) if generated else sorted(boxes)[: config.images]
    images = np.stack([_load_image(root / name, config.scene_size) for name in filenames])
    return DataKind(
        kind if generated else Path(kind).name, root, filenames, images, [boxes[name] for name in filenames]
    )


def _user_boxes(root: Path) -> dict[str, np.ndarray]:
    """Ground truth of a ``--data`` folder, read (and checked) as ``ccrop demo --data`` reads it: ``width``/``height``
    optional, ``file_name`` matched to the folder's images; a ``UserError`` names any problem."""
    if not root.is_dir():  # as `ccrop demo --data` says it, before the annotations it cannot hold
        raise UserError(f"--data {root}: not a folder (expected an image folder with {ANNOTATIONS})")
    if not (root / ANNOTATIONS).exists():  # a folder of that name: load_user_annotations names it
        raise UserError(f"--data {root}: no annotations.json in it (COCO-style boxes are needed to measure)")
    names = list_images(root)
    check_images(root, names)
    return load_user_annotations(root, names)


def _load_image(path: Path, size: int) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image)


def training_recipe(data: DataKind, config: BenchConfig) -> dict[str, Any]:
    """What a backbone of ``data`` is trained with: saved beside its weights, and compared when they are loaded."""
    return {"backbone": config.backbone, "epochs": config.epochs, "images": len(data.filenames),
            "scene_size": config.scene_size, "view_size": config.view_size,
            "batch_size": min(config.batch_size, len(data.filenames))}


def _recipe_text(recipe: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in recipe.items())


def trained_backbone(data: DataKind, seed: int, config: BenchConfig, checkpoints: str | Path | None) -> nn.Module:
    """The SimCLR backbone of ``data`` and ``seed``: loaded from ``checkpoints`` or pre-trained (and saved).

    A checkpoint holds ``{"recipe": ..., "state_dict": ...}``; one trained with another recipe (``--epochs``,
    ``--images``, sizes, ``--backbone``), or saved without one (an older ccrop), is refused, naming both.
    """
    backbone, _ = build_backbone(config.backbone, seed)
    recipe = training_recipe(data, config)
    path = Path(checkpoints) / f"{data.name}_s{seed}.pt" if checkpoints else None
    if path is not None and path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(saved, dict) and isinstance(saved.get("recipe"), dict) and "state_dict" in saved:
                if saved["recipe"] != recipe:  # weights trained with other options, reported as this run's
                    raise UserError(f"--checkpoints: {path} was trained with {_recipe_text(saved['recipe'])}; this "
                                    f"run trains with {_recipe_text(recipe)}: remove it (it is trained and saved "
                                    "again) or give another --checkpoints folder")
                backbone.load_state_dict(saved["state_dict"])
            elif isinstance(saved, dict) and all(isinstance(value, torch.Tensor) for value in saved.values()):
                raise UserError(f"--checkpoints: {path} holds no training recipe (saved by an older ccrop), so its "
                                f"epochs and sizes are unknown; this run trains with {_recipe_text(recipe)}: remove "
                                "it (it is trained and saved again) or give another --checkpoints folder")
            else:
                raise ValueError(f"holds a {type(saved).__name__}, not a checkpoint of ccrop bench localize")
        except (RuntimeError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError) as error:
            if isinstance(error, UserError):
                raise
            lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
            reason = " ".join(lines[:2])  # torch's 'Error(s) in loading state_dict ...:' and its first mismatch
            reason = reason if len(reason) <= 200 else reason[:197] + "..."
            raise UserError(f"--checkpoints: {path} is no {config.backbone} backbone's state_dict ({reason}); it was "
                            "saved by a run with another --backbone, or is damaged: remove it (it is trained and saved "
                            "again) or give another --checkpoints folder") from None
        return backbone.eval()
    from ccrop_cli.experiment.pretrain import pretrain_simclr

    result = pretrain_simclr(
        data.root, "rrc", backbone=config.backbone, image_size=config.view_size, refresh_size=config.scene_size,
        epochs=config.epochs, batch_size=recipe["batch_size"], seed=seed,
        num_workers=1, progress=False,
    )
    if path is not None:  # written whole, then renamed: a run stopped while saving leaves no damaged file
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save({"recipe": recipe, "state_dict": result.backbone.state_dict()}, partial)
        os.replace(partial, path)
    return result.backbone.eval()


def stage_maps(backbone: nn.Module, images: np.ndarray, stages: Sequence[str], batch: int = 128) -> dict[str, Tensor]:
    """Feature maps ``{stage: (N, C, h, w)}`` of every named stage, from one forward per batch."""
    extractor = stage_features(backbone, list(stages))
    parts: dict[str, list[Tensor]] = {stage: [] for stage in stages}
    extractor.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.as_tensor(images[start : start + batch]).permute(0, 3, 1, 2).float() / 255.0
            for stage, value in extractor((x - _MEAN) / _STD).items():
                parts[stage].append(value)
    return {stage: torch.cat(values) for stage, values in parts.items()}


# -- measurement ----------------------------------------------------------------------------------
def heatmaps(features: dict[str, Tensor], stages: Sequence[str], rule: str, size: int) -> Tensor:
    """Heatmaps ``(N, size, size)`` of ``rule`` on ``stages`` (fused when several); fitted rules fit first."""
    pipeline = HeatmapPipeline(rule)
    chosen = {stage: features[stage] for stage in stages}
    if pipeline.fits:
        pipeline.finalize(pipeline.fit(chosen))
    return pipeline(chosen, size)


def _pair_figures(sets: list | None, gt: list[np.ndarray], size: int, alpha: float) -> tuple[float, float]:
    """False-positive pair rate of box-set pairs and object share of box-scale pairs (``None``: RRC)."""
    figures = []
    gt = gt[:PAIR_IMAGES]
    sets = None if sets is None else sets[:PAIR_IMAGES]
    for name in ("multi", "multi-box") if sets is not None else ("rrc", "rrc"):
        generator = torch.Generator().manual_seed(0)
        a, b, index = sample_view_pairs(get_strategy(name), (size, size), sets or [None] * len(gt),
                                        PAIRS_PER_IMAGE, generator, alpha)
        figures.append(pair_quality(a, b, index, gt))
    return figures[0].false_positive_rate, figures[1].object_share


def score_boxes(
    boxes: list[Tensor], scores: list[Tensor], gt: list[np.ndarray], size: int, alpha: float
) -> dict[str, float]:
    """Every figure but speed for one image set's predicted box sets."""
    fp_pairs, share_box = _pair_figures(list(zip(boxes, scores)), gt, size, alpha)
    return {
        "recall": box_recall(boxes, gt, iou=0.5),
        "precision": box_precision(boxes, gt, iou=0.5),
        "hit_rate": object_hit_rate(boxes, gt),
        "boxes_per_image": float(np.mean([len(b) for b in boxes])),
        "fp_pairs": fp_pairs,
        "share_box": share_box,
    }


def measure(backbone: nn.Module, data: DataKind, config: BenchConfig, rules: Sequence[str],
            thresholds: Sequence[float | str]) -> dict[str, dict[str, float]]:
    """``{"rule | stage | threshold": figures}`` plus the reference rows (RRC, ground-truth boxes)."""
    stage_names = STAGES[config.backbone]
    features = stage_maps(backbone, data.images, sorted({s for names in stage_names.values() for s in names}))
    size, n = config.scene_size, len(data.images)
    rows: dict[str, dict[str, float]] = {}
    for rule in rules:
        for stage, names in stage_names.items():
            started = time.perf_counter()
            maps = heatmaps(features, names, rule, size)
            map_seconds = time.perf_counter() - started
            for threshold in thresholds:
                started = time.perf_counter()
                sets = get_localizer("components", threshold=threshold, max_boxes=MAX_BOXES, **BOX_SET_OPTIONS)(maps)
                seconds = map_seconds + time.perf_counter() - started
                boxes = [sets[i][0] for i in range(n)]
                row = score_boxes(boxes, [sets[i][1] for i in range(n)], data.gt, size, config.alpha)
                row["maps_per_second"] = n / max(seconds, 1e-9)
                rows[f"{rule} | {stage} | {threshold}"] = row
    fp, share = _pair_figures(None, data.gt, size, config.alpha)
    rows["reference | RandomResizedCrop"] = {"fp_pairs": fp, "share_box": share}
    oracle = [
        (b, s)
        for b, s in (x or (torch.zeros(0, 4), torch.zeros(0)) for x in oracle_box_sets(data.gt, get_strategy("multi")))
    ]
    rows["reference | ground-truth boxes"] = score_boxes(
        [b for b, _ in oracle], [s for _, s in oracle], data.gt, size, config.alpha
    )
    return rows


# -- summary --------------------------------------------------------------------------------------
def summarise(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """``{row: {metric: [mean, std, *per-seed values]}}`` over the seeds."""
    out: dict[str, dict[str, list[float]]] = {}
    for row in per_seed[0]:
        out[row] = {}
        for metric in per_seed[0][row]:
            values = np.array([seed_rows[row][metric] for seed_rows in per_seed], dtype=np.float64)
            out[row][metric] = [float(values.mean()), float(values.std()), *values.tolist()]
    return out


def _cell(values: list[float] | None, digits: int = 2) -> str:
    """``mean ± std`` of :func:`summarise`'s ``[mean, std, *per-seed values]``; one seed has no spread: ``-``."""
    if values is None:
        return "-"
    seeds = len(values) - 2
    spread = "-" if seeds < 2 else f"{values[1]:.{digits}f}"
    return f"{values[0]:.{digits}f} ± {spread}"


def format_table(kind: str, rows: dict[str, dict[str, list[float]]], seeds: Sequence[int], top: int = 12) -> str:
    """A markdown table of ``rows``, best recall first (``top`` rows, 0 = all), then the reference rows."""
    measured = [(name, r) for name, r in rows.items() if not name.startswith("reference")]
    measured.sort(key=lambda item: -item[1]["recall"][0])
    if top:
        measured = measured[:top]
    lines = [
        f"### {kind} (seeds {', '.join(map(str, seeds))}; mean ± std)",
        "",
        "| rule | stage | k | recall@0.5 | precision | hit rate | boxes/img | maps/s | FP pairs | share@box |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in measured:
        rule, stage, threshold = name.split(" | ")
        lines.append(
            f"| {rule} | {stage} | {threshold} | {_cell(r['recall'])} | {_cell(r['precision'])} "
            f"| {_cell(r['hit_rate'])} "
            f"| {_cell(r['boxes_per_image'], 1)} | {r['maps_per_second'][0]:,.0f} | {_cell(r['fp_pairs'])} "
            f"| {_cell(r['share_box'])} |"
        )
    for name, r in rows.items():
        if name.startswith("reference"):
            lines.append(
                f"| {name.split(' | ')[1]} | | | {_cell(r.get('recall'))} | {_cell(r.get('precision'))} "
                f"| {_cell(r.get('hit_rate'))} | | | {_cell(r['fp_pairs'])} | {_cell(r['share_box'])} |"
            )
    return "\n".join(lines) + "\n"

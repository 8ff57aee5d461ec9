"""``ccrop bench pairs``: the pair quality of each crop strategy, measured against ground truth.

On generated scenes with ground-truth boxes, in two settings (single medium objects; 2-4
small objects), every strategy of :data:`ccrop_cli.experiment.strategies.STRATEGIES` samples view pairs
and :func:`ccrop_cli.experiment.pair_quality.pair_quality` scores them, with boxes from

- **oracle**: the ground truth (:func:`~ccrop_cli.experiment.pair_quality.oracle_box_sets`), the best a
  localizer could do; and
- **model**: the heatmaps of a backbone (its last feature map, channel sum, threshold ``k``),
  localized by the strategy's own localizer (``bbox`` or ``components``). The backbone is
  pre-trained here with SimCLR on the scenes (``ccrop_cli.experiment.pretrain``, plain
  RandomResizedCrop, i.e. ContrastiveCrop's warm-up) or read from ``--checkpoint``.

The goals on the multi-object small-object scenes with oracle boxes are checked and printed:
``multi``'s false-positive pair rate at most half of ``rrc``'s and below ``paper``'s, and
``multi-box``'s object share at least twice ``rrc``'s.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ccrop_cli.errors import UserError
from ccrop_cli.experiment.pair_quality import (box_precision, box_recall, oracle_box_sets, pair_quality,
                                               sample_view_pairs)
from ccrop_cli.experiment.scene_settings import NUM_CLASSES
from ccrop_cli.experiment.strategies import STRATEGIES, CropStrategy
from ccrop_cli.option_types import (
    MAX_EPOCHS,
    MAX_PAIRS_PER_IMAGE,
    check_alpha,
    check_output_file,
    seed,
    side,
    threshold,
    user_path,
    workers,
)
from ccrop_plugins import eval_mode, get_localizer, heatmaps_from_features
from ccrop_scenes import Scenes, generate_scenes, write_image_folder

# ImageNet statistics: what lightly's SimCLR views (and so the pre-trained backbone) are normalised with.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Setting:
    """One kind of generated scene."""

    name: str
    objects_per_image: tuple[int, int]
    object_area: tuple[float, float]


SETTINGS = (
    Setting("single-object, medium", (1, 1), (0.10, 0.30)),
    Setting("multi-object, small", (2, 4), (0.02, 0.08)),
)
GOAL_SETTING = SETTINGS[1].name


DEFAULTS = dict(images=256, pairs_per_image=8, epochs=4, batch_size=128)
"""The sizes of a full run."""
QUICK = dict(images=64, pairs_per_image=4, epochs=1, batch_size=32)
"""``--quick``'s sizes (each only where not given: ``--quick --epochs 3`` trains 3 epochs; it trained 1)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=None, help="scenes per setting (default 256; --quick: 64)")
    parser.add_argument("--pairs-per-image", type=int, default=None,
                        help=f"view pairs per image and strategy, 1 to {MAX_PAIRS_PER_IMAGE} (default 8; --quick: 4)")
    parser.add_argument("--image-size", type=side, default=64, help="scene side in pixels (default 64)")
    parser.add_argument("--alpha", type=float, default=0.6, help="Beta(alpha, alpha) of the crop centre (default 0.6)")
    parser.add_argument(
        "--thresholds", type=threshold, nargs="+", default=None,
        help="heatmap thresholds k for the model's boxes: numbers in [0, 1), mean or otsu (default: 0.1, the "
             "paper's, and 0.5)",
    )
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"SimCLR epochs of the model per setting, 1 to {MAX_EPOCHS} (default 4; --quick: 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128; --quick: 32")
    parser.add_argument("--workers", type=workers, default=None,
                        help="DataLoader workers for pre-training (default 2), at most 4 per CPU core")
    parser.add_argument(
        "--checkpoint", type=user_path, default=None,
        help="a torch.save'd backbone nn.Module (images -> features) used for both settings instead of "
        "pre-training; read with torch.load(weights_only=False): trusted files only",
    )
    parser.add_argument("--no-model", action="store_true", help="oracle boxes only (no pre-training)")
    parser.add_argument(
        "--box-scales", nargs="*", default=[], metavar="LOW,HIGH",
        help="also measure multi-box with these crop-area ranges relative to the box (oracle boxes only), e.g. 1,4 2,6",
    )
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke test (about 20 s); sizes given explicitly are kept")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the scenes, the model and the pairs")
    parser.add_argument("--out", type=user_path, default=None, help="write the results as JSON here")
    parser.add_argument("--progress", action="store_true", help="show pre-training progress bars")


def measure_strategies(
    scenes: Scenes,
    box_sets_for: dict[str, list[tuple[Tensor, Tensor] | None]],
    pairs_per_image: int,
    alpha: float,
    seed: int,
    strategies: dict[str, CropStrategy] = STRATEGIES,
) -> dict[str, dict[str, float]]:
    """Pair quality of every strategy, each with its own box sets (``box_sets_for[name]``).

    Every strategy samples with a generator seeded by ``seed``, so the comparison is paired.
    """
    size = tuple(scenes.images.shape[1:3])
    results = {}
    for name, strategy in strategies.items():
        generator = torch.Generator().manual_seed(seed)
        views_a, views_b, index = sample_view_pairs(
            strategy, size, box_sets_for[name], pairs_per_image, generator, alpha=alpha
        )
        results[name] = pair_quality(views_a, views_b, index, scenes.boxes).as_dict()
    return results


def oracle_sets(
    scenes: Scenes, strategies: dict[str, CropStrategy] = STRATEGIES
) -> dict[str, list[tuple[Tensor, Tensor] | None]]:
    return {name: oracle_box_sets(scenes.boxes, strategy) for name, strategy in strategies.items()}


def box_scale_variants(ranges: list[str]) -> dict[str, CropStrategy]:
    """``multi-box`` with other box-relative crop-area ranges, from ``"LOW,HIGH"`` strings."""
    variants = {}
    for text in ranges:
        try:
            low, high = (float(v) for v in text.split(","))
        except ValueError:
            raise UserError(f"--box-scales takes LOW,HIGH pairs such as 1,4; got {text!r}") from None
        if not 0 < low <= high:
            raise UserError(f"--box-scales range {text!r} must satisfy 0 < LOW <= HIGH")
        if high == float("inf"):  # the crop refused it only once the first setting's scenes were drawn
            raise UserError(f"--box-scales range {text!r} must be finite (a crop's area relative to the box)")
        base = STRATEGIES["multi-box"]
        name = f"multi-box scale {low:g}-{high:g}"
        variants[name] = replace(base, name=name, label=f"{base.label}, area {low:g}-{high:g} x box", scale=(low, high))
    return variants


def model_heatmaps(backbone: nn.Module, scenes: Scenes) -> Tensor:
    """``(N, H, W)`` heatmaps of the scenes: the backbone's last feature map, channel sum, min-max."""
    from ccrop_lightly import feature_extractor  # the adapter knows where a backbone's last feature map is

    features_of = feature_extractor(backbone)
    images = torch.from_numpy(scenes.images).permute(0, 3, 1, 2).float() / 255
    images = (images - torch.tensor(_MEAN)[:, None, None]) / torch.tensor(_STD)[:, None, None]
    with eval_mode(features_of), torch.no_grad():
        features = torch.cat([features_of(batch) for batch in images.split(256)])
    return heatmaps_from_features(features, size=scenes.images.shape[1:3])


def model_sets(
    heatmaps: Tensor, scenes: Scenes, threshold: float | str
) -> tuple[dict[str, list[tuple[Tensor, Tensor] | None]], dict[str, dict[str, float]]]:
    """Box sets from heatmaps ``(N, H, W)`` per strategy, and box recall/precision per localizer."""
    by_localizer: dict[str, list[tuple[Tensor, Tensor]]] = {}
    quality: dict[str, dict[str, float]] = {}
    for strategy in STRATEGIES.values():
        name = strategy.localizer
        if name is None or name in by_localizer:
            continue
        box_sets = get_localizer(name, threshold=threshold, **strategy.localizer_options)(heatmaps)
        by_localizer[name] = [box_sets[i] for i in range(len(box_sets))]
        predicted = [boxes for boxes, _ in by_localizer[name]]
        quality[name] = {
            "box_recall@0.5": box_recall(predicted, scenes.boxes),
            "box_precision@0.5": box_precision(predicted, scenes.boxes),
            "fallback_fraction": float(box_sets.fallback.float().mean()),
            "mean_boxes": float(box_sets.counts.float().mean()),
        }
    sets = {
        name: by_localizer[strategy.localizer] if strategy.localizer else [None] * len(scenes)
        for name, strategy in STRATEGIES.items()
    }
    return sets, quality


def pretrain_backbone(scenes: Scenes, args: argparse.Namespace) -> nn.Module:
    """SimCLR on the scenes through the Lightly adapter (RandomResizedCrop views: the warm-up)."""
    from ccrop_cli.experiment.pretrain import PretrainConfig, pretrain_simclr

    with tempfile.TemporaryDirectory(prefix="ccrop-bench-pairs-") as root:
        write_image_folder(scenes, root)
        config = PretrainConfig(
            image_size=int(args.image_size),
            epochs=int(args.epochs),
            batch_size=min(int(args.batch_size), len(scenes)),
            seed=int(args.seed),
            num_workers=int(args.workers),
        )
        result = pretrain_simclr(root, "rrc", config, progress=bool(args.progress))
    return result.backbone


def check_goals(results: dict[str, Any]) -> dict[str, bool]:
    """The goal inequalities on the multi-object small-object scenes with oracle boxes."""
    oracle = results["settings"][GOAL_SETTING]["oracle"]
    fp = {name: oracle[name]["false_positive_rate"] for name in oracle}
    share = {name: oracle[name]["object_share"] for name in oracle}
    return {
        "multi false-positive rate <= rrc / 2": fp["multi"] <= fp["rrc"] / 2,
        "multi false-positive rate < paper": fp["multi"] < fp["paper"],
        "multi-box object share >= 2 x rrc": share["multi-box"] >= 2 * share["rrc"],
    }


MODEL_OPTIONS = ("epochs", "batch_size", "thresholds", "workers", "progress")
"""Options of the model's pre-training and boxes: refused with ``--no-model`` (were ignored); ``None``/``False``
unless given."""


def run(args: argparse.Namespace) -> int:
    if args.no_model:
        given = [name for name in MODEL_OPTIONS if getattr(args, name) is not None and getattr(args, name) is not False]
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} does not apply with --no-model (oracle boxes only, no "
                            "pre-training); leave it out or drop --no-model")
    _model_defaults(args)  # before the command line, which names them as before
    command = "ccrop bench pairs " + _argument_line(args)
    _check_arguments(args)
    variants = box_scale_variants(args.box_scales)
    loaded = _load_backbone(args.checkpoint) if args.checkpoint is not None else None
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": command,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "settings": {},
    }
    for number, setting in enumerate(SETTINGS):
        results["settings"][setting.name] = _measure_setting(setting, number, args, variants, loaded)
    results["goals"] = check_goals(results)
    results["seconds"] = round(time.perf_counter() - started, 1)

    print(markdown(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        print(f"\nwrote {args.out}")
    return 0


def _model_defaults(args: argparse.Namespace) -> None:
    """``--thresholds`` and ``--workers`` not given (``None``, to tell them from given with ``--no-model``)."""
    args.thresholds = [0.1, 0.5] if args.thresholds is None else args.thresholds
    args.workers = 2 if args.workers is None else args.workers


def _check_arguments(args: argparse.Namespace) -> None:
    """The sizes not given (``--quick``'s or the defaults: an explicit size is kept, as in ``ccrop demo --quick``),
    then every size positive and every threshold in ``[0, 1)``."""
    _model_defaults(args)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("images", "pairs_per_image", "image_size", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer; got {getattr(args, name)}")
    if args.image_size < 16:  # the scenes' smallest side
        raise UserError(f"--image-size must be at least 16 (the generated scenes' smallest side); "
                        f"got {args.image_size}")
    if args.workers < 0:
        raise UserError(f"--workers must be an integer >= 0 (0: load in the main process); got {args.workers}")
    for name, most in (("epochs", MAX_EPOCHS), ("pairs_per_image", MAX_PAIRS_PER_IMAGE)):  # ran for ever, silently
        if getattr(args, name) > most:
            raise UserError(f"--{name.replace('_', '-')} must be an integer from 1 to {most}; "
                            f"got {getattr(args, name)}")
    bad = [k for k in args.thresholds if not isinstance(k, str) and not 0.0 <= k < 1.0]
    if bad:
        raise UserError(f"--thresholds must lie in [0, 1); got {bad}")
    if args.checkpoint is not None and args.no_model:
        raise UserError("--checkpoint and --no-model exclude each other")
    if args.out is not None:
        check_output_file(args.out, "--out")
    check_alpha(args.alpha)
    if args.batch_size < 2 and not args.no_model and args.checkpoint is None:
        raise UserError(f"--batch-size must be at least 2 (SimCLR contrasts each pair with the rest of the batch); "
                        f"got {args.batch_size}")
    if args.images < NUM_CLASSES and not args.no_model and args.checkpoint is None:  # SimCLR's image folder
        raise UserError(f"--images {args.images} is fewer than the scenes' {NUM_CLASSES} classes: pre-training reads "
                        f"them as an image folder, and every class folder needs an image; use at least {NUM_CLASSES} "
                        f"(or --no-model)")


def _load_backbone(path: Path) -> nn.Module:
    # A whole nn.Module cannot be loaded weights-only; the option's help says: trusted files only.
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except OSError as error:
        raise UserError(f"--checkpoint {path}: {error.strerror or error}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, ImportError) as error:
        raise UserError(f"--checkpoint {path} cannot be read as a torch.save'd nn.Module ({type(error).__name__}: "
                        f"{error}); save the backbone with torch.save(model, file), its class importable here"
                        ) from None
    if not isinstance(loaded, nn.Module):
        raise UserError(
            f"--checkpoint {path} holds a {type(loaded).__name__}; expected a torch.save'd backbone "
            "nn.Module mapping images (B, 3, H, W) to features"
        )
    return loaded


def _measure_setting(
    setting: Setting, number: int, args: argparse.Namespace, variants: dict[str, CropStrategy], loaded: nn.Module | None
) -> dict[str, Any]:
    """Pair quality of one scene setting with oracle boxes (and variants), then with the model's boxes."""
    scenes = generate_scenes(
        int(args.images),
        image_size=int(args.image_size),
        objects_per_image=setting.objects_per_image,
        object_area=setting.object_area,
        seed=int(args.seed) + number,
    )
    entry: dict[str, Any] = {
        "objects_per_image": list(setting.objects_per_image),
        "object_area": list(setting.object_area),
        "images": len(scenes),
        "oracle": measure_strategies(scenes, oracle_sets(scenes), args.pairs_per_image, args.alpha, args.seed),
    }
    if variants:
        entry["oracle"].update(
            measure_strategies(scenes, oracle_sets(scenes, variants), args.pairs_per_image, args.alpha, args.seed,
                               variants)
        )
    if args.no_model:
        return entry
    backbone = loaded if loaded is not None else pretrain_backbone(scenes, args)
    heatmaps = model_heatmaps(backbone, scenes)
    entry["model_source"] = (
        str(args.checkpoint) if loaded is not None else f"SimCLR, {args.epochs} epoch{'s' * (args.epochs > 1)}"
    )
    entry["model_boxes"] = {}
    for k in args.thresholds:
        sets, localization = model_sets(heatmaps, scenes, k)
        source = f"model k={k if isinstance(k, str) else format(k, 'g')}"
        entry[source] = measure_strategies(scenes, sets, args.pairs_per_image, args.alpha, args.seed)
        entry["model_boxes"][source] = localization
    return entry


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: one table of the four figures, one of model box quality, the goals."""
    lines = [
        f"`{results['command']}` ({results['seconds']} s, torch {results['torch']}, {results['machine']})",
        "",
        "| scenes | boxes | strategy | false-positive pairs | object coverage | pair spread (IoU) | object share |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting, entry in results["settings"].items():
        for source in ["oracle", *entry.get("model_boxes", {})]:
            for name, figures in entry[source].items():
                lines.append(
                    f"| {setting} | {source} | {_label(name)} | {figures['false_positive_rate']:.3f} | "
                    f"{figures['object_coverage']:.3f} | {figures['pair_spread']:.3f} | {figures['object_share']:.3f} |"
                )
    if any("model_boxes" in entry for entry in results["settings"].values()):
        lines += [
            "",
            "| scenes | boxes | localizer | box recall@0.5 | box precision@0.5 | boxes per image | fallback |",
            "|---|---|---|---|---|---|---|",
        ]
        for setting, entry in results["settings"].items():
            for source, by_localizer in entry.get("model_boxes", {}).items():
                for localizer, figures in by_localizer.items():
                    lines.append(
                        f"| {setting} | {source} ({entry['model_source']}) | {localizer} | "
                        f"{figures['box_recall@0.5']:.3f} | {figures['box_precision@0.5']:.3f} | "
                        f"{figures['mean_boxes']:.2f} | {figures['fallback_fraction']:.3f} |"
                    )
    lines += ["", f"Goals ({GOAL_SETTING} scenes, oracle boxes):"]
    lines += [f"- {'met' if met else 'NOT met'}: {goal}" for goal, met in results["goals"].items()]
    return "\n".join(lines)


def _argument_line(args: argparse.Namespace) -> str:
    """The options of this run as a command line that runs it again: with ``--no-model``, not the model's (their
    defaults filled in, they were refused when run again)."""
    parts = []
    for key, value in sorted(vars(args).items()):
        if args.no_model and key in MODEL_OPTIONS:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif isinstance(value, list):
            parts += [flag, *(f"{v:g}" if isinstance(v, float) else str(v) for v in value)] if value else []
        elif value is not None:
            parts += [flag, str(value)]
    return " ".join(parts)


def _label(name: str) -> str:
    if name in STRATEGIES:
        return STRATEGIES[name].label
    return box_scale_variants([name.rsplit(" ", 1)[1].replace("-", ",")])[name].label

"""What the Lightly training scripts share: options, the paper's presets, data and backbone.

Defaults are sized for the project's own generated scenes (a small CPU run: 256 images of
64 px, 32 px views, a few epochs) and localize with the measured best setting
(``docs/benchmarks/localize.md``): ``distinctiveness`` heatmaps of the stride-2 stage
(``layer2`` with the CIFAR stem) and Otsu's threshold per image. ``--preset cifar10`` switches to
the settings of the ContrastiveCrop reference configs for CIFAR-10 (ResNet-18 without max-pool,
batch 512, 500 epochs, warm-up 100, refresh interval 100, the last stage's channel sum with
threshold k = 0.1, Beta alpha = 0.1,
SGD lr 0.5, momentum 0.9, weight decay 1e-4, cosine schedule, CIFAR mean/std, crop
scale (0.2, 1.0), colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.2,
no blur) on an image folder holding CIFAR-10's training images.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

CIFAR_NORMALIZE = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}

# Settings of the reference code's configs/small/cifar10/{simclr,moco}_ccrop.py.
PRESETS = {
    "cifar10": dict(
        input_size=32, epochs=500, batch_size=512, warmup_epochs=100, interval=100, threshold=0.1,
        alpha=0.1, lr=0.5, momentum=0.9, weight_decay=1e-4, min_scale=0.2, cj_strength=0.5,
        gaussian_blur=0.0, cifar_stem=True, normalize="cifar", stages=["last"], heatmap="channel_sum",
    ),
}


def build_parser(description: str, temperature: float) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folder", type=Path, help="image folder (class subfolders allowed); see --generate")
    parser.add_argument("--generate", type=int, default=0, metavar="N",
                        help="first write N generated scenes into FOLDER (the project's own data)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="the paper's settings for a dataset")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup-epochs", type=int, default=2, help="plain RandomResizedCrop epochs")
    parser.add_argument("--interval", type=int, default=1, help="epochs between box refreshes")
    parser.add_argument("--threshold", type=_threshold, default="otsu",
                        help="heatmap threshold k in [0, 1), or mean / otsu (per image); the paper: 0.1")
    parser.add_argument("--alpha", type=float, default=0.1, help="Beta(alpha, alpha) of the crop centre")
    parser.add_argument("--localizer", default="components", help="components (box set) or bbox (the paper's)")
    parser.add_argument("--heatmap", default="distinctiveness", help="heatmap rule (the paper: channel_sum)")
    parser.add_argument("--stages", nargs="+", metavar="STAGE", default=["layer2"],
                        help="backbone stage(s) to localize with; 'last' for the last stage (the paper)")
    parser.add_argument("--scale-reference", default="image", choices=["image", "box"])
    parser.add_argument("--min-scale", type=float, default=0.2)
    parser.add_argument("--cj-strength", type=float, default=0.5)
    parser.add_argument("--gaussian-blur", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=0.06)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--temperature", type=float, default=temperature)
    parser.add_argument("--cifar-stem", action=argparse.BooleanOptionalAction, default=True,
                        help="3x3 stride-1 conv1 and no max-pool (a 4x4 layer4 map at 32 px, as the paper)")
    parser.add_argument("--normalize", choices=["imagenet", "cifar"], default="imagenet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, help="where to save the final model and box store")
    return parser


def localizer_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The box sets' cores (``core_level=0.3``, as ``ccrop demo``) for ``components``; the paper's ``bbox`` takes
    none."""
    return {"core_level": 0.3} if args.localizer == "components" else None


def _threshold(value: str) -> float | str:
    if value in ("mean", "otsu"):
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), mean or otsu; got {value!r}") from None


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse; a preset sets its values, and options given explicitly on the command line still win."""
    args = parser.parse_args(argv)
    if args.preset:
        explicit = parser.parse_args(argv, namespace=argparse.Namespace(**{k: None for k in vars(args)}))
        for key, value in PRESETS[args.preset].items():
            if getattr(explicit, key) is None:
                setattr(args, key, value)
    if args.stages == ["last"]:
        args.stages = None  # feature_extractor's default: the last stage
    _check(parser, args)
    return args


# (option, allowed, test) of the numbers: each bad value is one usage line before any work, not a traceback from
# torch or torchvision (some only after the first epoch, the --checkpoint one after the whole run).
_NUMBERS = (
    ("input_size", "an integer from 1 to 1024 (as the ccrop commands' sizes)", lambda v: 1 <= v <= 1024),
    ("epochs", "an integer >= 1", lambda v: v >= 1),
    ("batch_size", "an integer >= 2 (the loss contrasts each pair with the rest of the batch; BatchNorm needs two "
     "samples)", lambda v: v >= 2),
    ("workers", "an integer >= 0", lambda v: v >= 0),
    ("warmup_epochs", "an integer >= 0", lambda v: v >= 0),
    ("interval", "an integer >= 1", lambda v: v >= 1),
    ("generate", "an integer >= 0", lambda v: v >= 0),
    ("alpha", "a finite number > 0", lambda v: 0 < v < math.inf),
    ("min_scale", "a number in (0, 1]", lambda v: 0 < v <= 1),
    ("cj_strength", "a finite number >= 0", lambda v: 0 <= v < math.inf),
    ("gaussian_blur", "a probability in [0, 1]", lambda v: 0 <= v <= 1),
    ("lr", "a finite number >= 0", lambda v: 0 <= v < math.inf),
    ("momentum", "a number in [0, 1) (SGD's momentum; 1 or more diverges)", lambda v: 0 <= v < 1),
    ("weight_decay", "a finite number >= 0", lambda v: 0 <= v < math.inf),
    ("temperature", "a finite number > 0", lambda v: 0 < v < math.inf),
    ("memory_bank", "an integer >= 0", lambda v: v >= 0),
    ("ema", "a number in [0, 1]", lambda v: 0 <= v <= 1),
    ("devices", "an integer >= 1", lambda v: v >= 1),
    # Lightning's seed_everything seeds numpy, whose seeds are 32-bit: -1 was numpy's traceback after the set-up.
    ("seed", "an integer in [0, 4294967295] (numpy's seed range; Lightning seeds numpy)", lambda v: 0 <= v < 2**32),
)


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name, allowed, test in _NUMBERS:
        value = getattr(args, name, None)
        if value is not None and not test(value):  # NaN fails every test
            parser.error(f"--{name.replace('_', '-')} must be {allowed}; got {value}")
    if isinstance(args.threshold, float) and not 0 <= args.threshold < 1:
        parser.error(f"--threshold must be a number in [0, 1), or mean / otsu; got {args.threshold}")
    _check_refresh_names(parser, args)
    if args.checkpoint is not None:
        if args.checkpoint.is_dir():
            parser.error(f"--checkpoint {args.checkpoint} is a folder; give a file name")
        try:  # now, not after the whole run
            args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=args.checkpoint.parent).close()
        except OSError as error:
            parser.error(f"--checkpoint {args.checkpoint}: cannot write there: {error.strerror or error}")


def _check_refresh_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--localizer, --heatmap and --stages, checked by the code that takes them: a usage line naming the value and
    the allowed ones (was a traceback; the MoCo script's --stages only once Lightning had set up)."""
    from ccrop_lightly import feature_extractor
    from ccrop_plugins import HeatmapPipeline, get_localizer

    with torch.device("meta"):  # the stages' names only: no weights drawn (0.05 s, not 0.3 s, for every parse)
        backbone = resnet18_backbone(args.cifar_stem)
    checks = (
        ("localizer", lambda: get_localizer(args.localizer, **(localizer_options(args) or {}))),
        ("heatmap", lambda: HeatmapPipeline(args.heatmap, None)),
        ("stages", lambda: feature_extractor(backbone, stages=args.stages)),
    )
    for name, check in checks:
        try:
            check()
        except (ValueError, TypeError) as error:
            parser.error(f"--{name}: {error}")


def check_folder(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One usage line for a FOLDER that is a file, or missing without ``--generate`` (was lightly's traceback)."""
    if args.folder.exists() and not args.folder.is_dir():
        parser.error(f"FOLDER {args.folder} is a file; give an image folder")
    if not args.generate and not args.folder.is_dir():
        parser.error(f"FOLDER {args.folder} does not exist; give an image folder, or --generate N to write N "
                     "generated scenes into it")


def generate_if_asked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--generate N``: write N generated scenes into FOLDER when it holds no file; keep them when it holds just what
    an earlier ``--generate N`` wrote there (``CLASS/00000.png`` to ``CLASS/{N-1:05d}.png``, nothing else), so the
    same command runs again (``--resume``) on the same scenes; any other file is one usage line naming FOLDER and
    how many files it holds. Before, a FOLDER holding any file was used as it was, silently: a user's images, the
    scenes of another ``--generate`` count, or a run stopped while it wrote them."""
    if not args.generate:
        return
    files = sorted(path for path in args.folder.rglob("*") if path.is_file()) if args.folder.is_dir() else []
    if not files:
        write_generated_scenes(args.folder, args.generate)
        return
    names = [path.relative_to(args.folder) for path in files]
    indices = sorted(int(name.stem) for name in names
                     if len(name.parts) == 2 and name.suffix == ".png" and name.stem.isdigit() and len(name.stem) == 5)
    if len(names) == args.generate and indices == list(range(args.generate)):
        return  # the scenes of an earlier --generate N: the generator is seeded, so they are the ones it would write
    parser.error(f"--generate {args.generate}: FOLDER {args.folder} is not empty: it holds {len(files)} file(s), not "
                 f"the {args.generate} scenes --generate {args.generate} writes, and training would read them; give "
                 "a new or empty folder, or leave out --generate to train on what it holds")


def check_dataset_size(parser: argparse.ArgumentParser, args: argparse.Namespace, count: int) -> None:
    """One usage line when the folder holds fewer images than one batch: the loader drops the incomplete batch, so
    no step would run (the loss printed as 0.00000, or Lightning's 'No training batches')."""
    if count < args.batch_size:
        parser.error(f"FOLDER {args.folder} holds {count} images, fewer than --batch-size {args.batch_size}: the "
                     "incomplete last batch is dropped, so no training step would run; lower --batch-size")


def normalization(args: argparse.Namespace) -> dict[str, list[float]]:
    from lightly.transforms.utils import IMAGENET_NORMALIZE

    return CIFAR_NORMALIZE if args.normalize == "cifar" else IMAGENET_NORMALIZE


def write_generated_scenes(folder: Path, count: int, size: int = 64) -> None:
    """Write ``count`` generated object-in-clutter scenes as ``folder/<class>/<index>.png``."""
    from PIL import Image

    from ccrop_scenes import generate_scenes

    scenes = generate_scenes(count, image_size=size, objects_per_image=(1, 2), seed=0)
    for index, (image, label) in enumerate(zip(scenes.images, scenes.labels)):
        target = folder / scenes.class_names[int(label)]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target / f"{index:05d}.png")


def resnet18_backbone(cifar_stem: bool) -> nn.Sequential:
    """lightly's backbone, ``nn.Sequential(*list(resnet18.children())[:-1])`` (no weights: no download)."""
    resnet = torchvision.models.resnet18(weights=None)
    if cifar_stem:
        resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        resnet.maxpool = nn.Identity()
    return nn.Sequential(*list(resnet.children())[:-1])

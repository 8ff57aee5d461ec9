"""``ccrop study``'s sizes (:class:`StudyConfig`), their checks and the named presets (``PRESETS``).

The command (``ccrop_cli.study.command``), the runs (``ccrop_cli.study.runs``) and the results file
(``ccrop_cli.study.results_file``) import these; nothing here imports them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ccrop_plugins import HeatmapPipeline, RefreshSchedule
from ccrop_scenes import generate_scenes

from ccrop_cli.experiment.backbones import build_backbone, check_stage_names
from ccrop_cli.experiment.pretrain import PretrainConfig
from ccrop_cli.experiment.scene_settings import NUM_CLASSES, get_scene_setting
from ccrop_cli.experiment.strategies import CropStrategy, get_strategy
from ccrop_cli.option_types import MAX_EPOCHS, MAX_SEEDS

MIN_STUDY_SIDE = 16
"""The smallest ``--image-size``, ``--refresh-size`` and ``--eval-size``: the generated scenes' smallest side."""


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
        if not 1 <= self.seeds <= MAX_SEEDS:  # --seeds 1000000 was a run of about a year
            raise ValueError(f"--seeds must be an integer from 1 to {MAX_SEEDS}; got {self.seeds}")
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

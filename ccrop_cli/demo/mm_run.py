"""``ccrop demo --framework mmpretrain``: the same demo through an mmengine Runner and the MM adapter.

Starts from the adapter's CPU config (``configs/mmpretrain/simclr_resnet18_ccrop-multiobj_cpu_scenes.py``:
SimCLR, ResNet-18 with the CIFAR stem, ``ContrastiveCrop`` views, ``ContrastiveCropHook`` with box
sets) and sets the demo's data, schedule and threshold. The ResNet-18 is narrowed to 32 base
channels (about 4x cheaper) so the demo stays within minutes on 2 CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ccrop_cli.demo.config import DemoConfig, DemoRun
from ccrop_cli.demo.user_data import list_images
from ccrop_cli.errors import UserError
from ccrop_cli.experiment.store_snapshot import box_lists, snapshot
from ccrop_cli.experiment.strategies import BOX_SET_OPTIONS
from ccrop_cli.framework_warnings import KnownLogRecords
from ccrop_plugins import stage_features

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mmpretrain" / "simclr_resnet18_ccrop-multiobj_cpu_scenes.py"
BASE_CHANNELS = 32


def _recorder_hook() -> type:
    """A hook (priority LOW: after ContrastiveCropHook) that copies the box sets after every refresh."""
    from mmengine.hooks import Hook

    class RefreshRecorder(Hook):
        priority = "LOW"

        def __init__(self) -> None:
            self.refreshes: list[tuple[int, dict[str, float], list[torch.Tensor]]] = []
            self.epoch_seconds: list[float] = []
            self._started = 0.0
            self._version = 0

        def before_train_epoch(self, runner: Any) -> None:
            self._started = time.perf_counter()

        def after_train_epoch(self, runner: Any) -> None:
            hook = _ccrop_hook(runner)
            if hook.store is not None and hook.store.version != self._version:
                self._version = hook.store.version
                boxes = box_lists(snapshot(hook.store))
                self.refreshes.append((runner.epoch, hook.last_stats.as_dict(), boxes))
            self.epoch_seconds.append(time.perf_counter() - self._started)

    return RefreshRecorder


def model_modules() -> tuple[list[str], list[str]]:
    """The dotted module names of the CPU config's model, the names ``--stages`` takes (built without a Runner),
    and the backbone's stages among them (``backbone.layer1``)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    init_default_scope("mmpretrain")
    names = [name for name, _ in MODELS.build(Config.fromfile(str(CONFIG)).model).named_modules() if name]
    return names, [name for name in names if name.startswith("backbone.") and name.count(".") == 1]


def build_config(config: DemoConfig, train_root: Path, work_dir: Path, progress: bool) -> Any:
    """The mmengine ``Config`` of the demo run (raises ``FileNotFoundError`` without the repo's configs)."""
    from mmengine.config import Config

    if not CONFIG.exists():
        raise FileNotFoundError(
            f"the MMPretrain CPU config {CONFIG} is missing; --framework mmpretrain runs from a source checkout"
        )
    cfg = Config.fromfile(str(CONFIG))
    cfg.work_dir = str(work_dir)
    loader = cfg.train_dataloader
    loader.dataset.data_root = str(train_root)
    if config.data is not None:
        # A user's folder may be flat, which CustomDataset's folder scan refuses ("Found 0 files in
        # subfolders"): list the images the demo found instead (the order Lightly reads them in).
        work_dir.mkdir(parents=True, exist_ok=True)
        listing = work_dir / "images.txt"
        names = "".join(f"{name}\n" for name in list_images(train_root))
        listing.write_text(names, encoding="utf-8")  # as mmengine reads it, whatever the locale
        loader.dataset.update(ann_file=str(listing.resolve()), with_label=False)
    loader.batch_size = config.batch_size
    loader.num_workers = config.num_workers
    loader.persistent_workers = config.num_workers > 0
    multiview = next(step for step in loader.dataset.pipeline if step["type"] == "MultiView")
    crop = multiview["transforms"][0][0]
    crop.update(scale=config.image_size, alpha=config.alpha)
    cfg.model.backbone.update(base_channels=BASE_CHANNELS)
    cfg.model.neck.update(in_channels=8 * BASE_CHANNELS, hid_channels=8 * BASE_CHANNELS)
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=config.epochs)
    cfg.param_scheduler = [
        dict(type="CosineAnnealingLR", T_max=config.epochs, by_epoch=True, begin=0, end=config.epochs)
    ]
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=config.epochs, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=max(1, config.images // config.batch_size))
    cfg.custom_hooks = [
        dict(type="ContrastiveCropHook", warmup_epochs=config.warmup_epochs, interval=config.interval,
             threshold=config.threshold, localizer="components", max_boxes=4, image_size=config.refresh_size,
             localizer_options=dict(BOX_SET_OPTIONS),
             heatmap=config.heatmap, feature_stages=list(config.stages),
             batch_size=256, num_workers=0,
             progress=progress),
    ]
    cfg.randomness = dict(seed=config.seed)
    cfg.log_level = "INFO" if progress else "WARNING"
    return cfg


def _stop_train_workers(runner: Any) -> None:
    """Stop the train DataLoader's persistent workers now that training is over.

    Left to the garbage collector (a Runner sits in reference cycles), they would be stopped in a
    later gc pass that has already cleared their queues' feeder threads, and each worker would
    wait out DataLoader's 5 s join timeout (10 s added while the pictures are drawn).
    ``DataLoader._iterator`` and ``_shutdown_workers`` are private but stable, as in
    ``ccrop_mm.worker_restart``.
    """
    loop = runner.train_loop
    for owner in (getattr(loop, "dataloader", None), getattr(loop, "dataloader_iterator", None)):
        shutdown = getattr(getattr(owner, "_iterator", None), "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def _ccrop_hook(runner: Any) -> Any:
    """The runner's ``ContrastiveCropHook`` (the config registers exactly one)."""
    return next(h for h in runner.hooks if type(h).__name__ == "ContrastiveCropHook")


def train_mmpretrain(config: DemoConfig, train_root: Path, work_dir: Path, progress: bool = True) -> DemoRun:
    """Train through ``mmengine.runner.Runner``; return the backbone's view for the report."""
    import ccrop_mm  # noqa: F401  registers ContrastiveCrop, ChooseContrastiveBox, ContrastiveCropHook
    from mmengine.runner import Runner

    cfg = build_config(config, train_root, work_dir, progress)
    runner = Runner.from_cfg(cfg)
    runner.logger.addFilter(KnownLogRecords())  # mmengine's notes on its own FileClient, logged while training
    try:
        stage_features(runner.model, list(config.stages))
    except ValueError as error:  # before training, as a one-line error
        raise UserError(str(error)) from None
    recorder = _recorder_hook()()
    runner.register_hook(recorder)
    runner.train()
    _stop_train_workers(runner)
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    dataset = runner.train_dataloader.dataset
    filenames = [
        Path(dataset.get_data_info(i)["img_path"]).relative_to(train_root).as_posix() for i in range(len(dataset))
    ]
    refresh_seconds = sum(stats["seconds"] for _, stats, _ in recorder.refreshes)
    return DemoRun(
        feature_fn=stage_features(model, list(config.stages)),
        filenames=filenames,
        refreshes=recorder.refreshes,
        train_seconds=sum(recorder.epoch_seconds) - refresh_seconds,  # epochs include their refresh
        refresh_seconds=refresh_seconds,
        store=_ccrop_hook(runner).store,
    )

"""Shared set-up of the mm tests (imported by conftest.py and by the DDP worker script).

Images: ``coordinate_images`` encode each pixel's position in its colour (R = 8 * row + 4,
G = 8 * col + 4, B = 128), so a crop resized with ``nearest`` interpolation reveals its exact
source rows and columns. ``object_images`` hold one bright square on a dark background.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

REPO = Path(__file__).resolve().parents[2]
CPU_CONFIGS = {
    "mmpretrain": REPO / "configs/mmpretrain/simclr_resnet18_ccrop-multiobj_cpu_scenes.py",
    "mmselfsup": REPO / "configs/mmselfsup/simclr_resnet18_ccrop-multiobj_cpu_scenes.py",
}
SIZE = 32
NUM_IMAGES = 16


def coordinate_images(folder: Path) -> Path:
    """Write 16 position-encoded 32 px PNGs into ``folder/a/`` (ImageFolder layout); return ``folder``."""
    (folder / "a").mkdir(parents=True, exist_ok=True)
    rows = np.arange(SIZE)[:, None].repeat(SIZE, 1) * 8 + 4
    cols = np.arange(SIZE)[None, :].repeat(SIZE, 0) * 8 + 4
    bgr = np.stack([np.full((SIZE, SIZE), 128), cols, rows], -1).astype(np.uint8)
    for i in range(NUM_IMAGES):
        cv2.imwrite(str(folder / "a" / f"{i:02d}.png"), bgr)
    return folder


def object_images(folder: Path, seed: int = 0) -> Path:
    """Write 16 32 px PNGs, each a bright square of random size and place on dark noise."""
    rng = np.random.default_rng(seed)
    (folder / "a").mkdir(parents=True, exist_ok=True)
    for i in range(NUM_IMAGES):
        img = rng.integers(0, 40, size=(SIZE, SIZE, 3)).astype(np.uint8)
        side = int(rng.integers(8, 16))
        top, left = (int(v) for v in rng.integers(0, SIZE - side, size=2))
        img[top : top + side, left : left + side] = rng.integers(180, 255, size=3)
        cv2.imwrite(str(folder / "a" / f"{i:02d}.png"), img)
    return folder


def small_config(framework: str, data_root: Path, work_dir: Path, **hook: Any) -> Config:
    """The framework's CPU config, shrunk for tests: 2 epochs of 2 iterations, warm-up 1, crop + flip only.

    The backbone is a narrow ResNet-18 (CIFAR stem, 16 base channels); views use ``nearest``
    interpolation so crops can be read back from pixels. Keeps num_workers=2 and persistent workers.

    ``format_python_code=False`` (a documented ``Config`` argument): mmengine then writes the config
    text to its log, work_dir and checkpoints without running yapf over it, which costs about 0.2 s
    a time, four or five times per Runner. The demo's Runner (tests/cli/test_demo.py) keeps the
    default, so formatting a ccrop config stays tested. (mmengine 0.10.7's ``Config.fromfile`` drops
    the argument for a plain config file, so the loaded config is wrapped again.)
    """
    loaded = Config.fromfile(str(CPU_CONFIGS[framework]))
    cfg = Config(loaded.to_dict(), cfg_text=loaded.text, filename=loaded.filename, format_python_code=False)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = str(data_root)
    cfg.train_dataloader.batch_size = 8
    cfg.train_dataloader.num_workers = 2
    cfg.train_dataloader.persistent_workers = True
    backbone = cfg.model.backbone
    backbone.update(stem_channels=16, base_channels=16, norm_cfg=dict(type="BN", momentum=0.0))
    cfg.model.neck.update(in_channels=128, hid_channels=128, out_channels=32)
    pipeline = cfg.train_dataloader.dataset.pipeline
    multiview = next(step for step in pipeline if step["type"] == "MultiView")
    crop = dict(multiview["transforms"][0][0])
    crop.update(interpolation="nearest", alpha=0.5)
    multiview["transforms"] = [[crop, dict(type="RandomFlip", prob=0.5)]]
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=2)
    cfg.param_scheduler = []
    cfg.optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.0, momentum=0.9))
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1)
    cfg.log_level = "WARNING"
    hook_cfg = dict(type="ContrastiveCropHook", warmup_epochs=1, interval=1, threshold=0.1,
                    localizer="components", max_boxes=4, batch_size=8, num_workers=0)
    hook_cfg.update(hook)
    cfg.custom_hooks = [hook_cfg]
    cfg.randomness = dict(seed=0)
    return cfg


def ccrop_hook(runner: Any) -> Any:
    return next(h for h in runner.hooks if type(h).__name__ == "ContrastiveCropHook")


def started(cfg: Config) -> tuple[Any, Any]:
    """A Runner of ``cfg`` with its ContrastiveCropHook's before_train run (no iteration), and that hook."""
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.call_hook("before_run")
    runner.train_loop  # noqa: B018  (builds the loop, as runner.train() does)
    hook = ccrop_hook(runner)
    hook.before_train(runner)
    return runner, hook


def sample_indices(data_samples: list[Any]) -> list[int]:
    """``sample_idx`` of each packed sample (mmpretrain metainfo or mmselfsup algorithm key)."""
    out = []
    for sample in data_samples:
        value = sample.sample_idx
        value = getattr(value, "value", value)
        out.append(int(torch.as_tensor(value).reshape(-1)[0]))
    return out


FORCED_BOXES = torch.tensor([[0.0, 0.0, 0.25, 0.25], [0.75, 0.75, 1.0, 1.0]])
"""Two boxes (top-left and bottom-right corner) forced onto even samples after the refresh."""


@HOOKS.register_module(force=True)
class CropRecorderHook(Hook):
    """Test instrument: records every training batch (and the store version as its iteration starts);
    after the refresh of epoch 1 (or of iteration ``after_iter`` in an iteration loop) it saves the
    refreshed store and forces :data:`FORCED_BOXES` onto even samples (odd ones keep theirs).

    Priority LOW: after ContrastiveCropHook (NORMAL), before CheckpointHook (VERY_LOW).
    """

    priority = "LOW"

    def __init__(self, force: bool = True, after_iter: int | None = None) -> None:
        self.force = force
        self.after_iter = after_iter
        self.batches: list[dict[str, Any]] = []
        self.refreshed_state: dict[str, Any] | None = None
        self.state_before_train: dict[str, Any] | None = None
        self.version_scalar: float | None = None

    def before_train(self, runner: Any) -> None:
        self.state_before_train = ccrop_hook(runner).store.state_dict()

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        views = [v.clone() for v in data_batch["inputs"]]
        self.batches.append({"epoch": runner.epoch, "iter": runner.iter, "views": views,
                             "version": ccrop_hook(runner).store.version,
                             "indices": sample_indices(data_batch["data_samples"])})

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.after_iter is not None and runner.iter + 1 == self.after_iter:
            self._snapshot_and_force(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if self.after_iter is None and runner.epoch == 0:
            self._snapshot_and_force(runner)

    def _snapshot_and_force(self, runner: Any) -> None:
        store = ccrop_hook(runner).store
        self.refreshed_state = store.state_dict()
        scalar = runner.message_hub.log_scalars.get("train/ccrop_box_version")  # None: no refresh yet
        self.version_scalar = None if scalar is None else scalar.current()
        if self.force:
            from ccrop_plugins import BoxSets

            even = torch.arange(0, len(store), 2)
            boxes = torch.zeros(len(even), store.max_boxes, 4)
            boxes[:, :2] = FORCED_BOXES
            scores = torch.zeros(len(even), store.max_boxes)
            scores[:, :2] = 1.0
            counts = torch.full((len(even),), 2, dtype=torch.int64)
            store.update(even, BoxSets(boxes, scores, counts, torch.zeros(len(even), dtype=torch.bool)),
                         new_version=False)


def crop_from_pixels(view: torch.Tensor) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` in source pixels of a nearest-resized crop of a coordinate image.

    ``view`` is ``(3, h, w)`` uint8 in the loader's BGR order: channel 2 encodes rows, channel 1 columns.
    """
    rows = (view[2].long() - 4) // 8
    cols = (view[1].long() - 4) // 8
    top, left = int(rows.min()), int(cols.min())
    return top, left, int(rows.max()) - top + 1, int(cols.max()) - left + 1


def position_allowed(top: float, extent: float, box_low: float, box_high: float, tol: float = 1.0) -> bool:
    """The paper's rule on one axis: ``top`` within ``clamp([lo*S - h/2, hi*S - h/2], 0, S - h)`` (+-tol)."""
    limit = SIZE - extent
    low = min(max(box_low * SIZE - extent / 2, 0.0), limit)
    high = min(max(box_high * SIZE - extent / 2, 0.0), limit)
    return low - tol <= top <= high + tol


def crop_fits_box(view: torch.Tensor, box: torch.Tensor) -> bool:
    """Whether the crop in ``view`` was placed by the paper's rule around normalised ``box``."""
    top, left, height, width = crop_from_pixels(view)
    x0, y0, x1, y1 = box.tolist()
    return position_allowed(top, height, y0, y1) and position_allowed(left, width, x0, x1)


def check_crops(batches: list[dict[str, Any]], refreshed_state: dict[str, Any]) -> set[int]:
    """Every pair of ``batches`` was cropped around one common box of its sample's set (from pixels).

    Even samples: :data:`FORCED_BOXES`; odd ones: their boxes in ``refreshed_state``. Returns the
    indices of the forced boxes that pairs were cut around.
    """
    chosen = set()
    pairs = 0
    for batch in batches:
        first, second = batch["views"]
        for row, index in enumerate(batch["indices"]):
            if index % 2 == 0:
                boxes = FORCED_BOXES
            else:
                count = int(refreshed_state["counts"][index])
                boxes = refreshed_state["boxes"][index, :count]
            shared = [k for k, box in enumerate(boxes)
                      if crop_fits_box(first[row], box) and crop_fits_box(second[row], box)]
            assert shared, (
                f"iteration {batch['iter'] + 1}: the views of sample {index} share no box of {boxes.tolist()}"
            )
            if index % 2 == 0:
                chosen.update(shared)
            pairs += 1
    assert pairs == NUM_IMAGES
    return chosen


def stop_workers(runner: Any) -> None:
    """Stop the train DataLoader workers a finished Runner keeps (persistent workers).

    Left to the garbage collector, they are torn down while the *next* Runner starts and
    delay its first batch by about 10 s on this machine.
    """
    loop_iterator = getattr(getattr(runner, "_train_loop", None), "dataloader_iterator", None)
    loader = getattr(getattr(runner, "_train_loop", None), "dataloader", None)
    for owner in (loader, loop_iterator):
        worker_iterator = getattr(owner, "_iterator", None)
        if hasattr(worker_iterator, "_shutdown_workers"):
            worker_iterator._shutdown_workers()


def ddp_env(rank: int, world_size: int, init_method: str) -> dict[str, str]:
    """Environment of one rank of ddp_train.py: it joins its gloo group through ``init_method`` (a ``file://`` path
    in the test's folder), given as ``CCROP_TEST_INIT_METHOD``. No ``MASTER_ADDR``/``MASTER_PORT``, not even inherited:
    a free port picked by the test can be taken by another process before rank 0 binds it."""
    env = {key: value for key, value in os.environ.items() if key not in ("MASTER_ADDR", "MASTER_PORT")}
    env.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
               CCROP_TEST_INIT_METHOD=init_method, OMP_NUM_THREADS="1")
    return env

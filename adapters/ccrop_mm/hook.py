"""``ContrastiveCropHook``: owns the box store, refreshes it on the paper's schedule, checkpoints it.

Add it to ``custom_hooks``::

    custom_hooks = [dict(type='ContrastiveCropHook', warmup_epochs=100, interval=100,
                         threshold=0.1, localizer='bbox')]

Lifecycle in an mmengine ``Runner.train()``:

0. ``before_run``: under torch >= 2.6, mmengine's own ``torch.load`` (weights-only by default)
   gets the allow-list of :mod:`ccrop_mm.checkpoint_globals` until the checkpoint is loaded,
   so resume and ``load_from`` work without ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.
1. ``after_load_checkpoint`` (resume / ``load_from``): the saved store is kept and restored as
   soon as the store exists (it is created next, before any worker starts).
2. ``before_train``: the store is created, sized to the train dataset, and attached to every
   ContrastiveCrop step of the train pipeline (nested in ``MultiView``/``RandomApply``/
   ``Compose`` too). ``EpochBasedTrainLoop`` starts the DataLoader workers with the first
   iteration, after this, so they share the store's memory and see every later refresh;
   ``IterBasedTrainLoop`` started them when it was built, so the hook restarts them once
   (:mod:`ccrop_mm.worker_restart`). Configuration errors are raised here, before the first
   iteration.
3. After epoch ``warmup_epochs``, ``warmup_epochs + interval``, ... (never after the last):
   a refresh with the model's backbone (last stage), model in eval mode, then back.
   With ``IterBasedTrainLoop`` the same numbers count iterations (``warmup_iters`` is
   accepted as another name for ``warmup_epochs`` there).
4. ``before_save_checkpoint``: the store and its version go into ``checkpoint['ccrop']``.
"""

from __future__ import annotations

from typing import Any

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop
from torch import serialization

from ccrop_plugins import BoxStore, get_heatmap, get_localizer, refresh_boxes

from .checkpoint_globals import missing_globals, supported
from .extraction import ExtractionDataset, Normaliser, extraction_loader
from .pipeline_walk import find_instances, top_level
from .schedule import check_schedule, refresh_due
from .transforms import ChooseContrastiveBox, StoreUser, _ContrastiveCropTransform
from .worker_restart import restart_started_workers

CHECKPOINT_KEY = "ccrop"
SCALAR_PREFIX = "train/ccrop_"


@HOOKS.register_module()
class ContrastiveCropHook(Hook):
    """Refresh the ContrastiveCrop boxes of the train dataset during mmengine training.

    Args:
        warmup_epochs: epochs of plain RandomResizedCrop before the first refresh (paper:
            100 on CIFAR, 20 on ImageNet). Iterations under ``IterBasedTrainLoop``.
        interval: epochs (iterations) between refreshes after warm-up.
        warmup_iters: another name for ``warmup_epochs``, for ``IterBasedTrainLoop`` configs;
            refused under an epoch-based loop (give one of the two, not both).
        threshold: the heatmap threshold ``k`` in ``[0, 1)`` (paper: 0.1).
        localizer: a registered localizer: ``bbox`` (the paper's single box) or
            ``components`` (a set of boxes per image), or a plugin's.
        max_boxes: boxes kept per image (store size ``K``; ``bbox`` keeps 1).
        heatmap: a registered heatmap method (``channel_sum`` is the paper's).
        localizer_options: other options of the localizer (``min_area``, ...).
        image_size: ``(height, width)`` or int of the images fed to the backbone during a
            refresh; default the output size of the first ContrastiveCrop.
        batch_size: refresh batch size; default the train dataloader's.
        num_workers: refresh loader workers; default the train dataloader's.
        progress: show a progress bar during refreshes (rank 0).
        allow_mmengine_checkpoints: let the runner's own checkpoint load (resume,
            ``load_from``) accept mmengine's ``HistoryBuffer`` and numpy entries under
            ``torch.load(weights_only=True)``; see :mod:`ccrop_mm.checkpoint_globals`.

    Attributes:
        store: the :class:`~ccrop_plugins.BoxStore` (``None`` before training starts).
        last_stats: the :class:`~ccrop_plugins.RefreshStats` of the latest refresh.
    """

    priority = "NORMAL"  # above CheckpointHook (VERY_LOW): a checkpoint after a refresh holds its boxes

    def __init__(
        self,
        warmup_epochs: int | None = None,
        interval: int = 100,
        threshold: float = 0.1,
        localizer: str = "bbox",
        max_boxes: int = 4,
        heatmap: str = "channel_sum",
        localizer_options: dict[str, Any] | None = None,
        image_size: int | tuple[int, int] | None = None,
        batch_size: int | None = None,
        num_workers: int | None = None,
        progress: bool = False,
        warmup_iters: int | None = None,
        allow_mmengine_checkpoints: bool = True,
    ) -> None:
        if warmup_epochs is not None and warmup_iters is not None:
            raise ValueError(
                f"ContrastiveCropHook: give warmup_epochs or warmup_iters, not both; got "
                f"warmup_epochs={warmup_epochs!r}, warmup_iters={warmup_iters!r}"
            )
        self._warmup_name = "warmup_iters" if warmup_iters is not None else "warmup_epochs"
        warmup = warmup_iters if warmup_iters is not None else 100 if warmup_epochs is None else warmup_epochs
        self.warmup, self.interval = check_schedule(warmup, interval, self._warmup_name)
        if isinstance(max_boxes, bool) or not isinstance(max_boxes, int) or not 1 <= max_boxes <= 127:
            raise ValueError(f"ContrastiveCropHook: max_boxes must be an int in [1, 127]; got {max_boxes!r}")
        self.localizer_name = localizer
        self.localizer = _build_localizer(localizer, threshold, max_boxes, localizer_options or {})
        try:
            get_heatmap(heatmap)
        except ValueError as error:
            raise ValueError(f"ContrastiveCropHook: {error}") from None
        self.heatmap = heatmap
        self.max_boxes = 1 if localizer == "bbox" else max_boxes
        self.image_size = None if image_size is None else _pair(image_size, "image_size")
        for name, value in (("batch_size", batch_size), ("num_workers", num_workers)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < (name == "batch_size")):
                raise ValueError(f"ContrastiveCropHook: {name} must be a non-negative int or None; got {value!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.progress = progress
        self.store: BoxStore | None = None
        self.last_stats = None
        self._pending_state: dict[str, Any] | None = None
        self._steps: list[StoreUser] = []
        self._by_iteration = False
        self.allow_mmengine_checkpoints = bool(allow_mmengine_checkpoints)
        self._checkpoint_globals: Any = None  # a torch.serialization.safe_globals, while loading
        self._stopped_worker_iterators: list[Any] = []  # kept until after_run: see worker_restart

    # -- store and pipeline -------------------------------------------------------------------
    def _attach(self, runner: Any) -> None:
        """Create the store and connect it to the pipeline's ContrastiveCrop steps (once)."""
        if self.store is None:
            dataset = _pipeline_dataset(runner.train_dataloader.dataset)
            steps = find_instances(dataset.pipeline, StoreUser)
            if not any(isinstance(step, _ContrastiveCropTransform) for step in steps):
                raise ValueError(
                    "ContrastiveCropHook found no ContrastiveCrop in train_dataloader.dataset.pipeline; "
                    "replace RandomResizedCrop in the view pipeline with dict(type='ContrastiveCrop', ...) "
                    "(or remove the hook)"
                )
            self._check_pair_consistency(dataset.pipeline)
            self._check_sample_index(dataset)
            self.store = BoxStore(len(dataset), self.max_boxes)
            for step in steps:
                step.attach_store(self.store)
            self._steps = steps
            self._dataset = dataset
        if self._pending_state is not None:
            self.store.load_state_dict(self._pending_state)
            self._pending_state = None

    def _check_pair_consistency(self, pipeline: Any) -> None:
        """With several boxes per image, both views must crop the same box: need ChooseContrastiveBox first."""
        if self.max_boxes == 1:
            return
        chooser_seen = False
        for step in top_level(pipeline):
            if find_instances(step, ChooseContrastiveBox):
                chooser_seen = True
            crops = find_instances(step, _ContrastiveCropTransform)
            if crops and not chooser_seen:
                raise ValueError(
                    f"ContrastiveCropHook(localizer={self.localizer_name!r}, max_boxes={self.max_boxes}) keeps "
                    "several boxes per image, so both views must crop around the same one: put "
                    "dict(type='ChooseContrastiveBox') before MultiView in the train pipeline "
                    "(or use localizer='bbox' / max_boxes=1)"
                )

    @staticmethod
    def _check_sample_index(dataset: Any) -> None:
        if not hasattr(dataset, "get_data_info"):
            raise TypeError(
                f"ContrastiveCropHook needs an mmengine BaseDataset (with get_data_info); got {type(dataset).__name__}"
            )
        info = dataset.get_data_info(0)
        if not isinstance(info, dict) or "sample_idx" not in info:
            raise ValueError(
                f"{type(dataset).__name__}.get_data_info(0) has no 'sample_idx': ContrastiveCrop needs each "
                "sample's dataset index in the results (mmengine's BaseDataset.get_data_info adds it; "
                "keep it in a custom get_data_info)"
            )

    # -- checkpoint loading under torch >= 2.6 ----------------------------------------------------
    def _admit_checkpoint_globals(self) -> None:
        """Widen torch's weights-only allow-list for the runner's own load (only what is missing)."""
        if self.allow_mmengine_checkpoints and supported() and self._checkpoint_globals is None:
            self._checkpoint_globals = serialization.safe_globals(missing_globals())
            self._checkpoint_globals.__enter__()

    def _release_checkpoint_globals(self) -> None:
        """Undo :meth:`_admit_checkpoint_globals` once loading is over (no-op if nothing was added)."""
        if self._checkpoint_globals is not None:
            self._checkpoint_globals.__exit__(None, None, None)
            self._checkpoint_globals = None

    # -- mmengine hook points -------------------------------------------------------------------
    def before_run(self, runner: Any) -> None:
        self._admit_checkpoint_globals()  # the runner calls load_or_resume() right after before_run

    def after_run(self, runner: Any) -> None:
        self._release_checkpoint_globals()
        self._stopped_worker_iterators = []

    def before_train(self, runner: Any) -> None:
        self._release_checkpoint_globals()  # loading is over by now, with or without a checkpoint
        self._by_iteration = isinstance(runner.train_loop, IterBasedTrainLoop)
        if self._warmup_name == "warmup_iters" and not self._by_iteration:
            raise ValueError(
                f"ContrastiveCropHook: warmup_iters is for IterBasedTrainLoop; the train loop is "
                f"{type(runner.train_loop).__name__}, so use warmup_epochs"
            )
        first_attach = self.store is None
        self._attach(runner)
        if first_attach:
            # IterBasedTrainLoop started its workers when it was built, before the store existed.
            self._stopped_worker_iterators = restart_started_workers(runner.train_loop)
        if first_attach and self._stopped_worker_iterators:
            runner.logger.info("ContrastiveCrop: restarted the train DataLoader workers so they share the box store")
        unit = "iterations" if self._by_iteration else "epochs"
        runner.logger.info(
            f"ContrastiveCrop: {len(self._steps)} pipeline steps share {self.store!r}; refresh after "
            f"{self.warmup} {unit}, then every {self.interval}"
        )

    def after_train_epoch(self, runner: Any) -> None:
        if not self._by_iteration and refresh_due(runner.epoch + 1, self.warmup, self.interval, runner.max_epochs):
            self.refresh(runner)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self._by_iteration and refresh_due(runner.iter + 1, self.warmup, self.interval, runner.max_iters):
            self.refresh(runner)

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if self.store is not None:
            checkpoint[CHECKPOINT_KEY] = {"box_store": self.store.state_dict()}

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._release_checkpoint_globals()
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            return
        self._pending_state = saved["box_store"]
        if self.store is not None:
            self._attach(runner)

    # -- the refresh ------------------------------------------------------------------------------
    def refresh(self, runner: Any) -> None:
        """Localize every training image with the current backbone and update the store (all ranks)."""
        self._attach(runner)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        backbone = model.backbone
        loader = self._loader(runner)
        normalise = Normaliser(getattr(model, "data_preprocessor", None))
        device = next(backbone.parameters()).device
        batches = ((normalise(images, device), indices) for images, indices in loader)
        was_training = runner.model.training
        runner.model.eval()
        try:
            stats = refresh_boxes(
                backbone, batches, self.store, self.localizer, self.heatmap, device=device, progress=self.progress
            )
        finally:
            runner.model.train(was_training)
        self.last_stats = stats
        scalars = {
            "mean_boxes": stats.mean_boxes,
            "mean_box_area": stats.mean_box_area,
            "fallback_fraction": stats.fallback_fraction,
            "refresh_seconds": stats.seconds,
            "box_version": float(stats.version),
        }
        for name, value in scalars.items():
            runner.message_hub.update_scalar(SCALAR_PREFIX + name, value)
        rank, _ = get_dist_info()
        if rank == 0:
            runner.logger.info(
                "ContrastiveCrop refresh "
                + ", ".join(f"{name}={value:.4g}" for name, value in scalars.items())
                + f", images={stats.images}, images_per_second={stats.images_per_second:.1f}"
            )

    def _loader(self, runner: Any) -> Any:
        train_loader = runner.train_dataloader
        head = []
        for step in top_level(self._dataset.pipeline):
            if find_instances(step, StoreUser):
                break
            head.append(step)
        size = self.image_size
        if size is None:
            crop = next(s for s in self._steps if isinstance(s, _ContrastiveCropTransform))
            size = crop.size
        backend = next((s.backend for s in self._steps if isinstance(s, _ContrastiveCropTransform)), "cv2")
        dataset = ExtractionDataset(self._dataset, head, size, backend)
        batch_size = self.batch_size or train_loader.batch_size or 32
        num_workers = train_loader.num_workers if self.num_workers is None else self.num_workers
        return extraction_loader(dataset, batch_size, num_workers)


def _build_localizer(name: str, threshold: float, max_boxes: int, options: dict[str, Any]) -> Any:
    """Build the localizer now, so an unknown name or bad option fails when the runner is built."""
    options = {"threshold": threshold, **options}
    if name != "bbox":  # the single-box rule has no max_boxes; every set-valued one does
        options.setdefault("max_boxes", max_boxes)
    try:
        return get_localizer(name, **options)
    except (ValueError, TypeError) as error:
        raise type(error)(f"ContrastiveCropHook: {error}") from None


def _pipeline_dataset(dataset: Any) -> Any:
    """The dataset that owns the pipeline, through wrappers such as ``RepeatDataset``.

    ``sample_idx`` indexes this inner dataset, so the store is sized to it.
    """
    seen = dataset
    while not hasattr(seen, "pipeline") and hasattr(seen, "dataset"):
        seen = seen.dataset
    if not hasattr(seen, "pipeline"):
        raise TypeError(
            f"ContrastiveCropHook cannot find the pipeline of {type(dataset).__name__}; "
            "it supports mmengine datasets and wrappers with a single inner dataset"
        )
    return seen


def _pair(size: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    values = tuple(int(v) for v in size)
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"ContrastiveCropHook: {name} must be an int or (height, width); got {size!r}")
    return values  # type: ignore[return-value]

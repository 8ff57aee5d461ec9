"""``ContrastiveCropHook``: owns the box store, refreshes it on the paper's schedule, checkpoints it.

The class reads as its life cycle in an mmengine ``Runner.train()``; each concern is a module of its own: the
constructor's checks (:mod:`~ccrop_mm.hook_options`), torch's weights-only load of the checkpoint
(``checkpoint_globals``), the train dataset's parts and their store rows (``train_parts``), their pipelines'
ContrastiveCrop steps (``pipeline_walk``), the boxes in checkpoints, their restore on resume and the refresh a
resumed store lacks (``checkpoint_boxes``), the schedule in epochs or iterations (``schedule_steps``), one refresh pass
(``refresh_pass``), crops in val/test pipelines (``evaluation_crops``) and the workers an iteration loop started
before the store existed (``worker_restart``).
"""

from __future__ import annotations

from typing import Any, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ccrop_plugins import BoxStore, check_same_on_every_rank

from .checkpoint_boxes import (CHECKPOINT_KEY, checkpoint_entry, image_list_digest, lazy_images_digest, resume_boxes,
                               saved_boxes, warn_checkpoint_first)
from .checkpoint_globals import LoadWindow
from .evaluation_crops import say_evaluation_crops
from .extraction import ExtractionDataset, ExtractionParts
from .hook_options import (check_switches, checked_loader_sizes, checked_max_boxes, checked_rules, checked_schedule,
                           refuse_unknown)
from .train_parts import read_train_pipeline
from .refresh_pass import run_refresh, unwrapped
from .schedule_steps import counts_iterations, say_schedule, steps_done
from .stages import check_stages, check_stages_run, feature_fn
from .transforms import StoreUser
from .worker_restart import restart_started_workers

__all__ = ["CHECKPOINT_KEY", "ContrastiveCropHook", "image_list_digest"]


@HOOKS.register_module()
class ContrastiveCropHook(Hook):
    """Refresh the ContrastiveCrop boxes of the train dataset during mmengine training.

    Args:
        warmup_epochs: epochs of plain RandomResizedCrop before the first refresh (paper: 100 on
            CIFAR, 20 on ImageNet; default 100). Iterations under ``IterBasedTrainLoop``.
        interval: epochs (iterations) between refreshes after warm-up.
        threshold: the heatmap threshold ``k`` in ``[0, 1)`` (paper: 0.1), or ``'otsu'``/``'mean'`` (one per image;
            either localizer); ``None``: the localizer's default (0.1 for ``bbox`` and ``components``; a plugin's
            localizer need not take a threshold).
        localizer: ``bbox`` (the paper's single box), ``components`` (box sets) or a plugin's.
        max_boxes: boxes kept per image (``bbox`` keeps 1).
        heatmap: a registered heatmap rule (``channel_sum`` is the paper's).
        localizer_options, heatmap_options: other options of the localizer / heatmap rule.
        feature_stages: the stage(s) whose features make the heatmap, from the one refresh forward:
            module names (``'backbone.layer3'``) or ``out_indices`` entries, two or more fused
            (:mod:`ccrop_mm.stages`; a ViT's layers give patch tokens, laid on the patch grid). ``None``: the
            backbone's last output (the paper); a ViT's last transformer layer. Run once before training.
        image_size: ``(height, width)`` or int fed to the backbone in a refresh; default the
            first ContrastiveCrop's output size.
        batch_size, num_workers: of the refresh loader; default the train loader's.
        progress: a progress bar during refreshes (rank 0).
        warmup_iters: ``warmup_epochs`` under its ``IterBasedTrainLoop`` name (not both).
        load_boxes: with ``load_from`` (not ``resume``), also restore the checkpoint's boxes; they
            belong to the dataset that checkpoint was trained on, so by default they are ignored.
        allow_mmengine_checkpoints: admit mmengine's ``HistoryBuffer``/numpy entries to torch's
            ``weights_only`` load while the runner loads its checkpoint.

    A refresh that raises does not cost the checkpoint of its epoch (iteration): the error is
    logged, the old boxes stay, the checkpoint hook saves as usual (marking the refresh as
    pending), and the error is raised at the start of the next epoch (iteration). Resuming from
    that checkpoint runs the pending refresh first.

    Attributes:
        store: the :class:`~ccrop_plugins.BoxStore` (``None`` before training starts).
        last_stats: the :class:`~ccrop_plugins.RefreshStats` of the latest refresh.
    """

    priority = "NORMAL"  # above CheckpointHook (VERY_LOW): a checkpoint after a refresh holds its boxes

    def __init__(
        self,
        warmup_epochs: int | None = None,
        interval: int = 100,
        threshold: float | str | None = None,
        localizer: str = "bbox",
        max_boxes: int = 4,
        heatmap: str = "channel_sum",
        localizer_options: dict[str, Any] | None = None,
        image_size: int | Sequence[int] | None = None,
        batch_size: int | None = None,
        num_workers: int | None = None,
        progress: bool = False,
        warmup_iters: int | None = None,
        allow_mmengine_checkpoints: bool = True,
        feature_stages: str | int | Sequence[str | int] | None = None,
        heatmap_options: dict[str, Any] | None = None,
        load_boxes: bool = False,
        **unknown: Any,
    ) -> None:
        refuse_unknown(type(self), unknown)
        self.schedule, self._warmup_name = checked_schedule(warmup_epochs, warmup_iters, interval)
        self.localizer_name, self.heatmap, self.heatmap_options = localizer, heatmap, heatmap_options
        self.max_boxes = checked_max_boxes(localizer, max_boxes)
        self.localizer, self.image_size = checked_rules(localizer, threshold, max_boxes, localizer_options, heatmap,
                                                        heatmap_options, image_size)
        check_switches(progress=progress, load_boxes=load_boxes, allow_mmengine_checkpoints=allow_mmengine_checkpoints)
        self.feature_stages = check_stages(feature_stages)
        self.batch_size, self.num_workers = checked_loader_sizes(batch_size, num_workers)
        self.progress = progress
        self.load_boxes, self.allow_mmengine_checkpoints = bool(load_boxes), bool(allow_mmengine_checkpoints)
        self.store: BoxStore | None = None
        self.last_stats = None
        self._saved: dict[str, Any] | None = None  # checkpoint['ccrop'] and its meta, until before_train
        self._failed: BaseException | None = None  # a refresh error, raised after the checkpoint
        self._refreshed_after: int | None = 0  # steps done at the latest refresh: 0 none, None unknown (old checkpoint)
        self._load_window = LoadWindow()
        self._stopped_worker_iterators: list[Any] = []  # kept until after_run: see worker_restart
        StoreUser.awaiting_hooks.add(self)  # until before_train attaches the store

    def __repr__(self) -> str:
        return (f"ContrastiveCropHook({self.schedule!r}, localizer={self.localizer_name!r}, "
                f"max_boxes={self.max_boxes}, heatmap={self.heatmap!r}, feature_stages={self.feature_stages!r}, "
                f"store={self.store!r})")

    # -- mmengine hook points, in the order a run meets them -----------------------------------
    def before_run(self, runner: Any) -> None:
        if self.allow_mmengine_checkpoints:  # the runner loads its checkpoint next
            self._load_window.open()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._load_window.close()
        if CHECKPOINT_KEY in checkpoint:
            self._saved = saved_boxes(checkpoint)

    def before_train(self, runner: Any) -> None:
        self._load_window.close()  # loading is over by now, with or without a checkpoint
        count = sum(isinstance(hook, ContrastiveCropHook) for hook in runner.hooks)
        if count > 1:  # each would refresh a store of its own; the crops would read the one attached last
            raise ValueError(f"ContrastiveCropHook: the runner holds {count} ContrastiveCropHooks (custom_hooks lists "
                             f"it {count} times?); each would refresh its own boxes (a pass over every image each) and "
                             "the crops would read only the last one's, with its options: keep one")
        _refuse_empty_loader(runner.train_dataloader)
        warn_checkpoint_first(runner, self)
        self._by_iteration = counts_iterations(runner, self._warmup_name)
        # A rank refreshing alone would wait in the refresh's gather until the timeout: refused on every rank now.
        check_same_on_every_rank((repr(self.schedule), self._by_iteration), "ContrastiveCropHook: the refresh schedule "
                                 "(schedule, counted in iterations)")
        self._attach_store(runner)
        StoreUser.awaiting_hooks.discard(self)
        say_schedule(runner, self.schedule, self._warmup_name, self._by_iteration, self.store)
        self._resume(runner)
        # Last: the restarted workers start prefetching at once, so the store must hold the resumed boxes by now.
        self._stopped_worker_iterators = restart_started_workers(runner.train_loop)
        if self._stopped_worker_iterators and is_main_process():
            runner.logger.info("ContrastiveCrop: restarted the train DataLoader workers (the iteration loop started "
                               "them before the box store existed)")

    def before_val(self, runner: Any) -> None:
        say_evaluation_crops(runner, "val")

    def before_test(self, runner: Any) -> None:
        say_evaluation_crops(runner, "test")

    def before_train_epoch(self, runner: Any) -> None:
        self._raise_failed_refresh()

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._raise_failed_refresh()

    def after_train_epoch(self, runner: Any) -> None:
        s = self.schedule
        if (not self._by_iteration and self.every_n_epochs(runner, s.interval, s.warmup)
                and not self.is_last_train_epoch(runner)):
            self._refresh_keeping_checkpoint(runner, f"epoch {runner.epoch + 1}")

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        s = self.schedule
        if (self._by_iteration and self.every_n_train_iters(runner, s.interval, s.warmup)
                and not self.is_last_train_iter(runner)):
            self._refresh_keeping_checkpoint(runner, f"iteration {runner.iter + 1}")

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if self.store is not None:
            checkpoint[CHECKPOINT_KEY] = checkpoint_entry(self.store, self._failed is not None, self._refreshed_after,
                                                          self._digest())

    def after_run(self, runner: Any) -> None:
        self._load_window.close()
        self._stopped_worker_iterators = []

    # -- the refresh ------------------------------------------------------------------------------
    def refresh(self, runner: Any) -> None:
        """Localize every training image with the current model and update the store (all ranks)."""
        self.last_stats = run_refresh(runner, self._images, self._features, self.store, self.localizer,
                                      heatmap=self.heatmap, heatmap_options=self.heatmap_options,
                                      batch_size=self.batch_size, num_workers=self.num_workers, progress=self.progress)

    def _refresh_keeping_checkpoint(self, runner: Any, after: str) -> None:
        try:
            self.refresh(runner)
            self._refreshed_after = steps_done(runner, self._by_iteration) + 1  # called at the end of that step
        except Exception as error:  # noqa: BLE001  raised again after the checkpoint hook has run
            self._failed = error
            runner.logger.error(f"ContrastiveCrop refresh after {after} failed: {error!r}; the boxes stay those of "
                                f"version {self.store.version}; the run stops once this {after.split()[0]}'s "
                                "checkpoint is saved (resume from it to refresh again)")

    def _raise_failed_refresh(self) -> None:
        if self._failed is not None:
            error, self._failed = self._failed, None
            raise RuntimeError(f"ContrastiveCrop refresh failed ({error!r}); the checkpoint of that step was "
                               "saved with the previous boxes: fix the cause and resume from it") from error

    # -- before_train's parts -----------------------------------------------------------------------
    def _attach_store(self, runner: Any) -> None:
        """Read the train pipeline (of each part of a ``ConcatDataset``), give its ContrastiveCrop steps a new store,
        prepare the refresh's input."""
        plan = read_train_pipeline(runner.train_dataloader.dataset, several_boxes=self.max_boxes > 1)
        if plan.plain_views:  # one view of each pair box-aware: an ablation, or a view left unconverted
            runner.logger.warning(
                f"ContrastiveCrop: {', '.join(plan.plain_views)} crops with RandomResizedCrop, not ContrastiveCrop, "
                "so those views ignore the boxes (only the other views of each pair are cut around them); replace "
                "it with dict(type='ContrastiveCrop', ...) as in the other view pipeline, unless that is intended")
        # One store for all parts of a ConcatDataset: part d's sample i is row offset_d + i (its rows).
        self.store = BoxStore(plan.num_samples, self.max_boxes)
        several = len(plan.parts) > 1
        for part in plan.parts:
            for step in part.store_users:
                step.attach_store(self.store, part.rows if several else None)
        size = plan.refresh_size(self.image_size)
        images = [ExtractionDataset(part.dataset, part.head, size, part.backend, part.offset) for part in plan.parts]
        self._images = ExtractionParts(images) if several else images[0]
        self._features = feature_fn(unwrapped(runner.model), self.feature_stages)
        mean = getattr(getattr(unwrapped(runner.model), "data_preprocessor", None), "mean", None)
        check_stages_run(self._features, self.feature_stages, self._images.size, 3 if mean is None else mean.numel())
        # Read when a checkpoint is loaded or saved: every part's images, in the order of their rows.
        self._digest = lazy_images_digest(*(part.dataset for part in plan.parts))

    def _resume(self, runner: Any) -> None:
        """Restore the checkpoint's boxes where they belong to this run; refresh now if one is pending or missed."""
        self._refreshed_after, refresh_now = resume_boxes(runner, self._saved, self.store, self.schedule,
                                                          self._by_iteration, self.load_boxes, self._digest)
        if refresh_now:  # else every crop would use no or stale boxes until the next refresh
            self.refresh(runner)
            self._refreshed_after = steps_done(runner, self._by_iteration)
        self._saved = None


def _refuse_empty_loader(loader: Any) -> None:
    """A train loader that yields no batch (fewer images than one batch, drop_last=True) trains nothing: every epoch
    has 0 iterations and each refresh would localize with the untrained model, silently."""
    try:
        batches = len(loader)
    except TypeError:  # an iterable dataset: no length to check
        return
    if batches == 0:
        size = len(loader.dataset) if hasattr(loader.dataset, "__len__") else "?"
        raise ValueError(f"ContrastiveCropHook: the train dataset holds {size} images, fewer than train_dataloader's "
                         f"batch_size {loader.batch_size} with drop_last={loader.drop_last}: every epoch would have 0 "
                         "iterations and each refresh would localize with an untrained model; lower batch_size or "
                         "add images")

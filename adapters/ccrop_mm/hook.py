"""``ContrastiveCropHook``: owns the box store, refreshes it on the paper's schedule, checkpoints it.

Lifecycle in an mmengine ``Runner.train()``:

0. ``before_run``: under torch >= 2.6 mmengine's own ``torch.load`` gets the allow-list of
   :mod:`ccrop_mm.checkpoint_globals` until the checkpoint is loaded.
1. ``after_load_checkpoint``: the saved boxes are kept aside.
2. ``before_train``: the train pipeline is read once (:func:`~ccrop_mm.pipeline_walk.read_train_pipeline`),
   the store is created and attached to its ContrastiveCrop steps before any worker starts
   (``IterBasedTrainLoop`` started its workers already: they are restarted once). Saved
   boxes are restored on ``resume`` only; ``load_from`` loads weights, not another run's boxes. Boxes made on
   another list of images (another count, or other files) are ignored with a warning and made afresh. A resumed
   store that lags the schedule (a checkpoint saved without this hook past a refresh, or one whose run
   ended before a refresh that the resumed, longer run has passed) is refreshed at once.
3. After the steps of the core's :class:`~ccrop_plugins.RefreshSchedule` (``every_n_epochs`` /
   ``every_n_train_iters`` from ``warmup``, never after the last): a refresh.
4. ``before_save_checkpoint``: the store goes into ``checkpoint['ccrop']``, with the step count of its
   latest refresh (``refreshed_after``) and whether a failed refresh is pending.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ccrop_plugins import BoxStore, images_digest, other_images

from .checkpoint_globals import LoadWindow
from .extraction import ExtractionDataset
from .hook_options import check_plain_options, checked_max_boxes, checked_rules, checked_schedule, refuse_unknown
from .pipeline_walk import evaluation_store_users, read_train_pipeline
from .refresh_pass import run_refresh, unwrapped
from .stages import check_stages, feature_fn
from .worker_restart import restart_started_workers

CHECKPOINT_KEY = "ccrop"


@HOOKS.register_module()
class ContrastiveCropHook(Hook):
    """Refresh the ContrastiveCrop boxes of the train dataset during mmengine training.

    Args:
        warmup_epochs: epochs of plain RandomResizedCrop before the first refresh (paper: 100 on
            CIFAR, 20 on ImageNet; default 100). Iterations under ``IterBasedTrainLoop``.
        interval: epochs (iterations) between refreshes after warm-up.
        threshold: the heatmap threshold ``k`` (paper: 0.1); ``components`` also takes ``'otsu'``/``'mean'``.
        localizer: ``bbox`` (the paper's single box), ``components`` (box sets) or a plugin's.
        max_boxes: boxes kept per image (``bbox`` keeps 1).
        heatmap: a registered heatmap rule (``channel_sum`` is the paper's).
        localizer_options, heatmap_options: other options of the localizer / heatmap rule.
        feature_stages: the stage(s) whose features make the heatmap, from the one refresh forward:
            module names (``'backbone.layer3'``) or ``out_indices`` entries, two or more fused
            (:mod:`ccrop_mm.stages`). ``None``: the backbone's last output (the paper).
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
        threshold: float = 0.1,
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
        check_plain_options(batch_size=batch_size, num_workers=num_workers, progress=progress, load_boxes=load_boxes,
                            allow_mmengine_checkpoints=allow_mmengine_checkpoints)
        self.feature_stages = check_stages(feature_stages)
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress
        self.load_boxes, self.allow_mmengine_checkpoints = bool(load_boxes), bool(allow_mmengine_checkpoints)
        self.store: BoxStore | None = None
        self.last_stats = None
        self._saved: dict[str, Any] | None = None  # checkpoint['ccrop'] and its meta, until before_train
        self._failed: BaseException | None = None  # a refresh error, raised after the checkpoint
        # Steps (epochs or iterations) done when the store's latest refresh ran: 0 none; None unknown (a checkpoint
        # saved before this was recorded).
        self._refreshed_after: int | None = 0
        self._images_digest: str | None | bool = False  # image_list_digest of the train dataset; False: not yet read
        self._ignored = False  # the checkpoint's boxes were made on other images and were not restored
        self._load_window = LoadWindow()
        self._stopped_worker_iterators: list[Any] = []  # kept until after_run: see worker_restart

    # -- mmengine hook points -------------------------------------------------------------------
    def before_run(self, runner: Any) -> None:
        if self.allow_mmengine_checkpoints:  # the runner loads its checkpoint next
            self._load_window.open()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._load_window.close()
        if CHECKPOINT_KEY in checkpoint:
            self._saved = {**checkpoint[CHECKPOINT_KEY], "meta": checkpoint.get("meta", {})}

    def before_train(self, runner: Any) -> None:
        self._load_window.close()  # loading is over by now, with or without a checkpoint
        self._by_iteration = isinstance(runner.train_loop, IterBasedTrainLoop)
        if self._warmup_name == "warmup_iters" and not self._by_iteration:
            raise ValueError(f"ContrastiveCropHook: warmup_iters is for IterBasedTrainLoop; the train loop is "
                             f"{type(runner.train_loop).__name__}, so use warmup_epochs")
        plan = read_train_pipeline(runner.train_dataloader.dataset, several_boxes=self.max_boxes > 1)
        self.store = BoxStore(len(plan.dataset), self.max_boxes)
        for step in plan.store_users:
            step.attach_store(self.store)
        self._images = ExtractionDataset(plan.dataset, plan.head, self.image_size or plan.crop_size, plan.backend)
        self._features = feature_fn(unwrapped(runner.model), self.feature_stages)
        self._say_schedule(runner)
        self._refreshed_after, self._images_digest, self._ignored = 0, False, False
        pending = self._saved is not None and self._restore(runner, self._saved)
        missed = None if pending else self._missed_refresh(runner)
        if missed is not None and is_main_process():
            runner.logger.info(self._catch_up_line(missed))
        if pending or missed is not None:  # else every crop would use no or stale boxes until the next refresh
            self.refresh(runner)
            self._refreshed_after = self._steps_done(runner)
        self._saved = None
        # Last: the restarted workers start prefetching at once, so the store must hold the resumed boxes by now.
        self._stopped_worker_iterators = restart_started_workers(runner.train_loop)
        if self._stopped_worker_iterators and is_main_process():
            runner.logger.info("ContrastiveCrop: restarted the train DataLoader workers (the iteration loop started "
                               "them before the box store existed)")

    def before_val(self, runner: Any) -> None:
        self._say_evaluation_crops(runner, "val")

    def before_test(self, runner: Any) -> None:
        self._say_evaluation_crops(runner, "test")

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
            checkpoint[CHECKPOINT_KEY] = {"box_store": self.store.state_dict(),
                                          "refresh_pending": self._failed is not None,
                                          "refreshed_after": self._refreshed_after, "images": self._digest()}

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
            self._refreshed_after = self._steps_done(runner) + 1  # called at the end of that step
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

    # -- checkpoints, schedule ----------------------------------------------------------------------
    def _restore(self, runner: Any, saved: dict[str, Any]) -> bool:
        """Restore saved boxes on resume (or with ``load_boxes``); return whether a refresh is pending."""
        meta = saved.get("meta") or {}
        resumed = runner.iter > 0 and (meta.get("epoch"), meta.get("iter")) == (runner.epoch, runner.iter)
        state = saved["box_store"]
        if not (resumed or self.load_boxes):
            if is_main_process():
                runner.logger.info(
                    f"ContrastiveCrop: the load_from checkpoint holds boxes of {state['num_samples']} images "
                    f"(version {state['version']}); ignored, boxes belong to the dataset they were made on: "
                    "warm-up starts afresh (set ContrastiveCropHook(load_boxes=True) to use them)")
            return False
        digest = saved.get("images")  # the digest of this run's images is read only when the checkpoint has one
        other = other_images(state, len(self.store), digest, None if digest is None else self._digest())
        if other is not None:
            self._ignored = True
            if is_main_process():
                runner.logger.warning(
                    f"ContrastiveCrop: the checkpoint's boxes were made on {other}; ignored, they would crop other "
                    "images' objects: the boxes are made afresh (now, if a refresh was due before this step)")
            return False
        self.store.load_state_dict(state)
        if int(state["max_boxes"]) > self.store.max_boxes and is_main_process():
            runner.logger.info(
                f"ContrastiveCrop: the checkpoint's box sets hold up to {state['max_boxes']} boxes per image; this "
                f"run keeps {self.store.max_boxes} (max_boxes or the localizer changed): the best of each set until "
                "the next refresh")
        if resumed:
            self._refreshed_after = saved.get("refreshed_after")
        return resumed and bool(saved.get("refresh_pending"))

    def _digest(self) -> str | None:
        if self._images_digest is False:
            self._images_digest = image_list_digest(self._images.dataset)
        return self._images_digest

    def _steps_done(self, runner: Any) -> int:
        return runner.iter if self._by_iteration else runner.epoch

    def _missed_refresh(self, runner: Any) -> int | None:
        """On resume: the latest refresh of the schedule (in steps done, never after the run's last step) that
        the restored store lacks, or ``None``. A store of unknown age counts as lagging only when empty."""
        if runner.iter == 0:  # a fresh run, or load_from: the schedule starts here
            return None
        done = self._steps_done(runner)
        due = self.schedule.latest_refresh(done, runner.max_iters if self._by_iteration else runner.max_epochs)
        after = self._refreshed_after
        if after is None:
            after = 0 if self.store.version == 0 else done
        return due if due is not None and due > after else None

    def _catch_up_line(self, missed: int) -> str:
        """The log line of a refresh run on resume because the store lacks the one due after step ``missed``."""
        if self._saved is None:
            return ("ContrastiveCrop: the resumed checkpoint holds no boxes (saved without ContrastiveCropHook?) and a "
                    "refresh was due before it; refreshing now")
        unit = "iteration" if self._by_iteration else "epoch"
        if self._ignored:
            return (f"ContrastiveCrop: the checkpoint's boxes were ignored (see above); the refresh due after {unit} "
                    f"{missed} runs now")
        return (f"ContrastiveCrop: the resumed checkpoint's boxes (version {self.store.version}) lack the refresh due "
                f"after {unit} {missed} (its run ended before it: a longer run resumed?); refreshing now")

    def _say_evaluation_crops(self, runner: Any, mode: str) -> None:
        """ContrastiveCrop steps in the val/test pipeline get no boxes (they are made for the training images): say
        so once in the run's log, and mark the steps, whose per-worker warning would blame a missing hook."""
        loader = getattr(getattr(runner, f"{mode}_loop", None), "dataloader", None)
        steps = [step for step in evaluation_store_users(getattr(loader, "dataset", None))
                 if step.store is None and step.evaluation_loader is None]
        for step in steps:
            step.evaluation_loader = f"{mode}_dataloader"
        if steps and is_main_process():
            names = sorted({type(step).__name__ for step in steps})
            runner.logger.warning(
                f"ContrastiveCrop: {', '.join(names)} in {mode}_dataloader.dataset.pipeline gets no boxes (the hook "
                f"makes them for train_dataloader's images only), so every {mode} crop is a plain RandomResizedCrop "
                f"crop, random from run to run; use a deterministic crop (e.g. CenterCrop or ResizeEdge) in the {mode} "
                "pipeline")

    def _say_schedule(self, runner: Any) -> None:
        if not is_main_process():
            return
        unit, total = ("iterations", runner.max_iters) if self._by_iteration else ("epochs", runner.max_epochs)
        if self.schedule.never_refreshes(total):
            runner.logger.warning(
                f"ContrastiveCropHook never refreshes in this run: {self._warmup_name}={self.schedule.warmup}, "
                f"interval={self.schedule.interval} and {total} {unit} (no refresh after the last); every crop is "
                f"RandomResizedCrop's. Lower {self._warmup_name} (and interval) so that a refresh falls before "
                f"the last of the {total} {unit}")
        else:
            steps = [s + 1 for s in self.schedule.refresh_steps(total)]
            runner.logger.info(f"ContrastiveCrop: {self.store!r}; refresh after {unit} {steps[:6]}"
                               f"{' ...' if len(steps) > 6 else ''} ({len(steps)} in all)")


def image_list_digest(dataset: Any) -> str | None:
    """:func:`ccrop_plugins.images_digest` of the dataset's ``img_path`` (text or ``pathlib``) in index order; ``None``
    when a sample has none. Read once per run (one pass over the data list)."""
    paths = [dataset.get_data_info(index).get("img_path") for index in range(len(dataset))]
    return images_digest(paths) if all(isinstance(path, (str, os.PathLike)) for path in paths) else None


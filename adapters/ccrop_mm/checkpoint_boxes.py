"""The box store in mmengine checkpoints: what is saved, what a resume restores, and the refresh it lacks.

``checkpoint['ccrop']`` holds ``box_store`` (the store's ``state_dict``), ``refresh_pending`` (a failed refresh to
run again), ``refreshed_after`` (the steps done at the store's latest refresh: 0 none) and ``images`` (the digest
of the train dataset's image list). Saved boxes are restored on ``resume`` only: ``load_from`` loads weights, not
another run's boxes (unless ``load_boxes``). Boxes made on another list of images (another count, or other files)
are ignored with a warning and made afresh. A resumed store that lags the schedule (a checkpoint saved without the
hook past a refresh, or one whose run ended before a refresh that the resumed, longer run has passed) is refreshed
at once.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, NamedTuple

from mmengine.dist import is_main_process

from ccrop_plugins import BoxStore, RefreshSchedule, images_digest, other_images

from .schedule_steps import missed_refresh

CHECKPOINT_KEY = "ccrop"


def checkpoint_entry(store: BoxStore, refresh_pending: bool, refreshed_after: int | None,
                     images: str | None) -> dict[str, Any]:
    """``checkpoint['ccrop']``."""
    return {"box_store": store.state_dict(), "refresh_pending": refresh_pending,
            "refreshed_after": refreshed_after, "images": images}


def saved_boxes(checkpoint: dict) -> dict[str, Any]:
    """``checkpoint['ccrop']`` with the checkpoint's ``meta`` (its epoch and iteration), kept until ``before_train``."""
    return {**checkpoint[CHECKPOINT_KEY], "meta": checkpoint.get("meta", {})}


def image_list_digest(dataset: Any) -> str | None:
    """:func:`ccrop_plugins.images_digest` of the dataset's ``img_path`` (text or ``pathlib``) in index order; ``None``
    when a sample has none. Read once per run (one pass over the data list)."""
    paths = [dataset.get_data_info(index).get("img_path") for index in range(len(dataset))]
    return images_digest(paths) if all(isinstance(path, (str, os.PathLike)) for path in paths) else None


def lazy_images_digest(dataset: Any) -> Callable[[], str | None]:
    """:func:`image_list_digest` of ``dataset``, read on the first call (only a checkpoint needs it) and kept."""
    return functools.cache(lambda: image_list_digest(dataset))


class Restored(NamedTuple):
    refreshed_after: int | None  # steps done at the store's latest refresh (0: none, None: unknown)
    pending: bool  # the checkpoint's run failed a refresh: run it again now
    ignored: bool  # the boxes were made on other images and were not restored


def resume_boxes(runner: Any, saved: dict[str, Any] | None, store: BoxStore, schedule: RefreshSchedule,
                 by_iteration: bool, load_boxes: bool, digest: Callable[[], str | None]) -> tuple[int | None, bool]:
    """Restore ``saved`` (from :func:`saved_boxes`, or ``None``) into ``store`` where it belongs to this run.

    Returns:
        The steps done at the store's latest refresh, and whether a refresh must run before the first step (a
        pending one, or one the schedule had due that the store lacks, which is logged).
    """
    restored = Restored(0, False, False) if saved is None else _restore(runner, saved, store, load_boxes, digest)
    if saved is None and load_boxes and runner.iter == 0 and is_main_process():  # asked for boxes, got none
        runner.logger.warning("ContrastiveCropHook(load_boxes=True) found no boxes to load (no load_from, or its "
                              "checkpoint was saved without ContrastiveCropHook): the warm-up starts afresh")
    if restored.pending:
        return restored.refreshed_after, True
    missed = missed_refresh(runner, schedule, by_iteration, store, restored.refreshed_after)
    if missed is not None and is_main_process():
        runner.logger.info(_catch_up_line(missed, saved is not None, restored.ignored, store, by_iteration))
    return restored.refreshed_after, missed is not None


def _restore(runner: Any, saved: dict[str, Any], store: BoxStore, load_boxes: bool,
             digest: Callable[[], str | None]) -> Restored:
    """Restore saved boxes on resume (or with ``load_boxes``)."""
    meta = saved.get("meta") or {}
    resumed = runner.iter > 0 and (meta.get("epoch"), meta.get("iter")) == (runner.epoch, runner.iter)
    state = saved["box_store"]
    if not (resumed or load_boxes):
        if is_main_process():
            runner.logger.info(
                f"ContrastiveCrop: the load_from checkpoint holds boxes of {state['num_samples']} images "
                f"(version {state['version']}); ignored, boxes belong to the dataset they were made on: "
                "warm-up starts afresh (set ContrastiveCropHook(load_boxes=True) to use them)")
        return Restored(0, False, False)
    saved_digest = saved.get("images")  # the digest of this run's images is read only when the checkpoint has one
    other = other_images(state, len(store), saved_digest, None if saved_digest is None else digest())
    if other is not None:
        if is_main_process():
            runner.logger.warning(
                f"ContrastiveCrop: the checkpoint's boxes were made on {other}; ignored, they would crop other "
                "images' objects: the boxes are made afresh (now, if a refresh was due before this step)")
        return Restored(0, False, True)
    store.load_state_dict(state)
    if int(state["max_boxes"]) > store.max_boxes and is_main_process():
        runner.logger.info(
            f"ContrastiveCrop: the checkpoint's box sets hold up to {state['max_boxes']} boxes per image; this "
            f"run keeps {store.max_boxes} (max_boxes or the localizer changed): the best of each set until "
            "the next refresh")
    if not resumed:
        return Restored(0, False, False)
    return Restored(saved.get("refreshed_after"), bool(saved.get("refresh_pending")), False)


def _catch_up_line(missed: int, had_boxes: bool, ignored: bool, store: BoxStore, by_iteration: bool) -> str:
    """The log line of a refresh run on resume because the store lacks the one due after step ``missed``."""
    if not had_boxes:
        return ("ContrastiveCrop: the resumed checkpoint holds no boxes (saved without ContrastiveCropHook?) and a "
                "refresh was due before it; refreshing now")
    unit = "iteration" if by_iteration else "epoch"
    if ignored:
        return (f"ContrastiveCrop: the checkpoint's boxes were ignored (see above); the refresh due after {unit} "
                f"{missed} runs now")
    return (f"ContrastiveCrop: the resumed checkpoint's boxes (version {store.version}) lack the refresh due "
            f"after {unit} {missed} (its run ended before it: a longer run resumed?); refreshing now")

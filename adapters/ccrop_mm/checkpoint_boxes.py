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
from numbers import Integral
from typing import Any, Callable, Mapping, NamedTuple

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from ccrop_plugins import BoxStore, RefreshSchedule, images_digest, other_images

from .schedule_steps import missed_refresh

CHECKPOINT_KEY = "ccrop"


def checkpoint_entry(store: BoxStore, refresh_pending: bool, refreshed_after: int | None,
                     images: str | None) -> dict[str, Any]:
    """``checkpoint['ccrop']``."""
    return {"box_store": store.state_dict(), "refresh_pending": refresh_pending,
            "refreshed_after": refreshed_after, "images": images}


def saved_boxes(checkpoint: dict) -> dict[str, Any]:
    """``checkpoint['ccrop']`` with the checkpoint's ``meta`` (its epoch and iteration), kept until ``before_train``;
    an entry the hook did not write (another type, no ``box_store``, a ``refreshed_after`` that is no int, a
    ``refresh_pending`` that is no bool) is a ``TypeError`` naming the key and its value."""
    entry, what = checkpoint[CHECKPOINT_KEY], f"ContrastiveCropHook: the checkpoint's {CHECKPOINT_KEY!r} entry"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("box_store"), Mapping):
        got = (f"{type(entry).__name__} {entry!r:.80}" if not isinstance(entry, Mapping) else
               f"box_store={entry['box_store']!r:.80}" if "box_store" in entry else f"keys {sorted(map(str, entry))}")
        raise TypeError(f"{what} must be the dict the hook saves, with keys box_store (BoxStore.state_dict()), "
                        f"refresh_pending, refreshed_after and images; got {got}")
    after, pending = entry.get("refreshed_after"), entry.get("refresh_pending", False)
    if after is not None and (not isinstance(after, Integral) or isinstance(after, bool)):
        raise TypeError(f"{what}: refreshed_after must be an int (the steps done at the latest refresh) or None; "
                        f"got {after!r}")
    if pending not in (True, False):  # bool('no') is True: a refresh would run unasked
        raise TypeError(f"{what}: refresh_pending must be True or False; got {pending!r}")
    return {**entry, "meta": checkpoint.get("meta", {})}


def image_list_digest(*datasets: Any) -> str | None:
    """:func:`ccrop_plugins.images_digest` of the datasets' ``img_path`` (text or ``pathlib``) in index order, one
    dataset after the other (the parts of a ``ConcatDataset``, in the order of their rows in the box store); ``None``
    when a sample has none. Read once per run (one pass over the data lists)."""
    paths = [dataset.get_data_info(index).get("img_path") for dataset in datasets for index in range(len(dataset))]
    return images_digest(paths) if all(isinstance(path, (str, os.PathLike)) for path in paths) else None


def lazy_images_digest(*datasets: Any) -> Callable[[], str | None]:
    """:func:`image_list_digest` of ``datasets``, read on the first call (only a checkpoint needs it) and kept."""
    return functools.cache(lambda: image_list_digest(*datasets))


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
                f"ContrastiveCrop: the load_from checkpoint holds boxes of {state.get('num_samples')} images "
                f"(version {state.get('version')}); ignored, boxes belong to the dataset they were made on: "
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
    try:
        store.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as error:  # the core's message, said to be the checkpoint's
        raise type(error)(f"ContrastiveCropHook: the checkpoint's boxes ({CHECKPOINT_KEY!r} entry, box_store) "
                          f"cannot be restored: {error.args[0] if error.args else error}") from error
    if int(state["max_boxes"]) > store.max_boxes and is_main_process():
        runner.logger.info(
            f"ContrastiveCrop: the checkpoint's box sets hold up to {state['max_boxes']} boxes per image; this "
            f"run keeps {store.max_boxes} (max_boxes or the localizer changed): the best of each set until "
            "the next refresh")
    if not resumed:
        return Restored(0, False, False)
    return Restored(saved.get("refreshed_after"), bool(saved.get("refresh_pending")), False)


def warn_checkpoint_first(runner: Any, hook: Any) -> None:
    """Log a warning when ``hook`` runs after the ``CheckpointHook`` (a ``priority`` below its ``VERY_LOW``): each
    checkpoint is saved before its step's refresh, so it holds the boxes one refresh behind (a resume from it runs
    that refresh again)."""
    saver = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
    if saver is not None and runner.hooks.index(hook) > runner.hooks.index(saver) and is_main_process():
        runner.logger.warning(
            f"ContrastiveCropHook(priority={hook.priority!r}) runs after CheckpointHook (priority={saver.priority!r}), "
            "so each checkpoint is saved before its step's refresh and holds the boxes one refresh behind (a resume "
            "from it refreshes again first); leave the hook's priority at 'NORMAL', or any above CheckpointHook's")


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

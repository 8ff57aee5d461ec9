"""The core's :class:`~ccrop_plugins.RefreshSchedule` counted in a runner's steps: epochs under
``EpochBasedTrainLoop``, iterations under ``IterBasedTrainLoop`` (where ``warmup_iters`` is the warm-up's name).
The hook tests the schedule itself with mmengine's ``every_n_epochs`` / ``every_n_train_iters``."""

from __future__ import annotations

from typing import Any

from mmengine.dist import get_world_size, is_main_process
from mmengine.runner import IterBasedTrainLoop

from ccrop_plugins import BoxStore, RefreshSchedule


def counts_iterations(runner: Any, warmup_name: str) -> bool:
    """Whether the run's steps are iterations; ``warmup_iters`` is refused under an epoch loop."""
    by_iteration = isinstance(runner.train_loop, IterBasedTrainLoop)
    if warmup_name == "warmup_iters" and not by_iteration:
        raise ValueError(f"ContrastiveCropHook: warmup_iters is for IterBasedTrainLoop; the train loop is "
                         f"{type(runner.train_loop).__name__}, so use warmup_epochs")
    return by_iteration


def steps_done(runner: Any, by_iteration: bool) -> int:
    return runner.iter if by_iteration else runner.epoch


def say_schedule(runner: Any, schedule: RefreshSchedule, warmup_name: str, by_iteration: bool, store: BoxStore) -> None:
    """Log the planned refreshes, or warn that the run ends before the first (rank 0)."""
    if not is_main_process():
        return
    unit, total = ("iterations", runner.max_iters) if by_iteration else ("epochs", runner.max_epochs)
    if schedule.never_refreshes(total):
        runner.logger.warning(
            f"ContrastiveCropHook never refreshes in this run: {warmup_name}={schedule.warmup}, "
            f"interval={schedule.interval} and {total} {unit} (no refresh after the last); every crop is "
            f"RandomResizedCrop's. Lower {warmup_name} (and interval) so that a refresh falls before "
            f"the last of the {total} {unit}")
    else:
        steps = [s + 1 for s in schedule.refresh_steps(total)]
        runner.logger.info(f"ContrastiveCrop: {store!r}; refresh after {unit} {steps[:6]}"
                           f"{' ...' if len(steps) > 6 else ''} ({len(steps)} in all)")
        if by_iteration and warmup_name == "warmup_epochs":  # an epoch config's values, read as iterations
            batch = getattr(runner.train_dataloader, "batch_size", None) or 1
            runner.logger.warning(
                f"ContrastiveCropHook: under IterBasedTrainLoop warmup_epochs={schedule.warmup} and interval="
                f"{schedule.interval} count iterations, not epochs: a refresh (a pass over all {len(store)} images) "
                f"after iteration {steps[0]}, then every {schedule.interval} iterations ({len(steps)} in all); an "
                f"epoch of {len(store)} images is {-(-len(store) // (batch * get_world_size()))} iterations at "
                f"batch_size {batch} x {get_world_size()} process(es). Give the counts in iterations as warmup_iters="
                "... (and interval) to say that iterations are meant")


def missed_refresh(runner: Any, schedule: RefreshSchedule, by_iteration: bool, store: BoxStore,
                   refreshed_after: int | None) -> int | None:
    """On resume: the latest refresh of the schedule (in steps done, never after the run's last step) that the
    restored store lacks, or ``None``. ``refreshed_after``: the steps done at the store's latest refresh (0: none);
    a store of unknown age (``None``) counts as lagging only when empty."""
    if runner.iter == 0:  # a fresh run, or load_from: the schedule starts here
        return None
    done = steps_done(runner, by_iteration)
    due = schedule.latest_refresh(done, runner.max_iters if by_iteration else runner.max_epochs)
    if refreshed_after is None:
        refreshed_after = 0 if store.version == 0 else done
    return due if due is not None and due > refreshed_after else None

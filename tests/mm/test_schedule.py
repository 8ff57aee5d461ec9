"""The hook's mmengine spelling of the schedule (every_n_epochs / every_n_train_iters from the warm-up, not
after the last step) refreshes exactly at the core RefreshSchedule's steps, in epochs and in iterations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ccrop_mm import ContrastiveCropHook
from ccrop_plugins import RefreshSchedule


@pytest.mark.parametrize("warmup, interval, total", [(0, 1, 5), (0, 3, 10), (1, 1, 2), (2, 4, 6), (100, 100, 500),
                                                     (5, 5, 20), (10, 5, 8), (3, 1, 3)])
@pytest.mark.parametrize("by_iteration", [False, True])
def test_refresh_steps_are_the_core_schedules(warmup, interval, total, by_iteration):
    hook = ContrastiveCropHook(warmup_epochs=warmup, interval=interval)
    hook._by_iteration = by_iteration
    refreshed = []
    hook._refresh_keeping_checkpoint = lambda runner, after: refreshed.append(
        runner.iter if by_iteration else runner.epoch
    )
    for step in range(total):
        runner = SimpleNamespace(epoch=step, iter=step, max_epochs=total, max_iters=total)
        if by_iteration:
            hook.after_train_iter(runner, step)
        else:
            hook.after_train_epoch(runner)
    schedule = RefreshSchedule(warmup, interval, total)
    assert refreshed == schedule.refresh_steps() == [s for s in range(total) if schedule.due(s)]
    assert (refreshed == []) == schedule.never_refreshes()

"""The refresh schedule: after step s when s+1 >= warmup, (s+1-warmup) % interval == 0, s+1 < total."""

from __future__ import annotations

import numpy as np
import pytest

from ccrop_plugins import RefreshSchedule


@pytest.mark.parametrize(
    "warmup, interval, total, expected",
    [
        (100, 100, 500, [99, 199, 299, 399]),  # the paper's CIFAR-10 setting: not after the last step
        (20, 20, 100, [19, 39, 59, 79]),  # ImageNet
        (1, 1, 2, [0]),
        (1, 1, 1, []),  # the only step is the last
        (3, 2, 10, [2, 4, 6, 8]),
        (0, 3, 10, [2, 5, 8]),  # no warm-up: the first refresh still needs `interval` trained steps
        (5, 1, 5, []),  # warm-up covers the whole run
        (10, 5, 8, []),
    ],
)
def test_refresh_steps_match_due(warmup, interval, total, expected):
    schedule = RefreshSchedule(warmup, interval, total)
    assert schedule.refresh_steps() == expected
    assert [s for s in range(total + 3) if schedule.due(s)] == expected
    assert schedule.never_refreshes() == (expected == [])


def test_without_total_it_never_stops():
    schedule = RefreshSchedule(2, 3)
    assert schedule.refresh_steps(12) == [1, 4, 7, 10]
    assert schedule.due(10_000 * 3 + 1)
    assert not schedule.never_refreshes()
    assert schedule.never_refreshes(2) and not schedule.never_refreshes(3)
    with pytest.raises(ValueError, match="needs total"):
        schedule.refresh_steps()


def test_a_shorter_total_argument_wins():
    schedule = RefreshSchedule(100, 100, 500)
    assert schedule.never_refreshes(10)  # the guide's schedule on a 10-epoch example
    assert schedule.refresh_steps(300) == [99, 199]
    assert schedule.refresh_steps(10_000) == [99, 199, 299, 399]


def test_numpy_ints_are_accepted_as_ints():
    schedule = RefreshSchedule(np.int64(2), np.int32(1), np.int64(4))
    assert type(schedule.warmup) is int and schedule.refresh_steps() == [1, 2]


@pytest.mark.parametrize(
    "args, message",
    [
        ((-1, 1), "warmup must be an integer >= 0; got -1"),
        ((1.5, 1), "warmup must be an integer >= 0; got 1.5"),
        ((2.0, 1), "warmup must be an integer >= 0; got 2.0"),
        ((1, 0), "interval must be an integer >= 1; got 0"),
        ((1, True), "interval must be an integer >= 1; got True"),
        ((1, 1, 0), "total must be an integer >= 1 or None; got 0"),
        ((1, 1, "5"), "total must be an integer >= 1 or None; got '5'"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        RefreshSchedule(*args)


def test_negative_or_float_step_is_refused():
    with pytest.raises(ValueError, match="step must be an integer >= 0; got -1"):
        RefreshSchedule(1, 1).due(-1)
    with pytest.raises(ValueError, match="step must be an integer >= 0; got 1.0"):
        RefreshSchedule(1, 1).due(1.0)


def test_a_subclass_can_keep_older_argument_names():
    class EpochSchedule(RefreshSchedule):
        argument_names = ("warmup_epochs", "interval", "max_epochs")

    with pytest.raises(ValueError, match="max_epochs must be an integer >= 1 or None; got 0"):
        EpochSchedule(1, 1, 0)


def test_it_is_frozen_and_hashable():
    schedule = RefreshSchedule(1, 2, 3)
    with pytest.raises(AttributeError):
        schedule.warmup = 5  # type: ignore[misc]
    assert schedule == RefreshSchedule(1, 2, 3) and hash(schedule) == hash(RefreshSchedule(1, 2, 3))


@pytest.mark.parametrize("warmup, interval, total",
                         [(0, 1, None), (1, 1, 2), (3, 2, None), (3, 2, 8), (5, 5, 5), (2, 3, 12)])
def test_latest_refresh_is_the_last_due_step_before_done(warmup, interval, total):
    schedule = RefreshSchedule(warmup, interval, total)
    for done in range(16):
        due = [step + 1 for step in range(done) if schedule.due(step)]
        assert schedule.latest_refresh(done) == (due[-1] if due else None)
    if total is not None:  # the run's length given at the call, as the mm hook does
        assert all(RefreshSchedule(warmup, interval).latest_refresh(done, total) == schedule.latest_refresh(done)
                   for done in range(16))

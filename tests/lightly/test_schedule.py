"""The refresh schedule: after epoch e when e+1 >= warmup, (e+1-warmup) % interval == 0, e+1 < max_epochs.

``ccrop_lightly.RefreshSchedule`` is the core's step schedule under the epoch argument names,
and warns, when built, about a run that never refreshes.
"""

from __future__ import annotations

import warnings

import pytest

import ccrop_plugins
from ccrop_lightly import RefreshSchedule


@pytest.mark.parametrize(
    "warmup, interval, max_epochs, expected",
    [
        (100, 100, 500, [99, 199, 299, 399]),  # the paper's CIFAR-10 setting: not after the last epoch
        (20, 20, 100, [19, 39, 59, 79]),  # ImageNet
        (1, 1, 2, [0]),
        (3, 2, 10, [2, 4, 6, 8]),
        (0, 3, 10, [2, 5, 8]),  # no warm-up: the first refresh still needs `interval` trained epochs
    ],
)
def test_refresh_epochs(warmup, interval, max_epochs, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a schedule that refreshes says nothing
        schedule = RefreshSchedule(warmup, interval, max_epochs)
    assert schedule.refresh_epochs() == expected
    assert [e for e in range(max_epochs) if schedule.due(e)] == expected


def test_it_is_the_cores_schedule_under_the_old_names():
    schedule = RefreshSchedule(warmup_epochs=3, interval=2, max_epochs=10)
    assert isinstance(schedule, ccrop_plugins.RefreshSchedule)
    assert (schedule.warmup_epochs, schedule.interval, schedule.max_epochs) == (3, 2, 10)
    assert schedule.refresh_steps() == ccrop_plugins.RefreshSchedule(3, 2, 10).refresh_steps()
    assert repr(schedule) == "RefreshSchedule(warmup_epochs=3, interval=2, max_epochs=10)"


@pytest.mark.parametrize(
    "warmup, interval, max_epochs, first",
    [
        (10, 5, 8, 9),  # issue 12: RefreshSchedule(10, 5, 8)
        (100, 100, 10, 99),  # the paper's CIFAR-10 schedule on lightly's 10-epoch example
        (5, 1, 5, 4),  # warm-up covers the whole run
        (1, 1, 1, 0),  # the only epoch is the last
    ],
)
def test_a_schedule_that_never_refreshes_warns_once_with_its_numbers(warmup, interval, max_epochs, first):
    with pytest.warns(UserWarning) as record:
        schedule = RefreshSchedule(warmup, interval, max_epochs)
    assert len(record) == 1
    message = str(record[0].message)
    assert f"warmup_epochs={warmup}, interval={interval}" in message and f"max_epochs={max_epochs}" in message
    assert f"after epoch {first} (0-based)" in message and "plain RandomResizedCrop" in message
    assert schedule.refresh_epochs() == []


def test_without_max_epochs_it_never_stops():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no known end: nothing to warn about
        schedule = RefreshSchedule(2, 3)
    assert schedule.refresh_epochs(12) == [1, 4, 7, 10]
    assert schedule.due(10_000 * 3 + 1)
    with pytest.raises(ValueError, match="needs max_epochs"):
        schedule.refresh_epochs()


@pytest.mark.parametrize(
    "args, message",
    [
        ((-1, 1), "warmup_epochs must be an integer >= 0; got -1"),
        ((1.5, 1), "warmup_epochs must be an integer >= 0; got 1.5"),
        ((1, 0), "interval must be an integer >= 1; got 0"),
        ((1, True), "interval must be an integer >= 1; got True"),
        ((1, 1, 0), "max_epochs must be an integer >= 1 or None; got 0"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        RefreshSchedule(*args)


def test_negative_epoch_is_refused():
    with pytest.raises(ValueError, match="step must be an integer >= 0; got -1"):
        RefreshSchedule(1, 1).due(-1)

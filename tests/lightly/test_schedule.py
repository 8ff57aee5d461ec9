"""The refresh schedule: after epoch e when e+1 >= warmup, (e+1-warmup) % interval == 0, e+1 < max_epochs."""

from __future__ import annotations

import pytest

from ccrop_lightly import RefreshSchedule


@pytest.mark.parametrize(
    "warmup, interval, max_epochs, expected",
    [
        (100, 100, 500, [99, 199, 299, 399]),  # the paper's CIFAR-10 setting: not after the last epoch
        (20, 20, 100, [19, 39, 59, 79]),  # ImageNet
        (1, 1, 2, [0]),
        (1, 1, 1, []),  # the only epoch is the last
        (3, 2, 10, [2, 4, 6, 8]),
        (0, 3, 10, [2, 5, 8]),  # no warm-up: the first refresh still needs `interval` trained epochs
        (5, 1, 5, []),  # warm-up covers the whole run
    ],
)
def test_refresh_epochs(warmup, interval, max_epochs, expected):
    schedule = RefreshSchedule(warmup, interval, max_epochs)
    assert schedule.refresh_epochs() == expected
    assert [e for e in range(max_epochs) if schedule.due(e)] == expected


def test_without_max_epochs_it_never_stops():
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
        ((1, 1, 0), "max_epochs must be a positive integer or None; got 0"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        RefreshSchedule(*args)


def test_negative_epoch_is_refused():
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        RefreshSchedule(1, 1).due(-1)

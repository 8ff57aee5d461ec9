"""height_width: an int or a (height, width) pair of positive ints, else an error naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccrop_plugins import height_width


@pytest.mark.parametrize(
    "size, expected",
    [(32, (32, 32)), ((24, 32), (24, 32)), ([5, 7], (5, 7)), (np.int64(8), (8, 8)), (torch.tensor(9), (9, 9)),
     (np.array([3, 4]), (3, 4)), ((10,), (10, 10)), ([np.int64(6)], (6, 6)), (torch.Size([12]), (12, 12))],
)
def test_accepted_sizes(size, expected):
    # One value in a sequence is a square, as torchvision's RandomResizedCrop([32]) reads it (was refused).
    result = height_width(size, "size")
    assert result == expected and all(type(v) is int for v in result)


@pytest.mark.parametrize(
    "size, error, message",
    [
        (8.7, TypeError, r"crop size must be a positive int or \(height, width\); got 8.7"),
        (8.0, TypeError, "got 8.0"),
        ("abc", TypeError, "got 'abc'"),
        (True, TypeError, "got True"),
        (None, TypeError, "got None"),
        ((8.5, 8), TypeError, r"got \(8.5, 8\)"),
        ((), ValueError, r"got \(\) \(0 values\)"),
        ((0,), ValueError, r"got \(0,\)"),
        ((1, 2, 3), ValueError, r"3 values"),
        (0, ValueError, "got 0"),
        ((4, -1), ValueError, r"got \(4, -1\)"),
    ],
)
def test_refused_sizes_name_the_argument_and_the_value(size, error, message):
    with pytest.raises(error, match=message):
        height_width(size, "crop size")


@pytest.mark.parametrize("size", [{24, 16}, {24: 1, 16: 2}], ids=["set", "dict"])
def test_an_unordered_size_is_refused(size):
    # a set was read in its own order, not the caller's ({40, 8} gave (40, 8) or (8, 40)); a dict as its keys
    with pytest.raises(TypeError, match=r"size must be a positive int or \(height, width\); got \{24"):
        height_width(size, "size")

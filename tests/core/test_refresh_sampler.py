"""RefreshSampler: every index on exactly one rank, nothing padded or repeated."""

from __future__ import annotations

import pytest

from ccrop_plugins import RefreshSampler


@pytest.mark.parametrize("length", [0, 1, 5, 7, 64, 101])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_cover_every_index_once(length, world_size):
    shards = [list(RefreshSampler(length, rank=r, world_size=world_size)) for r in range(world_size)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    lengths = [len(RefreshSampler(length, rank=r, world_size=world_size)) for r in range(world_size)]
    assert lengths == list(map(len, shards))


def test_without_distributed_it_is_the_whole_dataset_in_order():
    assert list(RefreshSampler(list("abcde"))) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=2, world_size=2), r"rank must be an integer in \[0, 1\]; got 2"),
        (dict(rank=0, world_size=0), "world_size must be an integer >= 1; got 0"),
        (dict(rank=-1, world_size=2), "got -1"),
    ],
)
def test_bad_places_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RefreshSampler(10, **kwargs)


def test_numpy_and_tensor_integers_are_ints_and_floats_or_bools_are_not():
    import numpy as np
    import torch

    sampler = RefreshSampler(np.int64(10), rank=np.int64(1), world_size=torch.tensor(2))
    assert (list(sampler), sampler.rank, sampler.world_size) == ([5, 6, 7, 8, 9], 1, 2)
    assert type(sampler.rank) is int and type(sampler.world_size) is int
    for kwargs, message in [(dict(rank=0, world_size=2.0), "world_size must be an integer >= 1; got 2.0"),
                            (dict(rank=True, world_size=2), r"rank must be an integer in \[0, 1\]; got True")]:
        with pytest.raises(ValueError, match=message):
            RefreshSampler(10, **kwargs)
    with pytest.raises(ValueError, match="the dataset length must be an integer >= 0; got 10.0"):
        RefreshSampler(10.0)


def test_a_length_given_as_text_is_refused():
    # RefreshSampler('10') read len('10'): a shard of a 2-image dataset
    with pytest.raises(ValueError, match=r"RefreshSampler: the dataset length must be an integer >= 0; got '10'"):
        RefreshSampler("10")

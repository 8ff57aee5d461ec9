"""refresh_boxes warns once per pass when it localized fewer distinct images than the store holds (drop_last=True,
a Subset, a sampler that skips images), on one process and on two gloo ranks (the union of their indices)."""

import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ccrop_plugins import BoxStore, refresh_boxes

sys.path.insert(0, str(Path(__file__).parent))  # distributed_refresh: seeded images, a tiny backbone, run_ranks
import distributed_refresh  # noqa: E402

PARTIAL = "of the store's"


def _refresh(loader, store):
    """The pass's stats and the texts of the warnings it gave about a partial pass."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = refresh_boxes(distributed_refresh.tiny_backbone(), loader, store, progress=False)
    return stats, [str(w.message) for w in caught if PARTIAL in str(w.message)]


def test_drop_last_warns_once_with_the_count_the_indices_and_the_remedy():
    dataset = distributed_refresh.IndexedImages(10)
    store = BoxStore(10, max_boxes=3)
    stats, messages = _refresh(DataLoader(dataset, batch_size=4, drop_last=True), store)  # two batches: once
    assert len(messages) == 1, messages
    (message,) = messages
    assert "localized 8 of the store's 10 images" in message and "the other 2 (indices 8, 9)" in message
    for cause in ("drop_last=True", "a Subset", "a sampler that skips images",
                  "un-shuffled loader over the whole dataset with drop_last=False"):
        assert cause in message
    assert stats.images == 8 and store.version == 1 and store.get(8) is None and store.get(9) is None

    full = BoxStore(10, max_boxes=3)  # the boxes written are those of a full pass
    _, none = _refresh(DataLoader(dataset, batch_size=4), full)
    assert none == []
    for key in ("boxes", "scores", "counts"):
        assert torch.equal(store.state_dict()[key][:8], full.state_dict()[key][:8])


def test_a_subset_and_a_skipping_sampler_warn_and_a_shuffled_full_loader_does_not():
    dataset = distributed_refresh.IndexedImages(12)
    _, messages = _refresh(DataLoader(Subset(dataset, range(0, 12, 2)), batch_size=4), BoxStore(12))
    assert len(messages) == 1 and "localized 6 of the store's 12 images" in messages[0]
    assert "(indices 1, 3, 5, 7, 9, ...)" in messages[0]
    _, messages = _refresh(DataLoader(dataset, batch_size=5, sampler=[3, 4, 5]), BoxStore(12))
    assert len(messages) == 1 and "localized 3 of the store's 12 images" in messages[0]
    generator = torch.Generator().manual_seed(0)
    _, messages = _refresh(DataLoader(dataset, batch_size=5, shuffle=True, generator=generator), BoxStore(12))
    assert messages == []


def _rank(rank, init_method, out):
    """11 images over 2 ranks (DistributedSampler: one padded duplicate): once each rank's whole shard, once with
    drop_last=True, batches of 4 (rank 0 keeps 0, 2, 4, 6; rank 1 keeps 1, 3, 5, 7)."""
    with distributed_refresh.gloo_group(rank, init_method):
        dataset = distributed_refresh.IndexedImages()
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=False)
        results = [_refresh(DataLoader(dataset, batch_size=4, sampler=sampler, drop_last=drop_last),
                            BoxStore(len(dataset)))[1] for drop_last in (False, True)]
        torch.save(results, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
def test_two_gloo_ranks_count_the_union_of_their_indices_and_both_warn(tmp_path):
    distributed_refresh.run_ranks(_rank, tmp_path)
    for rank in range(2):
        whole, dropped = torch.load(tmp_path / f"rank{rank}.pt")
        assert whole == []  # each rank saw half, together all 11: no warning
        assert len(dropped) == 1 and "localized 8 of the store's 11 images" in dropped[0], dropped
        assert "the other 3 (indices 8, 9, 10)" in dropped[0]

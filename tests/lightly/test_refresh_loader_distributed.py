"""make_refresh_loader(distributed=True) before torch.distributed is initialized: a ValueError, not every image on
every rank; ranks whose refresh schedules differ: a ValueError on every rank, not a wait until the timeout."""

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from lightly.data import LightlyDataset
from torch import nn

from ccrop_lightly import BoxRefresher, make_refresh_loader
from ccrop_plugins import BoxSets, BoxStore, RefreshSampler

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))  # distributed_refresh: run_ranks, gloo_group
import distributed_refresh  # noqa: E402


def test_distributed_true_without_a_process_group_is_refused(quadrant_folder):
    """It gave RefreshSampler(rank=0, world_size=1): each rank localized every image."""
    assert not (dist.is_available() and dist.is_initialized())
    dataset = LightlyDataset(str(quadrant_folder))
    with pytest.raises(ValueError, match=r"make_refresh_loader: distributed=True but torch.distributed is not "
                                         r"initialized.*after torch.distributed.init_process_group.*"
                                         r"distributed=False.*distributed=None"):
        make_refresh_loader(dataset, 8, distributed=True)


def test_distributed_none_or_false_without_a_process_group_reads_every_image(quadrant_folder):
    dataset = LightlyDataset(str(quadrant_folder))
    for distributed in (None, False):
        loader = make_refresh_loader(dataset, 8, distributed=distributed)
        assert (loader.sampler.rank, loader.sampler.world_size, len(loader.sampler)) == (0, 1, len(dataset))


def _refresher_rank(rank: int, init_method: str, out: str, warmup_epochs: tuple[int, int], action) -> None:
    """One of 2 ranks: a ``BoxRefresher`` over this rank's shard of 4 images, warm-up ``warmup_epochs[rank]``,
    interval 1; saves what ``action(refresher, rank)`` returned, or the text of its ``ValueError``."""
    with distributed_refresh.gloo_group(rank, init_method, timeout=20):
        dataset = distributed_refresh.IndexedImages(4)
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=RefreshSampler(dataset))
        refresher = BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), loader,
                                 warmup_epochs=warmup_epochs[rank], interval=1)
        try:
            result = action(refresher, rank)
        except ValueError as error:
            result = str(error)
        torch.save(result, Path(out) / f"rank{rank}.pt")


def _on_both_ranks(tmp_path: Path, warmup_epochs: tuple[int, int], action) -> str:
    """``action`` on 2 forked ranks (:func:`_refresher_rank`); the result both ranks ended with (they must agree)."""
    distributed_refresh.run_ranks(_refresher_rank, tmp_path, warmup_epochs, action, limit=90)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert results[0] == results[1], results
    return results[0]


def _refresh_at_epoch_0(refresher: BoxRefresher, rank: int) -> str:
    """Rank 0 refreshes after epoch 0 (warm-up 1), rank 1 after epoch 1 (warm-up 2): they disagree at epoch 0."""
    refresher.maybe_refresh(0)
    return "refreshed" if refresher.store.version else "no refresh"


@pytest.mark.xdist_group("ddp")
def test_ranks_whose_schedules_differ_are_refused_on_every_rank(tmp_path):
    # Before: rank 0 refreshed (the refresh's gather) while rank 1 went on, and rank 0 waited until the timeout.
    assert _on_both_ranks(tmp_path, (1, 2), _refresh_at_epoch_0).startswith(
        "BoxRefresher: the refresh schedule differs between the ranks (rank 0: RefreshSchedule(warmup_epochs=1, "
        "interval=1, max_epochs=None); rank 1: RefreshSchedule(warmup_epochs=2, interval=1, max_epochs=None))")


def _rank_zero_loads_then_catch_up(refresher: BoxRefresher, rank: int) -> str:
    """A resume where only rank 0 loads the refresher's state (the 'load on rank 0, DDP broadcasts' pattern)."""
    if rank == 0:
        saved = BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), [], warmup_epochs=1, interval=1)
        saved.store.update(torch.arange(4), BoxSets.from_lists([torch.tensor([[0.0, 0.0, 0.5, 0.5]])] * 4))
        saved.last_refresh_epoch = 0
        refresher.load_state_dict(saved.state_dict())
    refresher.catch_up(1)
    return "caught up"


@pytest.mark.xdist_group("ddp")
def test_a_resume_where_only_rank_zero_loaded_the_boxes_is_refused_on_every_rank(tmp_path):
    # Before: rank 1's empty store refreshed alone (the refresh's gather) while rank 0 went on to training: a hang
    # until the timeout, or gloo's 'Received data size doesn't match' and SIGABRT.
    assert _on_both_ranks(tmp_path, (1, 1), _rank_zero_loads_then_catch_up).startswith(
        "catch_up: the restored boxes (store version, last_refresh_epoch: load the checkpoint's state on every rank, "
        "not rank 0 only) differs between the ranks (rank 0: (1, 0); rank 1: (0, None))")

"""make_refresh_loader(distributed=True) before torch.distributed is initialized: a ValueError, not every image on
every rank."""

import pytest
import torch.distributed as dist
from lightly.data import LightlyDataset

from ccrop_lightly import make_refresh_loader


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

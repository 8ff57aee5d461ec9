"""Which dataset indices each rank localizes in a distributed refresh pass."""

from __future__ import annotations

from typing import Iterator, Sized

import torch.distributed as dist
from torch.utils.data import Sampler

from .sizes import checked_int


class RefreshSampler(Sampler[int]):
    """The indices of one rank's shard of a dataset, in order, each index on exactly one rank: rank ``r`` of ``w``
    gets ``[r * n // w, (r + 1) * n // w)``, nothing padded or repeated (unlike ``DistributedSampler``).

    Args:
        data_source: the dataset (anything with ``len``) or its length.
        rank, world_size: this process's place; default from ``torch.distributed`` when it is initialized, else
            ``0`` and ``1``. A bad length, rank or world size is a ``ValueError`` naming it.
    """

    def __init__(self, data_source: Sized | int, *, rank: int | None = None, world_size: int | None = None) -> None:
        text = isinstance(data_source, (str, bytes))  # '10' is no length: len('10') would be 2
        length = len(data_source) if isinstance(data_source, Sized) and not text else data_source
        length = checked_int(length, "RefreshSampler: the dataset length", 0)  # numpy and tensor integers too
        initialized = dist.is_available() and dist.is_initialized()
        rank = (dist.get_rank() if initialized else 0) if rank is None else rank
        world_size = (dist.get_world_size() if initialized else 1) if world_size is None else world_size
        world = checked_int(world_size, "RefreshSampler: world_size", 1)
        place = checked_int(rank, "RefreshSampler: rank", 0, world - 1)
        self.rank, self.world_size, self.length = place, world, length
        self.start, self.stop = place * length // world, (place + 1) * length // world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        return f"RefreshSampler(rank={self.rank}, world_size={self.world_size}, indices=[{self.start}, {self.stop}))"

"""One rank of a refresh_boxes run, and :func:`run_ranks`, which forks the ranks of the core's gloo tests.

test_refresh.py and test_refresh_faults.py put this folder on ``sys.path``.
"""

from __future__ import annotations

import datetime
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch
import torch.multiprocessing as mp
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ccrop_plugins import BoxStore, refresh_boxes
from ccrop_plugins.plugins import load_plugins, plugin_manager

NUM_IMAGES = 11  # odd: a 2-rank DistributedSampler pads one rank with a duplicate


class IndexedImages(Dataset):
    """Seeded 32 px images, each with one or two bright squares; items are ``(image, index)``."""

    def __init__(self, count: int = NUM_IMAGES, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(count, 3, 32, 32, generator=generator) * 0.2
        for i in range(count):
            for _ in range(1 + i % 2):
                top, left = torch.randint(0, 24, (2,), generator=generator).tolist()
                self.images[i, :, top : top + 8, left : left + 8] += 1.0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index


def tiny_backbone() -> nn.Module:
    """A seeded conv net with positive weights (features follow brightness): 32 px images -> 8x8 maps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8))
    with torch.no_grad():
        model[1].weight.abs_()
    return model


def refresh(rank: int, world_size: int, out_dir: str, heatmap: str = "channel_sum", count: int = NUM_IMAGES) -> None:
    """Refresh a store over this rank's shard and save what the rank ended with.

    A heatmap with dataset statistics (``ddt``) is refreshed twice: the second pass applies the
    statistics the first one fitted (summed over ranks); its mean and component are saved too.
    """
    torch.set_num_threads(1)
    dataset = IndexedImages(count)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    store = BoxStore(len(dataset), max_boxes=3)
    passes = 2 if heatmap == "ddt" else 1
    for _ in range(passes):
        stats = refresh_boxes(tiny_backbone(), loader, store, localizer="components", heatmap=heatmap, progress=False)
    saved = {"state": store.state_dict(), "stats": stats.as_dict(), "shard": list(sampler)}
    if heatmap == "ddt":
        from ccrop_plugins.kept_pipelines import _PIPELINES

        (pipeline,) = _PIPELINES[store].values()
        saved["mean"], saved["component"] = pipeline.rules[None].mean, pipeline.rules[None].component
    torch.save(saved, Path(out_dir) / f"rank{rank}_of_{world_size}_{heatmap}.pt")


RUNS = (("channel_sum", NUM_IMAGES), ("ddt", 12))
"""What each rank runs, in one process group: the paper's map over 11 images (one padded duplicate),
and the dataset rule over 12 (no duplicate, so its statistics equal one process's exactly)."""


def register_extras() -> None:
    """``ddt`` comes from the ``ccrop_extras`` plugin and the tests turn autoload off: register it in this process
    unless it is (a forked rank inherits the parent's registration; a spawned one does not)."""
    from ccrop_extras import plugin

    if not load_plugins().is_registered(plugin):
        plugin_manager.register(plugin, name="ccrop_extras")


@contextmanager
def gloo_group(rank: int, init_method: str, world_size: int = 2, timeout: float | None = None) -> Iterator[None]:
    """This process as ``rank`` of a gloo group of ``world_size`` (one torch thread; collectives time out after
    ``timeout`` seconds, torch's default if ``None``), left when the block ends."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size,
                            timeout=None if timeout is None else datetime.timedelta(seconds=timeout))
    try:
        yield
    finally:
        dist.destroy_process_group()


def run_rank(rank: int, init_method: str, out_dir: str) -> None:
    """Entry point of :func:`run_ranks`: join a gloo group of two, then refresh."""
    register_extras()
    with gloo_group(rank, init_method):
        for heatmap, count in RUNS:
            refresh(rank, 2, out_dir, heatmap, count)
        dist.barrier()


def run_ranks(entry, out: Path, *args, nprocs: int = 2, limit: float = 60.0) -> None:
    """Fork ``nprocs`` ranks of ``entry(rank, init_method, str(out), *args)``, which join their gloo group through a
    file in ``out`` (no free port to pick, then lose to another process before the ranks bind it); a rank's error
    fails the test, and so do ranks still running after ``limit`` seconds (killed: a hang fails, never waits).

    Forked, not spawned: what is tested is the process group, and a spawned rank would first spend seconds starting
    an interpreter and importing torch."""
    context = mp.start_processes(entry, args=(f"file://{out / 'process_group'}", str(out), *args), nprocs=nprocs,
                                 join=False, start_method="fork")
    deadline = time.monotonic() + limit
    while not context.join(timeout=max(deadline - time.monotonic(), 0.1)):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {nprocs} ranks of {entry.__name__} did not end within {limit} s")

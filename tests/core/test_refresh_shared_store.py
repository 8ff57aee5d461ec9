"""refresh_boxes under torch.distributed (gloo): one store whose shared memory every rank holds (made before the ranks
were forked) counts one version per pass, and every rank warns of 1x1 feature maps, also one without images."""

import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ccrop_plugins import BoxStore, RefreshSampler, refresh_boxes

sys.path.insert(0, str(Path(__file__).parent))  # distributed_refresh: seeded images, a tiny backbone, run_ranks
import distributed_refresh  # noqa: E402

PASSES = 3
TIMEOUT = 30  # seconds of the ranks' collectives


def _shared_store_rank(rank: int, init_method: str, out: str, shared: BoxStore) -> None:
    """Three passes over ``shared`` (the parent's store, inherited by fork), then three over a store of this rank's
    own; saves the versions the passes returned and the stores' versions after them."""
    with distributed_refresh.gloo_group(rank, init_method, timeout=TIMEOUT):
        dataset = distributed_refresh.IndexedImages(8)
        loader = DataLoader(dataset, batch_size=2, sampler=RefreshSampler(dataset))
        results = {}
        for name, store in (("shared", shared), ("own", BoxStore(len(dataset), max_boxes=2))):
            versions = [refresh_boxes(distributed_refresh.tiny_backbone(), loader, store, progress=False).version
                        for _ in range(PASSES)]
            dist.barrier()  # every rank's last write landed before the store's version is read
            results[name] = (versions, store.version)
        torch.save(results, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
def test_a_store_shared_by_forked_ranks_counts_one_version_per_pass(tmp_path):
    """Each rank added one to the shared version: 6 after 3 passes on 2 ranks, stats [2, 3, 5] / [1, 4, 6]."""
    shared = BoxStore(8, max_boxes=2)  # made before the ranks: its tensors' shared memory is every rank's
    distributed_refresh.run_ranks(_shared_store_rank, tmp_path, shared)
    expected = list(range(1, PASSES + 1))
    for rank in range(2):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        assert results["shared"] == (expected, PASSES), (rank, results)
        assert results["own"] == (expected, PASSES), (rank, results)  # a store per rank counts as before
    assert shared.version == PASSES
    assert int((shared.counts > 0).sum()) == 8  # every rank's shard landed in the one store


def _pooled() -> nn.Module:
    """Features pooled to 1x1 maps: every box is the whole image."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1))


def _tiny_map_rank(rank: int, init_method: str, out: str) -> None:
    """One pass over 2 images on 3 ranks (rank 0 has none); saves the texts of the 1x1 warnings this rank gave."""
    with distributed_refresh.gloo_group(rank, init_method, world_size=3, timeout=TIMEOUT):
        dataset = distributed_refresh.IndexedImages(2)
        loader = DataLoader(dataset, batch_size=2, sampler=RefreshSampler(dataset))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            refresh_boxes(_pooled(), loader, BoxStore(len(dataset)), progress=False)
        texts = [str(w.message) for w in caught if "are 1x1" in str(w.message)]
        torch.save({"texts": texts, "images": len(loader.sampler)}, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")
def test_every_rank_warns_of_1x1_maps_also_one_without_images(tmp_path):
    """The warning came from each rank's own feature maps: the rank without images gave none."""
    distributed_refresh.run_ranks(_tiny_map_rank, tmp_path, nprocs=3)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(3)]
    assert [result["images"] for result in results] == [0, 1, 1]
    for result in results:
        assert len(result["texts"]) == 1, results
        assert "the feature maps are 1x1 for (32, 32) images" in result["texts"][0], results
    assert len({result["texts"][0] for result in results}) == 1  # alike on every rank

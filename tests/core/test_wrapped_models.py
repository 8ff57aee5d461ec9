"""The model as training code wraps it: DDP, DataParallel, an EMA copy, TorchScript and torch.export modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from ccrop_plugins import BoxStore, RefreshSampler, eval_mode, refresh_boxes, stage_features, unwrapped_model

sys.path.insert(0, str(Path(__file__).parent))  # distributed_refresh: seeded images, a tiny backbone, run_ranks
import distributed_refresh  # noqa: E402

TIMEOUT = 20  # seconds of the ranks' collectives: a rank left waiting fails the test instead of hanging


def test_unwrapped_model_looks_through_the_wrappers_that_call_their_module():
    model = distributed_refresh.tiny_backbone()
    average = AveragedModel(model)  # an EMA copy: a deep copy of model
    for wrapped, inner in ((DataParallel(model), model), (average, average.module), (DataParallel(average),
                                                                                      average.module)):
        assert unwrapped_model(wrapped) is inner
    assert unwrapped_model(model) is model
    assert unwrapped_model(len) is len  # not a module: as it is


def test_stages_of_a_wrapped_model_are_caught_in_the_module_itself():
    model = distributed_refresh.tiny_backbone().eval()
    images = distributed_refresh.IndexedImages(4).images
    expected = stage_features(model, "1")(images)["1"]
    for wrapped in (DataParallel(model), AveragedModel(model)):
        for name in ("1", "module.1"):
            assert torch.equal(stage_features(wrapped, name)(images)[name], expected)


def _uneven_ddp_rank(rank: int, init_method: str, out: str) -> None:
    """9 images, batches of 4: rank 0 reads 4 (one batch), rank 1 five (two batches)."""
    with distributed_refresh.gloo_group(rank, init_method, timeout=TIMEOUT):
        model = DistributedDataParallel(distributed_refresh.tiny_backbone())
        dataset = distributed_refresh.IndexedImages(9)
        loader = DataLoader(dataset, batch_size=4, sampler=RefreshSampler(dataset))
        store = BoxStore(9, max_boxes=2)
        stats = refresh_boxes(stage_features(model, "module.1"), loader, store, progress=False)
        refresh_boxes(model, loader, store, progress=False)  # the DDP module itself, as a feature function
        torch.save({"images": stats.images, "version": store.version, "counts": store.counts.clone()},
                   Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")
def test_a_ddp_model_refreshes_ranks_with_different_batch_counts(tmp_path):
    # Each no-grad DDP forward that the stage catcher stopped early broadcast the buffers: the rank with a second batch
    # waited for a peer that never joined ('Timed out waiting ... for recv', torch's default: 30 minutes).
    distributed_refresh.run_ranks(_uneven_ddp_rank, tmp_path)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["images"] == 9 and result["version"] == 2
        assert bool((result["counts"] > 0).all())


def test_torchscript_modules_are_refused_when_the_stages_are_named():
    # Accepted, then at the first refresh after the warm-up: 'register_forward_hook is not supported on
    # ScriptModules', or for a trace 'stages ['1'] were not run ...; name modules that the forward calls'.
    model = distributed_refresh.tiny_backbone().eval()
    images = torch.rand(2, 3, 32, 32)
    for compiled in (torch.jit.script(model), torch.jit.trace(model, images)):
        with pytest.raises(TypeError, match=r"stage_features cannot catch the stages of a TorchScript module \(\w+, "
                                            r"from torch.jit.script or torch.jit.trace\); pass the eager nn.Module"):
            stage_features(compiled, "1")


def test_an_exported_module_is_named_when_it_cannot_run_in_eval_mode():
    # torch's own 'NotImplementedError: Calling eval() is not supported yet.', at the first refresh
    exported = torch.export.export(distributed_refresh.tiny_backbone().eval(), (torch.rand(2, 3, 32, 32),)).module()
    with pytest.raises(TypeError, match=r"cannot put GraphModule in eval mode \(Calling eval\(\) is not supported "
                                        r"yet.; a torch.export program's module\?\); pass the eager nn.Module"):
        with eval_mode(exported):
            pass


def _fsdp_rank(rank: int, init_method: str, out: str, count: int) -> None:
    """``count`` images, batches of 4, a backbone sharded by FSDP2's ``fully_shard`` (a block, then the root)."""
    from torch.distributed.fsdp import fully_shard

    with distributed_refresh.gloo_group(rank, init_method, timeout=TIMEOUT):
        model = distributed_refresh.tiny_backbone()
        fully_shard(model[1])
        fully_shard(model)
        dataset = distributed_refresh.IndexedImages(count)
        loader = DataLoader(dataset, batch_size=4, sampler=RefreshSampler(dataset))
        store = BoxStore(count, max_boxes=2)
        try:
            result = refresh_boxes(model, loader, store, progress=False).images
        except ValueError as error:
            result = str(error)
        torch.save({"result": result, "version": store.version}, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")
@pytest.mark.parametrize("count", [8, 9])
def test_a_sharded_model_refreshes_equal_batch_counts_and_names_unequal_ones(tmp_path, count):
    # 9 images: shards of 4 and 5, one batch and two; the second forward's parameter gather had no peer: gloo's
    # 'Received data size doesn't match expected size', then SIGABRT (NCCL: a hang).
    distributed_refresh.run_ranks(_fsdp_rank, tmp_path, count)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    if count == 8:
        assert [(r["result"], r["version"]) for r in results] == [(8, 1), (8, 1)]
        return
    for result in results:
        assert result["version"] == 0
        assert result["result"] == ("refresh_boxes: the model holds FSDP-sharded modules, whose every forward gathers "
                                    "parameters from all ranks, but the ranks' loaders hold [1, 2] batches (rank 0, 1, "
                                    "...); every rank must run as many forwards: make the dataset length a multiple of "
                                    "world_size x batch_size, or refresh with an unsharded copy of the model")

"""Real torch.distributed: 2 gloo ranks through Runner(launcher='pytorch') end with the same store,
equal to a 1-process run of the same config (lr 0 and frozen BN statistics keep the weights equal)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_train.py")


def _start_ranks(setup, framework: str, folder: Path, tmp_path: Path, *resume: str):
    """Two gloo ranks of ddp_train.py, which join their group through a file in ``tmp_path`` (no port to pick, then
    lose to another process before rank 0 binds it); returns (processes, their log files, their store files)."""
    init_method = f"file://{tmp_path / 'process_group'}"
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(2)]
    log_files = [tmp_path / f"rank{rank}.log" for rank in range(2)]  # files: a full pipe would stall a rank
    procs = []
    for rank in range(2):
        with log_files[rank].open("w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(WORKER), framework, str(folder), str(tmp_path / "ddp"), str(outs[rank]), *resume],
                env=setup.ddp_env(rank, 2, init_method), stdout=log, stderr=subprocess.STDOUT,
            ))
    return procs, log_files, outs


def _stop(procs) -> None:
    for proc in procs:  # a failure here leaves a rank waiting in a collective
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait(procs, log_files) -> None:
    """Wait for both ranks (killing them on a timeout) and check they succeeded."""
    try:
        for proc in procs:
            proc.wait(timeout=300)
    finally:
        _stop(procs)
    for rank, proc in enumerate(procs):
        assert proc.returncode == 0, f"rank {rank} failed:\n{log_files[rank].read_text()[-4000:]}"


@pytest.mark.slow
@pytest.mark.xdist_group("ddp")  # one xdist worker runs the DDP tests, one at a time
@pytest.mark.parametrize("framework", ["mmpretrain", "mmselfsup", "mmpretrain+concat"])
def test_two_ranks_hold_the_one_process_store(framework, setup, train, object_folder, tmp_path):
    """``mmpretrain+concat``: a ConcatDataset of the folder twice, whose 32 rows the ranks shard across the parts'
    boundary; each part's rows hold its images' boxes (the two halves alike)."""
    procs, log_files, outs = _start_ranks(setup, framework, object_folder, tmp_path)
    try:
        # The 1-process run meanwhile (the ranks spend seconds starting up): both cores stay busy.
        sys.path.insert(0, str(WORKER.parent))
        from ddp_train import ddp_config

        cfg = ddp_config(framework, object_folder, tmp_path / "single")
        cfg.experiment_name = f"single_{framework.replace('+', '_')}"
        runner = train(cfg)
        single = setup.ccrop_hook(runner).store.state_dict()
    except BaseException:
        _stop(procs)
        raise
    _wait(procs, log_files)

    ranks = [torch.load(out, weights_only=True) for out in outs]
    assert single["version"] == 1
    assert 0.0 < float(setup.ccrop_hook(runner).store.summary()["mean_box_area"]) < 0.9  # non-trivial boxes
    for state in ranks:
        assert state["version"] == single["version"]
        for key in ("counts", "boxes", "scores"):
            assert torch.allclose(state[key].float(), single[key].float(), atol=1e-5), key
    assert torch.equal(ranks[0]["boxes"], ranks[1]["boxes"]) and torch.equal(ranks[0]["counts"], ranks[1]["counts"])
    if framework.endswith("+concat"):
        half = setup.NUM_IMAGES
        assert len(single["counts"]) == 2 * half
        for key in ("counts", "boxes", "scores"):
            assert torch.allclose(ranks[0][key][:half].float(), ranks[0][key][half:].float(), atol=1e-5), key


@pytest.mark.slow
@pytest.mark.xdist_group("ddp")  # one xdist worker runs the DDP tests, one at a time
def test_two_ranks_resumed_onto_a_grown_dataset_ignore_the_saved_boxes_and_refresh_alike(
        setup, train, object_folder, tmp_path):
    """A 1-process checkpoint of 16 images resumed by 2 gloo ranks onto the folder with an image added: every rank
    ignores the saved boxes (was the store's ValueError in before_train on every rank) and the catch-up refresh runs
    on both, which end with the same store of 17 images."""
    import shutil

    sys.path.insert(0, str(WORKER.parent))
    from ddp_train import ddp_config

    cfg = ddp_config("mmpretrain", object_folder, tmp_path / "first")
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1)
    cfg.experiment_name = "ddp_grown_first"
    train(cfg)
    grown = shutil.copytree(object_folder, tmp_path / "grown")
    shutil.copy(grown / "a" / "00.png", grown / "a" / "99.png")
    procs, log_files, outs = _start_ranks(setup, "mmpretrain", grown, tmp_path,
                                          str(tmp_path / "first" / "epoch_1.pth"))
    _wait(procs, log_files)
    ranks = [torch.load(out, weights_only=True) for out in outs]
    for state in ranks:
        assert state["num_samples"] == 17 and state["version"] == 1 and bool((state["counts"] > 0).all())
    assert torch.equal(ranks[0]["boxes"], ranks[1]["boxes"]) and torch.equal(ranks[0]["counts"], ranks[1]["counts"])
    logs = "".join(path.read_text() for path in (tmp_path / "ddp").rglob("*.log"))
    assert logs.count("boxes were made on a dataset of 16 images, and this one has 17") == 1  # rank 0 only

"""Real torch.distributed: 2 gloo ranks through Runner(launcher='pytorch') end with the same store,
equal to a 1-process run of the same config (lr 0 and frozen BN statistics keep the weights equal)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_train.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["mmpretrain", "mmselfsup"])
def test_two_ranks_hold_the_one_process_store(framework, setup, train, object_folder, tmp_path):
    port = _free_port()
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(2)]
    log_files = [tmp_path / f"rank{rank}.log" for rank in range(2)]  # files: a full pipe would stall a rank
    procs = []
    for rank in range(2):
        with log_files[rank].open("w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(WORKER), framework, str(object_folder), str(tmp_path / "ddp"), str(outs[rank])],
                env=setup.ddp_env(rank, 2, port), stdout=log, stderr=subprocess.STDOUT,
            ))
    try:
        # The 1-process run meanwhile (the ranks spend seconds starting up): both cores stay busy.
        sys.path.insert(0, str(WORKER.parent))
        from ddp_train import ddp_config

        cfg = ddp_config(framework, object_folder, tmp_path / "single")
        cfg.experiment_name = f"single_{framework}"
        runner = train(cfg)
        single = setup.ccrop_hook(runner).store.state_dict()
        for proc in procs:
            proc.wait(timeout=300)
    finally:
        for proc in procs:  # a failure here leaves a rank waiting in a collective
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for rank, proc in enumerate(procs):
        assert proc.returncode == 0, f"rank {rank} failed:\n{log_files[rank].read_text()[-4000:]}"

    ranks = [torch.load(out, weights_only=True) for out in outs]
    assert single["version"] == 1
    assert 0.0 < float(setup.ccrop_hook(runner).store.summary()["mean_box_area"]) < 0.9  # non-trivial boxes
    for state in ranks:
        assert state["version"] == single["version"]
        for key in ("counts", "boxes", "scores"):
            assert torch.allclose(state[key].float(), single[key].float(), atol=1e-5), key
    assert torch.equal(ranks[0]["boxes"], ranks[1]["boxes"]) and torch.equal(ranks[0]["counts"], ranks[1]["counts"])

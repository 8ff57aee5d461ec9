"""One rank of the DDP test: ``python ddp_train.py FRAMEWORK DATA_ROOT WORK_DIR OUT [RESUME]`` with RANK,
WORLD_SIZE, LOCAL_RANK and ``CCROP_TEST_INIT_METHOD=file://...`` set: the ranks join their gloo group through that file
(no free port for the test to pick, then lose to another process before rank 0 binds it).

mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device(LOCAL_RANK)`` before creating
the process group, which fails on a machine without a GPU. So this CPU worker creates the gloo
group first (through the file); ``Runner(launcher='pytorch')`` then finds it
initialised and goes on as a distributed run (DDP-wrapped model, sharded DefaultSampler).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))

import ccrop_mm  # noqa: E402,F401
import mm_setup  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def main(framework: str, data_root: str, work_dir: str, out: str, resume: str | None = None) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=os.environ["CCROP_TEST_INIT_METHOD"],
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    cfg = ddp_config(framework, Path(data_root), Path(work_dir))
    if resume is not None:  # resume this checkpoint (made by a 1-process run)
        cfg.resume, cfg.load_from = True, resume
    cfg.launcher = "pytorch"
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False)
    cfg.experiment_name = f"ddp_{framework.replace('+', '_')}"
    runner = Runner.from_cfg(cfg)
    runner.train()
    torch.save(mm_setup.ccrop_hook(runner).store.state_dict(), out)
    dist.destroy_process_group()


def ddp_config(framework: str, data_root: Path, work_dir: Path):
    """Same config for the 2-rank and the 1-process run: lr 0, frozen BN statistics, threshold 0.5. ``framework``
    ``'mmpretrain+concat'``: the train dataset is a ``ConcatDataset`` of the folder twice (two parts, rows 0-15 and
    16-31 of one store)."""
    framework, _, variant = framework.partition("+")
    cfg = mm_setup.small_config(framework, data_root, work_dir, threshold=0.5)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10)
    if variant == "concat":
        inner = cfg.train_dataloader.dataset
        cfg.train_dataloader.dataset = dict(type="ConcatDataset", datasets=[inner, dict(inner)])
    return cfg


if __name__ == "__main__":
    main(*sys.argv[1:6])

"""A tiny Lightly SimCLR LightningModule for the callback tests, and the DDP run as a script.

Run as a script (one process per rank, started by ``test_callback.py`` with the ``WORLD_SIZE``,
``NODE_RANK`` and ``LOCAL_RANK`` variables of an externally launched Lightning ``ddp`` job, and
``CCROP_TEST_INIT_METHOD=file://...``: the ranks join their gloo group through that file, before
Lightning, which then uses the group; without it, Lightning's ``MASTER_ADDR``/``MASTER_PORT``)::

    python lightning_simclr.py IMAGE_FOLDER OUT_DIR

it trains 2 epochs on gloo with ``BoxRefreshCallback`` (refresh after epoch 0) and writes
``store_rank{r}.pt`` and ``run_rank{r}.json`` (world size, refresh sampler, shard size, temp folder) per
rank, and ``backbone_epoch0.pt`` (rank 0's feature extractor at the refresh).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from lightly.data import LightlyDataset
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefreshCallback, CCropCollate, CCropSimCLRTransform, feature_extractor
from ccrop_plugins import BoxStore


def tiny_backbone() -> nn.Sequential:
    """Four conv stages (32 px -> 4 x 4 map) and lightly's trailing pooling, as in its examples."""
    layers: list[nn.Module] = []
    channels = [3, 16, 32, 64, 64]
    for stage, (cin, cout) in enumerate(zip(channels, channels[1:])):
        layers += [
            nn.Conv2d(cin, cout, 3, stride=1 if stage == 0 else 2, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))


class TinySimCLR(pl.LightningModule):
    """lightly's Lightning SimCLR example with a tiny backbone; ``on_epoch_end(module, epoch)`` is a test hook."""

    def __init__(self, on_epoch_end: Callable[["TinySimCLR", int], Any] | None = None) -> None:
        super().__init__()
        self.backbone = tiny_backbone()
        self.projection_head = SimCLRProjectionHead(64, 64, 16)
        self.criterion = NTXentLoss()
        self.on_epoch_end = on_epoch_end
        self.seen_views: dict[int, list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def training_step(self, batch: Any, batch_index: int) -> torch.Tensor:
        (x0, x1), _, _ = batch
        self.seen_views.setdefault(self.current_epoch, []).extend([x0.detach(), x1.detach()])
        return self.criterion(self.forward(x0), self.forward(x1))

    def on_train_epoch_end(self) -> None:  # runs after the callbacks' on_train_epoch_end
        if self.on_epoch_end is not None:
            self.on_epoch_end(self, self.current_epoch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.06)


class VersionAtEpochStart(TinySimCLR):
    """Records the store version each training epoch starts with."""

    def __init__(self, store: BoxStore) -> None:
        super().__init__()
        self.store = store
        self.versions: dict[int, int] = {}

    def on_train_epoch_start(self) -> None:
        self.versions[self.current_epoch] = self.store.version


def simclr_transform() -> CCropSimCLRTransform:
    """Colour-preserving views (no jitter, grayscale, blur or normalisation) cropped relative to the box."""
    return CCropSimCLRTransform(
        input_size=32, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0, normalize=None,
        alpha=0.1, scale_reference="box",
    )


def train_loader(dataset: LightlyDataset, store: BoxStore, batch_size: int = 4) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True,
        collate_fn=CCropCollate(simclr_transform(), store, dataset=dataset),
    )


def main(folder: str, out_dir: str, ckpt_path: str | None = None) -> None:
    out = Path(out_dir)
    init_method = os.environ.get("CCROP_TEST_INIT_METHOD")
    if init_method:  # a file, not a free port picked by the test, which another process may take before the ranks bind
        torch.distributed.init_process_group("gloo", init_method=init_method, rank=int(os.environ["LOCAL_RANK"]),
                                             world_size=int(os.environ["WORLD_SIZE"]))
    pl.seed_everything(0)
    dataset = LightlyDataset(folder)
    store = BoxStore(len(dataset))

    def save_backbone(module: TinySimCLR, epoch: int) -> None:
        if epoch == 0 and module.global_rank == 0:
            torch.save(feature_extractor(module.backbone), out / "backbone_epoch0.pt")

    callback = BoxRefreshCallback(
        store, dataset, input_size=32, warmup_epochs=1, interval=1, batch_size=3, normalize=None
    )
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", devices=2, num_nodes=1, strategy="ddp", callbacks=[callback],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(TinySimCLR(on_epoch_end=save_backbone), train_loader(dataset, store), ckpt_path=ckpt_path)
    torch.save(store.state_dict(), out / f"store_rank{trainer.global_rank}.pt")
    sampler = callback.refresher.loader.sampler
    info = {"world_size": trainer.world_size, "sampler": type(sampler).__name__, "shard": len(sampler),
            "tempdir": tempfile.gettempdir()}  # where the DataLoader workers' sockets were (test_callback's TMPDIR)
    (out / f"run_rank{trainer.global_rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(*sys.argv[1:4])

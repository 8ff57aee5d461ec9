"""MoCo v2 with ContrastiveCrop on an image folder, in PyTorch Lightning with BoxRefreshCallback.

    python configs/lightly/moco_v2_ccrop.py data/scenes --generate 256     # small CPU run
    python configs/lightly/moco_v2_ccrop.py path/to/cifar10/train --preset cifar10 --devices 2

The model follows lightly's MoCo example (momentum encoder, memory bank in ``NTXentLoss``);
the boxes are refreshed by the callback, saved in Lightning checkpoints (``--checkpoint``
names the file) and restored with ``--resume``. Under ``--devices 2`` (``ddp``) each rank
localizes its shard and all ranks hold the same boxes.
"""

from __future__ import annotations

import argparse
import copy
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightly.data import LightlyDataset
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefreshCallback, CCropCollate, CCropMoCoV2Transform
from ccrop_plugins import BoxStore
from training_options import (
    build_parser,
    check_dataset_size,
    check_folder,
    generate_if_asked,
    localizer_options,
    normalization,
    parse,
    resnet18_backbone,
)


class MoCoV2(pl.LightningModule):
    def __init__(self, backbone: nn.Module, args: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = MoCoProjectionHead(512, 512, 128)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NTXentLoss(temperature=args.temperature, memory_bank_size=(args.memory_bank, 128))
        self.lr, self.momentum, self.weight_decay, self.epochs = args.lr, args.momentum, args.weight_decay, args.epochs
        self.ema = args.ema

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    @torch.no_grad()
    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1))

    def training_step(self, batch: Any, batch_index: int) -> torch.Tensor:
        update_momentum(self.backbone, self.backbone_momentum, m=self.ema)
        update_momentum(self.projection_head, self.projection_head_momentum, m=self.ema)
        (x_query, x_key), _, _ = batch
        loss = self.criterion(self.forward(x_query), self.forward_momentum(x_key))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x_query))
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(
            self.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        return [optimizer], [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.epochs)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = build_parser("MoCo v2 + ContrastiveCrop (PyTorch Lightning)", temperature=0.2)
    parser.add_argument("--memory-bank", type=int, default=1024, help="negatives kept (reference: 65536)")
    parser.add_argument("--ema", type=float, default=0.99, help="momentum of the key encoder (reference: 0.999)")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--resume", help="a Lightning checkpoint to resume from (boxes included)")
    args = parse(parser, argv)
    if args.resume is not None and not Path(args.resume).is_file():  # was Lightning's traceback after the set-up
        parser.error(f"--resume {args.resume}: no such checkpoint file")
    if args.resume is not None and not zipfile.is_zipfile(args.resume):  # torch.save writes a zip archive
        parser.error(f"--resume {args.resume}: not a checkpoint (a file torch.save wrote, e.g. by --checkpoint)")
    if args.resume is not None:
        _check_resume(parser, args.resume, args.epochs)
    pl.seed_everything(args.seed)
    check_folder(parser, args)
    generate_if_asked(parser, args)
    normalize = normalization(args)

    dataset = LightlyDataset(str(args.folder))
    check_dataset_size(parser, args, len(dataset))
    store = BoxStore(len(dataset))
    transform = CCropMoCoV2Transform(
        input_size=args.input_size, min_scale=args.min_scale, cj_strength=args.cj_strength,
        gaussian_blur=args.gaussian_blur, normalize=normalize, alpha=args.alpha, scale_reference=args.scale_reference,
    )
    dataloader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
        persistent_workers=args.workers > 0, collate_fn=CCropCollate(transform, store, dataset=dataset),
    )
    # The refresh's size and normalisation come from the DataLoader's CCropCollate.
    boxes = BoxRefreshCallback(
        store, dataset, warmup_epochs=args.warmup_epochs, interval=args.interval, stages=args.stages,
        threshold=args.threshold, localizer=args.localizer, heatmap=args.heatmap, batch_size=args.batch_size,
        localizer_options=localizer_options(args),
    )
    callbacks: list[pl.Callback] = [boxes]
    if args.checkpoint:
        saver = pl.callbacks.ModelCheckpoint(
            dirpath=args.checkpoint.parent, filename=args.checkpoint.stem, save_last=False, every_n_epochs=1,
        )
        saver.FILE_EXTENSION = args.checkpoint.suffix or ".ckpt"  # the file is --checkpoint (Lightning adds .ckpt)
        callbacks.append(saver)
    trainer = pl.Trainer(
        max_epochs=args.epochs, accelerator="auto", devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto", callbacks=callbacks, logger=pl.loggers.CSVLogger("."),
        enable_progress_bar=False, log_every_n_steps=1,
    )
    model = MoCoV2(resnet18_backbone(args.cifar_stem), args)
    trainer.fit(model, dataloader, ckpt_path=args.resume)
    return {"loss": float(trainer.callback_metrics.get("train_loss", float("nan"))), "store_version": store.version}


def _check_resume(parser: argparse.ArgumentParser, path: str, epochs: int) -> None:
    """One usage line for a --resume file that is no Lightning checkpoint (the SimCLR script's: Lightning's KeyError
    after the whole set-up), or whose run has done --epochs already (Lightning loads it and stops, without a word)."""
    try:  # mmap: the weights are not read, only the counters
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001  (pickle, zip and torch's own errors)
        parser.error(f"--resume {path}: not a checkpoint of this script ({type(error).__name__})")
    missing = [key for key in ("state_dict", "epoch", "loops")
               if not isinstance(checkpoint, dict) or key not in checkpoint]  # a saved tensor: 'in' would raise
    if missing:
        parser.error(f"--resume {path}: not a Lightning checkpoint of this script (it lacks {', '.join(missing)}; "
                     "a --checkpoint file of simclr_ccrop.py resumes with that script)")
    # Lightning's count of the epochs it ran to the end; a checkpoint saved at an epoch's end counts that epoch.
    progress = checkpoint["loops"].get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    done = int(progress.get("processed", checkpoint["epoch"] + 1))
    if done >= epochs:
        parser.error(f"--resume {path}: its run has done {done} epochs (checkpoint epoch {checkpoint['epoch']}, "
                     f"0-based), so --epochs {epochs} trains none more (Lightning would stop at once, without a "
                     "word); raise --epochs")


if __name__ == "__main__":
    main()

"""SimCLR with ContrastiveCrop on an image folder: lightly's plain PyTorch example, three lines changed.

    python configs/lightly/simclr_ccrop.py data/scenes --generate 256      # small CPU run
    python configs/lightly/simclr_ccrop.py path/to/cifar10/train --preset cifar10

Compared with lightly's ``examples/pytorch/simclr.py`` the dataset has no transform, a
``BoxStore`` is created, the collate function is ``CCropCollate(CCropSimCLRTransform(...))``,
and ``refresher.maybe_refresh(epoch)`` runs after each epoch. ``--checkpoint FILE`` saves the model, optimizer,
schedule and ``refresher.state_dict()`` after every epoch; ``--resume FILE`` continues from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from lightly.data import LightlyDataset
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefresher, CCropCollate, CCropSimCLRTransform, feature_extractor, make_refresh_loader
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


class SimCLR(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = build_parser("SimCLR + ContrastiveCrop (plain PyTorch loop)", temperature=0.5)
    parser.add_argument("--resume", type=Path, help="a --checkpoint file of this script to continue from (boxes "
                        "included; raise --epochs to train longer)")
    args = parse(parser, argv)
    resumed = _read_checkpoint(parser, args.resume, args.epochs) if args.resume is not None else None
    torch.manual_seed(args.seed)
    check_folder(parser, args)
    generate_if_asked(parser, args)
    normalize = normalization(args)

    dataset = LightlyDataset(str(args.folder))  # no transform: the collate makes the views
    check_dataset_size(parser, args, len(dataset))
    store = BoxStore(len(dataset))
    transform = CCropSimCLRTransform(
        input_size=args.input_size, min_scale=args.min_scale, cj_strength=args.cj_strength,
        gaussian_blur=args.gaussian_blur, normalize=normalize, alpha=args.alpha, scale_reference=args.scale_reference,
    )
    dataloader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
        persistent_workers=args.workers > 0, collate_fn=CCropCollate(transform, store, dataset=dataset),
    )

    model = SimCLR(resnet18_backbone(args.cifar_stem))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    refresher = BoxRefresher(
        store, feature_extractor(model.backbone, stages=args.stages),
        # size and normalisation of the refresh: the training transform's
        make_refresh_loader(dataset, transform=transform, batch_size=args.batch_size, num_workers=args.workers),
        warmup_epochs=args.warmup_epochs, interval=args.interval, max_epochs=args.epochs,
        threshold=args.threshold, localizer=args.localizer, heatmap=args.heatmap,
        localizer_options=localizer_options(args),
    )
    criterion = NTXentLoss(temperature=args.temperature)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)

    print(f"{len(dataset)} images, {len(dataloader)} batches per epoch, refresh after epochs "
          f"{refresher.schedule.refresh_epochs()} (0-based)")
    start = 0
    if resumed is not None:  # the boxes too: the refresher checks they are this folder's and catches up if one lags
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        refresher.load_state_dict(resumed["box_store"])
        start = resumed["epoch"]
        refresher.catch_up(start)
    avg_loss = float("nan")
    for epoch in range(start, args.epochs):
        total_loss = 0.0
        for (x0, x1), _, _ in dataloader:
            loss = criterion(model(x0.to(device)), model(x1.to(device)))
            total_loss += float(loss.detach())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        scheduler.step()
        avg_loss = total_loss / max(len(dataloader), 1)
        stats = refresher.maybe_refresh(epoch)
        refreshed = "" if stats is None else (
            f", refreshed boxes v{stats.version}: {stats.mean_boxes:.2f} per image, "
            f"area {stats.mean_box_area:.2f}, fallback {stats.fallback_fraction:.2f}"
        )
        print(f"epoch: {epoch:>02}, loss: {avg_loss:.5f}{refreshed}")
        if args.checkpoint:  # every epoch: a stopped run resumes from its last one
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                        "scheduler": scheduler.state_dict(), "box_store": refresher.state_dict()}, args.checkpoint)
    return {"loss": avg_loss, "store_version": store.version}


def _read_checkpoint(parser: argparse.ArgumentParser, path: Path, epochs: int) -> dict:
    """The --resume file, or one usage line: a missing file, one this script did not write, or one whose run has
    done --epochs already."""
    if not path.is_file():
        parser.error(f"--resume {path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (not a torch file: pickle, zip and torch's own errors)
        parser.error(f"--resume {path}: not a checkpoint of this script ({type(error).__name__})")
    missing = [key for key in ("model", "optimizer", "scheduler", "epoch", "box_store")
               if not isinstance(checkpoint, dict) or key not in checkpoint]  # a saved tensor: 'in' would raise
    if missing:
        parser.error(f"--resume {path}: not a checkpoint of this script (it lacks {', '.join(missing)})")
    if checkpoint["epoch"] >= epochs:
        parser.error(f"--resume {path}: its run has done {checkpoint['epoch']} epochs, so --epochs {epochs} trains "
                     "none more; raise --epochs")
    return checkpoint


if __name__ == "__main__":
    main()

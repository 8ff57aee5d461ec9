"""A real Lightly SimCLR loop with the ContrastiveCrop collate, persistent workers and a refresh.

After the refresh at the end of epoch 1 (0-based epoch 0) the store is overwritten with a
known box on the red quadrant; every view of epoch 2 must then be mostly red, which the
warm-up views of epoch 1 are not. The pixels prove that running workers crop from the
boxes written in the main process.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from lightly.data import LightlyDataset
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefresher, CCropCollate, CCropSimCLRTransform, feature_extractor, make_refresh_loader
from ccrop_plugins import BoxSets, BoxStore


class SimCLR(nn.Module):
    """lightly's example model; the CIFAR stem keeps a 4 x 4 layer4 map at 32 px, as in the paper."""

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        resnet.maxpool = nn.Identity()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = SimCLRProjectionHead(512, 128, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


def test_simclr_epoch_after_refresh_crops_inside_the_new_boxes(quadrant_folder, red_fraction, red_box):
    torch.manual_seed(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    # Jitter, grayscale and blur off and no normalisation: the views keep the quadrant colours.
    transform = CCropSimCLRTransform(
        input_size=32, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0, normalize=None,
        alpha=0.1, scale_reference="box",
    )
    loader = DataLoader(
        dataset, batch_size=8, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True,
        collate_fn=CCropCollate(transform, store, dataset=dataset),
    )
    model = SimCLR()
    refresher = BoxRefresher(
        store, feature_extractor(model.backbone), make_refresh_loader(dataset, 32, batch_size=16, normalize=None),
        warmup_epochs=1, interval=1, max_epochs=2,
    )
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    red = {0: [], 1: []}
    worker_pids = {}
    losses = []
    for epoch in range(2):
        seen = []
        for (x0, x1), targets, filenames in loader:
            assert x0.shape == x1.shape == (8, 3, 32, 32) and targets.dtype == torch.long
            seen += filenames
            red[epoch] += [red_fraction(x0), red_fraction(x1)]
            loss = criterion(model(x0), model(x1))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
        worker_pids[epoch] = [w.pid for w in loader._iterator._workers]
        assert sorted(seen) == sorted(dataset.get_filenames())
        stats = refresher.maybe_refresh(epoch)
        if epoch == 0:
            # A real refresh ran: every sample has a box set and the store counts one version.
            assert stats is not None and stats.images == len(dataset) and store.version == 1
            assert bool((store.counts > 0).all())
            assert model.training and model.backbone.training  # the refresh restored train mode
            known = BoxSets.from_lists([torch.tensor([red_box])] * len(dataset))
            store.update(range(len(dataset)), known, new_version=False)
        else:
            assert stats is None  # never after the last epoch
    assert worker_pids[0] == worker_pids[1], "persistent workers were restarted"
    assert all(np.isfinite(losses))
    warmup, after = np.concatenate(red[0]), np.concatenate(red[1])
    assert len(after) == 2 * len(dataset)
    # Every view of epoch 2 lies (almost) inside the red quadrant; the warm-up views do not.
    assert after.min() >= 0.75, sorted(after)[:5]
    assert warmup.mean() < 0.5 and (warmup < 0.75).mean() > 0.5


def _colour_map(weights: list[float]) -> nn.Sequential:
    """A frozen 'stage' whose 8 x 8 map (at 32 px) is how much each 4 x 4 cell shows one colour."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights).reshape(1, 3, 1, 1))
    conv.requires_grad_(False)
    return nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(4))


class ColourStages(nn.Module):
    """A backbone with two named stages that find different objects: ``red_map`` and ``green_map``.

    Its output (as lightly's backbones: pooled, (B, C, 1, 1)) feeds the projection head, so it
    trains like any backbone; only a refresh at the chosen stage can put the boxes on green.
    """

    def __init__(self) -> None:
        super().__init__()
        self.red_map = _colour_map([1.0, -1.0, -1.0])
        self.green_map = _colour_map([-1.0, 1.0, -1.0])
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        colours = torch.cat([self.red_map(x), self.green_map(x)], dim=1)
        return self.pool(torch.cat([self.trunk(x), colours], dim=1))


def _green_fraction(views: torch.Tensor) -> np.ndarray:
    r, g, b = views[:, 0], views[:, 1], views[:, 2]
    return ((g > 0.5) & (r < 0.5) & (b < 0.5)).float().mean(dim=(1, 2)).numpy()


def test_boxes_of_the_named_stage_reach_persistent_workers(quadrant_folder):
    # issue 9: the user names the stage; its boxes (not the last stage's) are what the workers crop from.
    torch.manual_seed(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    transform = CCropSimCLRTransform(
        input_size=32, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0, normalize=None,
        alpha=5.0, scale_reference="box", min_scale=0.1, max_scale=0.5,  # small crops centred on the box
    )
    loader = DataLoader(
        dataset, batch_size=8, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True,
        collate_fn=CCropCollate(transform, store, dataset=dataset),
    )
    backbone = ColourStages()
    head = SimCLRProjectionHead(34, 32, 16)
    refresher = BoxRefresher(
        store, backbone, make_refresh_loader(dataset, transform=transform, batch_size=16),
        warmup_epochs=1, interval=1, max_epochs=2, stages="green_map", threshold=0.5,
    )
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD([p for p in [*backbone.parameters(), *head.parameters()] if p.requires_grad], lr=0.06)
    green = {0: [], 1: []}
    worker_pids = {}
    for epoch in range(2):
        for (x0, x1), _, _ in loader:
            green[epoch] += [_green_fraction(x0), _green_fraction(x1)]
            loss = criterion(head(backbone(x0).flatten(1)), head(backbone(x1).flatten(1)))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        worker_pids[epoch] = [w.pid for w in loader._iterator._workers]
        stats = refresher.maybe_refresh(epoch)
        if epoch == 0:
            assert stats is not None and stats.fallback_fraction == 0.0
            # Every sample's best box sits on its green quadrant, wherever the permutation put it.
            for index in range(len(dataset)):
                image = np.asarray(dataset[index][0])
                boxes, _ = store.get(index)
                x = int((boxes[0, 0] + boxes[0, 2]) / 2 * image.shape[1])
                y = int((boxes[0, 1] + boxes[0, 3]) / 2 * image.shape[0])
                assert image[y, x].tolist() == [0, 255, 0], (index, boxes)
    assert worker_pids[0] == worker_pids[1], "persistent workers were restarted"
    warmup, after = np.concatenate(green[0]), np.concatenate(green[1])
    # Random crops show about a quarter of green; crops around the green stage's boxes mostly green.
    assert warmup.mean() < 0.4 and after.mean() > 0.8, (warmup.mean(), after.mean())

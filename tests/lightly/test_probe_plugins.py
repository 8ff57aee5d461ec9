"""A third-party plugin's heatmap rule, localizer and sampler through a real Lightly loop, and names a user gets
wrong in the Lightly adapter (helper P2's probe)."""

from __future__ import annotations

import pytest
import torch
from lightly.data import LightlyDataset
from lightly.loss import NTXentLoss
from torch import nn
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefresher, CCropCollate, CCropSimCLRTransform, make_refresh_loader
from ccrop_lightly.callback import BoxRefreshCallback
from ccrop_plugins import BoxStore


def _backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1))  # 32 px -> 8 x 8 maps


def test_the_docs_plugin_through_a_lightly_loop_with_workers(docs_plugin, quadrant_folder):
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset), max_boxes=1)
    transform = CCropSimCLRTransform(input_size=32, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0,
                                     normalize=None, sampler="edge")
    loader = DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True,
                        collate_fn=CCropCollate(transform, store, dataset=dataset))
    backbone = _backbone()
    head = nn.Linear(16, 8)
    refresher = BoxRefresher(store, backbone, make_refresh_loader(dataset, 32, batch_size=8, normalize=None),
                             warmup_epochs=1, interval=1, max_epochs=3, heatmap="far_from_mean", localizer="peak")
    criterion, optimizer = NTXentLoss(), torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=0.01)
    for epoch in range(3):
        for (x0, x1), _, _ in loader:
            loss = criterion(head(backbone(x0).mean((2, 3))), head(backbone(x1).mean((2, 3))))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            assert torch.isfinite(loss)
        refresher.maybe_refresh(epoch)
    from ccrop_plugins.kept_pipelines import _PIPELINES

    (pipeline,) = _PIPELINES[store].values()
    assert pipeline.rules[None].fits == 2  # fitted after each of the two refreshes, the second applying the first's
    assert store.version == 2 and bool((store.counts == 1).all())
    sizes = store.boxes[:, 0, 2:] - store.boxes[:, 0, :2]
    torch.testing.assert_close(sizes, torch.full_like(sizes, 0.5))  # peak_box's quarter of the image


@pytest.mark.parametrize("option, value, error", [
    ("localizer", None, r"unknown localizer None; available: bbox, components"),
    ("localizer", 3, r"unknown localizer 3; available: bbox, components"),
    ("heatmap", None, r"heatmap must be a registered name or a callable; got NoneType"),
    ("heatmap", ["channel_sum"], r"heatmap must be a registered name or a callable; got list"),
])
def test_a_localizer_or_heatmap_that_is_neither_name_nor_callable_is_refused_when_made(option, value, error):
    # was: accepted, failing only at the first refresh, after the whole warm-up
    store = BoxStore(4)
    loader = [(torch.rand(4, 3, 16, 16), torch.arange(4))]
    with pytest.raises((TypeError, ValueError), match=error):
        BoxRefresher(store, _backbone(), loader, warmup_epochs=1, interval=1, **{option: value})
    with pytest.raises((TypeError, ValueError), match=error):
        BoxRefreshCallback(store, list(range(4)), warmup_epochs=1, interval=1, **{option: value})

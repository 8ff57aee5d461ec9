"""``pretrain_simclr``: the Lightly loop refreshes on schedule, is seeded, and rejects bad input early."""

from __future__ import annotations

import pytest
import torch

from ccrop_cli.experiment.backbones import build_backbone
from ccrop_cli.experiment.pretrain import pretrain_simclr
from ccrop_scenes import generate_scenes, write_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    scenes = generate_scenes(24, image_size=32, objects_per_image=(1, 2), object_area=(0.05, 0.15), seed=1)
    return write_image_folder(scenes, tmp_path_factory.mktemp("pretrain"))


@pytest.mark.slow
def test_box_sets_are_refreshed_on_schedule_and_runs_are_seeded(folder):
    kwargs = dict(image_size=32, epochs=3, batch_size=8, warmup_epochs=1, interval=1, progress=False)
    first = pretrain_simclr(folder, "multi", seed=3, **kwargs)
    again = pretrain_simclr(folder, "multi", seed=3, **kwargs)
    # Warm-up 1, interval 1, 3 epochs: refreshes after epochs 1 and 2 (0-based 0, 1), never after the last.
    assert [r.epoch for r in first.refreshes] == [0, 1]
    assert [r.stats.version for r in first.refreshes] == [1, 2]
    assert all(len(r.box_sets) == 24 for r in first.refreshes)
    assert first.epoch_losses == again.epoch_losses  # workers, shuffling and weights all follow the seed
    assert first.views == 2 * 3 * 24 and first.train_seconds > 0 and first.refresh_seconds > 0
    plain = pretrain_simclr(folder, "rrc", seed=3, **kwargs)
    assert plain.refreshes == [] and plain.refresh_seconds == 0.0


@pytest.mark.parametrize("progress", [False, True])
def test_each_epoch_and_refresh_iterates_its_loader_once(folder, monkeypatch, progress):
    # was: twice each: the progress bars (tqdm.auto's constructor calls iter() on its iterable, shown or not) made
    # a second iterator, whose workers made 2 x num_workers batches that nothing read
    from torch.utils.data import DataLoader

    iterators = []
    plain_iter = DataLoader.__iter__
    monkeypatch.setattr(DataLoader, "__iter__", lambda loader: iterators.append(loader) or plain_iter(loader))
    kwargs = dict(image_size=32, epochs=2, batch_size=8, warmup_epochs=1, interval=1, progress=progress)
    result = pretrain_simclr(folder, "multi", seed=3, **kwargs)
    assert len(result.refreshes) == 1 and len(iterators) == 3  # 2 epochs, 1 refresh


def test_backbones_have_the_documented_feature_maps():
    for name, dim in (("convnet", 256), ("resnet18", 512)):
        backbone, feature_dim = build_backbone(name, seed=0)
        assert feature_dim == dim
        assert backbone(torch.zeros(2, 3, 32, 32)).shape == (2, dim)
    a, _ = build_backbone("convnet", seed=5)
    b, _ = build_backbone("convnet", seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (dict(strategy="rcc"), "unknown strategy 'rcc'; available: rrc, paper, multi, multi-box"),
        (dict(backbone="vit"), "unknown backbone 'vit'; available: convnet, resnet18"),
        (dict(batch_size=100), "batch_size 100 exceeds the 24 images"),
        (dict(threshold=1.5), r"threshold must lie in \[0, 1\)"),
        (dict(epochs=0), "epochs must be a positive integer"),
    ],
)
def test_bad_arguments_raise_before_training(folder, option, message):
    kwargs = dict(strategy="multi", image_size=32, epochs=1, batch_size=8, progress=False)
    kwargs.update(option)
    with pytest.raises(ValueError, match=message):
        pretrain_simclr(folder, **kwargs)


def test_warm_up_views_are_random_resized_crops_for_every_strategy():
    from ccrop_cli.experiment.pretrain import simclr_views
    from ccrop_cli.experiment.strategies import STRATEGIES

    for strategy in STRATEGIES.values():
        views = simclr_views(strategy, image_size=32, alpha=0.6)
        warmup_crop = views.warmup.transforms[0].crop
        assert (warmup_crop.scale, warmup_crop.scale_reference) == ((0.2, 1.0), "image")
        boxed_crop = views.transforms[0].crop
        assert (boxed_crop.scale, boxed_crop.scale_reference) == (strategy.scale, strategy.scale_reference)
        params = [warmup_crop.make_params((64, 64)) for _ in range(20)]
        assert any(p["height"] * p["width"] < 64 * 64 for p in params)
        # Without boxes the box-scaled crop takes the image as the box and crops 25-100 % of it
        # (the core's _box_reference): not RandomResizedCrop's 20-100 %, hence the warm-up views.
        generator = torch.Generator().manual_seed(0)
        areas = [boxed_crop.make_params((64, 64), generator=generator) for _ in range(200)]
        smallest = min(p["height"] * p["width"] for p in areas) / (64 * 64)
        assert smallest >= (0.18 if strategy.scale_reference == "image" else 0.22)
        if strategy.scale_reference == "box":
            assert smallest < 0.35

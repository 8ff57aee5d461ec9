"""ContrastiveCrop in a supervised MMPretrain config (``ImageClassifier``, ``ClsDataPreprocessor``, one view per
sample), found by probing main in session 23: each test fails on the code before."""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models import ClsDataPreprocessor

from ccrop_mm.extraction import Normaliser

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


@pytest.mark.parametrize("to_rgb", [True, False])
def test_the_refresh_orders_channels_as_a_classification_preprocessor_does(to_rgb):
    # Before: ClsDataPreprocessor keeps the order as to_rgb, not _channel_conversion: the refresh read BGR images
    # while training read RGB ones, without a word.
    preprocessor = ClsDataPreprocessor(mean=MEAN, std=STD, to_rgb=to_rgb)
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    trained_on = preprocessor({"inputs": list(images), "data_samples": None}, False)["inputs"]
    assert torch.allclose(Normaliser(preprocessor)(images, torch.device("cpu")), trained_on, atol=1e-5)


def _classifier_config(data, work_dir) -> Config:
    """A supervised config: ResNet_CIFAR classifier, the crop in a single-view pipeline, box sets of 4."""
    pipeline = [dict(type="LoadImageFromFile"), dict(type="ContrastiveCrop", scale=32, crop_ratio_range=(0.2, 1.0)),
                dict(type="RandomFlip", prob=0.5), dict(type="PackInputs")]
    return Config(dict(
        default_scope="mmpretrain", experiment_name=f"supervised_{work_dir.parent.name}",
        model=dict(type="ImageClassifier",
                   backbone=dict(type="ResNet_CIFAR", depth=18, stem_channels=16, base_channels=16),
                   neck=dict(type="GlobalAveragePooling"),
                   head=dict(type="LinearClsHead", num_classes=2, in_channels=128,
                             loss=dict(type="CrossEntropyLoss"))),
        data_preprocessor=dict(num_classes=2, mean=MEAN, std=STD, to_rgb=True),
        train_dataloader=dict(batch_size=8, num_workers=2, persistent_workers=True,
                              collate_fn=dict(type="default_collate"),
                              sampler=dict(type="DefaultSampler", shuffle=True),
                              dataset=dict(type="CustomDataset", data_root=str(data), pipeline=pipeline)),
        train_cfg=dict(by_epoch=True, max_epochs=2), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1), logger=dict(type="LoggerHook")),
        log_level="WARNING", work_dir=str(work_dir),
        custom_hooks=[dict(type="ContrastiveCropHook", warmup_epochs=1, interval=1, localizer="components",
                           max_boxes=4, batch_size=8, num_workers=0)]))


def test_a_single_view_pipeline_trains_with_box_sets(setup, object_folder, tmp_path, train):
    # Before: refused in before_train, "both views must crop around the same one: put dict(type='ChooseContrastiveBox')
    # before MultiView", for a pipeline without MultiView: one view per sample, no pair to keep together.
    runner = train(_classifier_config(object_folder, tmp_path / "work"))
    store = setup.ccrop_hook(runner).store
    assert store.version == 1 and int(store.counts.min()) >= 1

"""ContrastiveCrop in a val pipeline, in a real Runner with a val loop: it gets no boxes (they are made for the
training images), every val crop is RandomResizedCrop's, and the run's log says so once, with what to do."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from mmengine.evaluator import BaseMetric
from mmpretrain.models import SimCLR
from mmpretrain.registry import METRICS, MODELS

from ccrop_mm.transforms import StoreUser


@MODELS.register_module(force=True)
class SimCLRWithVal(SimCLR):
    """SimCLR whose val step hands the samples on (a self-supervised model has no ``predict`` mode)."""

    def val_step(self, data):
        return data["data_samples"]


@METRICS.register_module(force=True)
class ValInputs(BaseMetric):
    """Records the shape of every val input it is given."""

    shapes: list = []

    def process(self, data_batch, data_samples) -> None:
        ValInputs.shapes.extend(tuple(image.shape) for image in data_batch["inputs"])
        self.results.append(len(data_samples))

    def compute_metrics(self, results) -> dict:
        return {"images": float(sum(results))}


def _log(runner) -> str:
    files = [h.baseFilename for h in runner.logger.handlers if hasattr(h, "baseFilename")]
    return "".join(Path(f).read_text() for f in files)


@pytest.mark.slow
def test_contrastive_crop_in_the_val_pipeline_is_said_once_and_crops_like_random_resized_crop(
        setup, train, coordinate_folder, tmp_path, monkeypatch):
    cfg = setup.small_config("mmpretrain", coordinate_folder, tmp_path / "run")
    cfg.model.type = "SimCLRWithVal"
    cfg.experiment_name = "val_pipeline"
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=2, val_interval=1)
    cfg.val_dataloader = dict(
        batch_size=8, num_workers=0, collate_fn=dict(type="default_collate"),
        sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dict(type="mmpretrain.CustomDataset", data_root=str(coordinate_folder), pipeline=[
            dict(type="LoadImageFromFile"),
            dict(type="PretrainContrastiveCrop", scale=16, interpolation="nearest"),
            dict(type="PackInputs"),
        ]),
    )
    cfg.val_cfg = dict()
    cfg.val_evaluator = dict(type="ValInputs")
    ValInputs.shapes = []
    monkeypatch.setattr(StoreUser, "_warned_no_store", False)  # once per process: earlier tests may have warned
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = train(cfg)
    log = _log(runner)
    assert log.count("PretrainContrastiveCrop in val_dataloader.dataset.pipeline gets no boxes") == 1  # 2 val runs
    assert "every val crop is a plain RandomResizedCrop crop, random from run to run; use a deterministic crop" in log
    # Not the per-worker warning that blames a missing hook (the hook is there, for training).
    assert not [w for w in caught if "no ContrastiveCropHook is attached" in str(w.message)]
    assert ValInputs.shapes == [(3, 16, 16)] * 32  # 2 val runs of 16 images, each cropped, no crash
    assert setup.ccrop_hook(runner).store.version == 1  # training refreshed as usual

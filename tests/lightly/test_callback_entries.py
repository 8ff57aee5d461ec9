"""BoxRefreshCallback at the Trainer's other entry points and beside another callback: found by probing main in
session 23, each test fails on the code before. Real Lightning runs on 16 images of 48 px, views of 32 px."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
from lightly.data import LightlyDataset
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefreshCallback, CCropCollate
from ccrop_plugins import BoxStore

import lightning_simclr  # registered by tests/lightly/conftest.py


def _trainer(tmp_path: Path, max_epochs: int, callbacks: list) -> pl.Trainer:
    return pl.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, callbacks=callbacks, logger=False,
                      enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))


def _callback(store: BoxStore, dataset: LightlyDataset, **options) -> BoxRefreshCallback:
    options = {"warmup_epochs": 1, "interval": 1, **options}
    return BoxRefreshCallback(store, dataset, input_size=32, batch_size=8, normalize=None, **options)


def _loader(dataset: LightlyDataset, store: BoxStore) -> DataLoader:
    return DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True,
                      collate_fn=CCropCollate(lightning_simclr.simclr_transform(), store, dataset=dataset))


class _Validated(lightning_simclr.TinySimCLR):
    def validation_step(self, batch, batch_index):
        return None


def test_two_callbacks_on_one_store_are_refused_before_training(tmp_path, quadrant_folder):
    # Before: both refreshed the store, each on its own schedule (3 passes in 3 epochs where one callback makes 2),
    # the views cropped from whichever ran last, without a word.
    pl.seed_everything(0)
    dataset, store = LightlyDataset(str(quadrant_folder)), BoxStore(16)
    callbacks = [_callback(store, dataset, name="a"), _callback(store, dataset, warmup_epochs=2, name="b")]
    model = lightning_simclr.TinySimCLR()
    with pytest.raises(ValueError, match=r"^2 BoxRefreshCallbacks \('a', 'b'\) share one BoxStore: .*keep one "
                                         r"callback per store"):
        _trainer(tmp_path, 3, callbacks).fit(model, _loader(dataset, store))
    assert store.version == 0


def test_validating_a_checkpoint_leaves_the_training_boxes_alone(tmp_path, quadrant_folder):
    # Before: trainer.validate(ckpt_path=...) restored the checkpoint's boxes into the training store, and a new fit
    # then warmed up cutting around them, its new-run warning silenced.
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    saved_store = BoxStore(16)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    _trainer(tmp_path, 2, [_callback(saved_store, dataset), checkpoints]).fit(
        lightning_simclr.TinySimCLR(), _loader(dataset, saved_store))
    assert saved_store.version == 1
    store = BoxStore(16)
    trainer = _trainer(tmp_path / "new", 2, [_callback(store, dataset)])
    model = _Validated()
    validation = DataLoader(dataset, batch_size=8,
                            collate_fn=CCropCollate(lightning_simclr.simclr_transform(), store, dataset=dataset))
    trainer.validate(model, validation, ckpt_path=str(tmp_path / "ckpt" / "epoch=1.ckpt"))
    assert store.version == 0 and int(store.counts.max()) == 0

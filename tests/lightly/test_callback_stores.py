"""BoxRefreshCallback with several training DataLoaders and stores, a store reused by a new run, and the datasets and
collate functions it refuses: real Lightning runs on 16 images of 48 px, views of 32 px, 1-2 epochs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torchvision.transforms as T
from lightly.data import LightlyDataset
from lightly.transforms import SimCLRTransform
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from ccrop_lightly import BoxRefreshCallback, CCropCollate
from ccrop_plugins import BoxStore

import lightning_simclr  # registered by tests/lightly/conftest.py


def _trainer(tmp_path: Path, max_epochs: int, callbacks: list, **options: Any) -> pl.Trainer:
    options = {"logger": False, "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
               **options}
    return pl.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, callbacks=callbacks,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path), **options)


def _callback(store: BoxStore, dataset: Any, **options: Any) -> BoxRefreshCallback:
    return BoxRefreshCallback(store, dataset, input_size=32, warmup_epochs=1, interval=1, batch_size=8,
                              normalize=None, **options)


def _loader(dataset: Any, store: BoxStore) -> DataLoader:
    """2 batches of 8 per epoch, collated in the main process (the store is read as the workers read it)."""
    return DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True,
                      collate_fn=CCropCollate(lightning_simclr.simclr_transform(), store, dataset=dataset))


def _checkpoints(tmp_path: Path) -> ModelCheckpoint:
    return ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)


class _DictOfBatches(lightning_simclr.TinySimCLR):
    """TinySimCLR over a dict of training DataLoaders: the sum of each loader's SimCLR loss."""

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor:
        return sum(super(_DictOfBatches, self).training_step(part, batch_index) for part in batch.values())


def test_a_callback_for_the_second_ccrop_loader_refreshes_the_store_that_loader_reads(tmp_path, quadrant_folder):
    """Two training DataLoaders, each with a CCropCollate of its own store, and a callback for the second one's store:
    it was refused when training started ("refreshes another box store than the one the training DataLoader's
    CCropCollate reads ... BoxStore made twice?"), as the first loader holding any CCropCollate was taken. It now
    takes the loader that reads its store; when none does, the first CCrop loader's other store is refused as
    before."""
    pl.seed_everything(0)
    dataset_a, dataset_b = LightlyDataset(str(quadrant_folder)), LightlyDataset(str(quadrant_folder))
    store_a, store_b = BoxStore(len(dataset_a)), BoxStore(len(dataset_b))
    loaders = {"a": _loader(dataset_a, store_a), "b": _loader(dataset_b, store_b)}
    callback = _callback(store_b, dataset_b)
    _trainer(tmp_path, 2, [callback]).fit(_DictOfBatches(), loaders)
    assert (store_a.version, store_b.version) == (0, 1)
    assert callback.refresher.loader.dataset.dataset is dataset_b

    with pytest.raises(ValueError, match="refreshes another box store than the one the training DataLoader's "
                                         "CCropCollate reads .*BoxStore made twice"):
        _trainer(tmp_path, 1, [_callback(BoxStore(len(dataset_b)), dataset_b)]).fit(_DictOfBatches(), loaders)


def test_two_named_callbacks_refresh_a_store_each_and_resume_each_from_its_own_state(
        tmp_path, quadrant_folder, scenes_folder):
    """One callback per store (two datasets, two CCrop loaders) could not share a Trainer: Lightning refused two
    stateful callbacks of one state_key ("Found more than one stateful callback of type BoxRefreshCallback").
    name= gives each a key of its own, and a resume restores each store from its own state; an unnamed callback
    keeps Lightning's default key, the class name, so checkpoints saved before name= still resume."""
    pl.seed_everything(0)
    datasets = {"quadrants": LightlyDataset(str(quadrant_folder)), "scenes": LightlyDataset(str(scenes_folder))}
    stores = {key: BoxStore(len(dataset)) for key, dataset in datasets.items()}
    assert _callback(stores["scenes"], datasets["scenes"]).state_key == "BoxRefreshCallback"
    with pytest.raises(TypeError, match="BoxRefreshCallback: name must be a non-empty string .*; got ''"):
        _callback(stores["scenes"], datasets["scenes"], name="")

    callbacks = [_callback(stores[key], datasets[key], name=key) for key in datasets]
    loaders = {key: _loader(datasets[key], stores[key]) for key in datasets}
    _trainer(tmp_path, 2, [*callbacks, _checkpoints(tmp_path)]).fit(_DictOfBatches(), loaders)
    assert [store.version for store in stores.values()] == [1, 1]
    saved = torch.load(tmp_path / "ckpt" / "epoch=0.ckpt", weights_only=True)["callbacks"]
    keys = {key: f"BoxRefreshCallback{{'name': '{key}'}}" for key in datasets}
    assert set(keys.values()) <= set(saved)
    assert not torch.equal(saved[keys["quadrants"]]["store"]["boxes"], saved[keys["scenes"]]["store"]["boxes"])

    resumed = {key: BoxStore(len(dataset)) for key, dataset in datasets.items()}
    callbacks = [_callback(resumed[key], datasets[key], name=key) for key in reversed(list(datasets))]
    loaders = {key: _loader(datasets[key], resumed[key]) for key in datasets}
    _trainer(tmp_path, 2, callbacks).fit(_DictOfBatches(), loaders, ckpt_path=str(tmp_path / "ckpt" / "epoch=0.ckpt"))
    for key, store in resumed.items():
        assert torch.equal(store.state_dict()["boxes"], saved[keys[key]]["store"]["boxes"]), key


def test_a_new_run_from_epoch_0_on_a_store_that_holds_earlier_boxes_warns(tmp_path, quadrant_folder):
    """A second experiment (a new model and Trainer) that reuses the callback and store started at epoch 0 on the first
    run's boxes: its warm-up cropped around them, made by another model, silently. It now warns, naming the fixes;
    emptying the store as the warning says gives the warm-up, and a state loaded into the callback for the fit (the
    boxes restored on purpose) does not warn."""
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    callback = _callback(store, dataset)
    loader = _loader(dataset, store)
    first = lightning_simclr.VersionAtEpochStart(store)
    _trainer(tmp_path, 2, [callback, _checkpoints(tmp_path)]).fit(first, loader)
    assert first.versions == {0: 0, 1: 1}

    second = lightning_simclr.VersionAtEpochStart(store)
    with pytest.warns(UserWarning, match=r"^BoxRefreshCallback: this fit starts a new run at epoch 0, but its box "
                                         r"store already holds boxes \(version 1\) .*the warm-up epochs crop around "
                                         r"those boxes, not plain RandomResizedCrop.*a new BoxStore .*"
                                         r"store\.load_state_dict\(BoxStore\(16, max_boxes=4\)\.state_dict\(\)\)"):
        _trainer(tmp_path, 1, [callback]).fit(second, loader)
    assert second.versions == {0: 1}  # what the warning says: epoch 0 reads the first run's boxes

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*already holds boxes")
        store.load_state_dict(BoxStore(16, max_boxes=4).state_dict())  # the warning's fix
        third = lightning_simclr.VersionAtEpochStart(store)
        _trainer(tmp_path, 1, [callback]).fit(third, loader)
        assert third.versions == {0: 0}

        state = torch.load(tmp_path / "ckpt" / "epoch=0.ckpt", weights_only=True)["callbacks"]["BoxRefreshCallback"]
        callback.load_state_dict(state)  # restored for this fit, on purpose
        fourth = lightning_simclr.VersionAtEpochStart(store)
        _trainer(tmp_path, 1, [callback]).fit(fourth, loader)
        assert fourth.versions == {0: 1}


def test_without_a_ccrop_collate_the_resolution_error_names_the_collate_first(tmp_path, quadrant_folder):
    """Lightly's example left as it was (its transform on the dataset, the default collate) with the callback and
    neither transform= nor input_size=: the error offered only transform= / input_size=, which starts a run whose
    refreshes no view reads. It now names collate_fn=CCropCollate(...) first, and the two options only for a
    collate_fn of one's own that calls a CCropCollate."""
    views = LightlyDataset(str(quadrant_folder), transform=SimCLRTransform(input_size=32, normalize=None))
    plain = LightlyDataset(str(quadrant_folder))
    callback = BoxRefreshCallback(BoxStore(len(plain)), plain, warmup_epochs=1, interval=1, batch_size=8)
    with pytest.warns(UserWarning, match="collate_fn is not a CCropCollate"):
        with pytest.raises(ValueError, match=r"^BoxRefreshCallback cannot tell the refresh resolution: the training "
                                             r"DataLoader's collate_fn is not a CCropCollate, so no view would read "
                                             r"the refreshed boxes; build the dataset without a transform and give "
                                             r"the DataLoader collate_fn=CCropCollate\(<a CCrop transform>, store, "
                                             r"dataset=dataset\).* Only for a collate_fn of your own that calls a "
                                             r"CCropCollate .*, pass transform=<that CCrop transform> or input_size="):
            _trainer(tmp_path, 1, [callback]).fit(lightning_simclr.TinySimCLR(),
                                                  DataLoader(views, batch_size=8, drop_last=True))


def test_a_dataset_whose_own_transform_is_random_is_refused_when_the_callback_is_made(quadrant_folder):
    """BoxRefreshCallback(store, LightlyDataset(..., transform=SimCLRTransform())) was made without error and refused
    only when training started (by the refresh loader); the same check now runs when the callback is made. A fixed
    transform (Resize) is accepted."""
    dataset = LightlyDataset(str(quadrant_folder), transform=SimCLRTransform(input_size=32))
    with pytest.raises(ValueError, match=r"^BoxRefreshCallback: the dataset's own transform holds RandomResizedCrop "
                                         r"\(in SimCLRTransform > .*build the dataset without a transform"):
        BoxRefreshCallback(BoxStore(len(dataset)), dataset, warmup_epochs=1, interval=1)
    fixed = LightlyDataset(str(quadrant_folder), transform=T.Resize(32))
    BoxRefreshCallback(BoxStore(len(fixed)), fixed, warmup_epochs=1, interval=1)

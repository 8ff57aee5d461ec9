"""Costs that grow with the dataset: the refresh loader reads in worker processes by default, the collate's filename
index holds no per-file Python objects (it is copied into every DataLoader worker), and a fit lists the dataset's
files once (1.28M files: about 7 s per listing)."""

from __future__ import annotations

import io
import os
import pickle
import shutil
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from lightly.data import LightlyDataset
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from ccrop_lightly import BoxRefreshCallback, CCropCollate, CCropSimCLRTransform, IndexedDataset, make_refresh_loader
from ccrop_lightly.checkpoint_boxes import image_list_digest
from ccrop_plugins import BoxStore

import lightning_simclr  # registered by tests/lightly/conftest.py


def _trainer(tmp_path: Path, max_epochs: int, callbacks: list, **options: Any) -> pl.Trainer:
    return pl.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, callbacks=callbacks, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path), **options)


def _callback(store: BoxStore, dataset: Any, **options: Any) -> BoxRefreshCallback:
    return BoxRefreshCallback(store, dataset, input_size=32, warmup_epochs=1, interval=1, batch_size=8,
                              normalize=None, **options)


# The refresh loader's workers ------------------------------------------------------------------------------------


def test_make_refresh_loader_reads_in_workers_by_default_once_the_shard_spans_two_batches(quadrant_folder,
                                                                                          monkeypatch):
    """The default was num_workers=0: each rank decoded its whole shard in its main process, between forwards (about
    10x the forward's time at ImageNet scale). Now one worker per usable CPU, shared among the node's ranks, at most 8;
    none for a shard of one batch; an explicit number as given."""
    dataset = LightlyDataset(str(quadrant_folder))  # 16 images
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert make_refresh_loader(dataset, 8, batch_size=5).num_workers == 8  # 32 CPUs, at most 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert make_refresh_loader(dataset, 8, batch_size=5).num_workers == 4  # 32 CPUs for 8 ranks
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")
    assert make_refresh_loader(dataset, 8, batch_size=5).num_workers == 1
    assert make_refresh_loader(dataset, 8, batch_size=16).num_workers == 0  # one batch: a worker only adds start-up
    assert make_refresh_loader(dataset, 8, batch_size=5, num_workers=0).num_workers == 0
    explicit = make_refresh_loader(dataset, 8, batch_size=5, num_workers=3, persistent_workers=True)
    assert (explicit.num_workers, explicit.persistent_workers) == (3, True)


def test_the_default_workers_yield_the_batches_of_the_main_process(quadrant_folder):
    dataset = LightlyDataset(str(quadrant_folder))
    default = make_refresh_loader(dataset, 8, batch_size=5)
    assert default.num_workers >= 1
    batches = [(images, indices) for images, indices in default]
    in_process = list(make_refresh_loader(dataset, 8, batch_size=5, num_workers=0))
    assert [indices.tolist() for _, indices in batches] == [indices.tolist() for _, indices in in_process]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, in_process))


@pytest.mark.slow
@pytest.mark.parametrize("num_workers, expected", [(None, 2), (0, 0)])
def test_the_callbacks_refresh_loader_takes_the_training_loaders_workers(tmp_path, quadrant_folder, num_workers,
                                                                         expected):
    """BoxRefreshCallback(num_workers=0) was the default: the refresh read every image in each rank's main process
    while the training DataLoader had its workers. Now None: the training DataLoader's num_workers (2 here)."""
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    callback = _callback(store, dataset, num_workers=num_workers)
    assert callback.num_workers == num_workers
    _trainer(tmp_path, 2, [callback], enable_checkpointing=False).fit(
        lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, store))
    assert callback.refresher.loader.num_workers == expected
    assert store.version == 1 and bool((store.counts > 0).all())  # refreshed after epoch 0, through those workers


# The collate's filename index ------------------------------------------------------------------------------------


def _containers(value: Any, depth: int = 0) -> list[Any]:
    """The dicts, lists, tuples and sets reachable from ``value`` through instance attributes and items."""
    if depth > 4:
        return []
    found: list[Any] = []
    children: list[Any] = []
    if isinstance(value, (dict, list, tuple, set)):
        found.append(value)
        children = list(value.values()) if isinstance(value, dict) else list(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = list(vars(value).values())
    for child in children:
        found += _containers(child, depth + 1)
    return found


def test_the_collate_keeps_its_filenames_in_arrays_that_pickle_small(quadrant_folder):
    """CCropCollate(dataset=LightlyDataset) held a dict filename -> index: 156 MB at 1.28M files, 49 MiB pickled into
    every spawned worker, and copied page by page in forked ones (every lookup touched the refcounts). Now two
    arrays; every filename still gives its index, in the pickled copy a worker gets too."""
    dataset = LightlyDataset(str(quadrant_folder))
    collate = CCropCollate(CCropSimCLRTransform(input_size=8), BoxStore(len(dataset)), dataset=dataset)
    attributes = {name: value for name, value in vars(collate).items() if name not in ("store", "transform")}
    per_file = [c for c in _containers(attributes) if len(c) >= len(dataset)]
    assert per_file == [], f"per-file Python containers in the collate: {[type(c).__name__ for c in per_file]}"
    buffer = io.BytesIO()
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(attributes)
    assert buffer.tell() < 2000  # 12 bytes per file plus the class names
    buffer.seek(0)
    copy = CCropCollate.__new__(CCropCollate)
    vars(copy).update(pickle.load(buffer), store=collate.store, transform=collate.transform)
    names = dataset.get_filenames()
    assert [copy.index_of(name, 0) for name in names] == list(range(len(names)))
    assert repr(copy).endswith("16 filenames)")


def test_a_name_listed_twice_is_named_with_its_first_two_indices():
    transform = CCropSimCLRTransform(input_size=8)
    with pytest.raises(ValueError, match=r"filename 'b' appears twice \(indices 1 and 3\)"):
        CCropCollate(transform, BoxStore(6), filenames=["a", "b", "c", "b", "a", "b"])
    with pytest.raises(ValueError, match=r"filename 'a' appears twice \(indices 0 and 2\)"):
        CCropCollate(transform, BoxStore(4), filenames=["a", "b", "a", "a"])


def test_names_whose_hashes_collide_are_told_apart(monkeypatch):
    """Two names with the same 64-bit hash (a chance of 4e-8 at 1.28M names) would share an index: the index is
    rebuilt with another hash key. Forced here with a hash that is the name's length under the first key."""
    from ccrop_lightly import filename_index

    real = filename_index._name_hash
    first_key = filename_index._salt_key(0)
    monkeypatch.setattr(filename_index, "_name_hash",
                        lambda name, key: len(name) if key == first_key else real(name, key))
    index = filename_index.FilenameIndex(["ab", "cd", "e", "\udcff.png"])
    assert index.salt == 1
    assert [index.get(name) for name in ("ab", "cd", "e", "\udcff.png", "xy", "")] == [0, 1, 2, 3, None, None]
    with pytest.raises(ValueError, match=r"filename 'ab' appears twice \(indices 0 and 2\)"):
        filename_index.FilenameIndex(["ab", "cd", "ab"])  # the collision hid it under the first key


# One listing of the files per fit --------------------------------------------------------------------------------


def _count_listings(monkeypatch, dataset: LightlyDataset) -> list[int]:
    calls = [0]
    listing = dataset.get_filenames

    def counted() -> list[str]:
        calls[0] += 1
        return listing()

    monkeypatch.setattr(dataset, "get_filenames", counted)
    return calls


@pytest.mark.slow
def test_a_fit_and_its_checkpoints_list_the_dataset_files_once(tmp_path, quadrant_folder, monkeypatch):
    """Training start listed every file twice (the callback's dataset and the training DataLoader's, the same object)
    and the first checkpoint once more: 3 listings, about 21 s at 1.28M files, on every rank. Now once per fit,
    shared by the train-start check and every checkpoint; a resume's load reads it and the fit reuses it."""
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    loader = lightning_simclr.train_loader(dataset, store)  # the collate lists the files once, in user code
    calls = _count_listings(monkeypatch, dataset)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    callback = _callback(store, dataset, num_workers=0)
    _trainer(tmp_path, 2, [callback, checkpoints]).fit(lightning_simclr.TinySimCLR(), loader)
    assert calls[0] == 1
    assert torch.load(tmp_path / "ckpt" / "epoch=1.ckpt", weights_only=False)["callbacks"]["BoxRefreshCallback"][
        "images"] == image_list_digest(dataset)

    calls[0] = 0
    resumed_store = BoxStore(len(dataset))
    resumed = _callback(resumed_store, dataset, num_workers=0)
    _trainer(tmp_path, 3, [resumed], enable_checkpointing=False).fit(
        lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, resumed_store),
        ckpt_path=str(tmp_path / "ckpt" / "epoch=1.ckpt"))
    assert calls[0] == 2  # the test's train_loader made a CCropCollate (1), the restore and the fit (1)
    assert resumed.state_dict()["images"] == image_list_digest(dataset)


@pytest.mark.slow
def test_a_callback_fitted_again_reads_the_files_of_the_new_fit(tmp_path, quadrant_folder):
    """The digest is kept for one fit only: a callback reused for another fit compares the new training files (a
    renamed one is refused, as before), and its checkpoints carry the files as they are now (the digest of the first
    fit was kept for good, so a dataset reordered between fits was saved with its old file list)."""
    images = ImageFolder(str(quadrant_folder))
    store = BoxStore(len(images))
    callback = _callback(store, IndexedDataset(images), num_workers=0)

    def fit(folder_images: ImageFolder) -> None:
        loader = DataLoader(IndexedDataset(folder_images), batch_size=4, drop_last=True,
                            collate_fn=CCropCollate(lightning_simclr.simclr_transform(), store))
        _trainer(tmp_path, 1, [callback], enable_checkpointing=False).fit(lightning_simclr.TinySimCLR(), loader)

    fit(images)
    assert callback.state_dict()["images"] == image_list_digest(images)
    images.samples[0], images.samples[1] = images.samples[1], images.samples[0]  # reordered between fits
    fit(images)
    assert callback.state_dict()["images"] == image_list_digest(images)

    renamed = shutil.copytree(quadrant_folder, tmp_path / "renamed")
    (renamed / "class_0" / "img_00.png").rename(renamed / "class_0" / "zz.png")
    with pytest.raises(ValueError, match=r"localizes other files than the training DataLoader reads \(the same count"):
        fit(ImageFolder(str(renamed)))

"""BoxRefreshCallback in real Lightning runs: logging, checkpoint resume, and DDP on gloo."""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from lightly.data import LightlyDataset
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from ccrop_lightly import BoxRefreshCallback, BoxRefresher, make_refresh_loader
from ccrop_plugins import BoxSets, BoxStore

import lightning_simclr  # registered by tests/lightly/conftest.py

SCRIPT = Path(lightning_simclr.__file__)


def _trainer(tmp_path: Path, max_epochs: int, callbacks: list, **options) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, callbacks=callbacks, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path), **options,
    )


def _callback(store: BoxStore, dataset) -> BoxRefreshCallback:
    return BoxRefreshCallback(store, dataset, input_size=32, warmup_epochs=1, interval=1, batch_size=8, normalize=None)


def test_fit_logs_refresh_and_resume_restores_identical_boxes(tmp_path, quadrant_folder, red_fraction, red_box):
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    n = len(dataset)
    store = BoxStore(n)
    forced = BoxSets.from_lists([torch.tensor([red_box])] * n)
    after_refresh = {}

    def force_red_box(module, epoch: int) -> None:
        # Runs after the callback's refresh and before ModelCheckpoint saves epoch 0.
        if epoch == 0:
            after_refresh["version"] = store.version
            after_refresh["filled"] = bool((store.counts > 0).all())
            store.update(range(n), forced, new_version=False)

    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    trainer = _trainer(
        tmp_path, 2, [_callback(store, dataset), checkpoints], logger=CSVLogger(str(tmp_path), name="logs")
    )
    trainer.fit(lightning_simclr.TinySimCLR(on_epoch_end=force_red_box), lightning_simclr.train_loader(dataset, store))

    # The refresh ran once (after epoch 0, not after the last epoch) and was logged.
    assert after_refresh == {"version": 1, "filled": True} and store.version == 1
    assert trainer.callback_metrics["ccrop/version"] == 1
    assert trainer.callback_metrics["ccrop/images"] == n
    metrics = (Path(trainer.logger.log_dir) / "metrics.csv").read_text()
    assert "ccrop/mean_boxes" in metrics and "ccrop/fallback_fraction" in metrics

    checkpoint = tmp_path / "ckpt" / "epoch=0.ckpt"
    saved = torch.load(checkpoint, weights_only=True)["callbacks"]
    (state,) = [s for key, s in saved.items() if key.startswith("BoxRefreshCallback")]
    assert state["store"]["version"] == 1
    assert torch.equal(state["store"]["boxes"][:, 0], torch.tensor([red_box]).expand(n, 4))

    # Resume in a new Trainer with a fresh, empty store: the boxes come back before the first batch.
    resumed_store = BoxStore(n)
    module = lightning_simclr.TinySimCLR()
    resumed = _trainer(tmp_path, 2, [_callback(resumed_store, dataset)], logger=False, enable_checkpointing=False)
    resumed.fit(module, lightning_simclr.train_loader(dataset, resumed_store), ckpt_path=str(checkpoint))
    assert list(module.seen_views) == [1]  # only epoch 1 ran
    restored = resumed_store.state_dict()
    for key in ("boxes", "scores", "counts"):
        assert torch.equal(restored[key], state["store"][key]), key
    assert restored["version"] == 1
    red = torch.cat([torch.as_tensor(red_fraction(v)) for v in module.seen_views[1]])
    assert len(red) == 2 * (n // 4) * 4 and float(red.min()) >= 0.75


def _ddp_fit(folder: Path, out: Path, *ckpt_path: str) -> list[str]:
    """lightning_simclr.py's 2-epoch fit on 2 gloo ranks (strategy='ddp'); returns each rank's output. The ranks join
    their group through a file in ``out`` (no free port to pick, then lose to another process before they bind it).

    Their temporary files go to a private folder (``TMPDIR``, removed after), not the machine's ``/tmp``: a DataLoader
    worker hands each batch's tensors to its rank through a socket in its ``pymp-*`` folder there, and a cleanup of
    ``/tmp/pymp-*`` by another process while the ranks ran failed a rank at its next batch (the socket gone), or, had
    the folder gone before a worker's first batch, dropped that batch: the rank waited for it, the other in a
    collective, until the time limit (docs/failure_modes.md). Short, so the socket paths fit AF_UNIX's 107 bytes."""
    private = tempfile.mkdtemp(prefix="ccrop-ddp-")
    env = {
        **os.environ, "CCROP_TEST_INIT_METHOD": f"file://{out / 'process_group'}", "WORLD_SIZE": "2",
        "NODE_RANK": "0", "OMP_NUM_THREADS": "1", "TMPDIR": private, "PYTHONPATH": os.pathsep.join(
            [str(SCRIPT.parent), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    ranks = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(folder), str(out), *ckpt_path],
            env={**env, "LOCAL_RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in ranks]
    finally:
        for process in ranks:  # a rank that failed leaves the other waiting in a collective
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(private, ignore_errors=True)
    for rank, (process, output) in enumerate(zip(ranks, outputs)):
        assert process.returncode == 0, f"rank {rank} failed:\n{output[-4000:]}"
    return outputs


@pytest.mark.xdist_group("ddp")  # one xdist worker runs the DDP tests, one at a time
def test_ddp_ranks_end_with_the_store_of_a_one_process_refresh(tmp_path, scenes_folder):
    outputs = _ddp_fit(scenes_folder, tmp_path)
    # The refresh statistics, equal on every rank, were logged unsynced: "It is recommended to use
    # `self.log('ccrop/images', ..., sync_dist=True)`", once per statistic, about code that is not the user's.
    assert not [output for output in outputs if "self.log('ccrop/" in output]
    runs = [json.loads((tmp_path / f"run_rank{r}.json").read_text()) for r in range(2)]
    # The workers' sockets were in _ddp_fit's private folder, out of reach of a cleanup of the machine's /tmp/pymp-*.
    assert Path(runs[0]["tempdir"]).name.startswith("ccrop-ddp-") and runs[0]["tempdir"] != tempfile.gettempdir()
    assert runs[0] == runs[1] == {"world_size": 2, "sampler": "RefreshSampler", "shard": 8,
                                  "tempdir": runs[0]["tempdir"]}
    stores = [torch.load(tmp_path / f"store_rank{r}.pt", weights_only=True) for r in range(2)]
    assert stores[0]["version"] == stores[1]["version"] == 1
    for key in ("boxes", "scores", "counts"):
        assert torch.equal(stores[0][key], stores[1][key]), key

    # One process, no torch.distributed, rank 0's model at the refresh: the same store.
    dataset = LightlyDataset(str(scenes_folder))
    reference = BoxStore(len(dataset))
    backbone = torch.load(tmp_path / "backbone_epoch0.pt", weights_only=False)
    loader = make_refresh_loader(dataset, 32, batch_size=5, normalize=None)
    BoxRefresher(reference, backbone, loader, warmup_epochs=0, interval=1).refresh()
    expected = reference.state_dict()
    assert torch.equal(stores[0]["counts"], expected["counts"])
    assert torch.equal(stores[0]["boxes"], expected["boxes"])
    assert torch.allclose(stores[0]["scores"], expected["scores"], rtol=1e-5, atol=1e-6)
    # Not trivially equal: the scenes give different box sets.
    assert len({tuple(b.tolist()) for b in expected["boxes"][:, 0]}) > 1


@pytest.mark.xdist_group("ddp")  # one xdist worker runs the DDP tests, one at a time
def test_ddp_ranks_resumed_onto_a_grown_dataset_ignore_the_saved_boxes_and_refresh_alike(tmp_path, scenes_folder):
    """A 1-process checkpoint of 16 images resumed by 2 ddp ranks onto the folder with an image added: each rank
    ignores the saved boxes with the warning (was the store's ValueError on every rank), the catch-up refresh runs on
    both, and both end with the same store of 17 images."""
    import shutil

    pl.seed_everything(0)
    dataset = LightlyDataset(str(scenes_folder))
    store = BoxStore(len(dataset))
    _fit(tmp_path / "first", dataset, 2, store=store, callback=_callback(store, dataset))  # refreshed after epoch 0
    grown = shutil.copytree(scenes_folder, tmp_path / "grown")
    first_image = sorted(p for p in grown.rglob("*.png"))[0]
    shutil.copy(first_image, first_image.with_name("zz_copy.png"))
    outputs = _ddp_fit(grown, tmp_path, str(tmp_path / "first" / "ckpt" / "epoch=0.ckpt"))
    for output in outputs:
        assert "boxes were made on a dataset of 16 images, and this one has 17" in output
    stores = [torch.load(tmp_path / f"store_rank{r}.pt", weights_only=True) for r in range(2)]
    for state in stores:
        assert state["num_samples"] == 17 and state["version"] == 1 and bool((state["counts"] > 0).all())
    for key in ("boxes", "scores", "counts"):
        assert torch.equal(stores[0][key], stores[1][key]), key


def test_store_of_another_size_than_dataset_is_refused(quadrant_folder):
    dataset = LightlyDataset(str(quadrant_folder))
    with pytest.raises(ValueError, match=r"box store holds 8 samples but the dataset has 16.*BoxStore\(16\)"):
        _callback(BoxStore(8), dataset)
    with pytest.raises(ValueError, match=r"box store holds 32 samples but the dataset has 16.*BoxStore\(16\)"):
        _callback(BoxStore(32), dataset)  # was accepted silently: half the store never refreshed
    with pytest.raises(TypeError, match=r"dataset must be the training images .*; got int"):
        _callback(BoxStore(16), 16)  # was Python's "object of type 'int' has no len()"


def _removed(folder):
    (folder / "class_0" / "img_00.png").unlink()


def _renamed(folder):
    (folder / "class_0" / "img_00.png").rename(folder / "class_0" / "zz.png")


@pytest.mark.parametrize("change, message", [
    (_removed, "BoxRefreshCallback localizes a dataset of 16 images but the training DataLoader's dataset has 15: "
               "pass the callback the images"),
    (_renamed, r"localizes other files than the training DataLoader reads \(the same count"),
])
def test_a_callback_dataset_other_than_the_training_loaders_is_refused_at_train_start(tmp_path, quadrant_folder,
                                                                                      change, message):
    """The callback localized one folder (16 images) while the training DataLoader read another, through the same
    store and index keys: with an image removed (15), or one renamed (16 and 16, another order), every view after it
    was cut around another image's boxes, silently (the size check passed the renamed one). Refused when training
    starts, before the first batch."""
    import shutil

    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    from ccrop_lightly import CCropCollate, IndexedDataset

    changed = shutil.copytree(quadrant_folder, tmp_path / "changed")
    change(changed)
    dataset, training = IndexedDataset(ImageFolder(str(quadrant_folder))), IndexedDataset(ImageFolder(str(changed)))
    store = BoxStore(len(dataset))
    loader = DataLoader(training, batch_size=4, drop_last=True,
                        collate_fn=CCropCollate(lightning_simclr.simclr_transform(), store))
    trainer = _trainer(tmp_path, 2, [_callback(store, dataset)], logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=message):
        trainer.fit(lightning_simclr.TinySimCLR(), loader)


@pytest.mark.parametrize("subset_side", ["callback", "training"])
def test_a_subset_in_another_order_than_the_training_loaders_dataset_is_refused_at_train_start(
        tmp_path, quadrant_folder, subset_side):
    """BoxRefreshCallback(store, Subset(ds, reversed)) with the training DataLoader over ds (or the reverse) trained
    without a word, localizing image 15 into the store entry image 0 is cropped with: image_list_digest was None for a
    Subset, so the file check never ran. Now a Subset (and a ConcatDataset) is digested by its files, in its order."""
    from torch.utils.data import ConcatDataset, Subset

    from ccrop_lightly.callback import image_list_digest

    dataset = LightlyDataset(str(quadrant_folder))
    names = dataset.get_filenames()
    reversed_ = Subset(dataset, list(range(15, -1, -1)))
    one_by_one = ConcatDataset([Subset(dataset, [i]) for i in range(15, -1, -1)])
    assert image_list_digest(reversed_) == image_list_digest(one_by_one)
    assert image_list_digest(Subset(dataset, range(16))) == image_list_digest(dataset) != image_list_digest(reversed_)
    assert names[0] == "class_0/img_00.png"
    ours, theirs = (reversed_, dataset) if subset_side == "callback" else (dataset, reversed_)
    store = BoxStore(16)
    trainer = _trainer(tmp_path, 2, [_callback(store, ours)], logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=r"localizes other files than the training DataLoader reads \(the same count, "
                                         r"16, but other names or another order\)"):
        trainer.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(theirs, store))
    assert store.version == 0


def test_missing_backbone_attribute_is_named(tmp_path, quadrant_folder):
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    callback = BoxRefreshCallback(store, dataset, input_size=32, warmup_epochs=1, interval=1, backbone="encoder")
    trainer = _trainer(tmp_path, 1, [callback], logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=r"no nn.Module attribute 'encoder'.*backbone, projection_head"):
        trainer.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, store))


def test_named_stage_and_the_views_settings_reach_the_refresh(tmp_path, quadrant_folder):
    # issue 9: the stage is a callback option; issue 12: the views' normalisation and size come from
    # the training DataLoader's CCropCollate, so a custom normalize= cannot be forgotten.
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    callback = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1, stages="8", batch_size=8)
    trainer = _trainer(tmp_path, 2, [callback], logger=False, enable_checkpointing=False)
    trainer.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, store))
    assert callback.refresher.feature_fn.stages == ("8",) and store.version == 1
    images = callback.refresher.loader.dataset
    assert images.size == (32, 32) and images.normalize is None  # the collate's CCropSimCLRTransform

    wrong = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1,
                               normalize={"mean": [0.5] * 3, "std": [0.5] * 3})
    trainer = _trainer(tmp_path, 1, [wrong], logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="normalize=.* differs from the training views' normalisation None"):
        trainer.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, store))


def test_a_callback_pickled_with_its_store_as_ddp_spawn_sends_it_keeps_its_defaults(tmp_path, quadrant_folder):
    # strategy="ddp_spawn" pickles the callbacks into each rank: the "normalize not given" default must arrive as
    # itself (an object() sentinel arrived as another object: "'object' object is not subscriptable" at train start).
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    callback = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1, batch_size=8)
    callback, store = pickle.loads(pickle.dumps((callback, store)))
    trainer = _trainer(tmp_path, 2, [callback], logger=False, enable_checkpointing=False)
    trainer.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, store))
    assert store.version == 1 and callback.refresher.loader.dataset.normalize is None  # the collate's transform's


def test_bad_refresh_options_fail_when_the_callback_is_made(quadrant_folder):
    dataset = LightlyDataset(str(quadrant_folder))
    with pytest.raises(ValueError, match="unknown heatmap 'sums'; available: .*channel_sum"):
        BoxRefreshCallback(BoxStore(len(dataset)), dataset, warmup_epochs=1, interval=1, heatmap="sums")
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\) or be one of mean, otsu; got 2"):
        BoxRefreshCallback(BoxStore(len(dataset)), dataset, warmup_epochs=1, interval=1, threshold=2)
    with pytest.raises(ValueError, match="give layer or stages, not both"):
        BoxRefreshCallback(BoxStore(len(dataset)), dataset, warmup_epochs=1, interval=1, layer="1", stages="1")


@pytest.mark.parametrize("option, value, error, message", [
    ("batch_size", 0, ValueError, "batch_size of the refresh loader must be an integer >= 1; got 0"),
    ("batch_size", -4, ValueError, "batch_size of the refresh loader must be an integer >= 1; got -4"),
    ("batch_size", 8.0, ValueError, "batch_size of the refresh loader must be an integer >= 1; got 8.0"),
    ("batch_size", True, ValueError, "batch_size of the refresh loader must be an integer >= 1; got True"),
    ("num_workers", -1, ValueError,
     r"num_workers of the refresh loader must be an integer >= 0 or None \(the default\); got -1"),
    ("progress", "no", TypeError, "progress must be True or False; got 'no'"),
    ("transform", "simclr", TypeError, "transform must be a CCropMultiViewTransform .*; got str"),
    ("normalize", {"mean": [0.5] * 3}, ValueError, r"normalize must be a dict with 'mean' and 'std'.*\(no 'std'\)"),
])
def test_bad_refresh_loader_settings_fail_when_the_callback_is_made(quadrant_folder, option, value, error, message):
    """They reached the refresh loader only when training started: torch's DataLoader message (``batch_size should
    be a positive integer value``), naming neither the callback nor the argument; a text progress was on."""
    dataset = LightlyDataset(str(quadrant_folder))
    with pytest.raises(error, match=message):
        BoxRefreshCallback(BoxStore(len(dataset)), dataset, warmup_epochs=1, interval=1, **{option: value})


def test_numpy_integer_loader_sizes_are_taken_as_ints(quadrant_folder):
    """batch_size=np.int64(8) was "batch_size of the refresh loader must be an integer >= 1; got 8"."""
    import numpy as np

    dataset = LightlyDataset(str(quadrant_folder))
    callback = BoxRefreshCallback(BoxStore(16), dataset, warmup_epochs=1, interval=1, batch_size=np.int64(8),
                                  num_workers=np.int32(0))
    assert (callback.batch_size, callback.num_workers) == (8, 0) and type(callback.batch_size) is int


@pytest.mark.parametrize("last, error", [("x", TypeError), (1.5, TypeError), (True, TypeError), (-2, ValueError)])
def test_a_state_whose_last_refresh_epoch_is_no_epoch_is_refused_at_load(quadrant_folder, last, error):
    """'x' was accepted and failed in the catch-up refresh with "can only concatenate str (not "int") to str"; 1.5
    silently skipped the refresh due."""
    import numpy as np

    dataset = LightlyDataset(str(quadrant_folder))
    callback = _callback(BoxStore(16), dataset)
    state = {**callback.state_dict(), "last_refresh_epoch": last}
    with pytest.raises(error, match=rf"BoxRefreshCallback: the state's last_refresh_epoch must be None \(unknown\) or "
                                    rf"an integer >= -1 .*; got {re.escape(repr(last))} "):
        callback.load_state_dict(state)
    callback.load_state_dict({**state, "last_refresh_epoch": np.int64(3)})
    assert callback.state_dict()["last_refresh_epoch"] == 3 and type(callback._restored_last_refresh) is int


def _fit(tmp_path, dataset, epochs, *, callback=None, ckpt_path=None, store=None):
    """``epochs`` of TinySimCLR, a checkpoint per epoch in tmp_path/ckpt; returns the module."""
    store = store if store is not None else BoxStore(len(dataset))
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    module = lightning_simclr.VersionAtEpochStart(store)
    trainer = _trainer(tmp_path, epochs, [c for c in (callback, checkpoints) if c is not None], logger=False)
    trainer.fit(module, lightning_simclr.train_loader(dataset, store), ckpt_path=ckpt_path)
    return module


def test_a_resumed_store_that_lags_the_schedule_is_refreshed_before_the_first_batch(
        tmp_path, quadrant_folder, caplog, monkeypatch, red_fraction, red_box):
    """A resumed run catches up on a refresh its checkpoint lacks: one saved without the callback (ContrastiveCrop
    turned on later), and one whose run ended before a refresh that the resumed, longer run has passed. Before,
    both cropped like RandomResizedCrop (or from stale boxes) until the next scheduled refresh, silently.
    Lightning makes the epoch's batches (2 workers x 2, the whole epoch here) before on_train_start: the catch-up
    refresh makes them again, so every view of the resumed epoch is cut around the new box (forced to red here)."""
    import ccrop_lightly.refresher

    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    real_refresh = ccrop_lightly.refresher.refresh_boxes

    def refresh_to_red(feature_fn, loader, store, **options):
        stats = real_refresh(feature_fn, loader, store, **options)
        store.update(range(len(store)), BoxSets.from_lists([torch.tensor([red_box])] * len(store)), new_version=False)
        return stats

    monkeypatch.setattr(ccrop_lightly.refresher, "refresh_boxes", refresh_to_red)

    # A plain checkpoint (no callback) after 2 epochs; resumed with warm-up 1, interval 2: refresh due after epoch 0.
    _fit(tmp_path / "plain", dataset, 2)
    store = BoxStore(len(dataset))
    callback = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=2, batch_size=8)
    with caplog.at_level("INFO", logger="ccrop_lightly"):
        module = _fit(tmp_path / "plain_resumed", dataset, 3, callback=callback, store=store,
                      ckpt_path=str(tmp_path / "plain" / "ckpt" / "epoch=1.ckpt"))
    assert module.versions == {2: 1} and bool((store.counts > 0).all())
    red = torch.cat([torch.as_tensor(red_fraction(v)) for v in module.seen_views[2]])
    assert len(red) == 2 * len(dataset) and float(red.min()) >= 0.75
    assert "resumed at epoch 2, but the store (version 0) lacks the refresh due after epoch 0" in caplog.text

    # A 2-epoch run refreshes after epoch 0 only (never after its last); resumed to 3 epochs, the refresh after
    # epoch 1 is due: the store catches up (version 2), as a 3-epoch run's would be.
    store = BoxStore(len(dataset))
    _fit(tmp_path / "short", dataset, 2, store=store,
         callback=BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1, batch_size=8))
    assert store.version == 1
    store = BoxStore(len(dataset))
    callback = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1, batch_size=8)
    module = _fit(tmp_path / "longer", dataset, 3, callback=callback, store=store,
                  ckpt_path=str(tmp_path / "short" / "ckpt" / "epoch=1.ckpt"))
    assert module.versions == {2: 2}

    # A checkpoint that holds the boxes of the schedule is not refreshed again (the existing resume test checks
    # the boxes are identical): resumed within the same 2 epochs, nothing is due.
    store = BoxStore(len(dataset))
    callback = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1, batch_size=8)
    module = _fit(tmp_path / "same", dataset, 2, callback=callback, store=store,
                  ckpt_path=str(tmp_path / "short" / "ckpt" / "epoch=0.ckpt"))
    assert module.versions == {1: 1}


def test_resumed_boxes_of_another_list_of_images_are_ignored_and_made_afresh(tmp_path, quadrant_folder, red_box):
    """ckpt_path into a folder of the same number of images but other files (one renamed: the order shifts) would
    give every box to another image, silently (the store checks only the count): the boxes are ignored with a
    warning and, a refresh being due before the resumed epoch, made afresh. A moved folder keeps its boxes."""
    import shutil

    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    n = len(dataset)
    store = BoxStore(n)
    forced = BoxSets.from_lists([torch.tensor([red_box])] * n)

    def force_red_box(module, epoch: int) -> None:  # after the refresh of epoch 0, before its checkpoint
        if epoch == 0:
            store.update(range(n), forced, new_version=False)

    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    trainer = _trainer(tmp_path, 2, [_callback(store, dataset), checkpoints], logger=False)
    trainer.fit(lightning_simclr.TinySimCLR(on_epoch_end=force_red_box), lightning_simclr.train_loader(dataset, store))
    red = torch.tensor([red_box]).expand(n, 4)

    def resume(folder: Path) -> BoxStore:
        images = LightlyDataset(str(folder))
        resumed_store = BoxStore(n)
        resumed = _trainer(tmp_path, 2, [_callback(resumed_store, images)], logger=False, enable_checkpointing=False)
        resumed.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(images, resumed_store),
                    ckpt_path=str(tmp_path / "ckpt" / "epoch=0.ckpt"))
        return resumed_store

    moved = resume(shutil.copytree(quadrant_folder, tmp_path / "moved"))
    assert torch.equal(moved.boxes[:, 0], red)

    renamed = shutil.copytree(quadrant_folder, tmp_path / "renamed")
    (renamed / "class_0" / "img_00.png").rename(renamed / "class_0" / "img_99.png")
    with pytest.warns(UserWarning, match=r"boxes were made on another list of images \(the same count, 16"):
        store = resume(renamed)
    assert store.version == 1 and bool((store.counts > 0).all())  # refreshed when training started
    assert not torch.equal(store.boxes[:, 0], red)


def test_resumed_boxes_of_a_dataset_of_another_size_are_ignored_and_made_afresh(tmp_path, quadrant_folder):
    """ckpt_path into a folder with an image added (or removed) stopped with the store's ValueError while Lightning
    restored the callback's state; the same count of other files went on. Both now warn, naming the two sizes,
    ignore the saved boxes and refresh when training starts (a refresh being due before the resumed epoch)."""
    import shutil

    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    _fit(tmp_path / "first", dataset, 2, store=store, callback=_callback(store, dataset))
    grown = shutil.copytree(quadrant_folder, tmp_path / "grown")
    shutil.copy(grown / "class_0" / "img_00.png", grown / "class_0" / "img_99.png")
    shrunk = shutil.copytree(quadrant_folder, tmp_path / "shrunk")
    (shrunk / "class_0" / "img_00.png").unlink()
    for folder, size in ((grown, 17), (shrunk, 15)):
        images = LightlyDataset(str(folder))
        resumed = BoxStore(len(images))
        with pytest.warns(UserWarning, match=rf"boxes were made on a dataset of 16 images, and this one has {size} "
                                             r"\(images added or removed\?\); ignored"):
            module = _fit(tmp_path / folder.name, images, 2, store=resumed, callback=_callback(resumed, images),
                          ckpt_path=str(tmp_path / "first" / "ckpt" / "epoch=0.ckpt"))
        assert module.versions == {1: 1} and bool((resumed.counts > 0).all())  # refreshed before epoch 1's batches


def test_a_callback_and_a_collate_with_two_stores_is_refused_at_train_start(tmp_path, quadrant_folder):
    """The callback refreshed one BoxStore while the training DataLoader's CCropCollate read another (BoxStore made
    twice, e.g. once in a DataModule): the refresh logged its boxes but every view stayed RandomResizedCrop's,
    silently, for the whole run. Refused when training starts, before the first batch."""
    dataset = LightlyDataset(str(quadrant_folder))
    callback = _callback(BoxStore(len(dataset)), dataset)
    trainer = _trainer(tmp_path, 2, [callback], logger=False, enable_checkpointing=False)
    loader = lightning_simclr.train_loader(dataset, BoxStore(len(dataset)))
    with pytest.raises(ValueError, match="refreshes another box store than the one the training DataLoader's "
                                         "CCropCollate reads .*BoxStore made twice"):
        trainer.fit(lightning_simclr.TinySimCLR(), loader)


class _ViewsAsTuple:
    """A collate function of one's own that calls a CCropCollate, then reshapes the batch (the views as a tuple)."""

    def __init__(self, ccrop) -> None:
        self.ccrop = ccrop

    def __call__(self, batch):
        return _views_as_tuple(batch, self.ccrop)


def _views_as_tuple(batch, ccrop):
    views, targets, keys = ccrop(batch)
    return tuple(views), targets, keys


def _closure(ccrop):
    def collate(batch):
        return _views_as_tuple(batch, ccrop)

    return collate


def _global(ccrop):
    namespace = {"ccrop": ccrop, "reshape": _views_as_tuple}  # a script's module: ccrop = CCropCollate(...) at top
    exec("def collate(batch):\n    return reshape(batch, ccrop)", namespace)
    return namespace["collate"]


_WRAPPERS = {
    "attribute": _ViewsAsTuple,
    "partial": lambda ccrop: functools.partial(_views_as_tuple, ccrop=ccrop),
    "closure": _closure,
    "global": _global,
}


@pytest.mark.parametrize("form", list(_WRAPPERS))
def test_a_collate_fn_of_ones_own_that_calls_the_ccrop_collate_is_taken_as_it(tmp_path, quadrant_folder, form):
    """docs/lightly.md calls a collate_fn of one's own that calls a CCropCollate of the store fine, but the callback
    warned "collate_fn is not a CCropCollate ... ContrastiveCrop inactive" (and, without transform= or input_size=,
    refused to start: "cannot tell the refresh resolution"). The CCropCollate it holds (an attribute, a
    functools.partial argument, a closure variable, a global it names) now counts as the training collate: its size
    and normalisation reach the refresh. One of another store is refused as a direct one is."""
    from torch.utils.data import DataLoader

    from ccrop_lightly import CCropCollate

    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))

    def loader(ccrop_store):
        ccrop = CCropCollate(lightning_simclr.simclr_transform(), ccrop_store, dataset=dataset)
        return DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True, collate_fn=_WRAPPERS[form](ccrop))

    callback = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1, batch_size=8)  # no size: the collate's
    trainer = _trainer(tmp_path, 2, [callback], logger=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not a CCropCollate")
        trainer.fit(lightning_simclr.TinySimCLR(), loader(store))
    images = callback.refresher.loader.dataset
    assert images.size == (32, 32) and images.normalize is None  # simclr_transform's, read through the wrapper
    assert store.version == 1 and bool((store.counts > 0).all())

    callback = BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1, batch_size=8)
    trainer = _trainer(tmp_path, 2, [callback], logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="refreshes another box store than the one the training DataLoader's "
                                         "CCropCollate reads .*BoxStore made twice"):
        trainer.fit(lightning_simclr.TinySimCLR(), loader(BoxStore(len(dataset))))


def test_fit_called_again_to_continue_a_finished_run_makes_the_refresh_its_last_epoch_skipped(
        tmp_path, quadrant_folder, recwarn):
    """trainer.fit again on the same Trainer and callback, fit_loop.max_epochs raised, continues a finished run: the
    first fit (2 epochs) made no refresh after its last epoch, which the 3-epoch schedule has due before epoch 2. The
    new refresher forgot the last refresh epoch, so epoch 2 cropped from boxes one interval old, silently; it now
    catches up as a checkpoint resume does. A checkpoint loaded by the continued fit (ckpt_path=) still tells its own
    last refresh, and a new Trainer that reuses the callback from epoch 0 starts over without the unknown-age warning
    (it warns that its warm-up crops around the boxes the store already holds)."""
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    callback = _callback(store, dataset)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    trainer = _trainer(tmp_path, 2, [callback, checkpoints], logger=False)
    module, loader = lightning_simclr.VersionAtEpochStart(store), lightning_simclr.train_loader(dataset, store)
    trainer.fit(module, loader)
    assert module.versions == {0: 0, 1: 1}
    trainer.fit_loop.max_epochs = 3
    trainer.fit(module, loader)
    assert module.versions == {0: 0, 1: 1, 2: 2}  # was {..., 2: 1}: the refresh due after epoch 1 never ran

    # Continued from the checkpoint after epoch 0 (its last refresh: after epoch 0): nothing is due before epoch 1.
    trainer.fit_loop.max_epochs = 2
    trainer.fit(module, loader, ckpt_path=str(tmp_path / "ckpt" / "epoch=0.ckpt"))
    assert module.versions[1] == 1 and callback.refresher.last_refresh_epoch == 0

    trainer = _trainer(tmp_path, 1, [callback], logger=False, enable_checkpointing=False)
    trainer.fit(module, loader)
    assert module.versions[0] == 1 and store.version == 1
    assert not [w for w in recwarn if "at or past the epoch about to start" in str(w.message)]
    assert [w for w in recwarn if "starts a new run at epoch 0, but its box store already holds" in str(w.message)]


def test_resumed_box_sets_larger_than_the_store_are_cut_with_a_log_line(tmp_path, quadrant_folder, caplog):
    """ckpt_path with a store of smaller max_boxes keeps the best boxes of each saved set until the next refresh;
    an INFO line says so (was silent)."""
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))  # max_boxes 4
    _fit(tmp_path / "four", dataset, 2, store=store, callback=_callback(store, dataset))
    small = BoxStore(len(dataset), max_boxes=1)
    with caplog.at_level("INFO", logger="ccrop_lightly"):
        _fit(tmp_path / "one", dataset, 2, store=small, callback=_callback(small, dataset),
             ckpt_path=str(tmp_path / "four" / "ckpt" / "epoch=0.ckpt"))
    assert small.version == 1
    assert "the checkpoint's box sets hold up to 4 boxes per image; this store keeps 1" in caplog.text


def test_max_steps_ends_the_schedule_no_refresh_after_the_last_step(tmp_path, quadrant_folder):
    # 16 images, batches of 4 with drop_last: 4 steps an epoch; max_steps=10 ends the run in epoch 2. The refreshes
    # after epochs 0 and 1 run; none after the partial epoch 2 (was a third pass, whose boxes no batch would use).
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    callback = _callback(store, dataset)
    trainer = pl.Trainer(max_steps=10, accelerator="cpu", devices=1, callbacks=[callback], enable_progress_bar=False,
                         enable_model_summary=False, logger=False, enable_checkpointing=False,
                         default_root_dir=str(tmp_path))
    trainer.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, store))
    assert trainer.global_step == 10
    assert store.version == 2


def test_max_steps_within_the_warm_up_warns_naming_max_steps(tmp_path, quadrant_folder):
    # max_steps=3 ends the run inside epoch 0: the schedule (first refresh after epoch 0) never refreshes. Was no
    # warning, and a refresh pass after the last step.
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", devices=1, callbacks=[_callback(store, dataset)],
                         enable_progress_bar=False, enable_model_summary=False, logger=False,
                         enable_checkpointing=False, default_root_dir=str(tmp_path))
    message = r"never refreshes .* max_steps=3 \(4 batches per epoch\) ends the run in epoch 0"
    with pytest.warns(UserWarning, match=message):
        trainer.fit(lightning_simclr.TinySimCLR(), lightning_simclr.train_loader(dataset, store))
    assert trainer.global_step == 3 and store.version == 0


class _StepsEveryOtherBatch(lightning_simclr.TinySimCLR):
    """Manual optimization stepping once per two batches (Lightning's manual gradient accumulation)."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_index)
        self.manual_backward(loss / 2)
        if batch_index % 2 == 1:
            optimizer = self.optimizers()
            optimizer.step()
            optimizer.zero_grad()
        return loss


def test_max_steps_of_manual_optimization_ends_the_run_where_its_steps_do(tmp_path, quadrant_folder):
    # 4 batches an epoch, an optimizer step every 2nd: max_steps=4 ends the run after epoch 1. The refresh after
    # epoch 0 runs (no false "never refreshes" from counting a step per batch), none after epoch 1.
    pl.seed_everything(0)
    dataset = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(dataset))
    trainer = pl.Trainer(max_steps=4, accelerator="cpu", devices=1, callbacks=[_callback(store, dataset)],
                         enable_progress_bar=False, enable_model_summary=False, logger=False,
                         enable_checkpointing=False, default_root_dir=str(tmp_path))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*never refreshes")
        trainer.fit(_StepsEveryOtherBatch(), lightning_simclr.train_loader(dataset, store))
    assert trainer.global_step == 4 and store.version == 1

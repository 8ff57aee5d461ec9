"""Faults that used to be silent or lost work (issue 12): load_from boxes, a failing refresh, a run
that never refreshes, an unreadable image in the refresh pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile

import ccrop_mm.hook
import ccrop_mm.refresh_pass
from ccrop_mm.extraction import ExtractionDataset, extraction_loader
from ccrop_plugins import BoxSets, BoxStore


def _quick(setup, folder, work_dir, name, epochs=1, **hook):
    """The small config without DataLoader workers (these tests look at the hook, not at workers)."""
    cfg = setup.small_config("mmpretrain", folder, work_dir, **hook)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=epochs)
    cfg.log_level = "INFO"
    cfg.experiment_name = name
    cfg.custom_hooks.append(dict(type="CropRecorderHook", force=False))
    return cfg


def _box_checkpoint(path: Path, num_samples: int, version: int = 3) -> Path:
    """A load_from checkpoint made "on another dataset": no weights, boxes in every sample's top-left corner."""
    store = BoxStore(num_samples, 4)
    boxes = torch.tensor([0.0, 0.0, 0.25, 0.25]).repeat(num_samples, 1, 1)
    store.update(torch.arange(num_samples), BoxSets(boxes, torch.ones(num_samples, 1),
                                                    torch.ones(num_samples, dtype=torch.int64),
                                                    torch.zeros(num_samples, dtype=torch.bool)))
    state = {**store.state_dict(), "version": version}
    torch.save({"state_dict": {}, "meta": {"epoch": 5, "iter": 10}, "ccrop": {"box_store": state}}, path)
    return path


def _log(runner) -> str:
    files = [h.baseFilename for h in runner.logger.handlers if hasattr(h, "baseFilename")]
    return "".join(Path(f).read_text() for f in files)


def _recorder(runner):
    return next(h for h in runner.hooks if type(h).__name__ == "CropRecorderHook")


@pytest.mark.slow
def test_load_from_loads_weights_not_another_datasets_boxes(setup, train, coordinate_folder, tmp_path):
    same_size = _box_checkpoint(tmp_path / "same.pth", setup.NUM_IMAGES)
    # warm-up 1 of a 1-epoch run: also the "never refreshes" warning
    cfg = _quick(setup, coordinate_folder, tmp_path / "a", "load_same")
    cfg.load_from = str(same_size)
    runner = train(cfg)
    state = _recorder(runner).state_before_train
    assert state["version"] == 0 and int(state["counts"].sum()) == 0  # warm-up starts afresh
    log = _log(runner)
    assert "load_from checkpoint holds boxes of 16 images (version 3); ignored" in log
    assert "load_boxes=True" in log
    assert "never refreshes in this run: warmup_epochs=1, interval=1 and 1 epochs" in log

    # A checkpoint from a dataset of another size no longer blocks load_from.
    cfg = _quick(setup, coordinate_folder, tmp_path / "b", "load_other_size")
    cfg.load_from = str(_box_checkpoint(tmp_path / "other.pth", 50))
    assert _recorder(train(cfg)).state_before_train["version"] == 0

    # Asked for, the boxes are restored.
    cfg = _quick(setup, coordinate_folder, tmp_path / "c", "load_boxes", load_boxes=True)
    cfg.load_from = str(same_size)
    state = _recorder(train(cfg)).state_before_train
    assert state["version"] == 3 and bool((state["counts"] == 1).all())


@pytest.mark.slow
def test_a_failing_refresh_keeps_its_checkpoint_and_resume_redoes_it(
    setup, train, coordinate_folder, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise OSError("disk gone")

    cfg = _quick(setup, coordinate_folder, tmp_path / "run", "broken_refresh", epochs=2)
    with monkeypatch.context() as patch:
        patch.setattr(ccrop_mm.refresh_pass, "refresh_boxes", broken)
        with pytest.raises(
            RuntimeError, match=r"ContrastiveCrop refresh failed \(OSError\('disk gone'\)\).*resume"
        ) as error:
            train(cfg)
    assert isinstance(error.value.__cause__, OSError)
    checkpoint = tmp_path / "run" / "epoch_1.pth"  # saved although the refresh after epoch 1 raised
    saved = torch.load(checkpoint, weights_only=False)["ccrop"]
    assert saved["refresh_pending"] and saved["box_store"]["version"] == 0

    cfg = _quick(setup, coordinate_folder, tmp_path / "resumed", "resumed_refresh", epochs=2)
    cfg.resume, cfg.load_from = True, str(checkpoint)
    runner = train(cfg)
    assert _recorder(runner).state_before_train["version"] == 1  # the pending refresh ran before epoch 2
    assert [b["version"] for b in _recorder(runner).batches] == [1, 1]


def test_an_unreadable_image_in_the_refresh_pass_is_named(tmp_path):
    good = tmp_path / "good.jpg"
    import cv2

    cv2.imwrite(str(good), np.full((16, 16, 3), 100, np.uint8))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:120])

    class Files:
        def __len__(self):
            return 2

        def get_data_info(self, index):
            return {"img_path": str([good, truncated][index]), "sample_idx": index}

    for backend in ("pillow", "cv2"):  # pillow: "Truncated File Read"; cv2: an assertion
        images = ExtractionDataset(Files(), [LoadImageFromFile(imdecode_backend=backend)], (8, 8))
        with pytest.raises((OSError, RuntimeError), match=rf"cannot load {truncated} \(sample 1\)"):
            list(extraction_loader(images, batch_size=2, num_workers=0))


def test_the_core_warnings_of_a_refresh_reach_the_run_log_once():
    """1x1 feature maps: every box is the whole image. The core warns; the hook writes it to the run's
    log (with the fallback share in the refresh line), once per refresh, not on stderr as well."""
    import logging
    import warnings
    from types import SimpleNamespace

    from mmengine.logging import MessageHub, MMLogger
    from torch import nn

    from ccrop_mm import ContrastiveCropHook

    class Pooled(nn.Module):  # a backbone whose last map is 1x1
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.conv(x).mean((2, 3), keepdim=True)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.full((3, 8, 8), index * 40, dtype=torch.uint8), index

    logger = MMLogger.get_instance("ccrop_test_core_warnings", log_level="INFO")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    hook = ContrastiveCropHook(localizer="components")
    hook.store, hook._images, hook._features = BoxStore(4, 4), Images(), Pooled()
    model = nn.Module()
    model.backbone = hook._features
    runner = SimpleNamespace(model=model, train_dataloader=SimpleNamespace(batch_size=2, num_workers=0),
                             message_hub=MessageHub.get_instance("ccrop_test_core_warnings"), logger=logger)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes to stderr
        hook.refresh(runner)
    messages = [r.getMessage() for r in records]
    assert any("fallback_fraction=1" in m for m in messages)
    warned = [m for m in messages if m.startswith("ContrastiveCrop refresh: refresh_boxes:")]
    assert len(warned) == len(set(warned)) >= 1 and any("1x1" in m for m in warned)


@pytest.mark.slow
def test_a_failing_refresh_in_an_iteration_loop_keeps_its_checkpoint(
    setup, train, coordinate_folder, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise ValueError("bad heatmap")

    cfg = _quick(setup, coordinate_folder, tmp_path, "broken_refresh_iterations", warmup_iters=2, interval=2)
    del cfg.custom_hooks[0]["warmup_epochs"]
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=4)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=2, by_epoch=False)
    monkeypatch.setattr(ccrop_mm.refresh_pass, "refresh_boxes", broken)
    with pytest.raises(RuntimeError, match=r"refresh failed \(ValueError\('bad heatmap'\)\)"):
        train(cfg)
    saved = torch.load(tmp_path / "iter_2.pth", weights_only=False)
    assert saved["meta"]["iter"] == 2 and saved["ccrop"]["refresh_pending"]


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["epoch", "iteration"])
def test_a_longer_run_resumed_from_a_finished_one_catches_up_on_the_skipped_refresh(
        loop, setup, train, coordinate_folder, tmp_path):
    """A run of 2 epochs (4 iterations) skips the refresh after its last step; resumed with 3 epochs (6 iterations),
    that refresh is due before the resumed steps, as in an uninterrupted 3-epoch run: it runs before the first
    iteration (was: the resumed steps cropped from the boxes one interval old, silently)."""
    def config(name, steps):
        cfg = _quick(setup, coordinate_folder, tmp_path / name, f"{loop}_{name}")
        if loop == "iteration":
            cfg.custom_hooks[0].update(warmup_epochs=2, interval=2)
            cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2 * steps)
            # mmengine's advice for iteration loops; a DefaultSampler's end (2 batches) costs a 2 s sleep per restart
            cfg.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=True)
            cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=2, by_epoch=False)
        else:
            cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=steps)
        return cfg

    short = train(config("short", 2))
    assert [b["version"] for b in _recorder(short).batches] == [0, 0, 1, 1]  # no refresh after the last step

    cfg = config("longer", 3)
    cfg.resume, cfg.load_from = True, str(tmp_path / "short" / ("iter_4.pth" if loop == "iteration" else "epoch_2.pth"))
    longer = train(cfg)
    assert [b["version"] for b in _recorder(longer).batches] == [2, 2]  # an uninterrupted run's: [0, 0, 1, 1, 2, 2]
    assert f"lack the refresh due after {loop} {4 if loop == 'iteration' else 2}" in _log(longer)
    saved = torch.load(
        tmp_path / "short" / ("iter_4.pth" if loop == "iteration" else "epoch_2.pth"), weights_only=False
    )
    # refreshed after epoch 1 (warm-up 1, interval 1) / iteration 2 (warm-up 2, interval 2)
    assert saved["ccrop"]["refreshed_after"] == (2 if loop == "iteration" else 1)
    assert saved["ccrop"]["box_store"]["version"] == 1

    # Resumed within its own length, a checkpoint that holds its schedule's boxes is not refreshed again.
    cfg = config("same", 2)
    cfg.resume, cfg.load_from = True, str(tmp_path / "short" / ("iter_2.pth" if loop == "iteration" else "epoch_1.pth"))
    assert [b["version"] for b in _recorder(train(cfg)).batches] == [1, 1]


@pytest.mark.slow
def test_resumed_boxes_of_another_list_of_images_are_ignored_and_made_afresh(setup, train, coordinate_folder, tmp_path):
    """A resume into a folder of the same number of images but other files (one renamed: the order shifts) would
    give every box to another image, silently (the store checks only the count): the boxes are ignored with a
    warning and, a refresh being due before the resumed step, made afresh. A moved folder keeps its boxes."""
    import shutil

    cfg = _quick(setup, coordinate_folder, tmp_path / "run", "digest_first", epochs=2)
    cfg.custom_hooks[-1]["force"] = True  # the checkpoint of epoch 1 holds FORCED_BOXES on even samples
    train(cfg)
    checkpoint = tmp_path / "run" / "epoch_1.pth"

    def resume(folder, name):
        cfg = _quick(setup, folder, tmp_path / name, name, epochs=2)
        cfg.resume, cfg.load_from = True, str(checkpoint)
        runner = train(cfg)
        return _recorder(runner).state_before_train, _log(runner)

    moved = shutil.copytree(coordinate_folder, tmp_path / "moved")
    state, log = resume(moved, "digest_moved")
    assert torch.equal(state["boxes"][0, :2], setup.FORCED_BOXES) and "another list of images" not in log

    renamed = shutil.copytree(coordinate_folder, tmp_path / "renamed")
    (renamed / "a" / "00.png").rename(renamed / "a" / "99.png")
    state, log = resume(renamed, "digest_renamed")
    assert "the checkpoint's boxes were made on another list of images (the same count, 16" in log
    assert state["version"] == 1 and bool((state["counts"] > 0).all())  # refreshed before the first iteration
    assert not torch.equal(state["boxes"][0, :2], setup.FORCED_BOXES)
    assert torch.load(checkpoint, weights_only=False)["ccrop"]["images"] is not None


def test_a_dataset_of_pathlib_image_paths_has_an_images_digest(tmp_path):
    """A custom dataset whose img_path are pathlib paths had no digest (None: boxes of other files not checked)."""
    class Images:
        def __init__(self, names, kind):
            self.paths = [kind(tmp_path / "data" / name) for name in names]

        def __len__(self):
            return len(self.paths)

        def get_data_info(self, index):
            return {"img_path": self.paths[index], "sample_idx": index}

    digest = ccrop_mm.hook.image_list_digest
    assert digest(Images(["a.png", "b.png"], Path)) == digest(Images(["a.png", "b.png"], str)) is not None
    assert digest(Images(["a.png", "b.png"], Path)) != digest(Images(["a.png", "c.png"], Path))


@pytest.mark.slow
def test_resumed_boxes_of_a_dataset_of_another_size_are_ignored_and_made_afresh(
    setup, train, coordinate_folder, tmp_path
):
    """A resume into a folder with an image added (or removed) stopped with the store's ValueError in before_train,
    while the same count of other files went on: both now warn, naming the two sizes, ignore the saved boxes and,
    a refresh being due before the resumed step, make them afresh at the new size. Also with load_boxes=True."""
    import shutil

    cfg = _quick(setup, coordinate_folder, tmp_path / "run", "size_first", epochs=2)
    train(cfg)
    checkpoint = tmp_path / "run" / "epoch_1.pth"
    grown = shutil.copytree(coordinate_folder, tmp_path / "grown")
    shutil.copy(grown / "a" / "00.png", grown / "a" / "99.png")
    shrunk = shutil.copytree(coordinate_folder, tmp_path / "shrunk")
    (shrunk / "a" / "00.png").unlink()
    for folder, size, hook in ((grown, 17, {}), (shrunk, 15, {}), (grown, 17, {"load_boxes": True})):
        cfg = _quick(setup, folder, tmp_path / f"{folder.name}{len(hook)}", f"size_{folder.name}{len(hook)}", epochs=2,
                     **hook)
        cfg.load_from = str(checkpoint)
        cfg.resume = not hook
        runner = train(cfg)
        state, log = _recorder(runner).state_before_train, _log(runner)
        assert f"boxes were made on a dataset of 16 images, and this one has {size} (images added or removed?); " \
               "ignored" in log
        if hook:  # load_from: no step done, nothing due before the first; warm-up starts afresh
            assert state["version"] == 0 and len(state["counts"]) == size
        else:  # refreshed before the first iteration, at the new size
            assert state["version"] == 1 and len(state["counts"]) == size and bool((state["counts"] > 0).all())
            assert "the checkpoint's boxes were ignored (see above); the refresh due after epoch 1 runs now" in log


@pytest.mark.slow
def test_resumed_box_sets_larger_than_max_boxes_are_cut_with_a_log_line(setup, train, coordinate_folder, tmp_path):
    """A run resumed with a smaller max_boxes (or localizer='bbox') keeps the best boxes of each saved set until the
    next refresh; the run's log says so (was silent)."""
    train(_quick(setup, coordinate_folder, tmp_path / "first", "max_boxes_4", epochs=2))  # max_boxes 4
    cfg = _quick(setup, coordinate_folder, tmp_path / "run", "max_boxes_2", epochs=2, max_boxes=2)
    cfg.resume, cfg.load_from = True, str(tmp_path / "first" / "epoch_1.pth")
    runner = train(cfg)
    assert _recorder(runner).state_before_train["max_boxes"] == 2
    assert "the checkpoint's box sets hold up to 4 boxes per image; this run keeps 2" in _log(runner)


class _Infos:
    """A dataset of ready images: ``get_data_info`` gives ``img`` itself (the refresh's head is then empty)."""

    def __init__(self, *images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def get_data_info(self, index):
        return {"img": self.images[index], "img_path": f"{index}.png", "sample_idx": index}


@pytest.mark.parametrize("backend", ["pillow", "cv2"])
def test_grayscale_images_are_resized_for_the_refresh_by_either_backend(backend):
    # LoadImageFromFile(color_type='grayscale') with ContrastiveCrop(backend='pillow'): training cropped them, then the
    # refresh after the warm-up stopped the run with PIL's "Cannot handle this data type: (1, 1, 1), |u1".
    gray = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    images = ExtractionDataset(_Infos(gray, gray[..., None]), [], (8, 12), backend)
    for index in range(2):
        image, sample = images[index]
        assert tuple(image.shape) == (1, 8, 12) and image.dtype == torch.uint8 and sample == index
    assert torch.equal(images[0][0], images[1][0])


@pytest.mark.parametrize("entry, message", [
    (None, r" must be the dict the hook saves, with keys box_store \(BoxStore.state_dict\(\)\), refresh_pending, "
           r"refreshed_after and images; got NoneType None$"),
    ({}, r" must be the dict the hook saves, .*; got keys \[\]$"),
    ({"box_store": [1]}, r" must be the dict the hook saves, .*; got box_store=\[1\]$"),
    ({"box_store": {}, "refreshed_after": "x"}, r": refreshed_after must be an int \(the steps done at the latest "
                                                r"refresh\) or None; got 'x'$"),
    ({"box_store": {}, "refreshed_after": 1.5}, r": refreshed_after must be an int .*; got 1.5$"),
    ({"box_store": {}, "refresh_pending": "no"}, r": refresh_pending must be True or False; got 'no'$"),
])
def test_a_checkpoint_entry_the_hook_did_not_write_is_named(entry, message):
    # Before: "'NoneType' object is not a mapping", KeyError('box_store'), "'>' not supported between instances of
    # 'int' and 'str'" deep in the resume; refresh_pending='no' ran a refresh unasked.
    from ccrop_mm.checkpoint_boxes import saved_boxes

    with pytest.raises(TypeError, match=r"^ContrastiveCropHook: the checkpoint's 'ccrop' entry" + message):
        saved_boxes({"ccrop": entry, "meta": {}})
    assert saved_boxes({"ccrop": {"box_store": {}, "refreshed_after": np.int64(2)}})["meta"] == {}


def test_a_checkpoint_box_store_the_core_refuses_is_named_as_the_checkpoints(setup, train, coordinate_folder,
                                                                            tmp_path):
    # The core's "box store state lacks ['max_boxes']" did not say it came from the checkpoint's boxes.
    path = _box_checkpoint(tmp_path / "boxes.pth", setup.NUM_IMAGES)
    checkpoint = torch.load(path, weights_only=False)
    del checkpoint["ccrop"]["box_store"]["max_boxes"]
    torch.save(checkpoint, path)
    cfg = _quick(setup, coordinate_folder, tmp_path / "run", "broken_state", load_boxes=True)
    cfg.load_from = str(path)
    with pytest.raises(KeyError, match=r"ContrastiveCropHook: the checkpoint's boxes \('ccrop' entry, box_store\) "
                                        r"cannot be restored: box store state lacks \['max_boxes'\]"):
        train(cfg)

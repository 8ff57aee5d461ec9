"""A ``ConcatDataset`` of image folders as the train dataset: one box store, part d's sample i in row offset_d + i.

Real mmengine Runners on two folders of 16 position-encoded 32 px images (``mm_setup.coordinate_images``), so every
crop can be read back from its pixels: training with 2 persistent workers and a refresh, crops read from the rows of
their own part, resume, nested wrappers, and the refusals (one pipeline object in two parts, two crop sizes).
"""

from __future__ import annotations

import logging
import re

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, HOOKS, DefaultScope
from mmengine.runner import Runner

from ccrop_plugins import BoxSets

import mm_setup  # tests/mm, put on sys.path by conftest.py

TOP_LEFT = torch.tensor([0.0, 0.0, 0.25, 0.25])  # rows of part a (0-15)
BOTTOM_RIGHT = torch.tensor([0.75, 0.75, 1.0, 1.0])  # rows of part b (16-31)


@pytest.fixture(scope="module")
def second_folder(tmp_path_factory):
    import mm_setup

    return mm_setup.coordinate_images(tmp_path_factory.mktemp("coordinate_images_b"))


def _concat_config(setup, folders, tmp_path, workers=2, **hook):
    """``small_config`` whose train dataset is ``ConcatDataset`` of one ``CustomDataset`` per folder (one pipeline
    config each)."""
    cfg = setup.small_config("mmpretrain", folders[0], tmp_path, **hook)
    cfg.experiment_name = f"concat_{tmp_path.name}"  # else two Runners of one second share instances
    inner = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type="ConcatDataset",
                                        datasets=[dict(inner, data_root=str(folder)) for folder in folders])
    cfg.train_dataloader.num_workers = workers
    cfg.train_dataloader.persistent_workers = workers > 0
    return cfg


def _fill(store, rows_a, rows_b):
    """One box per row: :data:`TOP_LEFT` in ``rows_a``, :data:`BOTTOM_RIGHT` in ``rows_b``."""
    rows = torch.tensor([*rows_a, *rows_b])
    boxes = torch.zeros(len(rows), store.max_boxes, 4)
    boxes[:, 0] = torch.stack([TOP_LEFT] * len(rows_a) + [BOTTOM_RIGHT] * len(rows_b))
    scores = torch.zeros(len(rows), store.max_boxes)
    scores[:, 0] = 1.0
    counts = torch.ones(len(rows), dtype=torch.int64)
    store.update(rows, BoxSets(boxes, scores, counts, torch.zeros(len(rows), dtype=torch.bool)), new_version=False)


@HOOKS.register_module(force=True)
class PartBoxesHook(Hook):
    """Test instrument: after the refresh of epoch 1, keeps the refreshed store and puts :data:`TOP_LEFT` in the
    rows of part a and :data:`BOTTOM_RIGHT` in those of part b; records every later batch (views, sample_idx, file).
    Priority LOW: after ContrastiveCropHook, before CheckpointHook."""

    priority = "LOW"

    def __init__(self, part_size: int = 16) -> None:
        self.part_size = part_size
        self.refreshed_state = None
        self.batches = []

    def after_train_epoch(self, runner, **_):
        if runner.epoch == 0:
            store = next(h for h in runner.hooks if type(h).__name__ == "ContrastiveCropHook").store
            self.refreshed_state = store.state_dict()
            _fill(store, range(self.part_size), range(self.part_size, len(store)))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.epoch == 1:
            samples = data_batch["data_samples"]
            self.batches.append({"views": [v.clone() for v in data_batch["inputs"]],
                                 "indices": [int(s.sample_idx) for s in samples],
                                 "paths": [s.img_path for s in samples]})


@pytest.mark.slow
def test_a_concat_dataset_trains_with_workers_and_refreshes_every_part(setup, train, coordinate_folder,
                                                                       second_folder, tmp_path):
    cfg = _concat_config(setup, [coordinate_folder, second_folder], tmp_path)
    cfg.custom_hooks.append(dict(type="PartBoxesHook"))
    runner = train(cfg)
    hook, recorder = setup.ccrop_hook(runner), next(h for h in runner.hooks if type(h).__name__ == "PartBoxesHook")

    # The refresh after epoch 1 localized the 32 images of both parts into a store of 32 rows.
    assert len(hook.store) == 2 * setup.NUM_IMAGES and hook.last_stats.images == 2 * setup.NUM_IMAGES
    state = recorder.refreshed_state
    assert state["version"] == 1 and bool((state["counts"] > 0).all())
    assert int((state["counts"][: setup.NUM_IMAGES] > 0).sum()) == int((state["counts"][setup.NUM_IMAGES :] > 0).sum())

    # Epoch 2 (persistent workers started in epoch 1): each view of part b is cut around row 16 + i's box (bottom
    # right), each of part a around row i's (top left); some part-b view could not be one of row i's box.
    seen = {"a": 0, "b": 0}
    outside_other = 0
    for batch in recorder.batches:
        for row, path in enumerate(batch["paths"]):
            part = "b" if path.startswith(str(second_folder)) else "a"
            own, other = (BOTTOM_RIGHT, TOP_LEFT) if part == "b" else (TOP_LEFT, BOTTOM_RIGHT)
            for view in batch["views"]:
                assert setup.crop_fits_box(view[row], own), (part, batch["indices"][row])
                outside_other += not setup.crop_fits_box(view[row], other)
            seen[part] += 1
    assert seen == {"a": setup.NUM_IMAGES, "b": setup.NUM_IMAGES} and outside_other > 0


def test_a_sample_of_the_second_part_is_cut_around_its_own_row(setup, coordinate_folder, second_folder, tmp_path):
    # Part b's sample_idx j must read row 16 + j (bottom right), never row j (top left), and part a's row j.
    runner, hook = mm_setup.started(_concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0))
    dataset = runner.train_dataloader.dataset
    _fill(hook.store, range(16), range(16, 32))
    torch.manual_seed(0)
    import numpy as np

    np.random.seed(0)
    missed_other = 0
    for draw in range(24):
        j = draw % 16
        for index, own, other in ((16 + j, BOTTOM_RIGHT, TOP_LEFT), (j, TOP_LEFT, BOTTOM_RIGHT)):
            sample = dataset[index]
            assert int(sample["data_samples"].sample_idx) == j
            for view in sample["inputs"]:
                assert setup.crop_fits_box(view, own), (index, draw)
                missed_other += not setup.crop_fits_box(view, other)
    assert missed_other > 0


def test_a_sample_idx_outside_its_part_is_named_with_the_part(setup, coordinate_folder, second_folder, tmp_path):
    # Part a's sample_idx 16 lies inside the 32-row store: it must not read part b's row 16.
    runner, hook = mm_setup.started(_concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0))
    step = next(s for s in runner.train_dataloader.dataset.datasets[0].pipeline.transforms
                if type(s).__name__ == "ChooseContrastiveBox")
    assert step.store_rows == range(0, 16)
    with pytest.raises(IndexError, match=r"^ChooseContrastiveBox: results\['sample_idx'\] is 16, outside the 16 "
                                         r"samples of its dataset \(rows 0 to 15 of the train box store, one part of a "
                                         r"ConcatDataset; allowed: 0 to 15\)"):
        step({"sample_idx": 16})


@pytest.mark.slow
def test_a_concat_dataset_resumes_its_boxes(setup, train, coordinate_folder, second_folder, tmp_path):
    from ccrop_mm import mmengine_checkpoint_globals
    from ccrop_mm.checkpoint_boxes import image_list_digest

    folders = [coordinate_folder, second_folder]
    cfg = _concat_config(setup, folders, tmp_path / "run", workers=0)
    runner = train(cfg)
    final_state = setup.ccrop_hook(runner).store.state_dict()
    parts = runner.train_dataloader.dataset.datasets
    checkpoint = tmp_path / "run" / "epoch_1.pth"
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        saved = torch.load(checkpoint, weights_only=True)["ccrop"]
    # The checkpoint names both parts' images in the order of their rows.
    assert saved["images"] == image_list_digest(*parts) != image_list_digest(*parts[::-1])
    assert saved["box_store"]["num_samples"] == 32 and saved["box_store"]["version"] == 1

    cfg = _concat_config(setup, folders, tmp_path / "resumed", workers=0)
    cfg.custom_hooks.append(dict(type="CropRecorderHook", force=False))
    cfg.resume, cfg.load_from = True, str(checkpoint)
    resumed = train(cfg)
    restored = next(h for h in resumed.hooks if type(h).__name__ == "CropRecorderHook").state_before_train
    assert restored["version"] == final_state["version"] == 1
    for key in ("boxes", "scores", "counts"):
        assert torch.equal(restored[key], final_state[key]), key


@pytest.mark.parametrize("wrap", ["nested", "repeated", "same twice"])
def test_nested_and_repeated_concat_datasets_get_rows_per_part(setup, coordinate_folder, second_folder, tmp_path,
                                                               wrap):
    cfg = _concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0)
    concat = cfg.train_dataloader.dataset
    a, b = concat.datasets
    if wrap == "nested":  # ConcatDataset([a, ConcatDataset([RepeatDataset(b), a])]): three parts, 48 rows
        concat.datasets = [a, dict(type="ConcatDataset", datasets=[dict(type="RepeatDataset", times=2, dataset=b),
                                                                   dict(a)])]
        rows = [range(0, 16), range(16, 32), range(32, 48)]
    elif wrap == "repeated":
        cfg.train_dataloader.dataset = dict(type="RepeatDataset", times=2, dataset=concat)
        rows = [range(0, 16), range(16, 32)]
    else:  # one dataset object listed twice (in Python): the same images, the same rows
        cfg.train_dataloader.dataset = _built_concat(cfg, [a, None])
        rows = [range(0, 16)]
    runner, hook = mm_setup.started(cfg)
    parts = _parts(runner.train_dataloader.dataset)
    assert len(hook.store) == rows[-1].stop and len(hook._images) == rows[-1].stop
    for part, expected in zip(parts, rows):
        assert {step.store_rows for step in _store_users(part)} == {expected if len(rows) > 1 else None}
    assert [int(hook._images[r.start][1]) for r in rows] == [r.start for r in rows]  # the refresh's store rows


def _parts(dataset):
    """The datasets with a pipeline inside ``dataset``, in order, each once."""
    found = []
    stack = [dataset]
    while stack:
        item = stack.pop(0)
        if hasattr(item, "pipeline"):
            found += [item] if all(item is not f for f in found) else []
        elif hasattr(item, "dataset"):
            stack.insert(0, item.dataset)
        else:
            stack[:0] = list(item.datasets)
    return found


def _store_users(dataset):
    from ccrop_mm.pipeline_walk import find_instances
    from ccrop_mm.transforms import StoreUser

    return find_instances(list(dataset.pipeline.transforms), StoreUser)


def _built_concat(cfg, parts):
    """A built ``ConcatDataset`` of ``parts`` (dataset configs; ``None``: the previous part's object again, with its
    pipeline; a config with ``share=True``: a new dataset whose pipeline is the previous part's step objects)."""
    from mmengine.dataset import ConcatDataset

    DefaultScope.get_instance(f"concat_{id(cfg)}", scope_name="mmpretrain")
    built = []
    for part in parts:
        if part is None:
            built.append(built[-1])
        elif part.pop("share", False):
            built.append(DATASETS.build(dict(part, pipeline=list(built[-1].pipeline.transforms))))
        else:
            built.append(DATASETS.build(part))
    return ConcatDataset(built)


def test_one_pipeline_object_in_two_parts_is_refused(setup, coordinate_folder, second_folder, tmp_path):
    cfg = _concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0)
    a, b = cfg.train_dataloader.dataset.datasets
    cfg.train_dataloader.dataset = _built_concat(cfg, [a, dict(b, share=True)])
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"^ContrastiveCropHook: one ChooseContrastiveBox object is in the pipelines "
                                         r"of train_dataloader\.dataset\.datasets\[0\] and train_dataloader\.dataset\."
                                         r"datasets\[1\] \(a pipeline reused in Python\): their samples are rows 0 to "
                                         r"15 and 16 to 31 of the box store.*give each dataset its own pipeline"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0


@pytest.mark.parametrize("image_size", [None, 24])
def test_parts_cropping_to_two_sizes_need_the_refresh_size(setup, coordinate_folder, second_folder, tmp_path,
                                                           image_size):
    cfg = _concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0, image_size=image_size)
    b = cfg.train_dataloader.dataset.datasets[1]
    b.pipeline = [dict(step) for step in b.pipeline]
    multiview = next(step for step in b.pipeline if step["type"] == "MultiView")
    crop = dict(multiview["transforms"][0][0], scale=16)
    multiview["transforms"] = [[crop, *multiview["transforms"][0][1:]]]
    if image_size is not None:  # the hook's image_size: one refresh resolution for both parts
        assert mm_setup.started(cfg)[1]._images.size == (24, 24)
        return
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match="^" + re.escape(
            "ContrastiveCropHook: the ContrastiveCrop of train_dataloader.dataset.datasets[0] gives 32x32 crops, the "
            "one of train_dataloader.dataset.datasets[1] 16x16; the refresh resizes every image to one training "
            "resolution: give the crops one size, or set it with ContrastiveCropHook(image_size=...)")):
        runner.train()


def test_a_part_whose_pipeline_is_refused_is_named(setup, coordinate_folder, second_folder, tmp_path):
    # Each part's pipeline is checked as a single dataset's; the message says which part.
    cfg = _concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0)
    b = cfg.train_dataloader.dataset.datasets[1]
    b.pipeline = [dict(step) for step in b.pipeline]
    multiview = next(step for step in b.pipeline if step["type"] == "MultiView")
    crop = {key: value for key, value in multiview["transforms"][0][0].items() if key not in ("alpha",)}
    multiview["transforms"] = [[dict(crop, type="RandomResizedCrop"), *multiview["transforms"][0][1:]]]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"^train_dataloader\.dataset\.datasets\[1\]: ContrastiveCropHook found no "
                                         r"ContrastiveCrop in train_dataloader\.dataset\.pipeline"):
        runner.train()


@pytest.mark.slow
def test_parts_loading_uint8_and_float32_images_refresh_with_workers(setup, train, coordinate_folder, second_folder,
                                                                     tmp_path):
    """Part b's head loads float32 images (``LoadImageFromFile(to_float32=True)``), part a's uint8: the refresh loader,
    2 workers and a batch across the parts' boundary (rows 12-23), batches them as float32. Before: after the warm-up,
    ``torch.cat(): input types can't be cast to the desired output type Byte`` in a DataLoader worker stopped the run
    (without workers torch promoted the dtypes)."""
    cfg = _concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0)
    cfg.custom_hooks[0].update(batch_size=12, num_workers=2)
    part_b = cfg.train_dataloader.dataset.datasets[1]
    part_b.pipeline = [dict(step, to_float32=True) if step["type"] == "LoadImageFromFile" else step
                       for step in part_b.pipeline]
    hook = setup.ccrop_hook(train(cfg))
    assert hook.last_stats.images == 2 * setup.NUM_IMAGES and bool((hook.store.state_dict()["counts"] > 0).all())


def test_warnings_of_one_part_name_it(setup, coordinate_folder, second_folder, tmp_path):
    """Part b alone has a RandomResizedCrop view beside the ContrastiveCrop view, and its ContrastiveCrop inside
    RandomApply(prob=0.5): both warnings name train_dataloader.dataset.datasets[1] (they named no part)."""
    from mmengine.logging import MMLogger

    from ccrop_mm.train_parts import read_train_pipeline

    cfg = _concat_config(setup, [coordinate_folder, second_folder], tmp_path, workers=0)
    part_b = cfg.train_dataloader.dataset.datasets[1]
    part_b.pipeline = [dict(step) for step in part_b.pipeline]
    multiview = next(step for step in part_b.pipeline if step["type"] == "MultiView")
    crop, *rest = multiview["transforms"][0]
    plain = dict(crop, type="RandomResizedCrop")
    for key in ("alpha",):
        plain.pop(key, None)
    multiview["transforms"] = [[dict(type="RandomApply", transforms=[crop], prob=0.5), *rest], [plain, *rest]]
    multiview["num_views"] = [1, 1]
    runner = Runner.from_cfg(cfg)
    lines = []

    class Records(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Records()
    MMLogger.get_current_instance().addHandler(handler)
    try:
        plan = read_train_pipeline(runner.train_dataloader.dataset, several_boxes=True)
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    assert plan.plain_views == ["view pipeline 2 of MultiView (RandomResizedCrop) in the pipeline of "
                                "train_dataloader.dataset.datasets[1]"]
    skipped = [line for line in lines if "is skipped in 50% of the draws" in line]
    assert len(skipped) == 1 and skipped[0].startswith(
        "ContrastiveCrop: ContrastiveCrop (in MultiView > Compose > RandomApply, prob=0.5) in the pipeline of "
        "train_dataloader.dataset.datasets[1] is skipped in 50% of the draws")

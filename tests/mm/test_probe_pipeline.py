"""A user's dataset and pipeline edits that cut views around the wrong boxes, or fail only in a worker: each is named
before the first iteration (probe P3: F1-F4, M2, M3)."""

from __future__ import annotations

import numpy as np
import pytest
from mmengine.registry import DATASETS, TRANSFORMS, DefaultScope
from mmengine.runner import Runner
from mmpretrain.datasets import CustomDataset

from ccrop_mm import ChooseContrastiveBox
from ccrop_plugins import BoxStore

import mm_setup  # tests/mm, put on sys.path by conftest.py


@DATASETS.register_module(force=True)
class OneBasedIdDataset(CustomDataset):
    """``sample_idx`` as 1-based image ids, the last wrapping to 0 (as annotation files often number images)."""

    def get_data_info(self, idx):
        info = super().get_data_info(idx)
        info["sample_idx"] = (idx + 1) % len(self)
        return info


@DATASETS.register_module(force=True)
class SwappedIdDataset(CustomDataset):
    """``sample_idx`` of samples 8 and 9 swapped: right at the first and the last index."""

    def get_data_info(self, idx):
        info = super().get_data_info(idx)
        info["sample_idx"] = {8: 9, 9: 8}.get(idx, idx)
        return info


def _config(setup, folder, tmp_path, **hook):
    cfg = setup.small_config("mmpretrain", folder, tmp_path, **hook)
    cfg.experiment_name = f"probe_pipeline_{tmp_path.name}"  # else two Runners of one second share instances
    cfg.train_dataloader.num_workers, cfg.train_dataloader.persistent_workers = 0, False
    return cfg


def _refused_before_training(cfg, message, kind=ValueError):
    runner = Runner.from_cfg(cfg)
    with pytest.raises(kind, match=message):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran


def _multiview(cfg):
    return next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "MultiView")


@pytest.mark.parametrize("dataset, index, found", [("OneBasedIdDataset", 0, 1), ("SwappedIdDataset", 8, 9)])
def test_a_sample_idx_other_than_the_dataset_index_is_refused(setup, coordinate_folder, tmp_path, dataset, index,
                                                              found):
    # F1: the refresh stored image k's boxes under k, the crop read them by sample_idx: 15 of 16 images were cut around
    # the next image's boxes, without a word.
    cfg = _config(setup, coordinate_folder, tmp_path)
    cfg.train_dataloader.dataset.type = dataset
    _refused_before_training(cfg, rf"^{dataset}.get_data_info\({index}\) gives sample_idx {found}, not {index}: .*"
                                  r"every image would be cut around another image's boxes; sample_idx must be the "
                                  r"dataset index")


def test_a_repeated_dataset_keeps_its_inner_sample_idx(setup, coordinate_folder, tmp_path):
    # RepeatDataset's sample_idx is the inner dataset's index: accepted, the store sized to the 16 images.
    cfg = _config(setup, coordinate_folder, tmp_path)
    cfg.train_dataloader.dataset = dict(type="RepeatDataset", times=2, dataset=cfg.train_dataloader.dataset)
    _, hook = mm_setup.started(cfg)
    assert len(hook.store) == 16


def test_a_sample_idx_outside_the_store_names_sample_idx():
    # M3: the worker's IndexError ended "size the store to the dataset", which the user cannot do (the hook does).
    DefaultScope.get_instance(f"probe_pipeline_{np.random.randint(1 << 30)}", scope_name="mmpretrain")
    store = BoxStore(16, max_boxes=2)
    image = np.zeros((32, 32, 3), np.uint8)
    for step in (TRANSFORMS.build(dict(type="ContrastiveCrop", scale=16)), ChooseContrastiveBox()):
        step.attach_store(store)
        with pytest.raises(IndexError, match=rf"^{type(step).__name__}: results\['sample_idx'\] is 16, outside the box "
                                             r"store of the train dataset's 16 samples \(allowed: 0 to 15\); "
                                             r"sample_idx must be the sample's dataset index"):
            step({"img": image, "sample_idx": 16})


@pytest.mark.parametrize("localizer, refused", [("components", True), ("bbox", False)])
def test_a_second_box_choice_inside_the_views_is_refused(setup, coordinate_folder, tmp_path, localizer, refused):
    # F2: ChooseContrastiveBox before MultiView and again in the view pipeline: each view chose its own box, so 11 of
    # 16 pairs were cut around different objects, without a word. With one box per image both choices are that box.
    cfg = _config(setup, coordinate_folder, tmp_path, localizer=localizer)
    _multiview(cfg)["transforms"][0].insert(0, dict(type="ChooseContrastiveBox"))
    if not refused:
        assert mm_setup.started(cfg)[1].store is not None
        return
    _refused_before_training(cfg, r"^ContrastiveCropHook keeps several boxes per image, so both views must crop around "
                                  r"the same one: the ChooseContrastiveBox inside MultiView chooses again for each "
                                  r"view .*; remove it from MultiView and keep the one before MultiView$")


@pytest.mark.parametrize("num_views, refused", [(2, True), (1, False)])
def test_a_crop_above_multiview_is_refused(setup, coordinate_folder, tmp_path, num_views, refused):
    # F3: ContrastiveCrop moved above MultiView, the views flipping only: both views of every pair were one crop.
    # A MultiView of one view makes no pair: nothing to refuse.
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = _multiview(cfg)
    crop, *rest = multiview["transforms"][0]
    multiview.update(num_views=num_views, transforms=[rest])
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline.insert(pipeline.index(multiview), crop)
    if not refused:
        assert mm_setup.started(cfg)[1].store is not None
        return
    _refused_before_training(cfg, r"^ContrastiveCrop comes before MultiView in train_dataloader.dataset.pipeline, and "
                                  r"the view pipelines of MultiView hold none: every view of a sample would be a copy "
                                  r"of one crop .*; move it into the view pipeline of MultiView \(transforms=\[\[dict\("
                                  r"type='ContrastiveCrop', \.\.\.\), \.\.\.\]\]\), where each view is cut on its own$")


def test_two_crops_in_one_view_are_refused_before_training(setup, coordinate_folder, tmp_path):
    # F4: refused only at the first batch, inside a DataLoader worker ("Caught ValueError in DataLoader worker").
    cfg = _config(setup, coordinate_folder, tmp_path)
    view = _multiview(cfg)["transforms"][0]
    view.append(dict(view[0]))
    _refused_before_training(cfg, r"^ContrastiveCrop comes twice in a view pipeline \(MultiView's, or a Compose\) of "
                                  r"train_dataloader.dataset.pipeline: the second would cut the first's crop again, "
                                  r"placed with the boxes of the whole image; keep one ContrastiveCrop per view$")


def test_a_crop_above_multiview_and_in_it_is_refused_before_training(setup, coordinate_folder, tmp_path):
    # F4: one ContrastiveCrop above MultiView and one in its view pipeline: refused only in a worker at the first batch.
    cfg = _config(setup, coordinate_folder, tmp_path)
    multiview = _multiview(cfg)
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline.insert(pipeline.index(multiview), dict(multiview["transforms"][0][0]))
    _refused_before_training(cfg, r"^ContrastiveCrop comes twice on each view: as a top-level step of "
                                  r"train_dataloader.dataset.pipeline and again after it in MultiView; .*keep one "
                                  r"ContrastiveCrop per view, in the view pipeline of MultiView")


@pytest.mark.parametrize("repeated", [True, False], ids=["in RepeatDataset", "bare"])
def test_a_concat_dataset_gets_rows_for_each_part(setup, coordinate_folder, tmp_path, repeated):
    # M2 was refused ("the datasets of ConcatDataset each number their samples from 0"); now the store holds the rows
    # of every part one after the other: part d's sample_idx i reads row offset_d + i (tests/mm/test_concat.py).
    cfg = _config(setup, coordinate_folder, tmp_path)
    inner = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type="ConcatDataset", datasets=[inner, dict(inner)])
    if repeated:
        cfg.train_dataloader.dataset = dict(type="RepeatDataset", times=2, dataset=cfg.train_dataloader.dataset)
    runner, hook = mm_setup.started(cfg)
    assert len(hook.store) == 32
    concat = runner.train_dataloader.dataset.dataset if repeated else runner.train_dataloader.dataset
    choices = [next(step for step in part.pipeline.transforms if isinstance(step, ChooseContrastiveBox))
               for part in concat.datasets]
    assert [step.store_rows for step in choices] == [range(0, 16), range(16, 32)]


@DATASETS.register_module(force=True)
class NoPipelineImages:
    """A dataset without a pipeline or inner datasets (its own loading): the hook cannot reach its crops."""

    metainfo: dict = {}

    def __init__(self, size=4):
        self.size = size

    def full_init(self):
        pass

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return {"inputs": np.zeros((3, 32, 32), np.uint8)}


def test_a_part_without_a_pipeline_is_named_with_its_path(setup, coordinate_folder, tmp_path):
    cfg = _config(setup, coordinate_folder, tmp_path)
    inner = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type="ConcatDataset", datasets=[inner, dict(type="NoPipelineImages")],
                                        ignore_keys=["classes"])
    _refused_before_training(cfg, r"^ContrastiveCropHook cannot find the pipeline of NoPipelineImages \(inside "
                                  r"ConcatDataset, at train_dataloader.dataset.datasets\[1\]\); it supports mmengine "
                                  r"datasets, wrappers with a single inner dataset and ConcatDataset", TypeError)

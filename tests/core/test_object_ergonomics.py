"""What a notebook does with the core's objects besides training: reassign options, copy, compare, print."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from ccrop_plugins import BoxSets, BoxStore, ContrastiveCrop, HeatmapPipeline, get_sampler


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_options_assigned_after_construction_are_checked_and_used():
    # crop.ratio = ... and crop.sampler = ... were shown by repr but ignored by the draws (derived once when built);
    # crop.scale = (0.9, 0.1) cropped silently; crop.size = 32 raised "'int' object is not iterable".
    crop = ContrastiveCrop(16, alpha=5.0)
    crop.ratio = (1.0, 1.0)
    params = [crop.make_params((64, 96), None, _generator(i)) for i in range(50)]
    assert {p["height"] == p["width"] for p in params} == {True}
    crop.size = 32
    assert crop.size == (32, 32)
    with pytest.raises(ValueError, match=r"scale must be an increasing pair of positive numbers \(low, high\); "
                                         r"got \(0.9, 0.1\)"):
        crop.scale = (0.9, 0.1)
    assert crop.scale == (0.2, 1.0)  # unchanged by the refused assignment
    crop.sampler = get_sampler("beta", alpha=0.05)
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    fresh = ContrastiveCrop(32, ratio=(1.0, 1.0), alpha=0.05)
    draws = [(crop.make_params((900, 700), box, _generator(i)), fresh.make_params((900, 700), box, _generator(i)))
             for i in range(200)]
    assert all(ours == theirs for ours, theirs in draws)  # the new alpha (0.05), not the 5.0 it was built with
    with pytest.raises(AttributeError, match=r"alpha belongs to its sampler: set crop.sampler.alpha"):
        crop.alpha = 0.1


def test_a_copied_store_is_in_shared_memory_and_its_sizes_are_fixed():
    # A deepcopy / pickle / torch.load copy was out of shared memory: as a training store, fork workers never saw its
    # refreshes. store.max_boxes = 4 gave torch's shape errors later.
    store = BoxStore(6, max_boxes=2)
    for copied in (copy.deepcopy(store), pickle.loads(pickle.dumps(store))):
        assert all(t.is_shared() for t in (copied.boxes, copied.scores, copied.counts, copied._version))
        assert copied.boxes.data_ptr() != store.boxes.data_ptr()  # a store of its own
    with pytest.raises(AttributeError, match=r"BoxStore.max_boxes is fixed when the store is made \(2\); make a new "
                                             r"BoxStore"):
        store.max_boxes = 4
    assert len(store) == 6 and store.max_boxes == 2


def test_box_sets_compare_as_objects_and_an_image_index_is_an_int():
    # == raised "Boolean value of Tensor with more than one value is ambiguous"; [0:2] "only one element tensors ...".
    sets = BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.5, 0.5]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]])])
    other = BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.5, 0.5]])])
    assert sets == sets and sets != other and sets in [other, sets] and len({sets, other}) == 2
    assert sets[-1][0].tolist() == [[0.0, 0.0, 1.0, 1.0]]
    with pytest.raises(TypeError, match=r"BoxSets\[i\] takes one image index \(an int\).*got slice\(0, 2, None\)"):
        sets[0:2]


def test_a_heatmap_pipeline_prints_its_rule_and_options():
    assert repr(HeatmapPipeline("channel_sum")) == "HeatmapPipeline('channel_sum')"
    assert repr(HeatmapPipeline("channel_norm")) == "HeatmapPipeline('channel_norm')"

"""Bool boxes and scores given to the crop are a TypeError naming the dtype: ``[[False, False, True, True]]`` was
taken as the whole-image box and ``scores=[True]`` as weight 1.0, silently (``BoxSets`` already refused bools)."""

import numpy as np
import pytest
import torch

from ccrop_plugins import BoxSets, ContrastiveCrop, choose_box, validate_boxes

MASK = [[False, False, True, True]]  # a mask, not a box: 0, 0, 1, 1 as numbers


@pytest.mark.parametrize("boxes", [torch.tensor(MASK), np.array(MASK), torch.tensor(MASK)[0]],
                         ids=["tensor", "array", "one-row-tensor"])
def test_bool_boxes_are_a_type_error_naming_the_dtype(boxes):
    with pytest.raises(TypeError, match=r"boxes must have a floating point or integer dtype .*; got (torch\.)?bool$"):
        ContrastiveCrop(8).make_params((16, 16), boxes, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="got (torch.)?bool"):  # the crop's call draws through make_params
        ContrastiveCrop(8)(torch.rand(3, 16, 16), boxes)


@pytest.mark.parametrize("scores", [torch.tensor([True, False]), np.array([True, False])], ids=["tensor", "array"])
def test_bool_scores_are_a_type_error_naming_the_dtype(scores):
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.4, 0.4, 0.9, 0.9]])
    match = r"scores must have a floating point or integer dtype \(one weight per box\); got (torch\.)?bool$"
    with pytest.raises(TypeError, match=match):
        ContrastiveCrop(8).make_params((16, 16), boxes, torch.Generator().manual_seed(0), scores=scores)
    with pytest.raises(TypeError, match=match):
        choose_box(boxes, scores)


def test_bool_boxes_are_refused_by_validate_boxes_and_from_lists_as_by_box_sets():
    with pytest.raises(TypeError, match="boxes of sample 3 must have a floating point or integer dtype"):
        validate_boxes(torch.tensor(MASK), sample=3)
    with pytest.raises(TypeError, match="boxes of image 0 must have a floating point or integer dtype"):
        BoxSets.from_lists([np.array(MASK)])


def test_integer_and_float_boxes_and_scores_draw_the_same_crops_as_before():
    crop = ContrastiveCrop(8)
    for boxes, scores in [(torch.tensor([[0, 0, 1, 1]]), torch.tensor([2])), (np.array([[0.0, 0.0, 1.0, 1.0]]), None),
                          ([[0.0, 0.0, 1.0, 1.0]], [1.0])]:
        params = crop.make_params((16, 16), boxes, torch.Generator().manual_seed(0), scores=scores)
        assert params == crop.make_params((16, 16), torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
                                          torch.Generator().manual_seed(0))

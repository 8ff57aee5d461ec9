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


def test_plain_lists_of_bools_are_refused_as_bool_tensors_are():
    """A list of only True / False (torch infers bool) was converted to 0.0 / 1.0: the mask drew the whole image."""
    boxes = [[0.1, 0.1, 0.5, 0.5], [0.4, 0.4, 0.9, 0.9]]
    with pytest.raises(TypeError, match=r"^boxes must have a floating point or integer dtype .*; got torch\.bool$"):
        ContrastiveCrop(8).make_params((16, 16), MASK, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="boxes of sample 3 must have a floating point or integer dtype"):
        validate_boxes(MASK, sample=3)
    with pytest.raises(TypeError, match=r"scores must have a floating point or integer dtype \(one weight per box\)"):
        choose_box(torch.tensor(boxes), [True, False])
    for scores in ([True, False], np.array([True, False]), torch.tensor([True, False])):
        with pytest.raises(TypeError, match=r"^scores of image 1 must have a floating point or integer dtype"):
            BoxSets.from_lists([boxes, boxes], [[1.0, 2.0], scores])


def test_lists_of_numbers_next_to_the_bool_check_keep_their_values():
    sets = BoxSets.from_lists([[[0, 0, 1, 1]], [[0.25, 0.5, 0.75, 1.0]]], [[3], [0.5]])
    assert sets.boxes.tolist() == [[[0.0, 0.0, 1.0, 1.0]], [[0.25, 0.5, 0.75, 1.0]]]
    assert sets.scores.tolist() == [[3.0], [0.5]]
    assert choose_box(torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.4, 0.4, 0.9, 0.9]]), [0, 1]) == 1


@pytest.mark.parametrize("boxes", [[[0, 0, True, 1]], [[0.1, 0.1, 0.5, 0.5], (0.2, np.bool_(False), 0.6, 0.6)]],
                         ids=["flag-among-ints", "numpy-bool-in-a-tuple"])
def test_lists_mixing_bools_with_numbers_are_refused_as_bool_lists_are(boxes):
    """torch infers float for ``[0, 0, True, 1]``: True was read as 1.0, the box drawn as ``[0, 0, 1, 1]``."""
    with pytest.raises(TypeError, match=r"^boxes must have a floating point or integer dtype .*; got torch\.bool$"):
        ContrastiveCrop(8).make_params((16, 16), boxes, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="boxes of sample 0 must have a floating point or integer dtype"):
        validate_boxes(boxes, sample=0)
    with pytest.raises(TypeError, match="boxes of image 0 must have a floating point or integer dtype"):
        BoxSets.from_lists([boxes])


def test_scores_mixing_bools_with_numbers_are_refused():
    boxes = [[0.1, 0.1, 0.5, 0.5], [0.4, 0.4, 0.9, 0.9]]
    match = r"scores must have a floating point or integer dtype \(one weight per box\); got torch\.bool$"
    with pytest.raises(TypeError, match=match):
        choose_box(torch.tensor(boxes), [0.5, True])
    with pytest.raises(TypeError, match=match):
        ContrastiveCrop(8).make_params((16, 16), boxes, torch.Generator().manual_seed(0), scores=[1, False])
    with pytest.raises(TypeError, match="^scores of image 0 must have a floating point or integer dtype"):
        BoxSets.from_lists([boxes], [[2.0, True]])

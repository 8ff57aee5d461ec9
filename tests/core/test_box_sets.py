"""BoxSets: padding, indexing, areas and validation errors that name the sample and the box."""

import math

import pytest
import torch

import numpy as np

from ccrop_plugins import WHOLE_IMAGE, BoxSets, validate_boxes
from ccrop_plugins.box_sets import validate_box_sets


def test_from_lists_pads_indexes_and_falls_back_for_empty_sets():
    sets = BoxSets.from_lists(
        [torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 1.0, 1.0]]), torch.zeros(0, 4)],
        scores=[torch.tensor([3.0, 1.0]), torch.zeros(0)],
    )
    assert len(sets) == 2 and sets.max_boxes == 2
    boxes, scores = sets[0]
    torch.testing.assert_close(boxes, torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 1.0, 1.0]]))
    assert scores.tolist() == [3.0, 1.0]
    boxes, scores = sets[1]
    assert boxes.tolist() == [list(WHOLE_IMAGE)] and scores.tolist() == [1.0]
    assert sets.fallback.tolist() == [False, True]
    assert sets.counts.tolist() == [2, 1]
    areas = sets.areas()
    assert areas[0].tolist() == pytest.approx([0.4 * 0.4, 0.5 * 0.5])
    assert areas[1].tolist() == pytest.approx([1.0, 0.0])  # padding row has no area


def test_from_lists_keeps_the_first_max_boxes():
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]])
    sets = BoxSets.from_lists([boxes], max_boxes=2)
    assert sets.max_boxes == 2 and sets[0][0].tolist() == boxes[:2].tolist()


@pytest.mark.parametrize(
    "box, problem",
    [
        ([0.1, 0.1, 1.2, 0.5], "outside [0, 1]"),
        ([-0.1, 0.1, 0.5, 0.5], "outside [0, 1]"),
        ([0.6, 0.1, 0.5, 0.5], "inverted or empty"),
        ([0.1, 0.5, 0.5, 0.5], "inverted or empty"),
        ([0.1, math.nan, 0.5, 0.5], "not finite"),
        ([0.1, 0.1, math.inf, 0.5], "not finite"),
    ],
)
def test_invalid_boxes_name_sample_and_box(box, problem):
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 0.5, 0.5], box]])
    with pytest.raises(ValueError) as error:
        BoxSets(boxes, torch.ones(2, 2), torch.tensor([2, 2]), torch.zeros(2, dtype=torch.bool))
    message = str(error.value)
    assert "box 1 of sample 1" in message and problem in message
    # The same check with dataset indices names the dataset index.
    with pytest.raises(ValueError, match="box 1 of sample 17 "):
        validate_box_sets(boxes, torch.tensor([2, 2]), samples=torch.tensor([4, 17]))
    with pytest.raises(ValueError, match=f"box 1 of sample 'img.png' .*{problem[:8]}"):
        validate_boxes(boxes[1], sample="'img.png'")


def test_padding_rows_are_not_validated():
    boxes = torch.tensor([[[0.1, 0.1, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]]])
    sets = BoxSets(boxes, torch.tensor([[1.0, 0.0]]), torch.tensor([1]), torch.tensor([False]))
    assert sets[0][0].shape == (1, 4)


def test_shape_and_count_errors():
    with pytest.raises(ValueError, match="inconsistent BoxSets shapes"):
        BoxSets(torch.zeros(2, 1, 4), torch.ones(2, 2), torch.ones(2, dtype=torch.int64),
                torch.zeros(2, dtype=torch.bool))
    whole = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])
    with pytest.raises(ValueError, match=r"counts must lie in \[1, 1\]"):
        BoxSets(whole, torch.ones(1, 1), torch.tensor([0]), torch.zeros(1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape \(k, 4\)"):
        validate_boxes(torch.zeros(3))


@pytest.mark.parametrize(
    "boxes, message",
    [
        (torch.zeros(2, 3), r"boxes of sample None must have shape \(k, 4\) as x0, y0, x1, y1; got \(2, 3\)"),
        ([0.1, 0.1, 0.5, 0.5], r"got \(4,\) \(one box\? pass \[\[x0, y0, x1, y1\]\]\)"),
        ([[0.1, 0.1, 0.5], [0.1, 0.1, 0.5, 0.6]], r"boxes of sample None must be a \(k, 4\) tensor, array or list"),
        ("abc", r"must be a \(k, 4\) tensor, array or list of \[x0, y0, x1, y1\]; got 'abc'"),
    ],
)
def test_validate_boxes_names_a_wrong_shape_or_type(boxes, message):
    with pytest.raises(ValueError, match=message):
        validate_boxes(boxes)


def test_validate_boxes_accepts_a_list_or_an_array():
    validate_boxes([[0.1, 0.1, 0.5, 0.5]])
    validate_boxes(np.array([[0.1, 0.1, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="box 0 of sample None is inverted"):
        validate_boxes([[0.5, 0.1, 0.1, 0.5]])


def test_from_lists_refuses_wrong_shapes_and_short_scores():
    with pytest.raises(ValueError, match=r"boxes of image 1 must have shape \(k, 4\) as x0, y0, x1, y1; got \(2, 3\)"):
        BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.5, 0.5]]), torch.zeros(2, 3)])
    with pytest.raises(ValueError, match="image 0 has 2 boxes but 1 scores"):
        BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6]])], scores=[torch.tensor([1.0])])
    with pytest.raises(ValueError, match="got 1 score lists for 2 box lists"):
        BoxSets.from_lists([torch.zeros(0, 4), torch.zeros(0, 4)], scores=[torch.zeros(0)])
    lists = BoxSets.from_lists([[[0.1, 0.1, 0.5, 0.5]], []], scores=[[2.0], []])
    assert lists.counts.tolist() == [1, 1] and lists.fallback.tolist() == [False, True]


@pytest.mark.parametrize("boxes", [None, 3, iter([])])
def test_from_lists_names_the_list_it_takes(boxes):
    with pytest.raises(TypeError, match=r"BoxSets.from_lists takes a list of \(k_i, 4\) box tensors, arrays or lists, "
                       r"one per image; got "):
        BoxSets.from_lists(boxes)
    with pytest.raises(TypeError, match=r"scores must be a list of \(k_i,\) score tensors, arrays or lists, one per "
                       r"image, or None; got "):
        BoxSets.from_lists([[[0.1, 0.1, 0.2, 0.2]]], scores=boxes if boxes is not None else 2.0)

def test_fields_must_be_tensors():
    with pytest.raises(TypeError, match="BoxSets.boxes must be a tensor; got list"):
        BoxSets([[[0.1, 0.1, 0.5, 0.5]]], torch.ones(1, 1), torch.ones(1, dtype=torch.int64),
                torch.zeros(1, dtype=torch.bool))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("counts", torch.tensor([1.5]), "BoxSets.counts must have an integer dtype; got torch.float32"),
        ("counts", torch.tensor([True]), "BoxSets.counts must have an integer dtype; got torch.bool"),
        ("fallback", torch.tensor([0.0]), "BoxSets.fallback must have a bool dtype; got torch.float32"),
        ("boxes", torch.tensor([[[0, 0, 1, 1]]]), "BoxSets.boxes must have a floating point dtype; got torch.int64"),
        ("scores", torch.tensor([[1]]), "BoxSets.scores must have a floating point dtype; got torch.int64"),
    ],
)
def test_fields_must_have_their_dtype(field, value, message):
    fields = {"boxes": torch.tensor([[[0.1, 0.1, 0.5, 0.5]]]), "scores": torch.ones(1, 1),
              "counts": torch.tensor([1]), "fallback": torch.tensor([False]), field: value}
    with pytest.raises(TypeError, match=message):
        BoxSets(**fields)


def test_any_integer_counts_and_floating_boxes_and_scores_are_fine():
    sets = BoxSets(torch.tensor([[[0.1, 0.1, 0.5, 0.5]]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float16),
                   torch.tensor([1], dtype=torch.int8), torch.tensor([False]))
    assert sets[0][0].shape == (1, 4)


@pytest.mark.parametrize("score", [-1.0, float("nan"), float("inf")])
def test_scores_of_counted_boxes_must_be_finite_and_not_negative(score):
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6]]])
    with pytest.raises(ValueError, match=rf"score 1 of image 0 must be finite and >= 0; got {score}"):
        BoxSets(boxes, torch.tensor([[1.0, score]]), torch.tensor([2]), torch.tensor([False]))
    with pytest.raises(ValueError, match="score 0 of image 1 must be finite"):
        BoxSets.from_lists([boxes[0], boxes[0, :1]], [[1.0, 1.0], [score]])
    BoxSets(boxes, torch.tensor([[1.0, score]]), torch.tensor([1]), torch.tensor([False]))  # padding: unchecked


@pytest.mark.parametrize("max_boxes", [0, -1, 1.5, True, "2"])
def test_from_lists_refuses_a_max_boxes_that_is_not_a_positive_int(max_boxes):
    with pytest.raises(ValueError, match=rf"max_boxes must be an integer >= 1 or None; got {max_boxes!r}"):
        BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.5, 0.5]])], max_boxes=max_boxes)
    assert BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 3)], max_boxes=np.int64(2)).max_boxes == 2


def test_from_lists_names_scores_that_are_not_numbers():
    for scores in (["a"], [[None]], [object()]):
        with pytest.raises(ValueError, match=r"scores must be lists of \(k_i,\) numbers, one per image; got"):
            BoxSets.from_lists([[[0.1, 0.1, 0.2, 0.2]]], scores)

"""BoxSets: padding, indexing, areas and validation errors that name the sample and the box."""

import math

import pytest
import torch

from ccrop_plugins import BoxSets, validate_boxes
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
    assert boxes.tolist() == [[0.0, 0.0, 1.0, 1.0]] and scores.tolist() == [1.0]
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
        BoxSets(torch.zeros(2, 1, 4), torch.ones(2, 2), torch.ones(2, dtype=torch.int64), torch.zeros(2, dtype=torch.bool))
    whole = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])
    with pytest.raises(ValueError, match=r"counts must lie in \[1, 1\]"):
        BoxSets(whole, torch.ones(1, 1), torch.tensor([0]), torch.zeros(1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape \(k, 4\)"):
        validate_boxes(torch.zeros(3))

"""A float64 box thinner than float32 resolves is refused by the store (an empty box cannot be sampled) with a
message that says the float32 cast emptied it and shows the box as given: it blamed the caller's valid box as
'inverted or empty', showing the cast values ``[0.5, 0.1, 0.5, 0.5]``."""

import pytest
import torch

from ccrop_plugins import BoxSets, BoxStore

THIN = [0.5, 0.1, 0.5 + 1e-12, 0.5]  # valid in float64: x0 < x1


def _boxes(first_box: list[float], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor([[[0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 1.0, 1.0]], [first_box, [0.0, 0.0, 1.0, 1.0]]], dtype=dtype)


def _sets(first_box: list[float]) -> BoxSets:
    boxes = _boxes(first_box)
    return BoxSets(boxes, torch.ones(2, 2, dtype=boxes.dtype), torch.tensor([2, 2]), torch.zeros(2, dtype=torch.bool))


def test_a_box_thinner_than_float32_names_the_cast_and_the_box_as_given():
    store = BoxStore(8, max_boxes=2)
    with pytest.raises(ValueError) as raised:
        store.update(torch.tensor([3, 5]), _sets(THIN))
    message = str(raised.value)
    assert message.startswith("box 0 of sample 5 [0.5, 0.1, 0.500000000001, 0.5] (torch.float64) collapses to the "
                              "empty box [0.5, 0.1, 0.5, 0.5] when stored as float32"), message
    assert "resolution about 1.2e-07 near 1" in message and "inverted" not in message
    assert store.version == 0 and int(store.counts.sum()) == 0  # unchanged


def test_a_float64_checkpoint_state_with_such_a_box_names_the_cast_too():
    state = BoxStore(2, max_boxes=2).state_dict()
    state.update(boxes=_sets(THIN).boxes, scores=_sets(THIN).scores, counts=torch.tensor([2, 2]))
    with pytest.raises(ValueError, match=r"box 0 of sample 1 \[0\.5, 0\.1, 0\.500000000001, 0\.5\] \(torch\.float64\) "
                                         "collapses to the empty box"):
        BoxStore(2, max_boxes=2).load_state_dict(state)


def test_a_box_empty_as_given_keeps_its_message():
    for dtype in (torch.float32, torch.float64):
        state = BoxStore(2, max_boxes=2).state_dict()
        state.update(boxes=_boxes([0.5, 0.1, 0.5, 0.5], dtype), scores=torch.ones(2, 2), counts=torch.tensor([2, 2]))
        with pytest.raises(ValueError, match=r"box 0 of sample 1 is inverted or empty \(need x0 < x1 and y0 < y1\): "
                                             r"\[0\.5, 0\.1, 0\.5, 0\.5\]"):
            BoxStore(2, max_boxes=2).load_state_dict(state)


def test_float64_boxes_wider_than_float32_resolves_are_stored():
    store = BoxStore(8, max_boxes=2)
    store.update(torch.tensor([3, 5]), _sets([0.5, 0.1, 0.5 + 1e-6, 0.5]))
    assert store.version == 1 and store.get(5)[0][0, 2] > store.get(5)[0][0, 0]


def test_a_float64_score_beyond_float32_says_the_store_keeps_float32():
    """A finite float64 score above float32's range became inf in the store: 'must be finite; got inf' blamed a
    score the caller gave as finite."""
    boxes = _boxes([0.1, 0.1, 0.5, 0.5])
    scores = torch.tensor([[1.0, 1.0], [1e300, 1.0]], dtype=torch.float64)
    sets = BoxSets(boxes, scores, torch.tensor([2, 2]), torch.zeros(2, dtype=torch.bool))  # finite: accepted
    store = BoxStore(8, max_boxes=2)
    with pytest.raises(ValueError, match=r"^score 0 of sample 5 must be finite and >= 0; got inf \(stored as float32: "
                                         r"a score above about 3\.4e38 becomes inf\)$"):
        store.update(torch.tensor([3, 5]), sets)
    assert store.version == 0

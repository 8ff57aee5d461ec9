"""refresh_boxes keeps one heatmap pipeline per store and options: tensor and array options are compared by value."""

import numpy as np
import pytest
import torch

from ccrop_plugins import BoxStore, refresh_boxes
from ccrop_plugins.kept_pipelines import _PIPELINES


class FittedChannelWeights:
    """A fitted heatmap rule with a weight option: ``features`` ``(N, C, h, w)`` weighted by ``weights`` ``(C,)``
    (a tensor, an array, or ``{"w": tensor}``); ``passes`` counts the refreshes it was fitted on."""

    def __init__(self, weights) -> None:
        self.weights = weights
        self.passes = 0

    def _weights(self) -> torch.Tensor:
        weights = self.weights["w"] if isinstance(self.weights, dict) else self.weights
        return torch.as_tensor(weights, dtype=torch.float32)

    def fit(self, features):
        return {"count": torch.tensor([float(len(features))])}

    def finalize(self, totals):
        self.passes += 1

    def __call__(self, features):
        return torch.einsum("nchw,c->nhw", features, self._weights())


@pytest.fixture
def fitted_rule(registered_heatmap):
    with registered_heatmap("fitted_channel_weights", FittedChannelWeights):
        yield


FEATURES = torch.zeros(1, 3, 8, 8)
FEATURES[0, 0, :3, :3] = 1.0  # channel 0: an object top-left
FEATURES[0, 1, 5:, 5:] = 1.0  # channel 1: an object bottom-right
TOP_LEFT, BOTTOM_RIGHT = [0.0, 0.0, 3 / 8, 3 / 8], [5 / 8, 5 / 8, 1.0, 1.0]


def _refresh(store: BoxStore, weights) -> list[float]:
    refresh_boxes(lambda images: FEATURES, [(torch.zeros(1, 3, 8, 8), torch.arange(1))], store,
                  heatmap="fitted_channel_weights", heatmap_options={"weights": weights}, localizer="bbox",
                  threshold=0.5, progress=False)
    return store.get(0)[0][0].tolist()


@pytest.mark.parametrize("make", [lambda: torch.tensor([1.0, 0.0, 0.0]), lambda: np.array([1.0, 0.0, 0.0]),
                                  lambda: {"w": torch.tensor([1.0, 0.0, 0.0])}],
                         ids=["tensor", "array", "dict-of-tensor"])
def test_options_rebuilt_with_equal_contents_every_pass_keep_one_pipeline_and_its_fit(fitted_rule, make):
    """A config that builds its weight tensor afresh for every refresh (equal contents): the tensors were keyed by
    identity, so each pass made a new kept pipeline (the fitted rule restarted from its fallback every pass, and the
    store's pipelines grew by one per pass)."""
    store = BoxStore(1, max_boxes=1)
    for _ in range(3):
        assert _refresh(store, make()) == TOP_LEFT
    (pipeline,) = _PIPELINES[store].values()
    assert pipeline.rule(None).passes == 3  # one rule, fitted on every pass


def test_options_with_other_contents_get_their_own_pipeline(fitted_rule):
    store = BoxStore(1, max_boxes=1)
    assert _refresh(store, torch.tensor([1.0, 0.0, 0.0])) == TOP_LEFT
    assert _refresh(store, torch.tensor([0.0, 1.0, 0.0])) == BOTTOM_RIGHT
    assert _refresh(store, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)) == TOP_LEFT  # another dtype: another
    assert _refresh(store, torch.tensor([[1.0, 0.0, 0.0]])[0]) == TOP_LEFT  # a view of equal contents: the first
    assert len(_PIPELINES[store]) == 3
    assert sorted(p.rule(None).passes for p in _PIPELINES[store].values()) == [1, 1, 2]


def test_a_tensor_changed_in_place_gets_a_new_pipeline_and_the_kept_one_keeps_its_contents(fitted_rule):
    """A kept pipeline is built on a copy of its tensor options: changing the tensor in place after a pass gives
    another key, and the first key's pipeline still weights with the contents it was keyed by."""
    store = BoxStore(1, max_boxes=1)
    weights = torch.tensor([1.0, 0.0, 0.0])
    assert _refresh(store, weights) == TOP_LEFT
    weights[:] = torch.tensor([0.0, 1.0, 0.0])
    assert _refresh(store, weights) == BOTTOM_RIGHT
    assert _refresh(store, torch.tensor([1.0, 0.0, 0.0])) == TOP_LEFT
    assert len(_PIPELINES[store]) == 2

"""A new kept heatmap pipeline reads each tensor option's bytes once: the key's digest also decides which options
the pipeline gets copies of (``_snapshot`` had digested every tensor option a second time)."""

import pytest
import torch

import ccrop_plugins.kept_pipelines as kept_pipelines
from ccrop_plugins import BoxStore


class Weighted:
    def __init__(self, weights, extra=None) -> None:
        self.weights = weights

    def __call__(self, features):
        return torch.einsum("nchw,c->nhw", features, self.weights)


@pytest.fixture
def weighted_rule(registered_heatmap):
    with registered_heatmap("digest_weighted", Weighted):
        yield


def test_each_tensor_option_is_digested_once_and_the_pipeline_keeps_copies(weighted_rule, monkeypatch):
    digested = []
    contents = kept_pipelines._contents
    monkeypatch.setattr(kept_pipelines, "_contents", lambda value: digested.append(value) or contents(value))
    store, weights, meta = BoxStore(1), torch.tensor([1.0, 0.0]), torch.empty(2, device="meta")
    pipeline = kept_pipelines.pipeline_for(store, "digest_weighted", {"weights": weights, "extra": [meta]})
    assert len(digested) == 2  # was 4: the weights and the meta tensor digested again by _snapshot
    kept = pipeline.options
    assert kept["weights"] is not weights and torch.equal(kept["weights"], weights)  # a copy, keyed by value
    assert kept["extra"][0] is meta  # no bytes to read: keyed by identity, kept as is
    rebuilt = {"weights": torch.tensor([1.0, 0.0]), "extra": [meta]}
    again = kept_pipelines.pipeline_for(store, "digest_weighted", rebuilt)
    assert again is pipeline and len(digested) == 4

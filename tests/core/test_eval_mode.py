"""eval_mode: eval inside the block, every submodule's own flag restored after (also on error)."""

from __future__ import annotations

import pytest
from torch import nn

from ccrop_plugins import eval_mode


def _model_with_a_frozen_part() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)))
    model.train()
    model[1].eval()  # a frozen BatchNorm, as backbones with frozen stages have
    return model


def test_everything_is_in_eval_mode_inside_and_restored_after():
    model = _model_with_a_frozen_part()
    before = [m.training for m in model.modules()]
    with eval_mode(model) as inside:
        assert inside is model
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    assert before.count(False) == 1  # the test is not trivially true


def test_flags_are_restored_when_the_block_raises():
    model = _model_with_a_frozen_part()
    before = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(model):
            raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before


def test_a_model_in_eval_mode_stays_in_eval_mode():
    model = nn.Linear(2, 2).eval()
    with eval_mode(model):
        pass
    assert not model.training


def test_a_plain_function_passes_through():
    def feature_fn(x):
        return x

    with eval_mode(feature_fn) as inside:
        assert inside is feature_fn

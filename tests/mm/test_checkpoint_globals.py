"""The weights-only allow-list for mmengine checkpoints: loads what mmengine saves, refuses the rest."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from ccrop_mm import allow_mmengine_checkpoints, mmengine_checkpoint_globals


class _Lookup:
    """Pickles as ``getattr(owner, name)``: what a crafted checkpoint would use to reach code."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def _round_trip(obj, path):
    torch.save(obj, path)
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        return torch.load(path, weights_only=True)


def test_message_hub_state_loads_weights_only(tmp_path):
    hub = MessageHub.get_instance("ccrop_test_checkpoint_globals")
    for value in (1.0, 2.0, 6.0):
        hub.update_scalar("train/loss", value)
    hub.update_info("iter", np.int64(7))
    state = {"message_hub": hub.state_dict(), "array": np.arange(4, dtype=np.float32)}
    torch.save(state, tmp_path / "plain.pth")
    with pytest.raises(pickle.UnpicklingError, match="HistoryBuffer"):
        torch.load(tmp_path / "plain.pth", weights_only=True)
    loaded = _round_trip(state, tmp_path / "hub.pth")
    buffer = loaded["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, HistoryBuffer)
    assert (buffer.mean(), buffer.max(), buffer.current(), buffer.statistics("min")) == (3.0, 6.0, 6.0, 1.0)
    assert loaded["message_hub"]["runtime_info"]["iter"] == 7
    assert np.array_equal(loaded["array"], np.arange(4, dtype=np.float32))


@pytest.mark.parametrize(
    "owner, name",
    [(HistoryBuffer, "__init__"), (HistoryBuffer, "register_statistics"), (np.ndarray, "tofile"), (np.dtype, "mro")],
)
def test_getattr_stand_in_refuses_everything_but_the_statistics(owner, name, tmp_path):
    with pytest.raises(pickle.UnpicklingError, match=rf"getattr\(.*'{name}'\) refused"):
        _round_trip({"x": _Lookup(owner, name)}, tmp_path / "crafted.pth")


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(pickle.UnpicklingError):
        _round_trip({"x": np.array([1, "a"], dtype=object)}, tmp_path / "objects.pth")


def test_allow_mmengine_checkpoints_is_process_wide_and_idempotent(tmp_path):
    before = torch.serialization.get_safe_globals()
    torch.save({"buffer": HistoryBuffer([1.0], [1])}, tmp_path / "buffer.pth")
    try:
        assert allow_mmengine_checkpoints() and allow_mmengine_checkpoints()
        added = [g for g in torch.serialization.get_safe_globals() if g not in before]
        assert sorted(map(repr, added)) == sorted(map(repr, mmengine_checkpoint_globals()))
        assert torch.load(tmp_path / "buffer.pth", weights_only=True)["buffer"].mean() == 1.0
    finally:  # leave the process as it was for the other tests
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
    assert set(torch.serialization.get_safe_globals()) == set(before)

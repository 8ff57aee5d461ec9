"""A Lightly user who stops and resumes a run of the ready plain-loop script, and loads what it saved."""

from __future__ import annotations

import torch
from torch import nn

from ccrop_lightly import BoxRefresher
from ccrop_plugins import BoxSets, BoxStore


def test_a_stores_own_state_loads_into_the_refresher():
    # simclr_ccrop.py saved store.state_dict(); the refresher refused it: "refresher state lacks 'store'".
    saved = BoxStore(4)
    one = torch.tensor([[[0.1, 0.2, 0.6, 0.7]]]).repeat(4, 1, 1)
    saved.update(torch.arange(4), BoxSets(one, torch.ones(4, 1), torch.ones(4, dtype=torch.long),
                                          torch.zeros(4, dtype=torch.bool)))
    store = BoxStore(4)
    loader = [(torch.zeros(4, 3, 8, 8), torch.arange(4))]
    refresher = BoxRefresher(store, nn.Conv2d(3, 2, 3), loader, warmup_epochs=1, interval=1, max_epochs=3)
    refresher.load_state_dict(saved.state_dict())
    assert store.version == 1 and torch.equal(store.get(3)[0], one[3])
    assert refresher.catch_up(2) is None  # filled boxes of unknown age are trusted

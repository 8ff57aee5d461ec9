"""docs/plugins.md's "A plugin module" runs as written: registered like an installed plugin, its sampler and
localizer are found by name, by the core and by the Lightly refresher (the fitted heatmap example of the same
guide is run by tests/core/test_heatmap_rules.py)."""

from __future__ import annotations

import re
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ccrop_lightly import BoxRefresher, BoxStore
from ccrop_plugins import ENTRY_POINT_GROUP, ContrastiveCrop, get_localizer, get_sampler, list_plugins

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()


@pytest.fixture
def guide_plugin(registered_plugin):
    code = re.search(r"```python\n(# my_package/ccrop_plugin.py\n.*?)```", GUIDE, re.S).group(1)
    module = types.ModuleType("my_package.ccrop_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)  # noqa: S102
    with registered_plugin(module, "my-package"):
        yield module


def test_the_entry_point_table_names_the_group_and_the_module():
    table = re.search(r"```toml\n(\[project.entry-points.ccrop_plugins\]\nmy_plugin.*?)```", GUIDE, re.S).group(1)
    entry_points = tomllib.loads(table)["project"]["entry-points"]
    assert entry_points == {ENTRY_POINT_GROUP: {"my_plugin": "my_package.ccrop_plugin"}}


def test_the_plugin_modules_names_work_by_name(guide_plugin):
    names = {(entry.kind, entry.name, entry.provider) for entry in list_plugins()}
    assert {("sampler", "edge", "my-package"), ("localizer", "peak", "my-package")} <= names
    low, high = np.array([2.0, 5.0]), np.array([10.0, 20.0])
    corners = {tuple(get_sampler("edge")(low, high, (low + high) / 2, np.array([8.0, 8.0]),
                                         torch.Generator().manual_seed(seed))) for seed in range(16)}
    assert corners <= {(2.0, 5.0), (2.0, 20.0), (10.0, 5.0), (10.0, 20.0)} and len(corners) > 1
    assert ContrastiveCrop(224, sampler="edge")(torch.zeros(3, 300, 300), torch.tensor([[0.2, 0.2, 0.6, 0.6]])).shape \
        == (3, 224, 224)
    maps = torch.zeros(3, 8, 8)
    maps[0, 0, 0], maps[1, 7, 7], maps[2, 3, 4] = 1.0, 1.0, 1.0
    boxes = get_localizer("peak")(maps).boxes[:, 0].tolist()
    assert boxes == [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.3125, 0.1875, 0.8125, 0.6875]]


def test_the_lightly_refresher_localizes_with_the_plugins_localizer(guide_plugin):
    store = BoxStore(4)
    images = torch.zeros(4, 3, 16, 16)
    images[:, :, 12, 12] = 1.0  # each heatmap's maximum: the box's corner is clamped to (0.5, 0.5)
    refresher = BoxRefresher(store, torch.nn.Identity(), [(images, torch.arange(4))], warmup_epochs=0, interval=1,
                             localizer="peak")
    stats = refresher.refresh()
    assert stats.mean_box_area == 0.25 and store.get(0)[0].tolist() == [[0.5, 0.5, 1.0, 1.0]]

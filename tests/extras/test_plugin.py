"""The ``ccrop_extras`` plugin is installed and found exactly as a third-party plugin: through the ``ccrop_plugins``
entry-point group of the installed metadata, and only then (``import ccrop_plugins`` never imports it)."""

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ccrop_plugins import get_heatmap
from ccrop_plugins.plugins import ENTRY_POINT_GROUP, registry


def test_the_entry_point_is_in_the_installed_metadata():
    (entry_point,) = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
                      if ep.name == "ccrop_extras"]
    assert entry_point.value == "ccrop_extras.plugin"
    assert entry_point.dist.metadata["Name"] == "ccrop-plugins"


def test_autoload_finds_ddt_and_ncut_and_the_core_alone_does_not_import_them(tmp_path):
    """A fresh interpreter with autoload on (as a user's program runs), outside the repository."""
    script = textwrap.dedent(
        """
        import sys
        import ccrop_plugins
        print("LOADED", "ccrop_extras" in sys.modules)
        from ccrop_plugins import HeatmapPipeline, get_heatmap, list_plugins
        print("DDT", get_heatmap("ddt").__module__, "NCUT", get_heatmap("ncut").__module__)
        print("FITS", HeatmapPipeline("ddt", {"sign": "image"}).fits)
        print("ROWS", sorted((e.name, e.provider) for e in list_plugins(include_broken=True) if e.kind == "heatmap"))
        from ccrop_plugins.heatmap_rules import DatasetPCA, NormalizedCut  # the old path, loaded on use
        print("OLD", DatasetPCA.__module__, NormalizedCut.__module__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "CCROP_PLUGINS_NO_AUTOLOAD"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "LOADED False" in run.stdout
    assert "DDT ccrop_extras.ddt NCUT ccrop_extras.ncut" in run.stdout
    assert "FITS True" in run.stdout
    rules = ["channel_norm", "channel_sum", "ddt", "distinctiveness", "ncut"]
    assert f"ROWS {[(name, 'ccrop-plugins') for name in rules]}" in run.stdout  # nothing refused, one provider
    assert "OLD ccrop_extras.ddt ccrop_extras.ncut" in run.stdout


def test_without_autoload_ddt_is_unknown_and_the_error_lists_the_available_names():
    assert "ddt" not in registry("heatmap")  # this module does not take the extras_plugin fixture
    with pytest.raises(ValueError,
                       match="unknown heatmap 'ddt'; available: channel_norm, channel_sum, distinctiveness$"):
        get_heatmap("ddt")


def test_the_fixture_registers_the_plugin_as_its_entry_point_would(extras_plugin):
    assert {"ddt", "ncut"} <= set(registry("heatmap"))
    assert get_heatmap("ncut").__module__ == "ccrop_extras.ncut"


def test_docs_plugins_md_shows_the_plugin_module_as_it_is():
    """docs/plugins.md presents ccrop_extras/plugin.py as the real example: its code lines, in order."""
    root = Path(__file__).parents[2]
    block = re.search(r"```python\n# ccrop_extras/plugin.py\n(.*?)```", (root / "docs" / "plugins.md").read_text(),
                      re.S)
    source = (root / "ccrop_extras" / "plugin.py").read_text().split("from __future__ import annotations\n", 1)[1]
    assert [line for line in block.group(1).splitlines() if line] == [line for line in source.splitlines() if line]

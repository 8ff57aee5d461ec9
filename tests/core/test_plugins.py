"""The plugin manager: names, providers, errors, a fixture plugin, a pip-installed plugin and `ccrop plugins`."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pluggy
import pytest
import torch

from ccrop_cli.main import main as ccrop_main
from ccrop_plugins import ContrastiveCrop, get_heatmap, get_localizer, get_sampler, list_plugins
from ccrop_plugins.plugins import load_plugins, plugin_manager, registry

EXAMPLE_PLUGIN = Path(__file__).parents[1] / "example_plugin"
hookimpl = pluggy.HookimplMarker("ccrop_plugins")


class EdgeSampler:
    """Always the low end of the range."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self, low, high, centre, extent, generator=None):
        return low + self.offset


class FixturePlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("edge", EdgeSampler)


class DuplicatePlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("beta", EdgeSampler)


class BadNamePlugin:
    @hookimpl
    def ccrop_register_localizers(self, register):
        register("", EdgeSampler)


def _registered(plugin, name):
    """Register ``plugin`` as ``name`` for one test; always unregistered afterwards."""
    load_plugins()
    plugin_manager.register(plugin, name=name)
    try:
        yield plugin
    finally:
        plugin_manager.unregister(plugin)


@pytest.fixture
def fixture_plugin():
    yield from _registered(FixturePlugin(), "fixture-plugin")


@pytest.fixture
def duplicate_plugin():
    yield from _registered(DuplicatePlugin(), "duplicate-plugin")


def test_builtins_are_listed_with_their_provider():
    entries = [(e.kind, e.name, e.provider) for e in list_plugins()]
    assert entries == [
        ("heatmap", "channel_norm", "ccrop-plugins"),
        ("heatmap", "channel_sum", "ccrop-plugins"),
        ("localizer", "bbox", "ccrop-plugins"),
        ("localizer", "components", "ccrop-plugins"),
        ("sampler", "beta", "ccrop-plugins"),
        ("sampler", "gaussian", "ccrop-plugins"),
        ("sampler", "uniform", "ccrop-plugins"),
    ]


def test_unknown_names_list_the_available_ones():
    with pytest.raises(ValueError, match="^unknown sampler 'betta'; available: beta, gaussian, uniform$"):
        get_sampler("betta")
    with pytest.raises(ValueError, match="^unknown localizer 'box'; available: bbox, components$"):
        get_localizer("box")
    with pytest.raises(ValueError, match="^unknown heatmap 'cam'; available: channel_norm, channel_sum$"):
        get_heatmap("cam")
    with pytest.raises(ValueError, match="unknown plugin kind 'samplers'; available: heatmap, localizer, sampler"):
        registry("samplers")


def test_bad_options_list_the_accepted_ones():
    with pytest.raises(TypeError) as error:
        get_localizer("components", treshold=0.2)
    assert str(error.value) == (
        "localizer 'components' (from ccrop-plugins) does not accept options ['treshold']; "
        "accepted: threshold, max_boxes, min_area, label_resolution"
    )
    with pytest.raises(TypeError, match=r"sampler 'uniform' \(from ccrop-plugins\) does not accept options \['alpha'\]; accepted: none"):
        get_sampler("uniform", alpha=0.5)


def test_a_plugin_registered_in_a_fixture_is_found(fixture_plugin):
    assert ("sampler", "edge", "fixture-plugin") in [(e.kind, e.name, e.provider) for e in list_plugins()]
    sampler = get_sampler("edge", offset=1.0)
    assert isinstance(sampler, EdgeSampler) and sampler.offset == 1.0
    crop = ContrastiveCrop(8, sampler="edge")
    params = crop.make_params((100, 100), torch.tensor([[0.5, 0.5, 1.0, 1.0]]), torch.Generator().manual_seed(0))
    assert params["top"] == round(50 - params["height"] / 2) or params["top"] == 100 - params["height"]
    with pytest.raises(TypeError, match=r"sampler 'edge' \(from fixture-plugin\) .* accepted: offset"):
        get_sampler("edge", sigma=1)


def test_the_fixture_plugin_is_gone_afterwards():
    with pytest.raises(ValueError, match="available: beta, gaussian, uniform$"):
        get_sampler("edge")


def test_duplicate_names_name_both_providers(duplicate_plugin):
    with pytest.raises(ValueError, match="^sampler 'beta' is registered twice: by ccrop-plugins and by duplicate-plugin$"):
        get_sampler("uniform")
    assert get_localizer("bbox") is not None  # other kinds are unaffected


def test_bad_registrations_name_the_provider():
    yield_plugin = _registered(BadNamePlugin(), "bad-name-plugin")
    next(yield_plugin)
    try:
        with pytest.raises(TypeError, match="bad-name-plugin registered a localizer with an invalid name ''"):
            get_localizer("bbox")
    finally:
        next(yield_plugin, None)
    assert get_localizer("bbox") is not None


def test_ccrop_plugins_command(capsys):
    assert ccrop_main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PROVIDER"]
    rows = [line.split() for line in lines[1:]]
    assert ["heatmap", "channel_sum", "ccrop-plugins"] in rows
    assert ["localizer", "components", "ccrop-plugins"] in rows
    assert ["sampler", "gaussian", "ccrop-plugins"] in rows and len(rows) == 7
    assert ccrop_main(["plugins", "--kind", "sampler"]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == ["beta", "gaussian", "uniform"]


def test_pip_installed_plugin_is_found_by_name(tmp_path):
    """Install tests/example_plugin with pip into a target folder, then look it up in a fresh interpreter."""
    source = tmp_path / "source"
    shutil.copytree(EXAMPLE_PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert list(target.glob("ccrop_example_plugin-0.1.0.dist-info"))

    script = textwrap.dedent(
        """
        import torch
        from ccrop_cli.main import main
        from ccrop_plugins import ContrastiveCrop, get_localizer
        main(["plugins"])
        sets = get_localizer("example_centre", fraction=0.5)(torch.zeros(2, 8, 8))
        print("BOXES", sets.boxes[:, 0].tolist())
        crop = ContrastiveCrop(8, sampler="example_midpoint", scale=(0.25, 0.25), ratio=(1, 1))
        print("PARAMS", crop.make_params((100, 100), sets[0][0]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "CCROP_PLUGINS_NO_AUTOLOAD"}  # autoload on
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split() for line in run.stdout.splitlines()]
    assert ["localizer", "example_centre", "ccrop-example-plugin"] in rows
    assert ["sampler", "example_midpoint", "ccrop-example-plugin"] in rows
    assert ["sampler", "beta", "ccrop-plugins"] in rows  # built-ins still there
    assert "BOXES [[0.25, 0.25, 0.75, 0.75], [0.25, 0.25, 0.75, 0.75]]" in run.stdout
    # midpoint of the allowed range [25 - 25, 75 - 25] for a 50 px crop: 25
    assert "PARAMS {'top': 25, 'left': 25, 'height': 50, 'width': 50, 'box_index': 0}" in run.stdout
    # this process has autoload off and no such path: the names came from the installed distribution
    with pytest.raises(ValueError, match="unknown localizer 'example_centre'"):
        get_localizer("example_centre")
    np.testing.assert_equal(sorted(registry("sampler")), ["beta", "gaussian", "uniform"])

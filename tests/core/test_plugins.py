"""The plugin manager: names, providers, errors, a fixture plugin, a pip-installed plugin and `ccrop plugins`."""

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pluggy
import pytest
import torch

from ccrop_cli.main import main as ccrop_main
from ccrop_plugins import ContrastiveCrop, get_heatmap, get_localizer, get_sampler, list_plugins
from ccrop_plugins.plugins import AUTOLOAD_ENV, PluginWarning, load_plugins, plugin_manager, registry
from ccrop_plugins.samplers import BetaSampler, UniformSampler

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
    heatmaps = [entry for entry in entries if entry[0] == "heatmap"]  # the heatmap rules grow (issue 9)
    assert {("heatmap", "channel_norm", "ccrop-plugins"), ("heatmap", "channel_sum", "ccrop-plugins")} <= set(heatmaps)
    assert all(provider == "ccrop-plugins" for _, _, provider in heatmaps) and heatmaps == sorted(heatmaps)
    assert entries[len(heatmaps) :] == [
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
    with pytest.raises(ValueError,
                       match=r"^unknown heatmap 'cam'; available: ([a-z_]+, )*channel_norm, channel_sum(, [a-z_]+)*$"):
        get_heatmap("cam")
    with pytest.raises(ValueError, match="unknown plugin kind 'samplers'; available: heatmap, localizer, sampler"):
        registry("samplers")


@pytest.mark.parametrize("name", [["bbox"], {"name": "bbox"}, None, 5])
def test_a_name_that_is_not_text_is_named_with_the_available_ones(name):
    # a list or dict was "TypeError: unhashable type" from the registry lookup
    with pytest.raises(ValueError, match=r"^unknown localizer .*; available: bbox, components$"):
        get_localizer(name)
    with pytest.raises(ValueError, match=r"^unknown sampler .*; available: beta, gaussian, uniform$"):
        get_sampler(name)


def test_bad_options_list_the_accepted_ones():
    with pytest.raises(TypeError) as error:
        get_localizer("components", treshold=0.2)
    assert str(error.value) == (
        "localizer 'components' (from ccrop-plugins) does not accept options ['treshold']; "
        "accepted: threshold, max_boxes, min_area, label_resolution, core_level"
    )
    with pytest.raises(TypeError, match=r"sampler 'uniform' \(from ccrop-plugins\) does not accept options "
                                        r"\['alpha'\]; accepted: none"):
        get_sampler("uniform", alpha=0.5)
    with pytest.raises(TypeError, match=r"does not accept options \['alpah'\]; accepted: alpha$"):
        get_sampler("beta", alpah=0.6, alpha=0.5)  # only the unknown option is named, not the accepted alpha


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
    """Drive the fixture's own set-up and teardown, so that this fails whatever the test order."""
    fixture = _registered(FixturePlugin(), "fixture-plugin")
    next(fixture)
    assert "edge" in registry("sampler")
    next(fixture, None)  # the teardown
    with pytest.raises(ValueError, match="available: beta, gaussian, uniform$"):
        get_sampler("edge")
    assert plugin_manager.get_plugin("fixture-plugin") is None


@pytest.fixture(autouse=True)
def _no_plugin_leaks():
    """Every test leaves the plugin manager as it found it."""
    load_plugins()
    before = {name for name, _ in plugin_manager.list_name_plugin()}
    yield
    assert {name for name, _ in plugin_manager.list_name_plugin()} == before


def test_a_duplicate_name_is_refused_for_the_later_plugin_only(duplicate_plugin):
    with pytest.warns(PluginWarning, match="refused sampler 'beta' of duplicate-plugin: "
                                           "sampler 'beta' is already registered by ccrop-plugins"):
        assert isinstance(get_sampler("beta"), BetaSampler)  # the built-in is kept
    assert isinstance(get_sampler("uniform"), UniformSampler)
    assert get_localizer("bbox") is not None  # other kinds are unaffected
    broken = [(e.kind, e.name, e.provider) for e in list_plugins(include_broken=True) if e.broken]
    assert broken == [("sampler", "beta", "duplicate-plugin")]


class TwoNamesPlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("uniform", EdgeSampler)  # taken: refused
        register("edge", EdgeSampler)  # kept


def test_the_other_names_of_a_plugin_with_a_duplicate_still_work():
    with _plugin(TwoNamesPlugin(), "two-names"), pytest.warns(PluginWarning, match="'uniform' of two-names"):
        assert isinstance(get_sampler("edge"), EdgeSampler)
        assert isinstance(get_sampler("uniform"), UniformSampler)


def test_bad_registrations_are_refused_naming_the_provider():
    with _plugin(BadNamePlugin(), "bad-name-plugin"), \
            pytest.warns(PluginWarning, match="refused localizer '' of bad-name-plugin: invalid name ''"):
        assert get_localizer("bbox") is not None
        broken = [(e.kind, e.name, e.provider) for e in list_plugins(True) if e.broken]
        assert ("localizer", "", "bad-name-plugin") in broken


class RaisingPlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("edge", EdgeSampler)
        raise RuntimeError("half-way")


def test_a_hook_that_raises_registers_nothing_and_the_rest_works():
    with _plugin(RaisingPlugin(), "raising"), \
            pytest.warns(PluginWarning,
                         match="raising: its ccrop_register_samplers hook raised RuntimeError: half-way"):
        assert sorted(registry("sampler")) == ["beta", "gaussian", "uniform"]


class CountingPlugin:
    calls = 0

    @hookimpl
    def ccrop_register_samplers(self, register):
        type(self).calls += 1
        register("counted", EdgeSampler)


def test_the_registry_is_cached_and_rebuilt_when_plugins_change():
    registry("sampler")
    with _plugin(CountingPlugin(), "counting"):
        for _ in range(5):
            get_sampler("counted")
            get_sampler("beta")
        assert CountingPlugin.calls == 1
        with _plugin(FixturePlugin(), "fixture-plugin"):
            assert "edge" in registry("sampler") and "counted" in registry("sampler")
            assert CountingPlugin.calls == 2
    assert sorted(registry("sampler")) == ["beta", "gaussian", "uniform"]


@contextmanager
def _plugin(plugin, name):
    helper = _registered(plugin, name)
    next(helper)
    try:
        yield plugin
    finally:
        next(helper, None)


# Entry-point discovery, with fake distributions on sys.path (nothing is installed).

GOOD_PLUGIN = """
import pluggy
hookimpl = pluggy.HookimplMarker("ccrop_plugins")

class Edge:
    def __call__(self, low, high, centre, extent, generator=None):
        return low

@hookimpl
def ccrop_register_samplers(register):
    register("fake_edge", Edge)
"""


@pytest.fixture
def fake_distributions(tmp_path, monkeypatch):
    """``add(dist, module, source)`` writes a distribution with a ``ccrop_plugins`` entry point;
    ``load()`` loads the group as a user's process would (autoload on)."""
    modules = []

    def add(dist_name, module_name, source, entry_name=None):
        (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist_name.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ccrop_plugins]\n{entry_name or module_name} = {module_name}\n")
        modules.append(module_name)

    def load():
        importlib.invalidate_caches()
        return load_plugins(reload=True)

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    add.load = load
    try:
        yield add
    finally:
        monkeypatch.setenv(AUTOLOAD_ENV, "1")
        load_plugins(reload=True)  # forget the fake plugins
        for module_name in modules:
            sys.modules.pop(module_name, None)


def test_a_plugin_that_raises_on_import_is_skipped_and_the_rest_works(fake_distributions):
    fake_distributions("ccrop-broken-fake", "ccrop_broken_fake", "raise ImportError('needs torch 9')")
    fake_distributions("ccrop-good-fake", "ccrop_good_fake", GOOD_PLUGIN)
    with pytest.warns(PluginWarning, match=r"skipped plugin 'ccrop_broken_fake' of distribution ccrop-broken-fake: "
                                           r"cannot load 'ccrop_broken_fake': ImportError: needs torch 9"):
        fake_distributions.load()
    assert sorted(registry("sampler")) == ["beta", "fake_edge", "gaussian", "uniform"]
    assert registry("sampler")["fake_edge"].provider == "ccrop-good-fake"
    assert isinstance(get_sampler("beta"), BetaSampler)
    broken = [e for e in list_plugins(include_broken=True) if e.broken]
    assert [(e.kind, e.name, e.provider) for e in broken] == [("plugin", "ccrop_broken_fake", "ccrop-broken-fake")]
    assert "ImportError: needs torch 9" in broken[0].error
    # a retry in the same process still has the built-ins
    with pytest.warns(PluginWarning, match="needs torch 9"):
        fake_distributions.load()
    assert sorted(registry("sampler")) == ["beta", "fake_edge", "gaussian", "uniform"]


def test_a_misspelled_hook_skips_that_plugin(fake_distributions):
    fake_distributions(
        "ccrop-typo-fake",
        "ccrop_typo_fake",
        """
        import pluggy
        hookimpl = pluggy.HookimplMarker("ccrop_plugins")

        @hookimpl
        def ccrop_register_sampler(register):
            register("typo", object)
        """,
    )
    with pytest.warns(PluginWarning, match="ccrop-typo-fake: unknown hook 'ccrop_register_sampler'; "
                                           "available: .*ccrop_register_samplers"):
        fake_distributions.load()
    assert sorted(registry("sampler")) == ["beta", "gaussian", "uniform"]
    assert plugin_manager.get_plugin("ccrop_typo_fake") is None


def test_an_installed_plugin_reusing_a_builtin_name_loses_that_name_only(fake_distributions):
    fake_distributions("ccrop-good-fake", "ccrop_good_fake", GOOD_PLUGIN + '    register("beta", Edge)\n')
    fake_distributions.load()
    with pytest.warns(PluginWarning, match="refused sampler 'beta' of ccrop-good-fake: "
                                           "sampler 'beta' is already registered by ccrop-plugins"):
        assert isinstance(get_sampler("beta"), BetaSampler)
    assert registry("sampler")["fake_edge"].provider == "ccrop-good-fake"


def test_ccrop_plugins_command_lists_broken_plugins(fake_distributions, capsys):
    fake_distributions("ccrop-broken-fake", "ccrop_broken_fake", "raise ImportError('needs torch 9')")
    fake_distributions("ccrop-good-fake", "ccrop_good_fake", GOOD_PLUGIN + '    register("beta", Edge)\n')
    with pytest.warns(PluginWarning):
        fake_distributions.load()
        assert ccrop_main(["plugins", "--kind", "sampler"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ["sampler", "fake_edge", "ccrop-good-fake"] in [line.split() for line in lines]
    broken = [line for line in lines if "BROKEN" in line]
    assert len(broken) == 2
    assert broken[0].split()[:3] == ["plugin", "ccrop_broken_fake", "ccrop-broken-fake"]
    assert "ImportError: needs torch 9" in broken[0]
    assert broken[1].split()[:3] == ["sampler", "beta", "ccrop-good-fake"]
    assert "already registered by ccrop-plugins" in broken[1]


def test_ccrop_plugins_command(capsys):
    assert ccrop_main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PROVIDER"]
    rows = [line.split() for line in lines[1:]]
    assert ["heatmap", "channel_sum", "ccrop-plugins"] in rows
    assert ["localizer", "components", "ccrop-plugins"] in rows
    assert ["sampler", "gaussian", "ccrop-plugins"] in rows and len(rows) == len(list_plugins())
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


def test_an_unrecognised_autoload_value_warns_and_spaces_are_ignored(fake_distributions, monkeypatch):
    # 'on', 'ture', ' TRUE ' loaded every installed plugin without a word (only exactly 1/true/yes disabled them)
    fake_distributions("ccrop-good-fake", "ccrop_good_fake", GOOD_PLUGIN)
    monkeypatch.setenv(AUTOLOAD_ENV, "on")
    with pytest.warns(PluginWarning, match=r"CCROP_PLUGINS_NO_AUTOLOAD='on' is not one of 1, true, yes .* or 0, "
                                           r"false, no .*; loading installed plugins"):
        fake_distributions.load()
    assert "fake_edge" in registry("sampler")
    monkeypatch.setenv(AUTOLOAD_ENV, " TRUE ")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fake_distributions.load()
    assert "fake_edge" not in registry("sampler")
    for value in ("0", "no", ""):
        monkeypatch.setenv(AUTOLOAD_ENV, value)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fake_distributions.load()
        assert "fake_edge" in registry("sampler")


class ScaledSum:
    """A heatmap rule class: the channel sum times ``scale``."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, features):
        return features.sum(dim=1) * self.scale


class HeatmapClassPlugin:
    @hookimpl
    def ccrop_register_heatmaps(self, register):
        register("scaled_sum", ScaledSum)


def test_get_heatmap_builds_a_registered_class_with_options_and_returns_a_function_as_it_is():
    """As get_localizer / get_sampler: a usable rule, never the class itself (before: ScaledSum, no options)."""
    features = torch.arange(24.0).reshape(1, 2, 3, 4)
    with _plugin(HeatmapClassPlugin(), "heatmap-class-plugin"):
        rule = get_heatmap("scaled_sum", scale=2.0)
        assert isinstance(rule, ScaledSum) and rule.scale == 2.0
        torch.testing.assert_close(rule(features), features.sum(dim=1) * 2)
        assert isinstance(get_heatmap("scaled_sum"), ScaledSum)
        with pytest.raises(TypeError, match=r"heatmap 'scaled_sum' \(from heatmap-class-plugin\) does not accept "
                                            r"options \['sigma'\]; accepted: scale"):
            get_heatmap("scaled_sum", sigma=1.0)
    channel_sum = get_heatmap("channel_sum")
    torch.testing.assert_close(channel_sum(features), features.sum(dim=1))
    with pytest.raises(TypeError, match=r"heatmap 'channel_sum' \(from ccrop-plugins\) takes no options; got \['x'\]"):
        get_heatmap("channel_sum", x=1)

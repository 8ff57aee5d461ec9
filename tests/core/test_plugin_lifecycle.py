"""The plugin registry's life cycle: a hook looking names up while the registry is built (F3), and the hand
registration of docs/plugins.md with entry-point autoload on (F4)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch

from ccrop_plugins import get_heatmap, get_sampler, hookimpl, list_plugins
from ccrop_plugins.plugins import AUTOLOAD_ENV, PluginWarning, load_plugins, plugin_manager, registry


def _rule(features: torch.Tensor) -> torch.Tensor:
    return features.sum(1)


@pytest.fixture(autouse=True)
def _no_plugin_leaks() -> Iterator[None]:
    """Every test leaves the plugin manager as it found it."""
    load_plugins()
    before = {name for name, _ in plugin_manager.list_name_plugin()}
    yield
    assert {name for name, _ in plugin_manager.list_name_plugin()} == before


def _plugin_warnings(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``action()`` and the PluginWarnings it raised, as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    return result, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


# F3: a hook looking up a name of its own kind (to wrap another plugin's rule) while the registry is built

class RulePlugin:
    """Plugin A: the heatmap rule ``lc_fn``."""

    @hookimpl
    def ccrop_register_heatmaps(self, register):
        register("lc_fn", _rule)


class EagerPlugin:
    """Plugin B: wraps A's rule, looking it up in the hook (too early)."""

    @hookimpl
    def ccrop_register_heatmaps(self, register):
        inner = get_heatmap("lc_fn")
        register("lc_eager", lambda features: inner(features) * 2)


class CatchingPlugin:
    """Plugin B, falling back to a rule of its own when the lookup fails: the fallback would hide A's rule."""

    @hookimpl
    def ccrop_register_heatmaps(self, register):
        try:
            inner = get_heatmap("lc_fn")
        except Exception:
            inner = _rule
        register("lc_eager", inner)


class LazyPlugin:
    """Plugin B as docs/plugins.md says: looks A's rule up in the factory, when it is called."""

    class Doubled:
        def __init__(self) -> None:
            self.inner = get_heatmap("lc_fn")

        def __call__(self, features):
            return self.inner(features) * 2

    @hookimpl
    def ccrop_register_heatmaps(self, register):
        register("lc_lazy", self.Doubled)


class OtherKindPlugin:
    """A heatmap hook that looks up a sampler: another registry, built on its own."""

    @hookimpl
    def ccrop_register_heatmaps(self, register):
        sampler = get_sampler("beta")
        register("lc_other_kind", lambda features: features.sum(1) if sampler is not None else None)


ERROR = ("ccrop-plugins: refused heatmap '*' of eager-plugin: its ccrop_register_heatmaps hook looked up heatmap "
         "'lc_fn' while the registry was being built; look names up inside the factory (when it is called), not in "
         "the hook")


@pytest.mark.parametrize("eager", [EagerPlugin, CatchingPlugin])
def test_a_hook_looking_up_a_name_of_its_kind_is_refused_alone(registered_plugin, eager):
    # was: RecursionError (_cached -> _build_registry -> the hook -> get_heatmap -> _cached ...), refusals of the
    # built-ins and of plugin A ("its ccrop_register_heatmaps hook raised RecursionError"), and "unknown heatmap
    # 'lc_fn'; available: " with none listed (the catching hook: its fallback registered, silently)
    with registered_plugin(RulePlugin(), "rule-plugin"), registered_plugin(eager(), "eager-plugin"):
        names, messages = _plugin_warnings(lambda: sorted(registry("heatmap")))
        assert messages == [ERROR]
        assert "lc_fn" in names and "channel_norm" in names and "lc_eager" not in names
        assert get_heatmap("lc_fn") is _rule
        broken = [(e.kind, e.name, e.provider) for e in list_plugins(include_broken=True) if e.broken]
        assert broken == [("heatmap", "*", "eager-plugin")]


def test_the_lookup_fails_at_once_inside_the_hook(registered_plugin):
    seen: list[BaseException] = []

    class Recording:
        @hookimpl
        def ccrop_register_heatmaps(self, register):
            try:
                get_heatmap("lc_fn")
            except BaseException as error:  # noqa: B036  (what the hook sees)
                seen.append(error)
                raise

    with registered_plugin(RulePlugin(), "rule-plugin"), registered_plugin(Recording(), "recording-plugin"):
        _, messages = _plugin_warnings(lambda: registry("heatmap"))
    assert len(seen) == 1 and not isinstance(seen[0], (RecursionError, ValueError))
    assert str(seen[0]) == ("heatmap 'lc_fn' was looked up while the heatmap registry was being built (by a "
                            "ccrop_register_heatmaps hook); look names up inside the factory (when it is called), "
                            "not in the hook")
    assert len(messages) == 1 and "recording-plugin: its ccrop_register_heatmaps hook looked up heatmap 'lc_fn'" \
        in messages[0]


def test_a_name_looked_up_in_the_factory_or_of_another_kind_works(registered_plugin):
    features = torch.rand(1, 3, 4, 5)
    with registered_plugin(RulePlugin(), "rule-plugin"), registered_plugin(LazyPlugin(), "lazy-plugin"), \
            registered_plugin(OtherKindPlugin(), "other-kind-plugin"):
        (lazy, other), messages = _plugin_warnings(lambda: (get_heatmap("lc_lazy"), get_heatmap("lc_other_kind")))
        assert messages == []
        torch.testing.assert_close(lazy(features), 2 * features.sum(1))
        torch.testing.assert_close(other(features), features.sum(1))


# F4: docs/plugins.md's `plugin_manager.register(ccrop_extras.plugin)` with autoload on

HAND_PLUGIN = """
from ccrop_plugins import hookimpl

@hookimpl
def ccrop_register_heatmaps(register):
    register("lc_hand_rule", lambda features: features.sum(1))
"""


@pytest.fixture
def hand_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The module ``lc_hand`` (heatmap ``lc_hand_rule``), installed as distribution ``ccrop-lc-hand`` whose
    ccrop_plugins entry point ``lc_hand_plugin = lc_hand`` names it (and ``lc_hand_again = lc_hand`` too, with
    ``hand_module.twice()``), with autoload on; whatever the test registered by hand is unregistered afterwards."""
    (tmp_path / "lc_hand.py").write_text(textwrap.dedent(HAND_PLUGIN))
    info = tmp_path / "ccrop_lc_hand-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ccrop-lc-hand\nVersion: 0.1\n")
    entry_points = info / "entry_points.txt"
    entry_points.write_text("[ccrop_plugins]\nlc_hand_plugin = lc_hand\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    module = importlib.import_module("lc_hand")
    module.twice = lambda: entry_points.write_text(
        "[ccrop_plugins]\nlc_hand_plugin = lc_hand\nlc_hand_again = lc_hand\n")
    try:
        yield module
    finally:
        if plugin_manager.is_registered(module):
            plugin_manager.unregister(module)
        monkeypatch.setenv(AUTOLOAD_ENV, "1")
        load_plugins(reload=True)  # forget the fake entry point
        sys.modules.pop("lc_hand", None)


def _load_and_list() -> list[tuple[str, str, str]]:
    """Load the entry points as a first lookup does; every kind's registry built."""
    load_plugins(reload=True)
    return [(e.kind, e.name, e.provider) for e in list_plugins(include_broken=True) if e.broken]


@pytest.mark.parametrize("name", [None, "lc_hand_plugin"])
def test_a_plugin_registered_by_hand_before_the_first_lookup_is_its_entry_point(hand_module, name):
    # was: "skipped plugin 'lc_hand_plugin' of distribution ccrop-lc-hand: 'lc_hand' is already loaded as plugin
    # 'lc_hand' (one entry point per plugin module is enough)", listed as broken, and 'lc_hand' as provider (with
    # name='lc_hand_plugin': "the plugin name 'lc_hand_plugin' is already used by ccrop-plugins or a registered plugin")
    plugin_manager.register(hand_module, name=name)
    broken, messages = _plugin_warnings(_load_and_list)
    assert messages == [] and broken == []
    assert registry("heatmap")["lc_hand_rule"].provider == "ccrop-lc-hand"
    _, messages = _plugin_warnings(lambda: load_plugins(reload=True))  # a reload keeps the user's registration
    assert messages == [] and registry("heatmap")["lc_hand_rule"].provider == "ccrop-lc-hand"
    assert plugin_manager.get_name(hand_module) == (name or "lc_hand")


def test_registering_by_hand_a_plugin_its_entry_point_loaded_returns_its_name(hand_module):
    # was: pluggy's "ValueError: Plugin already registered under a different name: lc_hand=<module ...>" followed by
    # every registered plugin
    broken, messages = _plugin_warnings(_load_and_list)
    assert messages == [] and broken == []
    assert plugin_manager.register(hand_module) == "lc_hand_plugin"
    assert plugin_manager.register(hand_module, name="lc_hand_plugin") == "lc_hand_plugin"
    assert [name for name, plugin in plugin_manager.list_name_plugin() if plugin is hand_module] == ["lc_hand_plugin"]
    assert registry("heatmap")["lc_hand_rule"].provider == "ccrop-lc-hand"
    with pytest.raises(ValueError, match="already registered under a different name"):  # another name: pluggy's
        plugin_manager.register(hand_module, name="another")


@pytest.mark.parametrize("by_hand", [False, True])
def test_two_entry_points_naming_one_module_are_still_named_once(hand_module, by_hand):
    hand_module.twice()
    if by_hand:
        plugin_manager.register(hand_module)
    broken, messages = _plugin_warnings(_load_and_list)
    first = "lc_hand" if by_hand else "lc_hand_plugin"
    assert messages == ["ccrop-plugins: skipped plugin 'lc_hand_again' of distribution ccrop-lc-hand: 'lc_hand' is "
                        f"already loaded as plugin {first!r} (one entry point per plugin module is enough)"]
    assert broken == [("plugin", "lc_hand_again", "ccrop-lc-hand")]
    assert registry("heatmap")["lc_hand_rule"].provider == "ccrop-lc-hand"


class _MisspeltHook:
    @hookimpl
    def ccrop_register_sampler(self, register):  # no 's': not a hook of ccrop-plugins
        register("lc_misspelt", get_sampler)


class _Unmarked:
    def ccrop_register_samplers(self, register):  # no @hookimpl: pluggy ignores it
        register("lc_unmarked", get_sampler)


class _NoHook:
    pass


@pytest.mark.parametrize("plugin, problem", [
    (_MisspeltHook(), "unknown hook 'ccrop_register_sampler'"),
    (_Unmarked(), "ccrop_register_samplers is not marked with @ccrop_plugins.hookimpl"),
    (_NoHook(), "it implements no hook"),
])
def test_a_plugin_registered_by_hand_whose_hooks_would_not_run_is_refused_at_the_call(plugin, problem):
    # was: registered without a word, its names never there (an entry point's is skipped with a PluginWarning)
    with pytest.raises(ValueError, match=rf"cannot register plugin 'lc_bad': {problem}; available: "
                                         "ccrop_register_heatmaps, ccrop_register_localizers, ccrop_register_samplers"):
        plugin_manager.register(plugin, name="lc_bad")
    assert not plugin_manager.is_registered(plugin) and "beta" in registry("sampler")


class _HookMethods:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("lc_method", get_sampler)


class _StaticHook:
    @hookimpl
    @staticmethod
    def ccrop_register_samplers(register):
        register("lc_static", lambda: get_sampler("beta"))


def test_a_class_registered_instead_of_its_instance_is_refused_at_the_call():
    # was: registered, then every lookup warned "its ccrop_register_samplers hook raised TypeError: ... missing 1
    # required positional argument: 'self'", its names never there
    with pytest.raises(ValueError, match=r"cannot register plugin 'lc_class': its hook ccrop_register_samplers is a "
                                         r"method of class _HookMethods: register an instance, _HookMethods\(\)$"):
        plugin_manager.register(_HookMethods, name="lc_class")
    assert not plugin_manager.is_registered(_HookMethods) and "beta" in registry("sampler")


def test_a_class_whose_hooks_take_no_self_may_be_registered_itself():
    plugin_manager.register(_StaticHook, name="lc_static_class")
    try:
        assert registry("sampler")["lc_static"].provider == "lc_static_class"
    finally:
        plugin_manager.unregister(name="lc_static_class")

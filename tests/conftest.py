"""Shared test settings: only built-in plugins (installed ones must not change results; the shipped extras through
the ``extras_plugin`` fixture), small thread pools."""

import gc
import os
from contextlib import contextmanager

import pluggy
import pytest

os.environ.setdefault("CCROP_PLUGINS_NO_AUTOLOAD", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_finish(session):
    """Freeze what collection created (every framework is imported by then).

    Later full GC passes (mmengine calls ``gc.collect()`` per dataset; matplotlib and Lightning trigger
    generation-2 passes) then skip those long-lived objects: about 25 % less CPU in the Runner tests.
    Only cyclic garbage made before collection ends is never freed; reference counting is unaffected.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="module")
def extras_plugin():
    """The shipped extra heatmap rules ``ddt`` and ``ncut`` (the ``ccrop_extras`` plugin), registered as its entry
    point registers them in a program: the tests turn autoload off. Unregistered after the module."""
    from ccrop_extras import plugin
    from ccrop_plugins.plugins import load_plugins, plugin_manager

    load_plugins()
    if plugin_manager.is_registered(plugin):
        yield plugin
        return
    with _registered_plugin(plugin, "ccrop_extras"):
        yield plugin


@pytest.fixture(scope="module")
def docs_plugin():
    """docs/plugins.md's example plugin (tests/docs_plugin_example.py: heatmap ``far_from_mean``, localizer ``peak``,
    sampler ``edge``), registered as an installed plugin would be; unregistered after the module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("docs_plugin_example.py")
    spec = importlib.util.spec_from_file_location("docs_plugin_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with _registered_plugin(example.DocsPlugin(), "docs-plugin"):
        yield example


@contextmanager
def _registered_plugin(plugin, name):
    """``plugin`` registered as ``name`` inside the block, as an installed plugin is registered (the tests turn
    autoload off); unregistered when the block ends, also when it raises."""
    from ccrop_plugins.plugins import load_plugins, plugin_manager

    load_plugins()
    plugin_manager.register(plugin, name=name)
    try:
        yield plugin
    finally:
        plugin_manager.unregister(plugin)


@pytest.fixture(scope="session")
def registered_plugin():
    """The context manager ``registered_plugin(plugin, name)`` for tests and fixtures of any scope:
    ``with registered_plugin(MyPlugin(), "my-plugin"): ...``."""
    return _registered_plugin


class _HeatmapPlugin:
    """A plugin that registers one heatmap rule, ``factory``, as ``name``."""

    def __init__(self, name, factory) -> None:
        self.name, self.factory = name, factory

    @pluggy.HookimplMarker("ccrop_plugins")
    def ccrop_register_heatmaps(self, register):
        register(self.name, self.factory)


class _SizedBoxPlugin:
    """A plugin localizer with an option of its own only (no threshold, no max_boxes): one centred box of side
    ``size``."""

    @pluggy.HookimplMarker("ccrop_plugins")
    def ccrop_register_localizers(self, register):
        from ccrop_plugins import BoxSets

        register("sized_box", lambda size=0.5: lambda maps: BoxSets.from_lists(
            [[[0.5 - size / 2, 0.5 - size / 2, 0.5 + size / 2, 0.5 + size / 2]]] * len(maps)))


@pytest.fixture(scope="session")
def registered_sized_box():
    """The context manager ``registered_sized_box()``: the plugin localizer ``sized_box`` (its one option ``size``)
    registered inside the block (see ``registered_plugin``)."""
    return lambda: _registered_plugin(_SizedBoxPlugin(), "sized-box")


@pytest.fixture(scope="session")
def registered_heatmap():
    """The context manager ``registered_heatmap(name, factory)``: a plugin registering the heatmap rule ``factory``
    as ``name`` inside the block (see ``registered_plugin``)."""
    return lambda name, factory: _registered_plugin(_HeatmapPlugin(name, factory), f"{name}-plugin")

"""The one plugin manager: built-ins and installed plugins, found by name.

Third-party distributions add a module to the ``ccrop_plugins`` entry-point group::

    [project.entry-points.ccrop_plugins]
    my_plugin = "my_package.ccrop_plugin"

The group is loaded lazily, once, the first time a name is looked up. Set the environment
variable ``CCROP_PLUGINS_NO_AUTOLOAD=1`` to load only the built-ins (tests do).
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "ccrop_plugins"
AUTOLOAD_ENV = "CCROP_PLUGINS_NO_AUTOLOAD"
DEFAULT_PLUGINS = ("ccrop_plugins.builtin_plugins",)
BUILTIN_PROVIDER = "ccrop-plugins"

KINDS = {
    "heatmap": "ccrop_register_heatmaps",
    "localizer": "ccrop_register_localizers",
    "sampler": "ccrop_register_samplers",
}

plugin_manager = pluggy.PluginManager("ccrop_plugins")
plugin_manager.add_hookspecs(hookspecs)
_loaded = False


@dataclass(frozen=True)
class PluginEntry:
    """One registered name: its kind, the factory and the distribution that provides it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    provider: str


def load_plugins() -> pluggy.PluginManager:
    """Register the entry-point plugins (unless disabled) and the built-ins, once."""
    global _loaded
    if _loaded:
        return plugin_manager
    _loaded = True
    if os.environ.get(AUTOLOAD_ENV, "").lower() not in ("1", "true", "yes"):
        plugin_manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for module_name in DEFAULT_PLUGINS:
        if plugin_manager.get_plugin(module_name) is None:
            plugin_manager.register(importlib.import_module(module_name), name=module_name)
    plugin_manager.check_pending()
    return plugin_manager


def _providers() -> dict[str, str]:
    """Plugin name -> the distribution that installed it (built-ins: ``ccrop-plugins``)."""
    providers = {name: BUILTIN_PROVIDER for name in DEFAULT_PLUGINS}
    for plugin, dist in plugin_manager.list_plugin_distinfo():
        providers[plugin_manager.get_name(plugin)] = dist.metadata["name"]
    return providers


def registry(kind: str) -> dict[str, PluginEntry]:
    """Every name registered for ``kind`` (``heatmap``, ``localizer`` or ``sampler``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; available: {', '.join(KINDS)}")
    load_plugins()
    providers = _providers()
    entries: dict[str, PluginEntry] = {}
    caller = getattr(plugin_manager.hook, KINDS[kind])
    # pluggy lists trylast impls (the built-ins) first, then the others in registration order.
    for impl in caller.get_hookimpls():
        provider = providers.get(impl.plugin_name, impl.plugin_name)

        def register(name: str, factory: Callable[..., Any], provider: str = provider) -> None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"{provider} registered a {kind} with an invalid name {name!r}")
            if not callable(factory):
                raise TypeError(f"{provider} registered {kind} {name!r} with a non-callable {factory!r}")
            if name in entries:
                raise ValueError(
                    f"{kind} {name!r} is registered twice: by {entries[name].provider} and by {provider}"
                )
            entries[name] = PluginEntry(kind, name, factory, provider)

        impl.function(register=register)
    return entries


def lookup(kind: str, name: str) -> PluginEntry:
    """The entry registered as ``name`` for ``kind``, or a ``ValueError`` listing the available names."""
    entries = registry(kind)
    if name not in entries:
        raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(sorted(entries))}")
    return entries[name]


def _build(kind: str, name: str, options: dict[str, Any]) -> Any:
    entry = lookup(kind, name)
    try:
        signature = inspect.signature(entry.factory)
        signature.bind(**options)
    except TypeError:
        accepted = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        raise TypeError(
            f"{kind} {name!r} (from {entry.provider}) does not accept options {sorted(options)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        ) from None
    except ValueError:  # no signature available (a builtin): let the call decide
        pass
    return entry.factory(**options)


def get_heatmap(name: str) -> Callable:
    """The heatmap method ``name``: ``fn(features (N, C, h, w)) -> maps (N, h, w)``."""
    return lookup("heatmap", name).factory


def get_localizer(name: str, **options: Any) -> Callable:
    """Build localizer ``name`` with ``options``: a callable ``heatmaps (N, H, W) -> BoxSets``."""
    return _build("localizer", name, options)


def get_sampler(name: str, **options: Any) -> Callable:
    """Build centre sampler ``name`` with ``options`` (see :mod:`ccrop_plugins.samplers`)."""
    return _build("sampler", name, options)


def list_plugins() -> list[PluginEntry]:
    """Every heatmap method, localizer and sampler, sorted by kind and name."""
    return [entry for kind in KINDS for _, entry in sorted(registry(kind).items())]

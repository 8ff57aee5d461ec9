"""The extension points: one ``register`` hook per kind of plugin (docs/plugins.md, "The hooks"), which receives a
``register(name, factory)`` callback to call once per name; a factory is called with the user's options."""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("ccrop_plugins")
hookimpl = pluggy.HookimplMarker("ccrop_plugins")

Register = Callable[[str, Callable[..., Any]], None]


@hookspec
def ccrop_register_heatmaps(register: Register) -> None:
    """Register heatmap rules: ``register(name, rule)``, ``rule`` a function ``features (N, C, h, w) -> maps (N, h,
    w)`` (larger: "more object"; no options) or a class built with the options; a rule with ``fit`` / ``finalize``
    is fitted on the refresh pass (:class:`~ccrop_plugins.heatmaps.FittedHeatmap`): register its class, built once
    per stage (a registered instance is a ``TypeError`` when the name is used)."""


@hookspec
def ccrop_register_localizers(register: Register) -> None:
    """Register localizers: ``register(name, factory)``; ``factory(**options)(heatmaps (N, H, W)) -> BoxSets``."""


@hookspec
def ccrop_register_samplers(register: Register) -> None:
    """Register centre samplers: ``register(name, factory)``; ``factory(**options)`` is a ``CentreSampler``."""

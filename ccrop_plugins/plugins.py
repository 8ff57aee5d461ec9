"""The one plugin manager: built-ins, then installed plugins (the ``ccrop_plugins`` entry-point group, loaded
lazily and once unless ``CCROP_PLUGINS_NO_AUTOLOAD=1``), found by name; a faulty plugin or name is skipped with a
:class:`PluginWarning` (the rules: docs/plugins.md, "Rules the host enforces"; docs/configuration.md, "Plugins")."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import threading
import warnings
from dataclasses import dataclass
from types import FunctionType, MappingProxyType
from typing import Any, Callable, Mapping

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "ccrop_plugins"
AUTOLOAD_ENV = "CCROP_PLUGINS_NO_AUTOLOAD"
DEFAULT_PLUGINS = ("ccrop_plugins.builtin_plugins",)
BUILTIN_PROVIDER = "ccrop-plugins"

KINDS = {"heatmap": "ccrop_register_heatmaps", "localizer": "ccrop_register_localizers",
         "sampler": "ccrop_register_samplers"}


class PluginWarning(UserWarning):
    """A plugin (or one of its names) was skipped; the rest of the library keeps working."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered name: its kind, the factory and the distribution that provides it; a broken entry (``error``
    set, no ``factory``) is a refused name or a plugin that could not be loaded (kind ``"plugin"``)."""

    kind: str
    name: str
    factory: Callable[..., Any] | None
    provider: str
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, forgetting the cached registries whenever its plugins change."""

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """pluggy's ``register``; a plugin its entry point registered already is left as it is (its name returned,
        where pluggy raises); one whose hooks the registry would not run (a misspelled hook, one without
        ``@hookimpl``, none) is left out with a ``ValueError`` naming the hook and the available ones."""
        with _lock:
            existing = self.get_name(plugin)
            if existing is not None and existing in _entry_point_plugins and name in (None, existing):
                return existing
            _registries.clear()
            registered = super().register(plugin, name)
            problem = _hook_problem(plugin) if registered is not None else None
            if problem:
                super().unregister(plugin)
                raise _HookProblem(f"ccrop-plugins: cannot register plugin {registered!r}: {problem}", problem)
            return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        with _lock:
            _registries.clear()
            return super().unregister(plugin, name)


_registries: dict[str, tuple[dict[str, PluginEntry], list[PluginEntry]]] = {}  # kind -> (working, refused)
_entry_point_plugins: dict[str, str] = {}  # entry-point plugin name -> its distribution
_by_hand: set[str] = set()  # of those, the plugins registered by hand before the entry points were loaded
_broken_plugins: list[PluginEntry] = []  # entry-point plugins that could not be loaded or registered
# (kind, thread) -> the names its hooks looked up while the kind's registry is being built, by that thread
_building: dict[tuple[str, int], list[str]] = {}
_loaded = False
# Loading, registering and building a registry hold it: another thread's first lookup waits for the whole group (else
# it read a registry built half-way, missing names for the rest of the process); the same thread may re-enter.
_lock = threading.RLock()


class _LookupWhileBuilding(RuntimeError):
    """A register hook looked a name up in the registry being built (not a ``ValueError``: a hook catching an unknown
    name must not take it for one)."""


plugin_manager = _PluginManager("ccrop_plugins")
plugin_manager.add_hookspecs(hookspecs)


def load_plugins(*, reload: bool = False) -> pluggy.PluginManager:
    """Register the built-ins and the entry-point plugins (unless disabled), once; ``reload`` forgets the
    entry-point plugins and loads the group again (after installing a plugin). The ``PluginWarning`` of each plugin
    skipped comes after the whole group is loaded (raised as an error, it leaves no working plugin out)."""
    with _lock:
        problems = _load_plugins(reload)
    for problem in problems:
        warnings.warn(problem, PluginWarning, stacklevel=2)
    return plugin_manager


def _load_plugins(reload: bool) -> list[str]:
    """Load as :func:`load_plugins` says: the warnings it has to give."""
    global _loaded
    if reload:
        for name in list(_entry_point_plugins):
            if name not in _by_hand and plugin_manager.has_plugin(name):  # the user's registrations stay
                plugin_manager.unregister(name=name)
        _entry_point_plugins.clear()
        _by_hand.clear()
        _broken_plugins.clear()
        _registries.clear()
        _loaded = False
    if _loaded:
        return []
    _loaded = True
    skipped = len(_broken_plugins)
    for module_name in DEFAULT_PLUGINS:  # first, so that nothing a plugin does can hide them
        if plugin_manager.get_plugin(module_name) is None:
            plugin_manager.register(importlib.import_module(module_name), name=module_name)
    disabled, problems = _autoload_disabled()
    if not disabled:
        _load_entry_points()
    return problems + [f"ccrop-plugins: skipped plugin {entry.name!r} of distribution {entry.provider}: {entry.error}"
                       for entry in _broken_plugins[skipped:]]


def _autoload_disabled() -> tuple[bool, list[str]]:
    """Whether ``CCROP_PLUGINS_NO_AUTOLOAD`` disables the entry points (docs/configuration.md, "Plugins"), and the
    warning's text for a value that is none of the documented ones (the entry points are then loaded)."""
    value = os.environ.get(AUTOLOAD_ENV, "")
    word = value.strip().lower()
    if word in ("1", "true", "yes"):
        return True, []
    if word not in ("", "0", "false", "no"):
        return False, [f"ccrop-plugins: {AUTOLOAD_ENV}={value!r} is not one of 1, true, yes (load only the built-ins) "
                       "or 0, false, no (load installed plugins); loading installed plugins"]
    return False, []


def _load_entry_points() -> None:
    try:
        distributions = list(importlib.metadata.distributions())
    except Exception as error:  # unreadable metadata must not take the built-ins down
        _skip_plugin("?", "?", f"cannot list the installed distributions: {_describe(error)}")
        return
    for dist in distributions:
        try:
            provider = dist.metadata["Name"] or "unknown distribution"
            entry_points = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        except Exception as error:
            _skip_plugin("?", "unreadable distribution", _describe(error))
            continue
        for ep in entry_points:
            if plugin_manager.has_plugin(ep.name) or plugin_manager.is_blocked(ep.name):
                registered = plugin_manager.get_plugin(ep.name)
                if _registered_by_hand(ep.name) and getattr(registered, "__name__", None) == ep.value:
                    _adopt(ep.name, provider)  # the entry point's module, registered by hand under its name
                    continue
                first = _entry_point_plugins.get(ep.name, "ccrop-plugins or a registered plugin")
                if first != provider:
                    _skip_plugin(ep.name, provider, f"the plugin name {ep.name!r} is already used by {first}")
                continue
            try:
                plugin = ep.load()
                if plugin_manager.is_registered(plugin) and _registered_by_hand(plugin_manager.get_name(plugin)):
                    _adopt(plugin_manager.get_name(plugin), provider)  # docs/plugins.md's hand registration
                    continue
                if plugin_manager.is_registered(plugin):  # pluggy's own message lists every plugin registered
                    _skip_plugin(ep.name, provider, f"{ep.value!r} is already loaded as plugin "
                                 f"{plugin_manager.get_name(plugin)!r} (one entry point per plugin module is enough)")
                    continue
                plugin_manager.register(plugin, name=ep.name)
            except _HookProblem as error:
                _skip_plugin(ep.name, provider, error.problem)
                continue
            except (Exception, SystemExit) as error:  # SystemExit: a script's argparse run at import
                _skip_plugin(ep.name, provider, f"cannot load {ep.value!r}: {_describe(error)}")
                continue
            _entry_point_plugins[ep.name] = provider


def _registered_by_hand(name: str | None) -> bool:
    """Whether plugin ``name`` was registered by hand (``plugin_manager.register(module)``), not by an entry point
    (two entry points naming one module are a mistake) nor as a built-in."""
    return name is not None and name not in _entry_point_plugins and name not in DEFAULT_PLUGINS


def _adopt(name: str, provider: str) -> None:
    """Take plugin ``name``, registered by hand before its entry point was loaded, as loaded by that entry point
    (``provider``: its distribution); its hooks are not checked and a reload keeps it (the user registered it)."""
    _entry_point_plugins[name] = provider
    _by_hand.add(name)


def _hook_problem(plugin: Any) -> str | None:
    """Why the registry would not run ``plugin``'s hooks: one that does not exist (a misspelling), a method of a class
    registered instead of its instance, or none at all (a hook function without ``@hookimpl``, or with another
    project's marker); ``None`` if no problem."""
    callers = plugin_manager.get_hookcallers(plugin) or []
    unknown = [caller.name for caller in callers if not caller.has_spec()
               and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())]
    plain = sorted(attribute for attribute in dir(plugin) if attribute.startswith("ccrop_register"))
    methods = [caller.name for caller in callers if _takes_self(plugin, caller.name)]
    if methods and not unknown:
        return (f"its hook {methods[0]} is a method of class {plugin.__qualname__}: register an instance, "
                f"{plugin.__qualname__}()")
    error = (f"unknown hook {unknown[0]!r}" if unknown else None if callers else
             f"{plain[0]} is not marked with @ccrop_plugins.hookimpl" if plain else "it implements no hook")
    return error and f"{error}; available: {', '.join(KINDS.values())}"


def _takes_self(plugin: Any, hook: str) -> bool:
    """Whether ``plugin`` is a class whose ``hook`` is a method taking ``self`` (pluggy would call it without)."""
    function = inspect.getattr_static(plugin, hook, None) if isinstance(plugin, type) else None
    parameters = list(inspect.signature(function).parameters) if isinstance(function, FunctionType) else []
    return parameters[:1] in (["self"], ["cls"])


class _HookProblem(ValueError):
    """A plugin whose hooks the registry would not run; ``problem``: why, without the plugin's name."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def _skip_plugin(name: str, provider: str, error: str) -> None:
    """List plugin ``name`` as broken; :func:`load_plugins` warns once the whole group is loaded."""
    _broken_plugins.append(PluginEntry("plugin", name, None, provider, error))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _build_registry(kind: str) -> tuple[dict[str, PluginEntry], list[PluginEntry]]:
    """Run every plugin's hook of ``kind``, the built-ins' first, then the others' in the order the plugins were
    registered (not pluggy's call order): the working names and the refused ones (warned by the caller, once the
    registry is built). A hook that looks up a name of ``kind`` while this runs gets a ``_LookupWhileBuilding`` error
    and is refused whole, also if it caught it (building again would recurse without end; docs/plugins.md)."""
    entries: dict[str, PluginEntry] = {}
    refused: list[PluginEntry] = []

    def refuse(name: str, provider: str, error: str) -> None:
        refused.append(PluginEntry(kind, name, None, provider, error))

    looked_up = _building[(kind, threading.get_ident())]  # set by _cached around this call
    order = {name: index for index, (name, _) in enumerate(plugin_manager.list_name_plugin())}  # registration order
    impls = sorted(getattr(plugin_manager.hook, KINDS[kind]).get_hookimpls(),
                   key=lambda impl: (impl.plugin_name not in DEFAULT_PLUGINS, order.get(impl.plugin_name, len(order))))
    for impl in impls:
        plugin, mine = impl.plugin_name, {}  # provider: the distribution that installed the plugin
        provider = BUILTIN_PROVIDER if plugin in DEFAULT_PLUGINS else _entry_point_plugins.get(plugin, plugin)
        if plugin == str(id(impl.plugin)):  # registered by hand without a name: pluggy names it by its id
            provider = getattr(impl.plugin, "__name__", None) or callable_name(type(impl.plugin))

        def register(name: str, factory: Callable[..., Any], provider: str = provider, mine: dict = mine) -> None:
            if not isinstance(name, str) or not name:
                refuse(str(name), provider, f"invalid name {name!r} (a non-empty str is needed)")
            elif name != name.strip() or not name.isprintable():  # would break the lines of `ccrop plugins`
                refuse(repr(name), provider, f"invalid name {name!r} (names must be printable text without "
                       "surrounding spaces)")
            elif not callable(factory):
                refuse(name, provider, f"{kind} {name!r} has a non-callable factory {factory!r}")
            elif name in entries or name in mine:
                first = (entries.get(name) or mine[name]).provider
                refuse(name, provider, f"{kind} {name!r} is already registered by {first} "
                       "(the first registration is kept)")
            else:
                mine[name] = PluginEntry(kind, name, factory, provider)

        looked_up.clear()
        try:
            returned = impl.function(**({"register": register} if "register" in impl.argnames else {}))
        except (Exception, SystemExit) as error:  # keep none of a hook that failed half-way
            refuse("*", provider, _lookup_error(kind, looked_up) or f"its {KINDS[kind]} hook raised {_describe(error)}")
            continue
        if looked_up:  # it caught the error: its names may lack what it looked up
            refuse("*", provider, _lookup_error(kind, looked_up))
            continue
        if returned is not None and not mine:  # e.g. a dict of names: registers nothing, silently
            refuse("*", provider, f"its {KINDS[kind]} hook returned {type(returned).__name__} and registered nothing; "
                   "a hook calls register(name, factory) once per name")
        entries.update(mine)
    return entries, refused


def _lookup_error(kind: str, looked_up: list[str]) -> str | None:
    """The refusal of a hook that looked up ``looked_up`` (its first lookup) while the ``kind`` registry was built."""
    if not looked_up:
        return None
    return (f"its {KINDS[kind]} hook looked up {looked_up[0]} while the registry was being built; look names up "
            "inside the factory (when it is called), not in the hook")


def _cached(kind: str, name: str | None = None) -> tuple[dict[str, PluginEntry], list[PluginEntry]]:
    """The registry of ``kind`` (working, refused), built on first use; ``name``: the name being looked up, for the
    error of a hook looking it up while the registry is built (see :func:`_build_registry`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; available: {', '.join(KINDS)}")
    with _lock:
        load_plugins()
        key = (kind, threading.get_ident())  # under the lock: only this thread can be building one
        if key in _building:  # building it again from inside a hook would recurse without end
            what = f"{kind} {name!r}" if name is not None else f"the {kind} registry"
            _building[key].append(what)
            raise _LookupWhileBuilding(f"{what} was looked up while the {kind} registry was being built (by a "
                                       f"{KINDS[kind]} hook); look names up inside the factory (when it is called), "
                                       "not in the hook")
        if kind not in _registries:
            _building[key] = []
            try:
                _registries[kind] = _build_registry(kind)
            finally:
                del _building[key]
            for entry in _registries[kind][1]:  # once it is built: raised as errors, they leave it complete
                warnings.warn(f"ccrop-plugins: refused {kind} {entry.name!r} of {entry.provider}: {entry.error}",
                              PluginWarning, stacklevel=1)
        return _registries[kind]


def registry(kind: str) -> Mapping[str, PluginEntry]:
    """Every working name registered for ``kind`` (``heatmap``, ``localizer`` or ``sampler``), read-only."""
    return MappingProxyType(_cached(kind)[0])


def lookup(kind: str, name: str) -> PluginEntry:
    """The entry registered as ``name`` for ``kind``, or a ``ValueError`` listing the available names."""
    entries = _cached(kind, name)[0]
    if not isinstance(name, str) or name not in entries:  # a list or dict name is unhashable
        raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(sorted(entries))}")
    return entries[name]


def build(kind: str, name: str, options: dict[str, Any], offered: Mapping[str, Any] | None = None) -> Any:
    """``factory(**options)`` of ``name``; options it does not take are a ``TypeError`` naming the unknown ones (else
    all of them), the accepted ones and those it requires; it must build a callable (else ``TypeError``). ``offered``:
    a host's defaults (the box store's ``max_boxes``), added where the factory takes them and ``options`` lack them."""
    entry = lookup(kind, name)
    added = {key: value for key, value in (offered or {}).items()
             if key not in options and takes_option(entry.factory, key)}
    options = {**added, **options}
    try:
        signature = inspect.signature(entry.factory)  # type: ignore[arg-type]  (working entries have one)
        signature.bind(**options)
    except TypeError:
        kinds = {p.name: p.kind for p in signature.parameters.values()}
        accepted = [p for p, k in kinds.items() if k in (k.POSITIONAL_OR_KEYWORD, k.KEYWORD_ONLY)]
        unknown = [] if inspect.Parameter.VAR_KEYWORD in kinds.values() else sorted(set(options) - set(accepted))
        required = [p.name for p in signature.parameters.values() if p.default is p.empty and p.name not in options
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # a missing option, or a call's argument
        problem = f"does not accept options {unknown}" if unknown else f"cannot be built from options {sorted(options)}"
        hint = (": give them in heatmap_options" if kind == "heatmap" else  # a heatmap class's options: no call's
                f" (if they are the {kind}'s call arguments, the {kind} itself was registered instead of a factory of "
                f"its options: a class, or lambda: {kind})")
        raise TypeError(f"{kind} {name!r} (from {entry.provider}) {problem}; accepted: {', '.join(accepted) or 'none'}"
                        + (f"; it requires {required}{hint}" if required else "")) from None
    except ValueError:  # no signature available (a builtin): let the call decide
        pass
    try:
        built = entry.factory(**options)  # type: ignore[misc]
    except TypeError as error:  # e.g. **options forwarded to a class that does not take the host's max_boxes
        host = f", {sorted(added)} of them offered by the host" if added else ""
        error.add_note(f"ccrop-plugins: raised by the factory of {kind} {name!r} (from {entry.provider}), called with "
                       f"options {sorted(options)}{host}; a factory taking **options receives every option offered: "
                       "name the ones it takes")
        raise
    if not callable(built):  # would fail later: in a DataLoader worker, or after a pass's forward
        raise TypeError(f"{kind} {name!r} (from {entry.provider}): its factory returned {type(built).__name__}, "
                        f"not a callable {kind}")
    return built


def takes_option(factory: Any, option: str) -> bool:
    """Whether ``factory`` takes the keyword ``option`` (by name, or through ``**options``); ``True`` without a
    signature (a builtin: the call decides)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == option and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               for p in parameters)


def get_heatmap(name: str, **options: Any) -> Callable:
    """The heatmap rule ``name``: ``rule(features (N, C, h, w)) -> maps (N, h, w)``. A registered *function* is the
    rule itself and takes no options; a registered *class* is built with ``options``; ``TypeError`` for a bad option,
    and for a registered *instance* with ``fit`` and ``finalize``: every stage and store would share its statistics."""
    entry = lookup("heatmap", name)
    if isinstance(entry.factory, type):
        return build("heatmap", name, options)
    if all(callable(getattr(entry.factory, method, None)) for method in ("fit", "finalize")):
        rule = type(entry.factory).__qualname__
        raise TypeError(f"heatmap {name!r} (from {entry.provider}) is registered as an instance of {rule} with fit and "
                        "finalize: one object would be fitted by every stage and every store, the last one's "
                        f"statistics applied to all; register the class, register({name!r}, {rule}), built once per "
                        "stage")
    if options:
        raise TypeError(f"heatmap {name!r} (from {entry.provider}) takes no options; got {sorted(options)}")
    return entry.factory  # type: ignore[return-value]


def get_localizer(name: str, **options: Any) -> Callable:
    """Build localizer ``name`` with ``options``: a callable ``heatmaps (N, H, W) -> BoxSets``."""
    return build("localizer", name, options)


def build_localizer(localizer: str | Callable, *, max_boxes: int | None = None, threshold: float | str | None = None,
                    options: Mapping[str, Any] | None = None) -> Callable:
    """The localizer a host runs: a registered name built with ``options``, ``threshold`` (``None``: the localizer's
    default; given in ``options`` too, the two must agree, else ``ValueError``) and the store's ``max_boxes`` where the
    factory takes it and ``options`` lack it; a callable as it is (with ``threshold`` or ``options``: ``TypeError``)."""
    if not isinstance(localizer, str) and callable(localizer):
        if threshold is not None or options:
            raise TypeError(f"threshold and localizer_options need a localizer given by name; localizer "
                            f"{callable_name(localizer)} is an object: build it with its options "
                            "(get_localizer(name, threshold=...))")
        return localizer
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"localizer_options must be a dict of options; got {type(options).__name__}")
    built = dict(options or {})
    if threshold is not None:
        if "threshold" in built and not _equal(built["threshold"], threshold):  # one would be dropped, silently
            raise ValueError(f"threshold={threshold!r} and localizer_options threshold={built['threshold']!r} "
                             "disagree; give the threshold once")
        built["threshold"] = threshold
    return build("localizer", localizer, built, offered=None if max_boxes is None else {"max_boxes": max_boxes})


def callable_name(function: Any) -> str:
    """``module.qualname`` of a function, class or callable object, for messages."""
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    module = getattr(function, "__module__", None) or type(function).__module__
    return f"{module}.{qualname}" if module else qualname


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):  # an array or a tensor: the localizer names it
        return a is b


def get_sampler(name: str, **options: Any) -> Callable:
    """Build centre sampler ``name`` with ``options`` (see :mod:`ccrop_plugins.samplers`)."""
    return build("sampler", name, options)


def list_plugins(include_broken: bool = False) -> list[PluginEntry]:
    """Every heatmap method, localizer and sampler, sorted by kind and name; ``include_broken``
    adds the plugins that could not be loaded and the refused names (``entry.error`` says why)."""
    working = [entry for kind in KINDS for _, entry in sorted(registry(kind).items())]
    return working + (list(_broken_plugins) + [e for kind in KINDS for e in _cached(kind)[1]] if include_broken else [])

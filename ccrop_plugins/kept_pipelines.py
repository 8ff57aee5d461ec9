"""Heatmap pipelines kept with their box store, keyed by the value of their options: a refresh applies the statistics
the previous one fitted (a fitted rule's), also when the options are tensors rebuilt for every pass."""

from __future__ import annotations

import hashlib
import weakref
from numbers import Number
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .box_store import BoxStore
from .heatmaps import HeatmapPipeline

# Heatmap pipelines live as long as their store: a refresh applies what the previous one fitted.
_PIPELINES: "weakref.WeakKeyDictionary[BoxStore, dict[tuple, HeatmapPipeline]]" = weakref.WeakKeyDictionary()


def pipeline_for(store: BoxStore, heatmap: Any, options: dict[str, Any] | None) -> HeatmapPipeline:
    """The pipeline of ``heatmap``: a named one is kept with ``store`` (``_PIPELINES``)."""
    if isinstance(heatmap, HeatmapPipeline):
        if options:
            raise TypeError("heatmap_options cannot be combined with a HeatmapPipeline; give them to the pipeline")
        return heatmap
    if not isinstance(heatmap, str):
        return HeatmapPipeline(heatmap, options)
    kept, readable = _PIPELINES.setdefault(store, {}), set()
    key = (heatmap, _option_key(sorted((options or {}).items()), readable))
    if key not in kept:  # built on copies of its tensors and arrays: contents changed in place later get a new key
        kept[key] = HeatmapPipeline(heatmap, options if options is None else _snapshot(dict(options), readable))
    return kept[key]


def _option_key(value: Any, readable: set[int]) -> Any:
    """A key equal only for equal options (docs/configuration.md, "refresh_boxes"): numbers, text and ``None`` by type
    and value, lists, tuples and dicts item by item, tensors and numpy arrays by value (:func:`_contents`), anything
    else by identity (the kept pipeline holds it: its id is not reused). Adds the ids keyed by value to ``readable``."""
    if isinstance(value, (tuple, list)):
        return type(value), tuple(_option_key(item, readable) for item in value)
    if isinstance(value, dict):
        return type(value), _option_key(sorted(value.items(), key=_key_text), readable)
    if value is None or isinstance(value, (str, bytes, Number)):  # numpy numbers too
        return type(value), value
    if (contents := _contents(value)) is not None:  # keyed by value: _snapshot copies it
        readable.add(id(value))
    return (id, id(value)) if contents is None else (type(value), *contents)


def _key_text(item: tuple[Any, Any]) -> str:
    return repr(item[0])


def _contents(value: Any) -> tuple | None:
    """A tensor's shape, dtype, device and BLAKE2 digest of its bytes (an array's: shape, dtype, digest); ``None``
    for anything else, or values whose bytes cannot be read (sparse, quantized or meta tensors, object arrays)."""
    try:
        if isinstance(value, Tensor):
            data = value.detach().cpu().resolve_conj().resolve_neg().contiguous().reshape(-1).view(torch.uint8)
            return tuple(value.shape), value.dtype, str(value.device), hashlib.blake2b(data.numpy()).hexdigest()
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            return value.shape, value.dtype, hashlib.blake2b(np.ascontiguousarray(value)).hexdigest()
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return None
    return None


def _snapshot(value: Any, readable: set[int]) -> Any:
    """``value`` with its tensors and numpy arrays whose id is in ``readable`` (keyed by value) copied (also inside
    plain lists, tuples and dicts), so a kept pipeline's options keep the contents its key was made from."""
    if type(value) in (list, tuple):
        return type(value)(_snapshot(item, readable) for item in value)
    if type(value) is dict:
        return {k: _snapshot(v, readable) for k, v in value.items()}
    if isinstance(value, (Tensor, np.ndarray)) and id(value) in readable:  # else keyed by identity: kept as is
        return value.detach().clone() if isinstance(value, Tensor) else value.copy()
    return value

"""Let ``torch.load(weights_only=True)`` (torch >= 2.6's default) read mmengine checkpoints.

mmengine 0.10.7 loads checkpoints with a plain ``torch.load``, so under torch >= 2.6 resume and
``load_from`` fail on the globals of its ``message_hub`` entry: ``HistoryBuffer``, numpy arrays,
dtypes and scalars, and ``builtins.getattr``. The last one is only how pickle spells the four
statistics methods a ``HistoryBuffer`` saves (``getattr(HistoryBuffer, 'min')``, ...).

The allow-list below never admits the real ``getattr``: the name ``builtins.getattr`` is bound
to :func:`history_buffer_statistic`, which returns one of those four methods and refuses
anything else. numpy is admitted for fixed-size numeric and bool dtypes only, so no object
arrays. Nothing in the list can call an arbitrary function.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

STATISTICS = ("min", "max", "current", "mean")
"""The methods ``HistoryBuffer`` registers itself, and so pickles by name."""

_NUMERIC_DTYPES = ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")


def history_buffer_statistic(owner: Any, name: str) -> Callable[..., Any]:
    """Stand-in for ``builtins.getattr`` while unpickling: only ``HistoryBuffer.<statistic>``.

    Raises:
        pickle.UnpicklingError: for any other object or attribute name.
    """
    if owner is HistoryBuffer and name in STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"ccrop_mm checkpoint allow-list: getattr({owner!r}, {name!r}) refused; only "
        f"HistoryBuffer.{{{', '.join(STATISTICS)}}} may be looked up while loading an mmengine checkpoint"
    )


def _multiarray_functions() -> dict[str, Any]:
    """``_reconstruct`` and ``scalar`` under both pickle paths (numpy 1.x ``core``, 2.x ``_core``)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return {
        f"numpy.{package}.multiarray.{name}": getattr(multiarray, name)
        for package in ("core", "_core")
        for name in ("_reconstruct", "scalar")
    }


def mmengine_checkpoint_globals() -> list[Any]:
    """The entries for ``torch.serialization.add_safe_globals`` / ``safe_globals`` that an
    mmengine checkpoint needs (classes, functions and ``(object, 'module.name')`` pairs)."""
    entries: list[Any] = [HistoryBuffer, np.ndarray, np.dtype, (history_buffer_statistic, "builtins.getattr")]
    entries += [(function, path) for path, function in _multiarray_functions().items()]
    # np.dtype('f8') unpickles into a Float64DType instance whose state is then set (BUILD).
    entries += sorted({type(np.dtype(code)) for code in _NUMERIC_DTYPES}, key=lambda kind: kind.__name__)
    return entries


def supported() -> bool:
    """Whether this torch has an allow-list for ``weights_only`` loads (torch >= 2.4)."""
    return hasattr(torch.serialization, "add_safe_globals")


def allow_mmengine_checkpoints() -> bool:
    """Add :func:`mmengine_checkpoint_globals` to torch's ``weights_only`` allow-list, process-wide.

    ``ContrastiveCropHook`` already does this around the runner's own checkpoint load; call
    this for other loads (``mmengine.runner.load_checkpoint``, an inference script). It is
    idempotent.

    Returns:
        ``False`` if this torch has no allow-list (torch < 2.4 does not load weights-only by
        default, so there is nothing to do), else ``True``.
    """
    if not supported():
        return False
    torch.serialization.add_safe_globals(missing_globals())
    return True


def missing_globals() -> list[Any]:
    """The entries of :func:`mmengine_checkpoint_globals` that are not allowed yet."""
    present = set(torch.serialization.get_safe_globals()) if supported() else set()
    return [entry for entry in mmengine_checkpoint_globals() if entry not in present]


class LoadWindow:
    """The allow-list, admitted from :meth:`open` to :meth:`close` (the runner's own checkpoint load).

    ``ContrastiveCropHook`` opens it in ``before_run`` and closes it once the checkpoint is loaded
    (or in ``before_train`` when there was none); only entries that were missing are added, and
    they are removed again on close.
    """

    def __init__(self) -> None:
        self._context: Any = None

    def open(self) -> None:
        if supported() and self._context is None:
            self._context = torch.serialization.safe_globals(missing_globals())
            self._context.__enter__()

    def close(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None

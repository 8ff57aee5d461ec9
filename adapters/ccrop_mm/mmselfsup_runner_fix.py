"""Work around mmselfsup 1.0.0's missing ``mmselfsup.engine.runner`` (open-mmlab/mmselfsup#745).

mmselfsup 1.0.0 registers its ``LOOPS`` and ``RUNNERS`` registries with the location
``mmselfsup.engine.runner``, a module its wheel does not ship, so building a train loop
under ``default_scope='mmselfsup'`` fails with ``ModuleNotFoundError``. An empty module
under that name is all the registries need: every loop they build comes from mmengine.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

MISSING_MODULE = "mmselfsup.engine.runner"


def apply_mmselfsup_runner_fix() -> bool:
    """Put an empty ``mmselfsup.engine.runner`` into ``sys.modules`` if mmselfsup lacks it.

    Imports nothing from mmselfsup: the check looks for the module's file, so an
    mmpretrain-only environment pays nothing and a fixed mmselfsup is left untouched.

    Returns:
        ``True`` if the empty module was inserted (now or earlier).
    """
    if MISSING_MODULE in sys.modules:
        return getattr(sys.modules[MISSING_MODULE], "__ccrop_placeholder__", False)
    spec = importlib.util.find_spec("mmselfsup")
    if spec is None or not spec.submodule_search_locations:
        return False
    for root in spec.submodule_search_locations:
        engine = os.path.join(root, "engine")
        if os.path.isdir(os.path.join(engine, "runner")) or os.path.isfile(os.path.join(engine, "runner.py")):
            return False
    placeholder = types.ModuleType(MISSING_MODULE, "empty stand-in for mmselfsup 1.0.0's missing module (ccrop_mm)")
    placeholder.__ccrop_placeholder__ = True  # type: ignore[attr-defined]
    sys.modules[MISSING_MODULE] = placeholder
    return True

"""Find transforms inside an mmengine/mmcv pipeline, however deeply they are nested.

``Compose``, ``RandomApply``, ``RandomChoice`` keep children in ``transforms``; MultiView
keeps them in ``transforms`` and ``pipelines``. Walking those attributes finds a transform
wherever a config puts it, without importing any framework's wrapper classes.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterator

_CHILD_ATTRIBUTES = ("transforms", "pipelines", "transform", "pipeline")


def iter_transforms(root: Any) -> Iterator[Any]:
    """Yield ``root`` and every transform nested in it, depth first, each object once."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        children: list[Any] = []
        if isinstance(item, (list, tuple)):
            children = list(item)
        else:
            for name in _CHILD_ATTRIBUTES:
                child = getattr(item, name, None)
                if isinstance(child, (list, tuple)):
                    children.extend(child)
                elif child is not None and not inspect.isroutine(child):
                    children.append(child)  # a nested Compose, not a bound method
        stack.extend(reversed(children))


def find_instances(root: Any, kind: type | tuple[type, ...]) -> list[Any]:
    """Every transform in ``root`` (a pipeline, a transform or a list) that is a ``kind``."""
    return [item for item in iter_transforms(root) if isinstance(item, kind)]


def top_level(pipeline: Any) -> list[Any]:
    """The top-level steps of a dataset pipeline (a ``Compose`` or a list)."""
    if isinstance(pipeline, (list, tuple)):
        return list(pipeline)
    return list(getattr(pipeline, "transforms", [pipeline]))

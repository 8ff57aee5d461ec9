"""Built-in localizers: heatmaps ``(N, H, W)`` in [0, 1] -> :class:`~ccrop_plugins.BoxSets`."""

from .bbox import BBoxLocalizer
from .components import ComponentsLocalizer

__all__ = ["BBoxLocalizer", "ComponentsLocalizer"]

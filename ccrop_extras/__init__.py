"""Extra heatmap rules shipped with ccrop-plugins, outside the core: a plugin like any third-party one.

:class:`DatasetPCA` (``ddt``, fitted on the refresh pass) and :class:`NormalizedCut` (``ncut``, several objects);
neither is a default and both measured below ``channel_sum`` / ``distinctiveness`` (docs/benchmarks/localize.md).
:mod:`ccrop_extras.plugin` registers them through the ``ccrop_plugins`` entry-point group (docs/plugins.md).
"""

from .ddt import DatasetPCA
from .ncut import NormalizedCut

__all__ = ["DatasetPCA", "NormalizedCut"]

"""Built-in heatmap rules: features ``(N, C, h, w)`` -> raw maps ``(N, h, w)``, larger = "more object".

Per image: :func:`channel_sum` (the paper), :func:`channel_norm`, :func:`distinctiveness`; fitted on the refresh
pass: :class:`DatasetPCA` (DDT); several objects: :class:`NormalizedCut` (docs/plugins.md, "Heatmap rules").
"""

from .basic import channel_norm, channel_sum, distinctiveness
from .ddt import DatasetPCA
from .ncut import NormalizedCut

__all__ = ["DatasetPCA", "NormalizedCut", "channel_norm", "channel_sum", "distinctiveness"]

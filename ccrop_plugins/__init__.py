"""ccrop-plugins: ContrastiveCrop (Peng et al., CVPR 2022) as a framework-neutral core.

heatmap -> boxes: :func:`heatmaps_from_features`, :func:`get_localizer` -> :class:`BoxSets`;
boxes -> crop: :class:`ContrastiveCrop` with a centre sampler from :func:`get_sampler`;
the dataset's boxes: :class:`BoxStore`, refreshed by :func:`refresh_boxes`.

Boxes are normalised ``x0, y0, x1, y1`` in ``[0, 1]`` everywhere; crop parameters are
pixels ``top, left, height, width``. This package imports no training framework.
"""

from .box_sets import BoxSets, validate_boxes
from .box_store import BoxStore
from .crop import ContrastiveCrop, CropParams, choose_box, image_size_of
from .heatmaps import heatmaps_from_features
from .hookspecs import hookimpl
from .plugins import ENTRY_POINT_GROUP, get_heatmap, get_localizer, get_sampler, list_plugins
from .refresh import RefreshStats, refresh_boxes

__version__ = "0.1.0"

__all__ = [
    "BoxSets",
    "BoxStore",
    "ContrastiveCrop",
    "CropParams",
    "ENTRY_POINT_GROUP",
    "RefreshStats",
    "choose_box",
    "get_heatmap",
    "get_localizer",
    "get_sampler",
    "heatmaps_from_features",
    "hookimpl",
    "image_size_of",
    "list_plugins",
    "refresh_boxes",
    "validate_boxes",
]

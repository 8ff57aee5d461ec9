"""ccrop-plugins: ContrastiveCrop (Peng et al., CVPR 2022) as a framework-neutral core (no training framework).

heatmap -> boxes: :func:`heatmaps_from_features`, :func:`get_localizer` -> :class:`BoxSets`; boxes -> crop:
:class:`ContrastiveCrop` with a centre sampler from :func:`get_sampler`; the dataset's boxes: :class:`BoxStore`,
refreshed by :func:`refresh_boxes`. Boxes are normalised ``x0, y0, x1, y1`` in ``[0, 1]`` everywhere; crop
parameters are pixels ``top, left, height, width``.
"""

from .box_sets import WHOLE_IMAGE, BoxSets, validate_boxes
from .box_store import BoxStore, images_digest, other_images
from .crop import ContrastiveCrop, CropParams, choose_box, image_size_of
from .features import StageFeatures, stage_features, unwrapped_model
from .heatmaps import HeatmapPipeline, features_to_localize, heatmaps_from_features
from .hookspecs import hookimpl
from .plugins import (ENTRY_POINT_GROUP, build_localizer, get_heatmap, get_localizer, get_sampler, list_plugins,
                      load_plugins)
from .refresh import RefreshStats, checked_device, refresh_boxes
from .ranks import check_same_on_every_rank
from .refresh_sampler import RefreshSampler
from .schedule import RefreshSchedule
from .eval_mode import eval_mode
from .sizes import height_width

__version__ = "0.1.0"

__all__ = [  # grouped as imported above
    "WHOLE_IMAGE", "BoxSets", "validate_boxes", "BoxStore", "images_digest", "other_images", "ContrastiveCrop",
    "CropParams", "choose_box", "image_size_of", "StageFeatures", "stage_features", "unwrapped_model",
    "HeatmapPipeline", "features_to_localize", "heatmaps_from_features", "hookimpl", "ENTRY_POINT_GROUP",
    "build_localizer", "get_heatmap", "get_localizer", "get_sampler", "list_plugins", "load_plugins", "RefreshStats",
    "checked_device", "refresh_boxes", "check_same_on_every_rank", "RefreshSampler", "RefreshSchedule", "eval_mode",
    "height_width",
]

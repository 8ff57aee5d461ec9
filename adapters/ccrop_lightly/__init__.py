"""ContrastiveCrop for Lightly: views, collate function, box refresh and a Lightning callback.

Switching lightly's SimCLR example to ContrastiveCrop::

    dataset = LightlyDataset("path/to/images")                   # no transform
    store = BoxStore(len(dataset))
    collate_fn = CCropCollate(CCropSimCLRTransform(input_size=32), store, dataset=dataset)

then refresh the boxes with :class:`BoxRefresher` (plain loops) or :class:`BoxRefreshCallback`
(Lightning). See ``docs/lightly.md``. ``BoxRefreshCallback`` is imported lazily, so a plain
PyTorch loop does not import Lightning.
"""

from __future__ import annotations

from typing import Any

from ccrop_plugins import BoxStore

from .collate import CCropCollate
from .features import LayerOutput, feature_extractor
from .image_mode import to_rgb
from .indexed_dataset import IndexedDataset
from .refresh_loader import RefreshImages, make_refresh_loader
from .refresher import BoxRefresher
from .schedule import RefreshSchedule
from .transforms import (
    CCropMoCoV2Transform,
    CCropMultiViewTransform,
    CCropSimCLRTransform,
    CCropSimCLRViewTransform,
    CCropViewTransform,
)

__all__ = [
    "BoxRefreshCallback",
    "BoxRefresher",
    "BoxStore",
    "CCropCollate",
    "CCropMoCoV2Transform",
    "CCropMultiViewTransform",
    "CCropSimCLRTransform",
    "CCropSimCLRViewTransform",
    "CCropViewTransform",
    "IndexedDataset",
    "LayerOutput",
    "RefreshImages",
    "RefreshSchedule",
    "feature_extractor",
    "make_refresh_loader",
    "to_rgb",
]


def __getattr__(name: str) -> Any:
    if name == "BoxRefreshCallback":
        from .callback import BoxRefreshCallback

        return BoxRefreshCallback
    raise AttributeError(f"module 'ccrop_lightly' has no attribute {name!r}")

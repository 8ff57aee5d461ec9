"""ContrastiveCrop for Lightly: views, collate function, box refresh and a Lightning callback.

Switching Lightly's SimCLR example to ContrastiveCrop (``docs/lightly.md`` shows the whole diff)::

    transform = CCropSimCLRTransform(input_size=32, alpha=0.1)
    dataset = IndexedDataset(torchvision.datasets.CIFAR10("datasets/cifar10"))  # no transform
    store = BoxStore(len(dataset))
    dataloader = DataLoader(dataset, ..., collate_fn=CCropCollate(transform, store, dataset=dataset))
    refresher = BoxRefresher(store, feature_extractor(backbone), make_refresh_loader(dataset, transform=transform),
                             warmup_epochs=4, interval=2, max_epochs=epochs)

then ``refresher.maybe_refresh(epoch)`` after each epoch of a plain loop, or
:class:`BoxRefreshCallback` for Lightning. ``BoxRefreshCallback`` is imported lazily, so a plain
PyTorch loop does not import Lightning. A Lightly outside the tested range
(:data:`~ccrop_lightly.version_check.SUPPORTED_LIGHTLY`) stops the import with one line.
"""

from __future__ import annotations

from typing import Any

from .version_check import check_lightly_version

check_lightly_version()  # before any lightly import: one clear line instead of a deep ImportError

from ccrop_plugins import BoxStore  # noqa: E402


from .collate import CCropCollate  # noqa: E402
from .features import LayerOutput, feature_extractor  # noqa: E402
from .image_mode import load_image, to_rgb  # noqa: E402
from .indexed_dataset import IndexedDataset  # noqa: E402
from .refresh_loader import RefreshImages, make_refresh_loader  # noqa: E402
from .refresher import BoxRefresher  # noqa: E402
from .schedule import RefreshSchedule  # noqa: E402
from .transforms import (  # noqa: E402
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
    "load_image",
    "make_refresh_loader",
    "to_rgb",
]


def __getattr__(name: str) -> Any:
    if name == "BoxRefreshCallback":
        from .callback import BoxRefreshCallback

        return BoxRefreshCallback
    raise AttributeError(f"module 'ccrop_lightly' has no attribute {name!r}")

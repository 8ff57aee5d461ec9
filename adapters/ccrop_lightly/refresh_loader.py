"""The un-augmented images the refresh pass localizes: resized, normalised, with their index."""

from __future__ import annotations

from typing import Any, Sized

import torch
import torch.distributed as dist
from lightly.transforms.utils import IMAGENET_NORMALIZE
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.transforms import v2 as T

from .image_mode import to_rgb


class RefreshImages(Dataset):
    """``dataset[i]`` without augmentation: ``(image (3, S, S) float, i)``.

    Each item of ``dataset`` may be ``(image, target, filename)`` (``LightlyDataset``),
    ``(image, target, index)`` (:class:`~ccrop_lightly.IndexedDataset`), ``(image, target)``
    or a bare image; only the image is used and its position ``i`` is the store index, as
    in :class:`~ccrop_lightly.CCropCollate` (filename ``i`` of ``get_filenames()`` is sample ``i``).
    The image is brought to RGB, resized to ``input_size`` (the training resolution, as
    the paper localizes), turned into a float tensor and normalised.

    Args:
        dataset: the training dataset, built *without* a transform.
        input_size: side ``S`` of the square the image is resized to.
        normalize: ``{"mean": [...], "std": [...]}`` as the training views use, or ``None``.
    """

    def __init__(
        self, dataset: Any, input_size: int, normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE
    ) -> None:
        if not (isinstance(dataset, Sized) and hasattr(dataset, "__getitem__")):
            raise TypeError(f"dataset must be map-style (with __len__ and __getitem__); got {type(dataset).__name__}")
        if int(input_size) < 1:
            raise ValueError(f"input_size must be a positive int; got {input_size}")
        self.dataset = dataset
        self.input_size = int(input_size)
        steps: list[Any] = [
            T.Resize((self.input_size, self.input_size), antialias=True),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
        ]
        if normalize:
            steps.append(T.Normalize(mean=normalize["mean"], std=normalize["std"]))
        self.transform = T.Compose(steps)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        item = self.dataset[index]
        image = item[0] if isinstance(item, (tuple, list)) else item
        if isinstance(image, (tuple, list)):
            raise ValueError(
                f"item {index} of {type(self.dataset).__name__} holds {len(image)} images: the dataset applies a "
                "multi-view transform; the refresh needs the plain images (build the dataset without a transform)"
            )
        return self.transform(to_rgb(image)), int(index)


def make_refresh_loader(
    dataset: Any,
    input_size: int,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
    distributed: bool | None = None,
    persistent_workers: bool = False,
) -> DataLoader:
    """A loader of ``(images (B, 3, S, S), indices (B,))`` over all of ``dataset``, in order.

    Under ``torch.distributed`` (``distributed=None`` detects it) each rank gets its shard
    through ``DistributedSampler(shuffle=False)``; the sampler pads the last shard with a
    few repeated samples, which the refresh simply writes twice. The core's
    ``refresh_boxes`` all-gathers the shards, so every rank ends with the full store.
    Note ``distributed`` is decided when this is called: build the loader after the process
    group exists (the callback does so in ``setup``).
    """
    images = RefreshImages(dataset, input_size, normalize)
    if distributed is None:
        distributed = dist.is_available() and dist.is_initialized()
    sampler = DistributedSampler(images, shuffle=False) if distributed else None
    return DataLoader(
        images,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=persistent_workers and num_workers > 0,
        drop_last=False,
    )

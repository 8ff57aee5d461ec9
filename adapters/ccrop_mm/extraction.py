"""The refresh pass's input: un-augmented training images, resized and normalised like training.

The default extraction dataset reuses the train dataset's ``get_data_info`` and the
deterministic head of its pipeline (the steps before the first ContrastiveCrop step,
normally ``LoadImageFromFile``), then resizes every image to the training resolution.
Under ``torch.distributed`` each rank reads its own shard (the core's ``RefreshSampler``:
contiguous, nothing repeated). An image that fails to load is named by its file.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import mmcv
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

from ccrop_plugins import RefreshSampler


class ExtractionDataset(Dataset):
    """Items ``(image (C, H, W) uint8 tensor, store row)`` of a train dataset, without augmentation: item ``i`` is
    sample ``i`` of ``dataset``, stored in row ``offset + i``.

    Args:
        dataset: an mmengine ``BaseDataset`` (anything with ``get_data_info(i)`` and ``len``).
        head: the pipeline steps that load the image (applied in order to the data info).
        size: ``(height, width)`` every image is resized to (the training resolution).
        backend: ``mmcv.imresize`` backend (``cv2`` or ``pillow``).
        offset: the store row of sample 0 (a ``ConcatDataset``'s part: the earlier parts' samples; else 0).
    """

    def __init__(self, dataset: Any, head: Sequence[Any], size: Sequence[int], backend: str = "cv2",
                 offset: int = 0) -> None:
        self.dataset = dataset
        self.head = list(head)
        self.size = (int(size[0]), int(size[1]))
        self.backend = backend
        self.offset = int(offset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        results = self.dataset.get_data_info(index)
        source = results.get("img_path", f"sample {index}")
        try:
            for step in self.head:
                results = step(results)
        except Exception as error:  # a truncated JPEG says "Truncated File Read" without the file
            kind = next(k for k in (OSError, ValueError, RuntimeError) if isinstance(error, k) or k is RuntimeError)
            raise kind(f"ContrastiveCrop refresh: cannot load {source} (sample {index}): {error}") from error
        if results is None:  # LoadImageFromFile(ignore_empty=True) of a missing file: training draws another sample
            warnings.warn(f"ContrastiveCrop refresh: the pipeline head dropped {source} (sample {index}; "
                          "LoadImageFromFile(ignore_empty=True)?): localized as a blank image; training never crops "
                          "it (mmengine's dataset draws another sample instead)", UserWarning, stacklevel=2)
            results = {"img": np.zeros((*self.size, 3), np.uint8)}
        img = np.ascontiguousarray(results["img"])
        if img.ndim == 3 and img.shape[2] == 1:  # PIL has no (H, W, 1) image; cv2 returns (h, w) for it as well
            img = img[..., 0]
        img = mmcv.imresize(img, (self.size[1], self.size[0]), interpolation="bilinear", backend=self.backend)
        if img.ndim == 2:
            img = img[..., None]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), self.offset + index


class ExtractionParts(ConcatDataset):
    """The :class:`ExtractionDataset` of each part of a train ``ConcatDataset``, one after the other: item ``i`` is
    store row ``i`` (each part yields its rows, read with its own pipeline head and resize backend).

    Attributes:
        size: ``(height, width)`` of every image (all parts').
    """

    def __init__(self, parts: Sequence[ExtractionDataset]) -> None:
        super().__init__(parts)
        self.size = parts[0].size


def extraction_loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    """A loader over ``dataset`` (:class:`ExtractionDataset` or :class:`ExtractionParts`): this rank's shard of its
    items, in order, every image once, batched by :func:`collate_images`."""
    return DataLoader(dataset, batch_size=batch_size, sampler=RefreshSampler(dataset), num_workers=num_workers,
                      collate_fn=collate_images)


def collate_images(items: list[tuple[Tensor, int]]) -> list[Tensor]:
    """``default_collate`` of ``(image, store row)`` items -> ``[images (B, C, H, W), rows (B,)]``, the images cast to
    float32 when their dtypes differ (parts of a ``ConcatDataset`` whose heads load uint8 and float32 images, 8- and
    16-bit files): in a DataLoader worker torch stacks into a buffer of the first image's dtype, and failed there."""
    if len({image.dtype for image, _ in items}) > 1:
        items = [(image.float(), row) for image, row in items]
    return default_collate(items)


class Normaliser:
    """Turn uint8 batches ``(B, C, H, W)`` into what the backbone was trained on.

    Reads the channel order and mean/std of the model's ``data_preprocessor``: mmengine's
    ``ImgDataPreprocessor`` family (both SelfSup data preprocessors) keeps the order as
    ``_channel_conversion``, MMPretrain's ``ClsDataPreprocessor`` (supervised configs) as ``to_rgb``.
    """

    def __init__(self, data_preprocessor: nn.Module | None) -> None:
        conversion = getattr(data_preprocessor, "_channel_conversion", None)
        self.to_rgb = bool(getattr(data_preprocessor, "to_rgb", False) if conversion is None else conversion)
        normalise = getattr(data_preprocessor, "_enable_normalize", hasattr(data_preprocessor, "mean"))
        self.mean = getattr(data_preprocessor, "mean", None) if normalise else None
        self.std = getattr(data_preprocessor, "std", None) if normalise else None

    def __call__(self, images: Tensor, device: torch.device) -> Tensor:
        images = images.to(device, non_blocking=True).float()
        if self.to_rgb and images.shape[1] >= 3:  # as the preprocessors: channels [2, 1, 0] (an RGBA's alpha dropped)
            images = images[:, [2, 1, 0]]
        if self.mean is not None and self.std is not None:
            images = (images - self.mean.to(device).view(1, -1, 1, 1)) / self.std.to(device).view(1, -1, 1, 1)
        return images

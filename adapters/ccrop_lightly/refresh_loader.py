"""The un-augmented images the refresh pass localizes: resized, normalised, with their index."""

from __future__ import annotations

import enum
import operator
import os
from typing import Any, Sequence, Sized

import numpy as np
import torch
import torch.distributed as dist
from lightly.transforms.utils import IMAGENET_NORMALIZE
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2 as T

from ccrop_plugins import RefreshSampler, height_width

from .image_mode import read_item, to_rgb
from .indexed_dataset import check_index_keys, check_item_key
from .transform_walk import check_dataset_transform
from .view_options import normalize_step
from .view_settings import refresh_settings

Normalize = dict[str, Sequence[float]]


class _Default(enum.Enum):
    """A default that pickles as itself (a ``ddp_spawn`` rank gets the callback pickled; a plain ``object()`` sentinel
    would arrive as another object)."""

    FROM_TRANSFORM = "normalize not given: the training transform's, else ImageNet's"

    def __repr__(self) -> str:
        return self.name


FROM_TRANSFORM = _Default.FROM_TRANSFORM


class RefreshImages(Dataset):
    """``dataset[i]`` without augmentation: ``(image (3, H, W) float, i)``.

    Each item of ``dataset`` may be ``(image, target, filename)`` (``LightlyDataset``),
    ``(image, target, index)`` (:class:`~ccrop_lightly.IndexedDataset`), ``(image, target)``
    or a bare image; only the image is used and its position ``i`` is the store index, as
    in :class:`~ccrop_lightly.CCropCollate` (filename ``i`` of ``get_filenames()`` is sample ``i``).
    The image is brought to RGB, resized to ``input_size`` (the training resolution, as
    the paper localizes), turned into a float tensor and normalised. An image that cannot
    be decoded raises an ``OSError`` naming its file.

    Args:
        dataset: the training dataset, built *without* a transform (one that moves content at random is a
            ``ValueError``: :func:`~ccrop_lightly.transform_walk.check_dataset_transform`).
        input_size: ``S`` or ``(H, W)`` the image is resized to.
        normalize: ``{"mean": [...], "std": [...]}`` as the training views use, or ``None``.
    """

    def __init__(
        self, dataset: Any, input_size: int | Sequence[int], normalize: Normalize | None = IMAGENET_NORMALIZE
    ) -> None:
        if not (isinstance(dataset, Sized) and hasattr(dataset, "__getitem__")):
            raise TypeError(f"dataset must be map-style (with __len__ and __getitem__); got {type(dataset).__name__}")
        check_index_keys(dataset, "the refresh loader")
        check_dataset_transform(dataset, "the refresh loader")
        self.dataset = dataset
        self.size = height_width(input_size, "input_size")
        self.normalize = normalize
        steps: list[Any] = [T.Resize(self.size, antialias=True), T.ToImage(), T.ToDtype(torch.float32, scale=True)]
        if normalize:
            steps.append(normalize_step(normalize))
        self.transform = T.Compose(steps)

    @property
    def input_size(self) -> int | tuple[int, int]:
        height, width = self.size
        return height if height == width else self.size

    def __repr__(self) -> str:
        return f"RefreshImages({type(self.dataset).__name__} of {len(self.dataset)}, size={self.size})"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        item = read_item(self.dataset, index)
        check_item_key(item, index, self.dataset)
        image = item[0] if isinstance(item, (tuple, list)) else item
        if isinstance(image, (tuple, list)):
            raise ValueError(
                f"item {index} of {type(self.dataset).__name__} holds {len(image)} images: the dataset applies a "
                "multi-view transform; the refresh needs the plain images (build the dataset without a transform)"
            )
        try:
            rgb = to_rgb(image)
        except (TypeError, ValueError) as error:  # e.g. a mode F image: the sample named, as read errors name it
            error.add_note(f"the image of sample {index} of {type(self.dataset).__name__}")
            raise
        return self.transform(rgb), int(index)


def make_refresh_loader(
    dataset: Any,
    input_size: int | Sequence[int] | None = None,
    *,
    transform: Any = None,
    batch_size: int = 256,
    num_workers: int | None = None,
    normalize: Normalize | None | object = FROM_TRANSFORM,
    distributed: bool | None = None,
    persistent_workers: bool = False,
) -> DataLoader:
    """A loader of ``(images (B, 3, H, W), indices (B,))`` over all of ``dataset``, in order.

    The refresh must see the images as the training views do: same resolution, same
    normalisation. Pass the training ``transform`` (a ``CCrop...Transform`` or the
    :class:`~ccrop_lightly.CCropCollate`) and both are taken from it, so a custom
    ``normalize=`` cannot be forgotten here::

        make_refresh_loader(dataset, transform=transform)

    With ``transform``, an explicit ``normalize`` must agree with it (``ValueError``
    otherwise); an explicit ``input_size`` overrides the views' size (e.g. to localize at a
    higher resolution). Without ``transform``, ``input_size`` is required and ``normalize``
    defaults to lightly's ImageNet statistics, the transforms' own default: pass the same
    ``normalize`` as the transform's if you changed it there.

    Under ``torch.distributed`` (``distributed=None`` detects it) each rank gets its shard
    through the core's :class:`~ccrop_plugins.RefreshSampler` (contiguous, unpadded: each
    image is localized once); the core's ``refresh_boxes`` all-gathers the shards, so every
    rank ends with the full store. ``distributed`` is decided when this is called: build the
    loader after the process group exists (the callback does so in ``setup``); ``distributed=True``
    without an initialized process group is a ``ValueError`` (it would give every rank every image).

    ``num_workers`` (the processes that read and resize the images): ``None`` (default) picks
    :func:`default_workers`: none when this rank's shard fits in one batch, else one per CPU this process may
    use, shared among the node's ranks (``LOCAL_WORLD_SIZE``), at most 8; pass your training DataLoader's
    ``num_workers`` to match it, or ``0`` to read in this process (at ImageNet scale the refresh then waits
    about 10x longer on loading than on the forward).
    """
    batch_size, workers = check_loader_options(batch_size, num_workers, "make_refresh_loader")
    if distributed not in (True, False, None):  # bool('no') is True
        raise TypeError(f"make_refresh_loader: distributed must be True, False or None (detect); got {distributed!r}")
    if persistent_workers not in (True, False):
        raise TypeError(f"make_refresh_loader: persistent_workers must be True or False; got {persistent_workers!r}")
    if distributed is not None and distributed and not (dist.is_available() and dist.is_initialized()):
        # RefreshSampler would read rank 0 of 1: every rank would localize every image, world_size times over.
        raise ValueError(
            "make_refresh_loader: distributed=True but torch.distributed is not initialized, so this rank's shard "
            "is unknown; build the refresh loader after torch.distributed.init_process_group, or pass "
            "distributed=False (every image on this process) or leave distributed=None (detect)"
        )
    size, norm = loader_settings(input_size, normalize, transform)
    images = RefreshImages(dataset, size, norm)
    # distributed=None or True: this rank's shard when a process group exists; False: everything.
    everything = distributed is not None and not distributed  # False, numpy's False too
    sampler = RefreshSampler(images, rank=0, world_size=1) if everything else RefreshSampler(images)
    num_workers = default_workers(len(sampler), batch_size) if workers is None else workers
    return DataLoader(
        images,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=bool(persistent_workers) and num_workers > 0,
        drop_last=False,
    )


def check_loader_options(batch_size: Any, num_workers: Any, owner: str) -> tuple[int, int | None]:
    """The refresh loader's ``batch_size`` (an int >= 1) and ``num_workers`` (an int >= 0, or ``None``: the default)
    as plain ints (numpy ints too), named by ``owner`` when wrong; else the DataLoader's own message, which names
    neither the refresh nor where the value came from."""
    numbers: list[int | None] = []
    for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
        if name == "num_workers" and value is None:
            numbers.append(None)
            continue
        number = None if isinstance(value, (bool, np.bool_)) else _integer(value)
        if number is None or number < low:
            allowed = f"an integer >= {low}" + (" or None (the default)" if name == "num_workers" else "")
            raise ValueError(f"{owner}: {name} of the refresh loader must be {allowed}; got {value!r}")
        numbers.append(number)
    return numbers[0], numbers[1]  # type: ignore[return-value]


MAX_DEFAULT_WORKERS = 8


def default_workers(images: int, batch_size: int) -> int:
    """The refresh loader's ``num_workers`` when none is given, for a shard of ``images`` read ``batch_size`` at a
    time: ``0`` when the shard fits in one batch (a worker would only add its start-up), else the CPUs this process
    may use divided among the node's ranks (``LOCAL_WORLD_SIZE``, as ``torchrun`` sets it; 1 when unset),
    between 1 and :data:`MAX_DEFAULT_WORKERS`."""
    if images <= batch_size:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    ranks = _integer_or(os.environ.get("LOCAL_WORLD_SIZE"), 1)
    return max(1, min(MAX_DEFAULT_WORKERS, cpus // max(1, ranks)))


def _integer_or(text: str | None, default: int) -> int:
    """``text`` as an int, or ``default`` when it is unset or not an integer."""
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _integer(value: Any) -> int | None:
    """``value`` as a plain int when it is an integer (``int``, numpy's), else ``None``."""
    try:
        return operator.index(value)
    except TypeError:
        return None


def loader_settings(
    input_size: int | Sequence[int] | None, normalize: Any, transform: Any
) -> tuple[int | Sequence[int], Normalize | None]:
    """The refresh loader's ``(input size, normalisation)``: with ``transform``, its views' (``input_size`` wins
    for the size; an explicit ``normalize`` must match theirs), else ``input_size`` and ``normalize`` (ImageNet's
    when not given)."""
    if transform is None:
        if input_size is None:
            raise TypeError(
                "make_refresh_loader needs the training transform (transform=...) or input_size; got neither"
            )
        return (  # type: ignore[return-value]
            input_size, IMAGENET_NORMALIZE if normalize is FROM_TRANSFORM else normalize
        )
    size_of_views, normalize_of_views = refresh_settings(transform)
    if normalize is not FROM_TRANSFORM and not _same_normalize(
        normalize, normalize_of_views  # type: ignore[arg-type]
    ):
        raise ValueError(
            f"normalize={normalize!r} differs from the training views' normalisation {normalize_of_views!r}; "
            "the refresh must see the images as the views do: leave normalize out to take the transform's"
        )
    return (size_of_views if input_size is None else input_size), normalize_of_views


def _same_normalize(a: Normalize | None, b: Normalize | None) -> bool:
    if not a or not b:
        return not a and not b
    return all(
        len(a[key]) == len(b[key]) and all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a[key], b[key]))
        for key in ("mean", "std")
    )

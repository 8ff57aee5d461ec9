"""The train dataset's parts: the datasets that hold its pipeline, and their rows in the one box store.

A plain mmengine dataset is one part, also inside wrappers with one inner ``dataset`` (``RepeatDataset``...). A
``ConcatDataset`` (nested too) has a part per dataset; each numbers its samples from 0 (``sample_idx``), so part
``d``'s sample ``i`` is row ``offset_d + i`` of the store, ``offset_d`` the samples of the parts before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .pipeline_walk import check_steps, find_instances, optional_crops, pipeline_steps, warn_optional_crops
from .transforms import StoreUser, as_index


@dataclass(frozen=True)
class TrainPart:
    """One dataset that holds a train pipeline: the train dataset itself, or a part of a ``ConcatDataset``.

    Attributes:
        dataset: the dataset that owns the pipeline (inside wrappers such as ``RepeatDataset``); ``sample_idx``
            indexes it, from 0 to ``len(dataset) - 1``.
        offset: its sample ``i`` is row ``offset + i`` of the box store (0 for the first part and a single dataset).
        path: where the config puts it, e.g. ``'train_dataloader.dataset.datasets[1]'``.
        store_users: every ContrastiveCrop and ChooseContrastiveBox step of its pipeline, however nested.
        head: the top-level steps before the first ContrastiveCrop, ``ChooseContrastiveBox`` left out (normally
            ``LoadImageFromFile``): the refresh pass loads its un-augmented images with them.
        crop_size: ``(height, width)`` output of the first ContrastiveCrop.
        backend: that crop's ``mmcv.imresize`` backend.
    """

    dataset: Any
    offset: int
    path: str
    store_users: list[StoreUser]
    head: list[Any]
    crop_size: tuple[int, int]
    backend: str

    @property
    def rows(self) -> range:
        """The store rows of this part's samples: ``sample_idx`` ``i`` reads row ``rows[i]``."""
        return range(self.offset, self.offset + len(self.dataset))


@dataclass(frozen=True)
class TrainPipeline:
    """What the hook needs from the train dataset, read once before training.

    Attributes:
        parts: the datasets that hold the train pipeline, in the order the train dataset concatenates them (one
            unless it is a ``ConcatDataset``; a dataset listed twice counts once); their rows follow each other in the
            box store.
        plain_views: the view pipelines (of ``MultiView``) and the branches (of ``RandomChoice``) that crop with a
            RandomResizedCrop and no ContrastiveCrop beside ones that crop with ContrastiveCrop, e.g.
            ``'view pipeline 2 of MultiView (RandomResizedCrop)'``: their views ignore the boxes.
    """

    parts: list[TrainPart]
    plain_views: list[str]

    @property
    def num_samples(self) -> int:
        """The box store's rows: every part's samples."""
        return self.parts[-1].rows.stop

    @property
    def store_users(self) -> list[StoreUser]:
        """Every part's ContrastiveCrop and ChooseContrastiveBox steps."""
        return [step for part in self.parts for step in part.store_users]

    def refresh_size(self, image_size: tuple[int, int] | None) -> tuple[int, int]:
        """``(height, width)`` the refresh resizes every image to: ``image_size`` (the hook's), else the first
        ContrastiveCrop's output size, which must then be one for all parts (``ValueError`` naming two that differ)."""
        if image_size is not None:
            return image_size
        first = self.parts[0]
        other = next((part for part in self.parts if part.crop_size != first.crop_size), None)
        if other is not None:
            raise ValueError(
                f"ContrastiveCropHook: the ContrastiveCrop of {first.path} gives {first.crop_size[0]}x"
                f"{first.crop_size[1]} crops, the one of {other.path} {other.crop_size[0]}x{other.crop_size[1]}; the "
                "refresh resizes every image to one training resolution: give the crops one size, or set it with "
                "ContrastiveCropHook(image_size=...)")
        return first.crop_size


def read_train_pipeline(dataset: Any, several_boxes: bool) -> TrainPipeline:
    """Check the train pipeline of every part of the train dataset for ContrastiveCrop and return the parts.

    Args:
        dataset: ``runner.train_dataloader.dataset``: an mmengine dataset, in wrappers with one inner ``dataset``
            (``RepeatDataset``...) or not, or a ``ConcatDataset`` of such (nested ones too).
        several_boxes: the hook keeps more than one box per image (see :func:`~ccrop_mm.pipeline_walk.check_steps`).

    Raises:
        ValueError / TypeError: :func:`_read_part`'s, for any part (a ``ConcatDataset``'s prefixed with the part's
            path), no pipeline found (:func:`_pipeline_parts`), or one ContrastiveCrop/ChooseContrastiveBox object in
            the pipelines of two parts (a pipeline reused in Python: it reads one part's rows).
    """
    found, offset, parts = _pipeline_parts(dataset), 0, []
    plain_views: dict[str, list[str]] = {}  # where -> the paths of the parts whose pipelines have it
    optional: dict[tuple[str, float], list[str]] = {}
    for path, owner in found:
        try:
            part, views = _read_part(owner, several_boxes, offset, path)
        except (TypeError, ValueError) as error:
            if len(found) == 1:
                raise
            raise type(error)(f"{path}: {error}") from error
        parts.append(part)
        for view in views:
            plain_views.setdefault(view, []).append(path)
        for crop in optional_crops(pipeline_steps(owner)):
            optional.setdefault(crop, []).append(path)
        offset += len(owner)
    _check_steps_not_shared(parts)

    def named(where: str, paths: list[str]) -> str:  # a ConcatDataset's: with the parts whose pipelines hold it
        return where if len(found) == 1 else f"{where} in the pipeline of {', '.join(paths)}"

    warn_optional_crops([(named(where, paths), chance) for (where, chance), paths in optional.items()])
    return TrainPipeline(parts, [named(view, paths) for view, paths in plain_views.items()])


def _check_steps_not_shared(parts: list[TrainPart]) -> None:
    """Refuse one ContrastiveCrop/ChooseContrastiveBox object in the pipelines of two parts: it holds one offset."""
    owner: dict[int, TrainPart] = {}
    for part in parts:
        for step in part.store_users:
            first = owner.setdefault(id(step), part)
            if first is not part:
                raise ValueError(
                    f"ContrastiveCropHook: one {type(step).__name__} object is in the pipelines of {first.path} and "
                    f"{part.path} (a pipeline reused in Python): their samples are rows {first.rows.start} to "
                    f"{first.rows.stop - 1} and {part.rows.start} to {part.rows.stop - 1} of the box store, and one "
                    "step reads one of them, so one dataset's images would be cut around the other's boxes; give "
                    "each dataset its own pipeline (build its steps anew, or write the pipeline as config dicts)")


def _read_part(dataset: Any, several_boxes: bool, offset: int, path: str) -> tuple[TrainPart, list[str]]:
    """The part ``dataset`` (one that holds a pipeline), its pipeline checked
    (:func:`~ccrop_mm.pipeline_walk.check_steps`) and its ``sample_idx`` too (``ValueError`` when missing or another one
    than the dataset index); with its :attr:`TrainPipeline.plain_views`."""
    steps = check_steps(dataset, several_boxes)
    _check_sample_index(dataset)
    part = TrainPart(dataset, offset, path, steps.store_users, steps.head, steps.crop_size, steps.backend)
    return part, steps.plain_views


def _pipeline_parts(dataset: Any) -> list[tuple[str, Any]]:
    """The datasets that hold the train pipeline, each with its path in the config, in the order ``dataset`` gives
    their samples: inside wrappers with one inner ``dataset`` (``RepeatDataset``...) and in the ``datasets`` of a
    ``ConcatDataset`` (nested ones too); a dataset listed twice counts once (its samples are the same images).
    ``TypeError`` naming the first dataset reached that holds neither a pipeline nor datasets."""
    found: dict[int, tuple[str, Any]] = {}
    for path, owner in _owners(dataset, "train_dataloader.dataset"):
        if not hasattr(owner, "pipeline"):
            name = type(owner).__name__
            inside = "" if owner is dataset else f" (inside {type(dataset).__name__}, at {path})"
            raise TypeError(f"ContrastiveCropHook cannot find the pipeline of {name}{inside}; it supports mmengine "
                            "datasets, wrappers with a single inner dataset and ConcatDataset")
        found.setdefault(id(owner), (path, owner))
    return list(found.values())


def _owners(dataset: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Each innermost dataset of ``dataset`` (one with a ``pipeline``, or neither a ``pipeline`` nor an inner
    ``dataset``/``datasets``) and its path from ``path``, in the order of the samples."""
    while not hasattr(dataset, "pipeline") and hasattr(dataset, "dataset"):
        dataset, path = dataset.dataset, f"{path}.dataset"
    inner = getattr(dataset, "datasets", None)
    if hasattr(dataset, "pipeline") or not isinstance(inner, (list, tuple)):
        yield path, dataset
        return
    for number, part in enumerate(inner):
        yield from _owners(part, f"{path}.datasets[{number}]")


def _check_sample_index(dataset: Any) -> None:
    """Refuse a dataset whose ``get_data_info(i)`` lacks ``sample_idx`` or gives another value than ``i``: the refresh
    stores the boxes of sample ``i`` under ``i``, the crop reads them by ``sample_idx``. Read at the first, the last and
    seven indices between (data infos only, no image)."""
    if not hasattr(dataset, "get_data_info"):
        raise TypeError(
            f"ContrastiveCropHook needs an mmengine BaseDataset (with get_data_info); got {type(dataset).__name__}"
        )
    size, name = len(dataset), type(dataset).__name__
    for index in sorted({0, size - 1} | {size * k // 8 for k in range(1, 8)}) if size else []:
        info = dataset.get_data_info(index)
        if not isinstance(info, dict) or "sample_idx" not in info:
            raise ValueError(
                f"{name}.get_data_info({index}) has no 'sample_idx': ContrastiveCrop needs each "
                "sample's dataset index in the results (mmengine's BaseDataset.get_data_info adds it; "
                "keep it in a custom get_data_info)"
            )
        if as_index(info["sample_idx"]) != index:
            raise ValueError(
                f"{name}.get_data_info({index}) gives sample_idx {info['sample_idx']!r}, not {index}: the refresh "
                "stores each image's boxes under its dataset index and ContrastiveCrop reads them by sample_idx, so "
                "every image would be cut around another image's boxes; sample_idx must be the dataset index (as "
                "mmengine's BaseDataset.get_data_info sets it): keep image ids under another key"
            )


def evaluation_store_users(dataset: Any) -> list[StoreUser]:
    """The ContrastiveCrop and ChooseContrastiveBox steps of a val/test dataset's pipeline(s) (none without one)."""
    if dataset is None:
        return []
    return [step for _, owner in _owners(dataset, "") for step in find_instances(getattr(owner, "pipeline", []),
                                                                                  StoreUser)]

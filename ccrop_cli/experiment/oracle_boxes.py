"""Ground-truth boxes as a box source: the ceiling of what any localizer can give the crop.

:class:`OracleRefresher` stands in for :class:`~ccrop_lightly.BoxRefresher` in
:func:`ccrop_cli.experiment.pretrain.pretrain_simclr` (``box_source="oracle"``): on the same
schedule (after the warm-up, then every ``interval`` epochs, never after the last) it writes
the folder's ground-truth boxes (``annotations.json``) to the box store instead of localizing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ccrop_plugins import BoxSets, BoxStore, RefreshSchedule, RefreshStats
from ccrop_scenes import ANNOTATIONS_FILE, load_annotations

from ccrop_cli.experiment.pair_quality import oracle_box_sets
from ccrop_cli.experiment.strategies import CropStrategy


def ground_truth_box_sets(
    data_root: str | Path, filenames: list[str], strategy: CropStrategy, max_boxes: int
) -> BoxSets:
    """The folder's ground-truth boxes as ``strategy``'s box sets, one per dataset index.

    The paper's single box (``localizer == "bbox"``) is the union of the image's objects;
    box sets keep every object, scored by its area, as the ``components`` localizer scores
    blobs by heatmap mass (:func:`~ccrop_cli.experiment.pair_quality.oracle_box_sets`). An
    image without objects gets the whole-image fallback box.

    Args:
        data_root: the image folder holding ``annotations.json`` (COCO-style boxes).
        filenames: the images in dataset-index order (``LightlyDataset.get_filenames()``).
        strategy: the crop strategy the boxes are for.
        max_boxes: keep at most this many boxes per image (the store's size).

    Raises:
        ValueError: without ``annotations.json``.
    """
    path = Path(data_root) / ANNOTATIONS_FILE
    if not path.is_file():
        raise ValueError(f"box source 'oracle' needs ground-truth boxes in {path}, which does not exist")
    truth = load_annotations(data_root)
    empty = np.zeros((0, 4), dtype=np.float32)
    sets = oracle_box_sets([truth.get(name, empty) for name in filenames], strategy)
    boxes = [torch.zeros(0, 4) if s is None else s[0] for s in sets]
    scores = [torch.zeros(0) if s is None else s[1] for s in sets]
    return BoxSets.from_lists(boxes, scores, max_boxes=max_boxes)


class OracleRefresher:
    """Write fixed (ground-truth) box sets to a store on the refresh schedule.

    The interface :func:`~ccrop_cli.experiment.pretrain.pretrain_simclr` uses of a
    :class:`~ccrop_lightly.BoxRefresher`: ``should_refresh(epoch)`` and
    ``maybe_refresh(epoch)`` (0-based epochs), returning :class:`~ccrop_plugins.RefreshStats`.

    Args:
        store: the store the collate function reads.
        box_sets: one set per store index.
        warmup_epochs, interval, max_epochs: the schedule (:class:`~ccrop_plugins.RefreshSchedule`).
    """

    def __init__(
        self, store: BoxStore, box_sets: BoxSets, *, warmup_epochs: int, interval: int, max_epochs: int | None = None
    ) -> None:
        if len(box_sets) != len(store):
            raise ValueError(f"got {len(box_sets)} ground-truth box sets for a store of {len(store)} samples")
        self.store = store
        self.box_sets = box_sets
        self.schedule = RefreshSchedule(warmup_epochs, interval, max_epochs)

    def should_refresh(self, epoch: int) -> bool:
        return self.schedule.due(epoch)

    def maybe_refresh(self, epoch: int) -> RefreshStats | None:
        return self.refresh() if self.should_refresh(epoch) else None

    def refresh(self) -> RefreshStats:
        """Write the box sets to every store index now (one new store version)."""
        started = time.perf_counter()
        self.store.update(torch.arange(len(self.box_sets)), self.box_sets)
        seconds = time.perf_counter() - started
        counts = self.box_sets.counts
        valid = torch.arange(self.box_sets.boxes.shape[1]) < counts[:, None]
        areas = (self.box_sets.boxes[..., 2:] - self.box_sets.boxes[..., :2]).prod(-1)[valid]
        return RefreshStats(
            images=len(self.box_sets),
            seconds=seconds,
            images_per_second=len(self.box_sets) / max(seconds, 1e-9),
            mean_boxes=float(counts.float().mean()),
            mean_box_area=float(areas.mean()),
            fallback_fraction=float(self.box_sets.fallback.float().mean()),
            version=self.store.version,
        )

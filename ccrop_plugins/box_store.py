"""The box sets of a whole dataset, in shared memory, readable from every DataLoader worker."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .box_sets import BoxSets, validate_box_sets


class BoxStore:
    """Box sets for ``num_samples`` dataset indices, at most ``max_boxes`` each, in shared memory.

    The tensors are moved to shared memory when the store is created, so a store that is
    part of a dataset (or collate function) travels into DataLoader workers by handle, under
    ``fork`` and ``spawn`` alike, and an :meth:`update` made in the main process is seen by
    workers that are already running (``persistent_workers=True``), from the next batch they
    build (batches already prefetched keep their crops).

    Memory: ``boxes`` float32 ``(N, K, 4)``, ``scores`` float32 ``(N, K)``, ``counts`` int8
    ``(N,)``: 81 bytes per sample at ``K = 4``, once for all workers.

    Attributes:
        version: how many refreshes have landed; 0 means warm-up (no boxes yet).
    """

    def __init__(self, num_samples: int, max_boxes: int = 4) -> None:
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be a positive integer (the dataset length); got {num_samples}")
        if not 1 <= int(max_boxes) <= 127:
            raise ValueError(f"max_boxes must lie in [1, 127]; got {max_boxes}")
        self.num_samples = int(num_samples)
        self.max_boxes = int(max_boxes)
        self.boxes = torch.zeros(self.num_samples, self.max_boxes, 4).share_memory_()
        self.scores = torch.zeros(self.num_samples, self.max_boxes).share_memory_()
        self.counts = torch.zeros(self.num_samples, dtype=torch.int8).share_memory_()
        self._version = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def version(self) -> int:
        """How many refreshes have landed (0: warm-up)."""
        return int(self._version[0])

    def __len__(self) -> int:
        return self.num_samples

    def check_index(self, index: int) -> int:
        """Return ``index`` as an int, or raise ``IndexError`` naming it and the store size."""
        index = int(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(
                f"sample index {index} is outside the box store of {self.num_samples} samples "
                f"(allowed: 0 to {self.num_samples - 1}); size the store to the dataset"
            )
        return index

    def get(self, index: int) -> tuple[Tensor, Tensor] | None:
        """``(boxes (k, 4), scores (k,))`` of sample ``index``, or ``None`` before it has any.

        Boxes are normalised ``x0, y0, x1, y1`` in ``[0, 1]``, best first.
        """
        index = self.check_index(index)
        count = int(self.counts[index])
        if count == 0:
            return None
        return self.boxes[index, :count].clone(), self.scores[index, :count].clone()

    def update(self, indices: Tensor | list[int], box_sets: BoxSets, *, new_version: bool = True) -> None:
        """Write the box sets of dataset ``indices`` (M,) and, by default, count one refresh.

        Sets with more than ``max_boxes`` boxes keep their best ``max_boxes``. Padding rows
        repeat the first box with score 0, so a worker that reads while the main process
        writes still gets valid boxes.
        """
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if len(indices) != len(box_sets):
            raise ValueError(f"got {len(indices)} indices for {len(box_sets)} box sets")
        if len(indices):
            bad = (indices < 0) | (indices >= self.num_samples)
            if bad.any():
                self.check_index(int(indices[bad][0]))
        keep = min(box_sets.max_boxes, self.max_boxes)
        counts = box_sets.counts.clamp(max=keep)
        boxes = box_sets.boxes[:, :keep].float()
        validate_box_sets(boxes, counts, samples=indices)
        valid = torch.arange(keep) < counts[:, None]
        boxes = torch.where(valid[..., None], boxes, boxes[:, :1])
        scores = box_sets.scores[:, :keep].float() * valid
        padded_boxes = boxes[:, :1].repeat(1, self.max_boxes, 1)
        padded_boxes[:, :keep] = boxes
        padded_scores = torch.zeros(len(indices), self.max_boxes)
        padded_scores[:, :keep] = scores
        # Boxes before counts: a concurrent reader never sees a count without its boxes.
        self.boxes[indices] = padded_boxes
        self.scores[indices] = padded_scores
        self.counts[indices] = counts.to(torch.int8)
        if new_version:
            self._version += 1

    def state_dict(self) -> dict[str, Any]:
        """A checkpointable copy: ``boxes``, ``scores``, ``counts``, ``version`` and the sizes."""
        return {
            "num_samples": self.num_samples,
            "max_boxes": self.max_boxes,
            "version": self.version,
            "boxes": self.boxes.clone(),
            "scores": self.scores.clone(),
            "counts": self.counts.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` in place (workers that hold this store see it)."""
        missing = {"num_samples", "max_boxes", "version", "boxes", "scores", "counts"} - set(state)
        if missing:
            raise KeyError(f"box store state lacks {sorted(missing)}")
        if int(state["num_samples"]) != self.num_samples:
            raise ValueError(
                f"box store state holds {state['num_samples']} samples but this store has {self.num_samples}; "
                "was the checkpoint made on another dataset?"
            )
        keep = min(int(state["max_boxes"]), self.max_boxes)
        counts = torch.as_tensor(state["counts"]).long().clamp(max=keep)
        filled = (counts > 0).nonzero()[:, 0]
        self.counts.zero_()
        if len(filled):
            # Validate before building BoxSets, so that an error names the dataset index.
            validate_box_sets(torch.as_tensor(state["boxes"])[filled, :keep].float(), counts[filled], samples=filled)
            saved = BoxSets(
                boxes=torch.as_tensor(state["boxes"])[filled, :keep].float(),
                scores=torch.as_tensor(state["scores"])[filled, :keep].float(),
                counts=counts[filled],
                fallback=torch.zeros(len(filled), dtype=torch.bool),
            )
            self.update(filled, saved, new_version=False)
        self._version.fill_(int(state["version"]))

    def summary(self) -> dict[str, float]:
        """Mean boxes per filled sample, mean box area (fraction of the image) and the fill fraction."""
        filled = self.counts > 0
        if not filled.any():
            return {"filled_fraction": 0.0, "mean_boxes": 0.0, "mean_box_area": 0.0}
        counts = self.counts[filled].long()
        valid = torch.arange(self.max_boxes) < counts[:, None]
        wh = self.boxes[filled, :, 2:] - self.boxes[filled, :, :2]
        areas = wh.prod(-1)[valid]
        return {
            "filled_fraction": float(filled.float().mean()),
            "mean_boxes": float(counts.float().mean()),
            "mean_box_area": float(areas.mean()),
        }

    def __repr__(self) -> str:
        return f"BoxStore(num_samples={self.num_samples}, max_boxes={self.max_boxes}, version={self.version})"

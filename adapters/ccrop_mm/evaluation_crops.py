"""ContrastiveCrop steps in a val/test pipeline get no boxes: the hook makes them for the training images only."""

from __future__ import annotations

from typing import Any

from mmengine.dist import is_main_process

from .train_parts import evaluation_store_users


def say_evaluation_crops(runner: Any, mode: str) -> None:
    """Say so once in the run's log (``mode``: ``'val'`` or ``'test'``), and mark the steps, whose per-worker
    warning would blame a missing hook."""
    loader = getattr(getattr(runner, f"{mode}_loop", None), "dataloader", None)
    steps = [step for step in evaluation_store_users(getattr(loader, "dataset", None))
             if step.store is None and step.evaluation_loader is None]
    for step in steps:
        step.evaluation_loader = f"{mode}_dataloader"
    if steps and is_main_process():
        names = sorted({type(step).__name__ for step in steps})
        runner.logger.warning(
            f"ContrastiveCrop: {', '.join(names)} in {mode}_dataloader.dataset.pipeline gets no boxes (the hook "
            f"makes them for train_dataloader's images only), so every {mode} crop is a plain RandomResizedCrop "
            f"crop, random from run to run; use a deterministic crop (e.g. CenterCrop or ResizeEdge) in the {mode} "
            "pipeline")

"""Restart the DataLoader workers that an iteration loop started before the box store existed.

mmengine's ``IterBasedTrainLoop`` calls ``iter(dataloader)`` when the loop is built, inside
``runner.train()`` and before ``before_run``/``before_train``. Its workers therefore start
with pipeline copies whose ContrastiveCrop steps have no store, and keep them: persistent
workers for the whole run, and any worker under ``InfiniteSampler`` (the loader is never
re-iterated). ``EpochBasedTrainLoop`` starts workers in each epoch, after ``before_train``,
and needs nothing.

This reaches into two private attributes that have been stable for years:
``DataLoader._iterator`` (the kept iterator of persistent workers) and mmengine's
``_InfiniteDataloaderIterator._iterator``. The stopped iterators must stay referenced until
the run ends: mmengine's ``InfiniteSampler`` iterates one generator created once
(``yield from self.indices``), and finalizing a stopped iterator would close its batch
sampler's generator and, through ``yield from``, that shared one, ending the new iterator.
"""

from __future__ import annotations

from typing import Any


def restart_started_workers(train_loop: Any) -> list[Any]:
    """Stop the workers ``train_loop`` already started and give it a fresh infinite iterator.

    Call it after the store is attached to the pipeline and before the first iteration: the
    new workers copy the pipeline with the store, so they see every refresh.

    Args:
        train_loop: ``runner.train_loop``; only loops with a ``dataloader_iterator``
            (``IterBasedTrainLoop``) and ``num_workers > 0`` are touched.

    Returns:
        The stopped worker iterators (empty if nothing was restarted); keep them referenced
        until the run ends (see the module docstring).
    """
    iterator = getattr(train_loop, "dataloader_iterator", None)
    loader = getattr(train_loop, "dataloader", None)
    if iterator is None or loader is None or not getattr(loader, "num_workers", 0):
        return []
    started = [getattr(iterator, "_iterator", None), getattr(loader, "_iterator", None)]
    stopped = list({id(item): item for item in started if item is not None}.values())
    for worker_iterator in stopped:
        shutdown = getattr(worker_iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    loader._iterator = None  # else a persistent-workers DataLoader resets (reuses) the old workers
    train_loop.dataloader_iterator = type(iterator)(loader)
    return stopped

"""What every rank of a ``torch.distributed`` run must agree on, checked once instead of waited on."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def check_same_on_every_rank(value: Any, what: str) -> None:
    """Under ``torch.distributed``, a ``ValueError`` on every rank (naming each rank's ``value``) unless all ranks
    pass equal values; nothing without a process group. Collective (one ``all_gather_object``): every rank calls it.
    For settings that decide whether a rank enters a collective (the refresh schedule): ranks that disagree would
    wait there until the timeout, one in the refresh's gather and the other in the training step's."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    if any(other != gathered[0] for other in gathered):
        shown = "; ".join(f"rank {rank}: {other}" for rank, other in enumerate(gathered))
        raise ValueError(f"{what} differs between the ranks ({shown}); every rank must use the same, else the ranks "
                         "part ways at the refresh's collective and wait until the timeout")

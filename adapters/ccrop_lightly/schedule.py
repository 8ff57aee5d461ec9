"""The core's refresh schedule under the epoch names Lightly code uses, its build-time warning, the epoch check."""

from __future__ import annotations

import operator
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from ccrop_plugins import RefreshSchedule as _StepSchedule


class RefreshSchedule(_StepSchedule):
    """:class:`ccrop_plugins.RefreshSchedule` counted in epochs, with the argument names of 0.1.

    A refresh runs at the *end* of (0-based) epoch ``e`` (so epoch ``e + 1`` crops from new
    boxes) when, with ``done = e + 1`` finished epochs, ``done >= warmup_epochs``,
    ``(done - warmup_epochs) % interval == 0`` and ``done < max_epochs`` (never after the
    last epoch, whose boxes no epoch would use; ``max_epochs=None`` means no known end).

    Example: ``RefreshSchedule(100, 100, 500)`` (CIFAR-10) refreshes after epochs 99, 199,
    299 and 399; ``RefreshSchedule(1, 1, 2)`` once, after epoch 0.

    A schedule that never refreshes within ``max_epochs`` (``RefreshSchedule(10, 5, 8)``, or
    the paper's ``100, 100`` on a 10-epoch run) warns once, when it is built: every view of
    such a run would be a plain ``RandomResizedCrop``.

    Args:
        warmup_epochs: epochs before the first refresh, ``>= 0`` (0: the first refresh comes
            after ``interval`` epochs; boxes need a trained model).
        interval: epochs between refreshes, ``>= 1``.
        max_epochs: the run's length (the training loop's ``range``, the trainer's
            ``max_epochs``), or ``None``.
    """

    argument_names: ClassVar[tuple[str, str, str]] = ("warmup_epochs", "interval", "max_epochs")

    def __init__(self, warmup_epochs: int, interval: int, max_epochs: int | None = None) -> None:
        super().__init__(warmup_epochs, interval, max_epochs)
        warn_if_never_refreshes(self, stacklevel=3)

    @property
    def warmup_epochs(self) -> int:
        return self.warmup

    @property
    def max_epochs(self) -> int | None:
        return self.total

    def refresh_epochs(self, max_epochs: int | None = None) -> list[int]:
        """Every epoch after which a refresh runs, up to ``max_epochs`` (default the schedule's)."""
        if max_epochs is None and self.total is None:
            raise ValueError("refresh_epochs needs max_epochs (the schedule has none)")
        return self.refresh_steps(max_epochs)

    def __repr__(self) -> str:
        return f"RefreshSchedule(warmup_epochs={self.warmup}, interval={self.interval}, max_epochs={self.total})"


def warn_if_never_refreshes(schedule: _StepSchedule, stacklevel: int = 2) -> bool:
    """Warn (and return ``True``) when ``schedule`` ends before its first refresh."""
    if schedule.total is None or not schedule.never_refreshes():
        return False
    warmup, interval, total = schedule.argument_names
    warnings.warn(
        f"ContrastiveCrop never refreshes its boxes in this run: with {warmup}={schedule.warmup}, "
        f"{interval}={schedule.interval} the first refresh would run after epoch {schedule.first_refresh} "
        f"(0-based), but {total}={schedule.total} ends the run before it (no refresh runs after the last epoch, "
        f"{schedule.total - 1}); every view will be a plain RandomResizedCrop (or, on a store holding a resumed run's "
        f"boxes, cut around those, never refreshed). Lower {warmup} or {interval}, "
        "or train longer.",
        UserWarning,
        stacklevel=stacklevel,
    )
    return True


def checked_epoch(epoch: Any, name: str = "epoch (the 0-based epoch that just ended)") -> int:
    """The 0-based epoch that just ended (or the one ``name`` says), as an int (numpy and one-element integer tensors
    too); ``ValueError`` naming it by ``name`` (not the schedule's ``step``) for floats, bools, text or a negative
    number."""
    number = None
    inexact = isinstance(epoch, Tensor) and (epoch.dtype == torch.bool or epoch.is_floating_point())
    if not isinstance(epoch, bool) and not inexact:
        try:
            number = operator.index(epoch)
        except TypeError:
            pass
    if number is None or number < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {epoch!r}")
    return number

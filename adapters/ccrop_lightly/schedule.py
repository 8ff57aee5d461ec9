"""When ContrastiveCrop refreshes its boxes: the paper's warm-up / interval schedule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RefreshSchedule:
    """The paper's schedule, with epochs counted from 0 as in Lightning and ``range(epochs)``.

    A refresh runs at the *end* of epoch ``e`` (so epoch ``e + 1`` crops from new boxes) when
    all three hold, with ``done = e + 1`` the number of finished epochs:

    - ``done >= warmup_epochs``: the first ``warmup_epochs`` epochs are plain
      RandomResizedCrop;
    - ``(done - warmup_epochs) % interval == 0``: then every ``interval`` epochs;
    - ``done < max_epochs``: never after the last epoch, whose boxes no epoch would use
      (``max_epochs=None`` means no known end).

    Example: ``warmup_epochs=100, interval=100, max_epochs=500`` (CIFAR-10) refreshes after
    epochs 99, 199, 299 and 399; ``warmup_epochs=1, interval=1, max_epochs=2`` refreshes once,
    after epoch 0.

    Args:
        warmup_epochs: epochs before the first refresh, ``>= 0`` (0: the first refresh comes
            after ``interval`` epochs; boxes need a trained model, so none is made before
            training).
        interval: epochs between refreshes, ``>= 1``.
        max_epochs: the run's length, or ``None``.
    """

    warmup_epochs: int
    interval: int
    max_epochs: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.warmup_epochs, bool) or int(self.warmup_epochs) != self.warmup_epochs or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0; got {self.warmup_epochs!r}")
        if isinstance(self.interval, bool) or int(self.interval) != self.interval or self.interval < 1:
            raise ValueError(f"interval must be an integer >= 1; got {self.interval!r}")
        if self.max_epochs is not None and (int(self.max_epochs) != self.max_epochs or self.max_epochs < 1):
            raise ValueError(f"max_epochs must be a positive integer or None; got {self.max_epochs!r}")

    def due(self, epoch: int) -> bool:
        """Whether to refresh at the end of (0-based) ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0 (epochs count from 0); got {epoch}")
        done = epoch + 1
        if done < self.warmup_epochs or (done - self.warmup_epochs) % self.interval != 0:
            return False
        return self.max_epochs is None or done < self.max_epochs

    def refresh_epochs(self, max_epochs: int | None = None) -> list[int]:
        """Every epoch after which a refresh runs, up to ``max_epochs`` (default the schedule's)."""
        end = self.max_epochs if max_epochs is None else max_epochs
        if end is None:
            raise ValueError("refresh_epochs needs max_epochs (the schedule has none)")
        return [epoch for epoch in range(end) if self.due(epoch)]

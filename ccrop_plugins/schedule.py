"""When the boxes are refreshed: the paper's warm-up / interval schedule, in epochs or iterations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .sizes import checked_int


@dataclass(frozen=True)
class RefreshSchedule:
    """The paper's schedule, counted in *steps* (epochs or iterations: the caller decides).

    Steps count from 0, as ``range(steps)`` and Lightning's ``current_epoch`` do. A refresh
    runs at the *end* of step ``s`` (so step ``s + 1`` crops from new boxes) when all three
    hold, with ``done = s + 1`` the number of finished steps:

    - ``done >= warmup``: the first ``warmup`` steps are plain RandomResizedCrop;
    - ``(done - warmup) % interval == 0``: then every ``interval`` steps;
    - ``done < total``: never after the last step, whose boxes no step would use
      (``total=None`` means no known end).

    ``RefreshSchedule(100, 100, 500)`` (CIFAR-10, in epochs) refreshes after steps 99, 199, 299
    and 399; ``RefreshSchedule(0, 3, 10)`` after 2, 5 and 8 (boxes need a trained model). More
    examples, and the reference code's rule: docs/configuration.md, "The refresh schedule".

    Args: ``warmup`` (an int ``>= 0``), ``interval`` (an int ``>= 1``), ``total`` (an int ``>= 1``
    or ``None``), in steps.
    """

    warmup: int
    interval: int
    total: int | None = None

    # The names errors use; a subclass with older argument names (``max_epochs``) overrides them.
    argument_names: ClassVar[tuple[str, str, str]] = ("warmup", "interval", "total")

    def __post_init__(self) -> None:
        warmup_name, interval_name, total_name = self.argument_names
        object.__setattr__(self, "warmup", checked_int(self.warmup, warmup_name, 0))
        object.__setattr__(self, "interval", checked_int(self.interval, interval_name, 1))
        if self.total is not None:
            object.__setattr__(self, "total", checked_int(self.total, total_name, 1, or_none=True))

    def due(self, step: int) -> bool:
        """Whether to refresh at the end of (0-based) ``step``."""
        done = checked_int(step, "step", 0) + 1
        if done < self.warmup or (done - self.warmup) % self.interval != 0:
            return False
        return self.total is None or done < self.total

    @property
    def first_refresh(self) -> int:
        """The first step after which a refresh runs, ignoring ``total``."""
        # done must be >= 1 (a refresh needs a trained step) and >= warmup, on the interval grid.
        return (self.warmup if self.warmup >= 1 else self.interval) - 1

    def refresh_steps(self, total: int | None = None) -> list[int]:
        """Every step after which a refresh runs, up to ``total`` (default the schedule's)."""
        end = self._end(total, "refresh_steps")
        if end is None:
            raise ValueError("refresh_steps needs total (the schedule has none)")
        return list(range(self.first_refresh, end - 1, self.interval))

    def never_refreshes(self, total: int | None = None) -> bool:
        """Whether a run of ``total`` steps (default the schedule's) ends before any refresh.

        For the "ContrastiveCrop is silently inactive" warnings: warm-up at least as long as
        the run, or a run too short for the first interval. ``False`` when no end is known.
        """
        end = self._end(total, "never_refreshes")
        return end is not None and self.first_refresh + 1 >= end

    def _end(self, total: int | None, caller: str) -> int | None:
        if total is not None:
            total = checked_int(total, f"{caller}(total)", 1)
            return total if self.total is None else min(total, self.total)
        return self.total

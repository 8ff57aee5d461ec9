"""When the boxes are refreshed: the paper's warm-up / interval schedule, in epochs or iterations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .sizes import checked_int


@dataclass(frozen=True)
class RefreshSchedule:
    """The paper's schedule in 0-based *steps* (epochs or iterations: the caller decides).

    A refresh runs at the end of step ``s`` when ``done = s + 1`` satisfies ``done >= warmup``,
    ``(done - warmup) % interval == 0`` and ``done < total`` (``None``: no known end); ``RefreshSchedule(100, 100,
    500)`` refreshes after steps 99, 199, 299 and 399 (docs/configuration.md, "The refresh schedule").

    Args: ``warmup`` (an int ``>= 0``), ``interval`` (an int ``>= 1``), ``total`` (an int ``>= 1`` or ``None``),
    in steps; anything else is a ``ValueError`` naming the argument.
    """

    warmup: int
    interval: int
    total: int | None = None

    # The names errors use; a subclass with older argument names (``max_epochs``) overrides them.
    argument_names: ClassVar[tuple[str, str, str]] = ("warmup", "interval", "total")

    def __post_init__(self) -> None:
        for field, name, low in zip(("warmup", "interval", "total"), self.argument_names, (0, 1, 1)):
            object.__setattr__(self, field, checked_int(getattr(self, field), name, low, or_none=field == "total"))

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

    def latest_refresh(self, done: int, total: int | None = None) -> int | None:
        """Steps done at the latest refresh among the first ``done`` steps (a refresh after step ``s`` counts
        ``s + 1``), in a run of ``total`` steps (default the schedule's; ``None``: no known end), or ``None`` when
        none ran: what a resumed store must hold."""
        done, end = checked_int(done, "done", 0), self._end(total, "latest_refresh")
        last_step = (done if end is None else min(done, end - 1)) - 1  # no refresh after the run's last step
        if last_step < self.first_refresh:
            return None
        return self.first_refresh + (last_step - self.first_refresh) // self.interval * self.interval + 1

    def never_refreshes(self, total: int | None = None) -> bool:
        """Whether a run of ``total`` steps (default the schedule's) ends before any refresh (``False`` when no end
        is known): for the "ContrastiveCrop is silently inactive" warnings."""
        end = self._end(total, "never_refreshes")
        return end is not None and self.first_refresh + 1 >= end

    def _end(self, total: int | None, caller: str) -> int | None:
        if total is not None:
            total = checked_int(total, f"{caller}(total)", 1)
            return total if self.total is None else min(total, self.total)
        return self.total

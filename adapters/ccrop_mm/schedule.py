"""When the boxes are refreshed: the paper's schedule, counted in epochs or iterations."""

from __future__ import annotations


def refresh_due(done: int, warmup: int, interval: int, total: int) -> bool:
    """Whether to refresh after ``done`` completed epochs (or iterations) out of ``total``.

    The paper localizes at ``warmup``, ``warmup + interval``, ... completed epochs and never
    after the last one (its boxes would go unused): with warm-up and interval 100 over 500
    epochs, after epochs 100, 200, 300 and 400.
    """
    return done >= warmup and (done - warmup) % interval == 0 and done < total


def check_schedule(warmup: int, interval: int, warmup_name: str = "warmup_epochs") -> tuple[int, int]:
    """Return ``(warmup, interval)`` as ints, or raise ``ValueError`` naming the bad one."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"ContrastiveCropHook: {warmup_name} must be an int >= 0; got {warmup!r}")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"ContrastiveCropHook: interval must be an int >= 1; got {interval!r}")
    return warmup, interval

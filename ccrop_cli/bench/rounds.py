"""Interleaved timing rounds for the ``ccrop bench`` commands: wall and CPU time, per-round ratios.

Each round times every side once, the order alternating (A B, B A, A B, ...), so a change in
the machine's load hits both sides alike. A comparison is the median of the per-round ratios,
with their interquartile range, in two clocks side by side:

- wall time (``time.perf_counter``): what a user waits for; moved by other processes.
- CPU time: this process's ``time.process_time`` (all its threads), plus, when asked, the CPU
  time of its child processes (DataLoader workers; read from ``/proc`` on Linux). It counts the
  work done and is much less moved by other processes on a shared machine, though not immune
  (caches, memory bandwidth, and idle OpenMP threads that spin: use one torch thread for the
  cleanest CPU figures).

The allocator's state is not reset between calls: the sides run as they would in one process.
Where that matters (the refresh row of ``ccrop bench mm``) the module says so, with the measured
effect and the environment setting that removes it.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Timings:
    """Seconds per round of each side, in wall and CPU time: ``{side: [round 0, round 1, ...]}``."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


@dataclass(frozen=True)
class Ratio:
    """The median of per-round ratios with their quartiles and range."""

    median: float
    q1: float
    q3: float
    low: float
    high: float

    @classmethod
    def of(cls, numerator: list[float], denominator: list[float]) -> "Ratio":
        """Statistics of ``numerator[i] / denominator[i]`` over rounds ``i``."""
        if len(numerator) != len(denominator) or not numerator:
            raise ValueError(f"need equal, non-empty lists of rounds; got {len(numerator)} and {len(denominator)}")
        ratios = sorted(a / b for a, b in zip(numerator, denominator))
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
        return cls(statistics.median(ratios), q1, q3, ratios[0], ratios[-1])

    def text(self, digits: int = 3, suffix: str = "") -> str:
        """``'0.987 [0.962-1.004]'``: the median and, in brackets, the interquartile range."""
        return f"{self.median:.{digits}f}{suffix} [{self.q1:.{digits}f}-{self.q3:.{digits}f}]"


def interleaved(sides: dict[str, Callable[[], object]], rounds: int, children: bool = False) -> Timings:
    """Time every side once per round, the order alternating, after one untimed call of each.

    ``children=True`` adds the CPU time of this process's child processes (DataLoader workers).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1; got {rounds}")
    for fn in sides.values():
        fn()
    names = list(sides)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            cpu_started = cpu_seconds(children)
            started = time.perf_counter()
            sides[name]()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(cpu_seconds(children) - cpu_started)
    return Timings(wall, cpu)


def cpu_seconds(children: bool = False) -> float:
    """CPU seconds of this process (all threads), plus its child processes' when ``children``."""
    seconds = time.process_time()
    if children:
        seconds += resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        seconds += resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
        seconds += _live_children_seconds()
    return seconds


def _live_children_seconds() -> float:
    """User + system CPU seconds of this process's running children, from ``/proc`` (0 elsewhere)."""
    if not os.path.isdir("/proc"):
        return 0.0
    me, total = os.getpid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == me:  # fields after the name: state, ppid, ..., utime (12), stime (13)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")

"""Interleaved timing rounds (``ccrop_cli.bench.rounds``) and the benches' stage option."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pytest

from ccrop_cli.bench.rounds import Ratio, cpu_seconds, interleaved


def test_ratio_is_the_median_of_per_round_ratios_with_quartiles():
    ratio = Ratio.of([2.0, 3.0, 8.0, 5.0], [1.0, 1.0, 2.0, 1.0])  # per round: 2, 3, 4, 5
    assert (ratio.median, ratio.q1, ratio.q3, ratio.low, ratio.high) == (3.5, 2.75, 4.25, 2.0, 5.0)
    assert ratio.text() == "3.500 [2.750-4.250]"
    assert Ratio.of([3.0], [2.0]).text(1, "x") == "1.5x [1.5-1.5]"
    with pytest.raises(ValueError, match="equal, non-empty"):
        Ratio.of([1.0], [1.0, 2.0])


def test_rounds_alternate_the_order_after_one_untimed_call_each():
    calls: list[str] = []
    timings = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(timings.wall[s]) for s in "ab"] == [3, 3] and [len(timings.cpu[s]) for s in "ab"] == [3, 3]
    with pytest.raises(ValueError, match="rounds must be at least 1; got 0"):
        interleaved({"a": lambda: None}, rounds=0)


def test_cpu_time_counts_busy_work_not_sleep_and_child_processes_when_asked():
    started = cpu_seconds()
    time.sleep(0.2)
    assert cpu_seconds() - started < 0.1
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\ntime.sleep(60)"])
    try:
        started = cpu_seconds(children=True)
        deadline = time.monotonic() + 30
        while cpu_seconds(children=True) - started <= 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(children=True) - started > 0.2  # the child's busy loop, while it still runs
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_bench_speed_crop_row_reports_wall_and_cpu():
    from ccrop_cli.bench.speed import _crop_row

    row = _crop_row(argparse.Namespace(seed=0, crops=2, rounds=1))
    assert row[3] == "<= 1.02" and row[1].count("[") == 1 and row[2].count("[") == 1


def test_bench_mm_refresh_runs_at_a_chosen_stage():
    from ccrop_cli.bench.mm import _refresh_timings  # needs mmpretrain: installed in CI, never skipped

    args = argparse.Namespace(refresh_images=4, refresh_size=32, batch_size=4, stage="layer2",
                              localizer="components", heatmap="distinctiveness", threshold="otsu", core_level=0.3,
                              rounds=1)
    timings = _refresh_timings(args)
    assert set(timings.wall) == {"refresh", "forward"} and all(t > 0 for t in timings.wall["forward"])

"""docs/configuration.md's schedule table holds: every row's refreshes are what ``ccrop_lightly.RefreshSchedule``
gives (completed epochs, and Lightly's 0-based ``epoch``), and the reference column is the reference code's rule
(epochs counted from 1; after epoch ``e`` when ``e >= warmup``, ``e % interval == 0`` and ``e != epochs``)."""

from __future__ import annotations

import re
from pathlib import Path

from ccrop_lightly import RefreshSchedule

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
ROW = re.compile(r"^\| (\d+) / (\d+) / (\d+)[^|]*\|([^|]*)\|([^|]*)\|([^|]*)\|$", re.M)


def _numbers(cell: str) -> list[int]:
    return [int(number) for number in re.findall(r"\d+", cell)]


def test_the_schedule_table_is_what_the_schedule_computes():
    rows = ROW.findall(GUIDE)
    assert len(rows) >= 5
    for warmup, interval, epochs, completed, zero_based, reference in rows:
        warmup, interval, epochs = int(warmup), int(interval), int(epochs)
        epochs_0_based = RefreshSchedule(warmup, interval, epochs).refresh_epochs()
        assert _numbers(zero_based) == epochs_0_based, (warmup, interval, epochs)
        assert _numbers(completed) == [epoch + 1 for epoch in epochs_0_based], (warmup, interval, epochs)
        rule = [e for e in range(1, epochs + 1) if e >= warmup and e % interval == 0 and e != epochs]
        assert _numbers(reference) == rule, (warmup, interval, epochs)

"""check_same_on_every_rank: settings that decide whether a rank enters a collective, checked across 2 gloo ranks."""

import sys
from pathlib import Path

import pytest
import torch

from ccrop_plugins import check_same_on_every_rank

sys.path.insert(0, str(Path(__file__).parent))  # distributed_refresh: run_ranks, gloo_group
import distributed_refresh  # noqa: E402


def _rank(rank: int, init_method: str, out: str, values: tuple) -> None:
    with distributed_refresh.gloo_group(rank, init_method, timeout=30):
        try:
            check_same_on_every_rank(values[rank], "the test's setting")
            result = None
        except ValueError as error:
            result = str(error)
        torch.save(result, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")
@pytest.mark.parametrize("values, expected", [
    (("RefreshSchedule(1, 1)", "RefreshSchedule(1, 1)"), None),
    (("RefreshSchedule(1, 1)", "RefreshSchedule(2, 1)"),
     "the test's setting differs between the ranks (rank 0: RefreshSchedule(1, 1); rank 1: RefreshSchedule(2, 1)); "
     "every rank must use the same, else the ranks part ways at the refresh's collective and wait until the timeout"),
])
def test_every_rank_agrees_or_every_rank_raises(values, expected, tmp_path):
    distributed_refresh.run_ranks(_rank, tmp_path, values)
    assert [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)] == [expected, expected]


def test_without_a_process_group_nothing_is_checked():
    check_same_on_every_rank(object(), "anything")

"""refresh_boxes when something raises: on one rank of two (gloo), in the rule's finalize, and what the store keeps."""

import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from ccrop_plugins import BoxStore, HeatmapPipeline, get_localizer, refresh_boxes

sys.path.insert(0, str(Path(__file__).parent))
from distributed_refresh import gloo_group, run_ranks  # noqa: E402

TIMEOUT = 8  # seconds of the ranks' process group: the old code's hang ends there, as a gloo timeout


class CountingRule:
    """A heatmap rule with dataset statistics (the channel sum; ``fit`` counts images) that raises where told:
    in ``fit`` on rank ``fit_fails_on`` at its second batch, or in ``finalize``."""

    def __init__(self, fit_fails_on: int | None = None, finalize_fails: bool = False) -> None:
        self.fit_fails_on, self.finalize_fails, self.fits, self.count = fit_fails_on, finalize_fails, 0, None

    def fit(self, features):
        self.fits += 1
        rank = dist.get_rank() if dist.is_initialized() else 0
        if rank == self.fit_fails_on and self.fits == 2:
            raise ValueError(f"fit broke on rank {rank}")
        return {"count": torch.tensor(float(len(features)))}

    def finalize(self, totals):
        if self.finalize_fails:
            raise ZeroDivisionError("finalize broke")
        self.count = float(totals["count"])

    def __call__(self, features):
        return features.sum(1)


def _images(count: int) -> torch.Tensor:
    images = torch.rand(count, 1, 16, 16, generator=torch.Generator().manual_seed(count)) * 0.1
    images[:, :, 4:10, 2:8] += 1.0
    return images


def _batches(rank: int, scenario: str) -> list:
    """Rank 0: three batches of two images (0-5); rank 1: one or two (6-9), the second with a bad index in 'batch'."""
    if rank == 0:
        return [(_images(2), torch.arange(i, i + 2)) for i in (0, 2, 4)]
    last = torch.tensor([8, 12]) if scenario == "batch" else torch.tensor([8, 9])
    return [(_images(2), torch.tensor([6, 7]))] + ([(_images(2), last)] if scenario in ("batch", "fit") else [])


def _localizer(rank: int, scenario: str):
    components = get_localizer("components", max_boxes=2)
    if (scenario, rank) == ("interrupt", 1):
        def interrupted(heatmaps):
            raise KeyboardInterrupt  # a Ctrl-C that reached this rank alone, which its program handles

        return interrupted
    if (scenario, rank) not in (("localizer", 1), ("peer_dies", 0)):
        return components

    def broken(heatmaps):
        raise ValueError(f"localizer broke on rank {rank}")

    return broken


def _slow(images):
    time.sleep(0.1)  # rank 0's batches end after rank 1's error in the localizer: it reaches the gather later
    return images


SCENARIOS = ("localizer", "interrupt", "fit", "batch", "setup", "finalize", "good", "sizes", "max_boxes", "peer_dies")
# rank 1 dies in the last; in "sizes" and "max_boxes" rank 1's store is of another dataset length / max_boxes
STORES = {("sizes", 1): (12, 2), ("max_boxes", 1): (10, 3)}


def _rank(rank: int, init_method: str, out: str) -> None:
    """Each scenario's outcome on this rank into ``out/rank{rank}.json``: the error's type, text and notes (or
    None) and the store's version; then wait for the other rank's file (a program that goes on) and leave."""
    outcomes = {}
    with gloo_group(rank, init_method, timeout=TIMEOUT):
        for scenario in SCENARIOS:
            store = BoxStore(*STORES.get((scenario, rank), (10, 2)))
            rule = CountingRule(fit_fails_on=0 if scenario == "fit" else None, finalize_fails=scenario == "finalize")
            try:
                features = _slow if rank == 0 and scenario in ("localizer", "interrupt") else (lambda x: x)
                features = (lambda x: os._exit(0)) if (scenario, rank) == ("peer_dies", 1) else features
                missing = f"cuda:{torch.cuda.device_count()}" if scenario == "setup" and rank == 1 else None
                refresh_boxes(features, _batches(rank, scenario), store, _localizer(rank, scenario),
                              HeatmapPipeline(rule), device=missing, progress=False)
                error = None
            except BaseException as raised:  # noqa: BLE001 - recorded for the test (KeyboardInterrupt too)
                error = [type(raised).__name__, str(raised), getattr(raised, "__notes__", [])]
            outcomes[scenario] = {"error": error, "version": store.version, "count": rule.count,
                                  "boxes": store.state_dict()["counts"].tolist()}
            Path(out, f"rank{rank}.json").write_text(json.dumps(outcomes))
        deadline = time.monotonic() + 2 * TIMEOUT
        while not Path(out, f"rank{1 - rank}.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture(scope="module")
def fault_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    run_ranks(_rank, out, limit=4 * TIMEOUT)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
@pytest.mark.parametrize("scenario, failing, raised, message", [
    ("localizer", 1, "ValueError", "localizer broke on rank 1"),  # before rank 0 has done its batches
    ("fit", 0, "ValueError", "fit broke on rank 0"),  # after rank 1 has done its batches
    ("batch", 1, "IndexError", "sample index 12 is outside the box store of 10 samples"),
    ("setup", 1, "ValueError", "device 'cuda:"),  # before the pass, e.g. a node with fewer GPUs (or a plugin less)
])
def test_an_error_on_one_rank_is_raised_on_every_rank_naming_it(fault_runs, scenario, failing, raised, message):
    # was: the failing rank raised alone; the other waited in all_gather_object until the process group's timeout
    # (30 min by default), or, as here where the failing rank goes on to its next pass, gathered with that pass:
    # no error, and the boxes of another pass (rank 0's 'localizer' pass ended at version 1 with 10 boxes)
    mine, other = fault_runs[failing][scenario], fault_runs[1 - failing][scenario]
    *own_notes, rank_note = mine["error"][2]  # its own notes (a localizer's or heatmap rule's name), then the pass's
    shown = "; ".join([mine["error"][1], *own_notes])
    assert other["error"] == ["RuntimeError", f"refresh_boxes failed on rank {failing} of 2: {raised}: {shown}; every "
                              "rank stops the pass, the box store unchanged", []]
    assert mine["error"][0] == raised and mine["error"][1].startswith(message)  # its own exception, as raised
    assert rank_note == (f"refresh_boxes: raised on rank {failing} of 2; every rank stops the pass, the box store "
                         "unchanged")
    assert len(own_notes) == (scenario in ("localizer", "fit"))
    assert mine["version"] == other["version"] == 0 and mine["count"] is other["count"] is None


@pytest.mark.xdist_group("ddp")
@pytest.mark.parametrize("scenario, shown", [
    ("sizes", "rank 0: 10 images, max_boxes 2; rank 1: 12 images, max_boxes 2"),
    ("max_boxes", "rank 0: 10 images, max_boxes 2; rank 1: 10 images, max_boxes 3"),
])
def test_ranks_whose_stores_differ_are_refused_on_every_rank(fault_runs, scenario, shown):
    # Both ranks returned: the stores ended different (another length: some images never localized on one rank, the
    # same index holding another image's boxes; another max_boxes: 3 boxes on one rank, 1 on the other).
    for outcome in (fault_runs[rank][scenario] for rank in range(2)):
        assert outcome["error"][:2] == ["ValueError", f"refresh_boxes: the ranks' box stores differ ({shown}); every "
                                        "rank must refresh a store of the same dataset length and max_boxes (one "
                                        "dataset, sharded by rank); the stores are unchanged"]
        assert outcome["version"] == 0


@pytest.mark.xdist_group("ddp")
def test_an_interrupt_on_one_rank_stops_the_pass_on_every_rank(fault_runs):
    # was: a KeyboardInterrupt (any BaseException) was not carried to the gather: rank 0 waited there while rank 1, its
    # program handling the interrupt, went on to its next pass (a gather of another pass, or a hang until the timeout)
    assert fault_runs[1]["interrupt"]["error"][0] == "KeyboardInterrupt"
    assert fault_runs[0]["interrupt"]["error"] == ["RuntimeError", "refresh_boxes failed on rank 1 of 2: "
                                                   "KeyboardInterrupt; every rank stops the pass, the box store "
                                                   "unchanged", []]
    assert fault_runs[0]["interrupt"]["version"] == fault_runs[1]["interrupt"]["version"] == 0


@pytest.mark.xdist_group("ddp")
def test_after_a_failed_pass_the_ranks_stay_in_step(fault_runs):
    # the next pass pairs its gather with the other rank's (was: the failed pass left one rank a collective behind)
    for rank in fault_runs:
        assert rank["finalize"]["error"][:2] == ["ZeroDivisionError", "finalize broke"]
        assert rank["finalize"]["version"] == 0 and rank["finalize"]["boxes"] == [0] * 10
        assert rank["good"] == {"error": None, "version": 1, "count": 8.0, "boxes": [1] * 8 + [0] * 2}


@pytest.mark.xdist_group("ddp")
def test_a_failing_rank_whose_peer_died_raises_its_own_error(fault_runs):
    # the gather fails (the peer closed its connection; or a timeout while the others localize): this rank's error is
    # still the one raised, the gather's as its context
    assert fault_runs[0]["peer_dies"]["error"][:2] == ["ValueError", "localizer broke on rank 0"]
    [note] = fault_runs[0]["peer_dies"]["error"][2]
    assert note.startswith("raised by localizer ") and "_localizer.<locals>.broken on the batch of dataset" in note
    assert "peer_dies" not in fault_runs[1]


def test_a_raising_finalize_leaves_the_store_unchanged_and_says_so():
    # was: the store was updated (version 1, new boxes) before finalize raised
    store = BoxStore(4, max_boxes=2)
    with pytest.raises(ZeroDivisionError, match="finalize broke") as caught:
        refresh_boxes(lambda x: x, [(_images(4), torch.arange(4))], store,
                      heatmap=HeatmapPipeline(CountingRule(finalize_fails=True)), progress=False)
    assert caught.value.__notes__ == ["refresh_boxes: the heatmap rule's finalize raised; the box store is unchanged "
                                      "(version 0)"]
    assert store.version == 0 and store.get(0) is None
    rule = CountingRule()
    refresh_boxes(lambda x: x, [(_images(4), torch.arange(4))], store, heatmap=HeatmapPipeline(rule), progress=False)
    assert store.version == 1 and rule.count == 4.0


def test_one_process_raises_the_localizers_error_as_it_is():
    def broken(heatmaps):
        raise ValueError("localizer broke")

    with pytest.raises(ValueError) as caught:
        refresh_boxes(lambda x: x, [(_images(2), torch.arange(2))], BoxStore(2), broken, progress=False)
    assert caught.value.args == ("localizer broke",)
    [note] = caught.value.__notes__  # naming it and the batch, nothing about ranks
    assert note.endswith("broken on the batch of dataset indices [0, 1] (row i: sample i)")

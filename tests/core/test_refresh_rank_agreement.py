"""refresh_boxes on two gloo ranks that disagree: another heatmap rule, non-finite features or stores that already
differ on one rank, and a pass that only one rank runs. Found by probing main under torch.distributed (session 24);
each test fails on the code before."""

import json
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from ccrop_plugins import BoxSets, BoxStore, HeatmapPipeline, refresh_boxes

sys.path.insert(0, str(Path(__file__).parent))
from distributed_refresh import gloo_group, run_ranks  # noqa: E402

TIMEOUT = 5  # seconds of the ranks' process group: the pass that one rank skips ends there
SCENARIOS = ("rules", "nan", "prior", "prior_covered", "partial", "alone")  # 'alone' breaks the group: last


class FittedSum:
    """A heatmap rule with dataset statistics: the channel sum, ``fit`` counts images."""

    def fit(self, features):
        return {"count": torch.tensor(float(len(features)))}

    def finalize(self, totals):
        self.count = float(totals["count"])

    def __call__(self, features):
        return features.sum(1)


def channel_sum(features):
    return features.sum(1)


def _images(first: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(count, 1, 16, 16, generator=torch.Generator().manual_seed(first)) * 0.1
    images[:, :, 4:10, 2:8] += 1.0
    return images, torch.arange(first, first + count)


def _pass(rank: int, scenario: str, store: BoxStore) -> list[str]:
    """This rank's pass of ``scenario`` (rank 0 localizes images 0-4, rank 1 5-9, or 5-8 where the pass leaves image 9
    out); the warnings it gave."""
    rule = FittedSum() if (scenario, rank) == ("rules", 0) else channel_sum
    batches = [_images(0, 5)] if rank == 0 else [_images(5, 4 if scenario in ("prior", "partial") else 5)]
    features = (lambda x: x * float("nan")) if (scenario, rank) == ("nan", 1) else (lambda x: x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refresh_boxes(features, batches, store, "components", HeatmapPipeline(rule), progress=False)
    return [str(w.message) for w in caught]


def _rank(rank: int, init_method: str, out: str) -> None:
    """Each scenario's outcome on this rank into ``out/rank{rank}.json``: the error (type, text, notes) or None, the
    warnings, the store's version and box counts."""
    outcomes = {}
    with gloo_group(rank, init_method, timeout=TIMEOUT):
        for scenario in SCENARIOS:
            store = BoxStore(10, max_boxes=2)
            if scenario.startswith("prior") and rank == 0:  # as if only rank 0 restored a checkpoint's boxes
                store.update(torch.tensor([9]), BoxSets.from_lists([[[0.1, 0.1, 0.5, 0.5]]]))
            error, messages = None, []
            try:
                if scenario != "alone" or rank == 0:  # 'alone': rank 1 skips the pass
                    messages = _pass(rank, scenario, store)
            except Exception as raised:  # noqa: BLE001 - recorded for the test
                error = [type(raised).__name__, str(raised), getattr(raised, "__notes__", [])]
            outcomes[scenario] = {"error": error, "warnings": messages, "version": store.version,
                                  "counts": store.state_dict()["counts"].tolist()}
            Path(out, f"rank{rank}.json").write_text(json.dumps(outcomes))
            if scenario == "alone" and rank == 1:  # stay in the group until rank 0's gather has given up
                time.sleep(TIMEOUT + 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("agreement")
    run_ranks(_rank, out, limit=8 * TIMEOUT)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


@pytest.mark.xdist_group("ddp")
def test_ranks_with_different_heatmap_rules_are_refused_on_every_rank(runs):
    # was: rank 0 (a rule with dataset statistics) wrote its store, version 1; rank 1 raised a TypeError from its
    # rule's finalize ("got dict for 'channel_sum'"), store unchanged: the ranks trained on different boxes
    for outcome in (runs[rank]["rules"] for rank in range(2)):
        assert outcome["error"][0] == "ValueError"
        assert outcome["error"][1] == (
            f"refresh_boxes: the ranks' heatmap rules differ (rank 0: heatmap rule {__name__}.FittedSum (with dataset "
            f"statistics); rank 1: heatmap rule {__name__}.channel_sum); every rank must refresh with the same rule; "
            "the stores are unchanged")
        assert outcome["version"] == 0 and outcome["counts"] == [0] * 10


@pytest.mark.xdist_group("ddp")
def test_non_finite_features_on_one_rank_are_warned_on_every_rank(runs):
    # was: only rank 1, whose images gave NaN features, warned (the MM hook logs rank 0's warnings only; under -W error
    # the ranks parted ways)
    for rank in range(2):
        nan = [m for m in runs[rank]["nan"]["warnings"] if "hold NaN or inf" in m]
        assert nan == [nan[0]] and nan[0].startswith("refresh_boxes: the features of 5 of the 10 images this pass "
                                                     "localized hold NaN or inf"), runs[rank]["nan"]
        assert runs[rank]["nan"]["error"] is None and runs[rank]["nan"]["version"] == 1


@pytest.mark.xdist_group("ddp")
def test_stores_that_differ_where_the_pass_does_not_reach_are_refused_on_every_rank(runs):
    # was: both ranks ended at version 2, image 9 with a box on rank 0 and none on rank 1, without a word
    for rank in range(2):
        outcome = runs[rank]["prior"]
        assert outcome["error"][:2] == [
            "ValueError", "refresh_boxes: the ranks' box stores hold different boxes for the 1 images this pass does "
            "not localize (indices 9; store versions [1, 0], rank 0, 1, ...): they would stay different after it (one "
            "rank restored boxes the others did not?); give every rank the same boxes (load_state_dict on every rank) "
            "or refresh over the whole dataset; the stores are unchanged"]
        assert outcome["version"] == 1 - rank and outcome["counts"] == [0] * 9 + [1 - rank]


@pytest.mark.xdist_group("ddp")
@pytest.mark.parametrize("scenario", ["prior_covered", "partial"])
def test_a_pass_that_covers_the_difference_or_finds_none_writes_the_same_store_on_every_rank(runs, scenario):
    # 'prior_covered': the stores differed but the pass rewrites every image; 'partial': image 9 left out, equal stores
    first, second = runs[0][scenario], runs[1][scenario]
    assert first["error"] is second["error"] is None
    assert first["version"] == second["version"] == (2 if scenario == "prior_covered" else 1)
    assert first["counts"] == second["counts"] and (first["counts"][9] == 0) == (scenario == "partial")


@pytest.mark.xdist_group("ddp")
def test_a_pass_that_only_one_rank_runs_says_that_every_rank_must_call_it(runs):
    # was: gloo's bare "Timed out waiting 5000ms for send operation" (a 30 minute hang at torch's default timeout)
    error = runs[0]["alone"]["error"]
    assert error is not None and error[2][-1] == (
        "refresh_boxes: the gather of the pass's box sets failed on rank 0 of 2: every rank must call refresh_boxes "
        "(it is collective); a rank that skipped the pass (e.g. 'if rank == 0'), or died, leaves the others waiting "
        "here until the process group's timeout")
    assert runs[0]["alone"]["version"] == 0 and runs[1]["alone"]["error"] is None

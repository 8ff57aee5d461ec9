"""Pair-quality figures: hand-checked cases, a loop reference, and the pair-consistent sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from ccrop_cli.experiment.pair_quality import (
    box_precision,
    box_recall,
    oracle_box_sets,
    pair_quality,
    sample_view_pairs,
    union_box,
)
from ccrop_cli.experiment.strategies import STRATEGIES

OBJECTS = [np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]], dtype=np.float32)]


def _one_pair(view_a, view_b, gt=OBJECTS):
    return pair_quality(torch.tensor([view_a]), torch.tensor([view_b]), torch.tensor([0]), gt)


def test_both_views_on_one_object_is_a_true_pair():
    q = _one_pair([0.0, 0.0, 0.4, 0.4], [0.1, 0.1, 0.5, 0.5])
    assert q.false_positive_rate == 0.0
    assert q.object_coverage == 1.0
    # IoU: intersection 0.3 x 0.3, union 2 * 0.16 - 0.09.
    assert q.pair_spread == pytest.approx(0.09 / 0.23, abs=1e-6)
    # Each view of area 0.16 holds the whole 0.04 object.
    assert q.object_share == pytest.approx(0.25, abs=1e-6)
    assert q.pairs == 1


def test_views_on_different_objects_are_a_false_positive():
    q = _one_pair([0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0])
    assert q.false_positive_rate == 1.0
    assert q.object_coverage == 1.0  # each view covers an object, not the same one
    assert q.pair_spread == 0.0
    assert q.object_share == 0.0  # no object touched by both views


def test_half_coverage_is_the_boundary():
    # View a holds exactly half of object 0 (x from 0.2 to 0.3 of 0.1..0.3), view b all of it.
    q = _one_pair([0.2, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5])
    assert q.false_positive_rate == 0.0
    q = _one_pair([0.21, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5])
    assert q.false_positive_rate == 1.0
    assert q.object_coverage == 0.5


def test_image_without_objects_scores_zero():
    q = _one_pair([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], gt=[np.zeros((0, 4), np.float32)])
    assert (q.false_positive_rate, q.object_coverage, q.object_share) == (1.0, 0.0, 0.0)
    assert q.pair_spread == pytest.approx(1.0)


def _reference(views_a, views_b, index, gt):
    """The definitions, one pair at a time."""

    def inter(v, b):
        return max(0.0, min(v[2], b[2]) - max(v[0], b[0])) * max(0.0, min(v[3], b[3]) - max(v[1], b[1]))

    def area(b):
        return (b[2] - b[0]) * (b[3] - b[1])

    fp, covering, spread, share = [], [], [], []
    for a, b, i in zip(views_a.tolist(), views_b.tolist(), index.tolist()):
        objects = gt[i].tolist()
        cov_a = [inter(a, g) / area(g) for g in objects]
        cov_b = [inter(b, g) / area(g) for g in objects]
        fp.append(not any(x >= 0.5 and y >= 0.5 for x, y in zip(cov_a, cov_b)))
        covering += [any(x >= 0.5 for x in cov_a), any(y >= 0.5 for y in cov_b)]
        spread.append(inter(a, b) / (area(a) + area(b) - inter(a, b)))
        common = [min(x, y) for x, y in zip(cov_a, cov_b)]
        best = int(np.argmax(common)) if common else 0
        if common and common[best] > 0:
            g = objects[best]
            share.append((inter(a, g) / area(a) + inter(b, g) / area(b)) / 2)
        else:
            share.append(0.0)
    return np.mean(fp), np.mean(covering), np.mean(spread), np.mean(share)


def test_vectorised_figures_equal_the_per_pair_definitions():
    rng = np.random.default_rng(3)
    gt = []
    for count in rng.integers(0, 4, size=40):
        low = rng.uniform(0, 0.7, size=(count, 2))
        gt.append(np.concatenate([low, low + rng.uniform(0.05, 0.3, size=(count, 2))], axis=1).astype(np.float32))
    def views(p):
        low = rng.uniform(0, 0.6, size=(p, 2))
        return torch.tensor(np.concatenate([low, low + rng.uniform(0.1, 0.4, size=(p, 2))], axis=1),
                            dtype=torch.float32)
    views_a, views_b = views(400), views(400)
    index = torch.tensor(rng.integers(0, 40, size=400))
    q = pair_quality(views_a, views_b, index, gt)
    expected = _reference(views_a, views_b, index, gt)
    got = (q.false_positive_rate, q.object_coverage, q.pair_spread, q.object_share)
    assert got == pytest.approx(expected, abs=1e-5)
    assert 0 < q.false_positive_rate < 1 and 0 < q.object_share < 1  # the data exercises both branches


def test_box_recall_and_precision():
    gt = [np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]), np.array([[0.2, 0.2, 0.4, 0.4]])]
    predicted = [
        torch.tensor([[0.0, 0.0, 0.5, 0.6], [0.0, 0.5, 0.2, 1.0]]),  # matches object 0 only; one miss
        torch.tensor([[0.2, 0.2, 0.4, 0.4]]),
    ]
    assert box_recall(predicted, gt) == pytest.approx(2 / 3)
    assert box_precision(predicted, gt) == pytest.approx(2 / 3)
    assert box_recall(predicted, gt, iou=0.9) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="iou"):
        box_recall(predicted, gt, iou=0.0)
    with pytest.raises(ValueError, match="predicted boxes for 2 images but ground truth for 1"):
        box_recall(predicted, gt[:1])


def test_oracle_box_sets_per_strategy():
    paper = oracle_box_sets(OBJECTS, STRATEGIES["paper"])[0]
    assert torch.allclose(paper[0], torch.tensor([[0.1, 0.1, 0.9, 0.9]]))
    boxes, scores = oracle_box_sets(OBJECTS, STRATEGIES["multi"])[0]
    assert torch.allclose(boxes, torch.from_numpy(OBJECTS[0]))
    assert torch.allclose(scores, torch.tensor([0.04, 0.09]), atol=1e-6)  # scored by area
    assert oracle_box_sets([np.zeros((0, 4))], STRATEGIES["multi"]) == [None]


def test_sampled_views_are_seeded_rectangles_inside_the_image():
    sets = oracle_box_sets(OBJECTS * 3, STRATEGIES["multi"])
    first = sample_view_pairs(STRATEGIES["multi"], (64, 48), sets, 5, torch.Generator().manual_seed(1))
    again = sample_view_pairs(STRATEGIES["multi"], (64, 48), sets, 5, torch.Generator().manual_seed(1))
    views_a, views_b, index = first
    assert views_a.shape == views_b.shape == (15, 4)
    assert index.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    for views in (views_a, views_b):
        assert ((views >= 0) & (views <= 1)).all()
        assert (views[:, 2:] > views[:, :2]).all()
    for got, expected in zip(first, again):
        assert torch.equal(got, expected)


def test_rrc_ignores_boxes():
    sets = oracle_box_sets(OBJECTS, STRATEGIES["multi"])
    with_boxes = sample_view_pairs(STRATEGIES["rrc"], (64, 64), sets, 20, torch.Generator().manual_seed(2))
    without = sample_view_pairs(STRATEGIES["rrc"], (64, 64), [None], 20, torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip(with_boxes, without))


def test_pairs_share_one_box_chosen_by_score():
    # Two tiny objects in opposite corners; box-scale crops stay on the chosen one.
    boxes = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.9, 0.9, 1.0, 1.0]])
    scores = torch.tensor([3.0, 1.0])
    views_a, views_b, _ = sample_view_pairs(
        STRATEGIES["multi-box"], (100, 100), [(boxes, scores)], 400, torch.Generator().manual_seed(4)
    )
    on_first_a = views_a[:, 2] < 0.5
    on_first_b = views_b[:, 2] < 0.5
    assert torch.equal(on_first_a, on_first_b)  # pair-consistent: never one view per object
    # The box is drawn with probability proportional to score: 3 / 4 for the first.
    assert stats.binomtest(int(on_first_a.sum()), len(on_first_a), 0.75).pvalue > 0.01


def test_paper_uses_the_union_of_given_boxes():
    boxes = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.9, 0.9, 1.0, 1.0]])
    assert torch.equal(union_box(boxes), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    generator = torch.Generator().manual_seed(5)
    with_set = sample_view_pairs(STRATEGIES["paper"], (64, 64), [(boxes, torch.ones(2))], 10, generator)
    generator = torch.Generator().manual_seed(5)
    with_union = sample_view_pairs(STRATEGIES["paper"], (64, 64), [(union_box(boxes), torch.ones(1))], 10, generator)
    assert all(torch.equal(a, b) for a, b in zip(with_set, with_union))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="pairs_per_image"):
        sample_view_pairs(STRATEGIES["rrc"], (64, 64), [None], 0, torch.Generator())
    with pytest.raises(ValueError, match="image_size"):
        sample_view_pairs(STRATEGIES["rrc"], (0, 64), [None], 1, torch.Generator())
    with pytest.raises(ValueError, match=r"\(P, 4\)"):
        pair_quality(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(3, dtype=torch.long), OBJECTS)
    with pytest.raises(ValueError, match="image_index must lie"):
        pair_quality(torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([1]), OBJECTS)

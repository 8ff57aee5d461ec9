"""The extra heatmap rules of the ``ccrop_extras`` plugin, ``ddt`` and ``ncut``, on constructed feature maps with a
known answer (tests/core/feature_scenes.py); registered by the ``extras_plugin`` fixture, as its entry point would."""

import sys
from pathlib import Path

import pytest
import torch

from ccrop_extras import DatasetPCA, NormalizedCut
from ccrop_plugins import BoxStore, HeatmapPipeline, get_localizer, heatmaps_from_features, refresh_boxes
from ccrop_plugins.heatmap_rules import distinctiveness

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))  # feature_scenes
from feature_scenes import (C, assert_every_object_outlined, boxes_of, ddt_dataset, degenerate,  # noqa: E402
                            descriptors, exact)
from feature_scenes import scene, three_object_scenes  # noqa: E402

pytestmark = pytest.mark.usefixtures("extras_plugin")


def test_ncut_outlines_every_object():
    assert_every_object_outlined("ncut")


def test_ncut_ranks_objects_in_the_order_found_and_stops_on_weak_cuts():
    background, a = descriptors(2, seed=3)
    one = scene([(3, 3, 8, 9, a)], background)[None]
    maps = NormalizedCut(max_objects=3)(one)
    assert set(maps.unique().tolist()) == {0.0, 1.0}  # one object found, the rest is background
    assert boxes_of(heatmaps_from_features(one, method="ncut"))[0][0] == [exact(3, 3, 8, 9)]
    three = NormalizedCut(max_objects=3)(three_object_scenes(1))
    assert sorted(three.unique().tolist()) == pytest.approx([0.0, 1 - 2 / 6, 1 - 1 / 6, 1.0])


def test_ncut_pools_large_maps_and_checks_options():
    features = torch.nn.functional.interpolate(three_object_scenes(1), size=(48, 48), mode="nearest")
    maps = NormalizedCut(max_cells=256)(features)  # 2304 cells -> 16x16 graph, back to 48x48
    assert maps.shape == (1, 48, 48)
    boxes, _ = boxes_of(heatmaps_from_features(features, method="ncut"))
    assert len(boxes[0]) == 3
    for options, message in [
        ({"max_objects": 0}, "max_objects"),
        ({"max_objects": 1.5}, "max_objects"),
        ({"tau": 1.0}, "tau"),
        ({"max_cut": 0}, "max_cut"),
        ({"max_cells": 2}, "max_cells"),
        ({"foreground": "larger"}, "unknown foreground rule 'larger'"),
    ]:
        with pytest.raises(ValueError, match=message):
            NormalizedCut(**options)
    with pytest.raises(TypeError,
                       match=r"heatmap 'ncut' .* does not accept options \['objects'\]; accepted: max_objects"):
        heatmaps_from_features(features, method="ncut", options={"objects": 2})


@pytest.mark.parametrize("options, shown", [
    # were int()/float() errors naming no option (TypeError / OverflowError), or a text tau read as a number
    ({"max_objects": None}, "max_objects of heatmap 'ncut' must be a positive integer; got None"),
    ({"tau": "0.2"}, r"tau of heatmap 'ncut' must lie in \[-1, 1\); got '0.2'"),
    ({"max_cut": None}, r"max_cut of heatmap 'ncut' must lie in \(0, 2\]; got None"),
    ({"max_cells": float("inf")}, "max_cells of heatmap 'ncut' must be an integer >= 4; got inf"),
])
def test_ncut_options_that_are_not_numbers_are_named(options, shown):
    with pytest.raises(ValueError, match=shown):
        NormalizedCut(**options)
    assert NormalizedCut(max_objects=2.0).max_objects == 2  # a whole float stays accepted


@pytest.mark.parametrize("sign", ["dataset", "image", "border"])
@pytest.mark.parametrize("flip", [False, True])
def test_ddt_finds_the_common_object_whatever_the_sign_of_the_component(sign, flip):
    features, blobs = ddt_dataset(flip=flip)
    pipeline = HeatmapPipeline("ddt", {"sign": sign})
    assert pipeline.fits
    pipeline.finalize({None: pipeline.fit(features)[None]})
    found, _ = boxes_of(pipeline(features), threshold=0.5)
    assert found == [[exact(*blob)] for blob in blobs]


def test_ddt_sign_none_follows_the_eigenvector_and_can_invert():
    found = {}
    for flip in (False, True):
        features, blobs = ddt_dataset(flip=flip)
        rule = DatasetPCA(sign="none")
        rule.finalize(rule.fit(features))
        found[flip] = boxes_of(heatmaps_from_features(features, method=rule), threshold=0.5)[0]
    assert (found[False] == [[exact(*b)] for b in blobs]) != (found[True] == [[exact(*b)] for b in blobs])


def test_ddt_statistics_add_up_and_fallback_before_fitting():
    features, _ = ddt_dataset()
    rule = DatasetPCA()
    torch.testing.assert_close(rule(features), distinctiveness(features))  # not fitted: per-image fallback
    whole = rule.fit(features)
    halves = [rule.fit(part) for part in features.split(5)]
    summed = {key: sum(h[key] for h in halves) for key in whole}
    for key in whole:  # float32 products, float64 sums
        torch.testing.assert_close(summed[key], whole[key], rtol=1e-5, atol=1e-4)
    rule.finalize(whole)
    cells = features.permute(0, 2, 3, 1).reshape(-1, C).double()
    torch.testing.assert_close(rule.mean, cells.mean(0), rtol=1e-5, atol=1e-6)
    top = torch.linalg.eigh(torch.cov(cells.T, correction=0))[1][:, -1]
    assert abs(float(rule.component @ top)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="fitted on 12 channels; got features with 5"):
        rule(torch.randn(1, 5, 4, 4))
    with pytest.raises(ValueError,
                       match="unknown sign rule 'up' of heatmap 'ddt'; available: dataset, image, border, none"):
        DatasetPCA(sign="up")


@pytest.mark.parametrize("sign", ["dataset", "none"])
def test_ddt_finalize_names_missing_statistics(sign):
    rule = DatasetPCA(sign=sign)
    totals = rule.fit(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)))
    expected = ", ".join(totals)  # what fit returns for this sign rule
    for missing in totals:
        partial = {key: value for key, value in totals.items() if key != missing}
        with pytest.raises(ValueError, match=rf"heatmap 'ddt' \(sign={sign!r}\): the statistics lack \['{missing}'\];"
                           rf" expected {expected} \(the sums of fit\)"):
            rule.finalize(partial)
    assert not rule.fitted
    rule.finalize(totals)
    assert rule.fitted

def test_refresh_fits_ddt_on_the_pass_and_applies_it_on_the_next():
    features, blobs = ddt_dataset(count=16)
    batches = [(features[:8], torch.arange(8)), (features[8:], torch.arange(8, 16))]
    store = BoxStore(16, max_boxes=2)
    options = {"threshold": 0.5, "min_area": 0.0, "label_resolution": None}
    refresh_boxes(lambda x: x, batches, store, heatmap="ddt", localizer_options=options, progress=False)
    pipelines = __import__("ccrop_plugins.kept_pipelines", fromlist=["_PIPELINES"])._PIPELINES
    fitted = [pipeline for key, pipeline in pipelines[store].items()]
    assert len(fitted) == 1 and fitted[0].rules[None].fitted  # statistics of pass 1, kept with the store
    refresh_boxes(lambda x: x, batches, store, heatmap="ddt", localizer_options=options, progress=False)
    for i, blob in enumerate(blobs):
        assert store.get(i)[0].tolist() == [exact(*blob)]
    other = BoxStore(16, max_boxes=2)  # another store starts unfitted
    refresh_boxes(lambda x: x, batches[:1], other, heatmap="ddt", localizer_options=options, progress=False)
    assert list(pipelines[other].values())[0].rules[None].fitted


@pytest.mark.parametrize("method", ["ddt", "ncut"])
def test_degenerate_maps_are_finite_and_carry_no_location_when_constant_or_non_finite(method):
    features = degenerate()
    pipeline = HeatmapPipeline(method)
    if pipeline.fits:
        fitted = pipeline.fit(torch.randn(4, C, 8, 8, generator=torch.Generator().manual_seed(3)))
        pipeline.finalize({None: fitted[None]})
    maps = pipeline(features, size=16)
    assert maps.shape == (5, 16, 16) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert maps[0].abs().sum() == 0  # constant: no location
    if method != "ncut":  # ncut cleans non-finite values cell-wise; the others drop the map
        assert maps[1].abs().sum() == 0 and maps[2].abs().sum() == 0
    sets = get_localizer("components", threshold=0.5, min_area=0.0)(maps)
    assert sets.fallback[0]
    if method == "ncut":  # the all-negative map's odd square is the only object
        assert sets[4][0].tolist() == [[1 / 8, 1 / 8, 3 / 8, 3 / 8]]

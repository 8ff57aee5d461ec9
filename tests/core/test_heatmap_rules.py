"""The built-in heatmap rules on constructed feature maps with a known answer.

Scenes: a background descriptor everywhere plus objects (rectangles of cells) with their own
descriptors; the rules must make the object cells the hot ones, so that the components
localizer recovers each object's exact box. Degenerate maps must give finite output.
"""

import math

import pytest
import torch

from ccrop_plugins import BoxStore, HeatmapPipeline, get_localizer, heatmaps_from_features, refresh_boxes
from ccrop_plugins.heatmap_rules import DatasetPCA, NormalizedCut, distinctiveness

C = 12
SIZE = 16


def scene(objects, background, noise=0.05, seed=0):
    """``(C, 16, 16)`` features: ``background`` everywhere, ``objects`` = [(top, left, bottom, right, descriptor)]."""
    generator = torch.Generator().manual_seed(seed)
    features = background[:, None, None].repeat(1, SIZE, SIZE) + noise * torch.randn(C, SIZE, SIZE, generator=generator)
    for top, left, bottom, right, descriptor in objects:
        features[:, top:bottom, left:right] = descriptor[:, None, None] + noise * torch.randn(
            C, bottom - top, right - left, generator=generator
        )
    return features


def descriptors(count, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(C, generator=generator) * 2 for _ in range(count)]


def exact(top, left, bottom, right):
    return [left / SIZE, top / SIZE, right / SIZE, bottom / SIZE]


def boxes_of(maps, threshold=0.3):
    sets = get_localizer("components", threshold=threshold, min_area=0.0, max_boxes=4, label_resolution=None)(maps)
    return [sorted(sets[i][0].tolist()) for i in range(len(maps))], sets


BLOBS = [(2, 3, 6, 8), (10, 10, 14, 15), (9, 1, 12, 4)]


def three_object_scenes(count=4):
    background, a, b, c = descriptors(4)
    return torch.stack(
        [scene([(*BLOBS[0], a), (*BLOBS[1], b), (*BLOBS[2], c)], background, seed=s) for s in range(count)]
    )


@pytest.mark.parametrize("method", ["distinctiveness", "ncut"])
def test_per_image_rules_outline_every_object(method):
    features = three_object_scenes()
    boxes, sets = boxes_of(heatmaps_from_features(features, method=method))
    expected = sorted(exact(*blob) for blob in BLOBS)
    for found in boxes:
        assert found == expected
    assert not sets.fallback.any()


def test_distinctiveness_does_not_need_brighter_objects():
    """An object *darker* than its background: the channel sum points at the background, distinctiveness does not."""
    background = torch.full((C,), 2.0)
    dark = torch.full((C,), 0.5)
    features = scene([(4, 4, 9, 10, dark)], background)[None]
    assert boxes_of(heatmaps_from_features(features, method="distinctiveness"))[0][0] == [exact(4, 4, 9, 10)]
    assert boxes_of(heatmaps_from_features(features, method="channel_sum"))[0][0] != [exact(4, 4, 9, 10)]
    plain = torch.linalg.vector_norm(features - features.mean((2, 3), keepdim=True), dim=1)
    torch.testing.assert_close(distinctiveness(features)[:, 1:-1, 1:-1], plain[:, 1:-1, 1:-1])
    assert (distinctiveness(features) <= plain + 1e-5).all()  # border cells only ever lowered


def test_distinctiveness_drops_a_padding_frame_but_keeps_an_object_at_the_border():
    """Zero padding gives border cells their own descriptor: a frame that joined objects into one box."""
    background, frame, a, b = descriptors(4, seed=5)
    features = scene([(6, 0, 10, 4, a), (3, 9, 7, 13, b)], background)
    ring = torch.ones(SIZE, SIZE, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    features[:, ring & (features - background[:, None, None]).abs().amax(0).lt(0.5)] = frame[:, None]
    boxes, sets = boxes_of(heatmaps_from_features(features[None], method="distinctiveness"), threshold="otsu")
    assert boxes[0] == sorted([exact(6, 0, 10, 4), exact(3, 9, 7, 13)])


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
    with pytest.raises(TypeError, match=r"heatmap 'ncut' .* does not accept options \['objects'\]; accepted: max_objects"):
        heatmaps_from_features(features, method="ncut", options={"objects": 2})


# ----------------------------------------------------------------------------- ddt (dataset level)
def ddt_dataset(count=12, flip=False):
    """Every image: the common object on a shared background; the object's descriptor differs most
    from the background in one channel, whose sign ``flip`` chooses (so the eigenvector's sign flips)."""
    background = torch.full((C,), 1.0)
    common = background.clone()
    common[0] = -2.0 if flip else 4.0
    common[1:4] += 0.5
    generator = torch.Generator().manual_seed(5)
    images, blobs = [], []
    for s in range(count):
        top, left = (int(v) for v in torch.randint(0, 10, (2,), generator=generator))
        blob = (top, left, top + 5, left + 6)
        images.append(scene([(*blob, common)], background, seed=s))
        blobs.append(blob)
    return torch.stack(images), blobs


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
    with pytest.raises(ValueError, match="unknown sign rule 'up' of heatmap 'ddt'; available: dataset, image, border, none"):
        DatasetPCA(sign="up")


def test_refresh_fits_ddt_on_the_pass_and_applies_it_on_the_next():
    features, blobs = ddt_dataset(count=16)
    batches = [(features[:8], torch.arange(8)), (features[8:], torch.arange(8, 16))]
    store = BoxStore(16, max_boxes=2)
    options = {"threshold": 0.5, "min_area": 0.0, "label_resolution": None}
    refresh_boxes(lambda x: x, batches, store, heatmap="ddt", localizer_options=options, progress=False)
    fitted = [pipeline for key, pipeline in __import__("ccrop_plugins.refresh", fromlist=["_PIPELINES"])._PIPELINES[store].items()]
    assert len(fitted) == 1 and fitted[0].rules[None].fitted  # statistics of pass 1, kept with the store
    refresh_boxes(lambda x: x, batches, store, heatmap="ddt", localizer_options=options, progress=False)
    for i, blob in enumerate(blobs):
        assert store.get(i)[0].tolist() == [exact(*blob)]
    other = BoxStore(16, max_boxes=2)  # another store starts unfitted
    refresh_boxes(lambda x: x, batches[:1], other, heatmap="ddt", localizer_options=options, progress=False)
    assert list(__import__("ccrop_plugins.refresh", fromlist=["_PIPELINES"])._PIPELINES[other].values())[0].rules[None].fitted


# ----------------------------------------------------------------------------- degenerate maps
def _degenerate():
    constant = torch.full((C, 8, 8), 3.0)
    with_nan = torch.randn(C, 8, 8, generator=torch.Generator().manual_seed(0))
    with_nan[2, 3, 3] = math.nan
    with_inf = torch.randn(C, 8, 8, generator=torch.Generator().manual_seed(1))
    with_inf[0, 1, 1] = math.inf
    hot = torch.zeros(C, 8, 8)
    hot[:, 5, 2] = 4.0
    negative = -torch.rand(C, 8, 8, generator=torch.Generator().manual_seed(2)) - 1.0
    negative[:, 1:3, 1:3] = -5.0
    return torch.stack([constant, with_nan, with_inf, hot, negative])


@pytest.mark.parametrize("method", ["channel_sum", "channel_norm", "distinctiveness", "ddt", "ncut"])
def test_degenerate_maps_are_finite_and_carry_no_location_when_constant_or_non_finite(method):
    features = _degenerate()
    pipeline = HeatmapPipeline(method)
    if pipeline.fits:
        pipeline.finalize({None: pipeline.fit(torch.randn(4, C, 8, 8, generator=torch.Generator().manual_seed(3)))[None]})
    maps = pipeline(features, size=16)
    assert maps.shape == (5, 16, 16) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert maps[0].abs().sum() == 0  # constant: no location
    if method != "ncut":  # ncut cleans non-finite values cell-wise; the others drop the map
        assert maps[1].abs().sum() == 0 and maps[2].abs().sum() == 0
    sets = get_localizer("components", threshold=0.5, min_area=0.0)(maps)
    assert sets.fallback[0]
    if method in ("distinctiveness", "channel_norm", "ncut"):
        # the single hot cell and the all-negative map's odd square are the only objects
        assert sets[3][0].tolist() == [[2 / 8, 5 / 8, 3 / 8, 6 / 8]] or method == "ncut"
        assert sets[4][0].tolist() == [[1 / 8, 1 / 8, 3 / 8, 3 / 8]]


def test_the_fitted_rule_example_of_docs_plugins_md_works_as_a_third_party_plugin():
    """The example in docs/plugins.md, executed as written, registered like an installed plugin."""
    import re
    import types
    from pathlib import Path

    from ccrop_plugins.plugins import load_plugins, plugin_manager

    text = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    code = re.search(r"(# my_package/ccrop_plugin.py: a \"far.*?)```", text, re.S).group(1)
    module = types.ModuleType("far_from_mean_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    load_plugins()
    plugin_manager.register(module, name="far_from_mean_plugin")
    try:
        features, blobs = ddt_dataset(count=8)
        store = BoxStore(8, max_boxes=1)
        options = {"threshold": 0.5, "min_area": 0.0, "label_resolution": None}
        for _ in range(2):
            refresh_boxes(lambda x: x, [(features, torch.arange(8))], store, heatmap="far_from_mean",
                          heatmap_options={"power": 2.0}, localizer_options=options, progress=False)
        assert [store.get(i)[0].tolist() for i in range(8)] == [[exact(*blob)] for blob in blobs]
    finally:
        plugin_manager.unregister(name="far_from_mean_plugin")

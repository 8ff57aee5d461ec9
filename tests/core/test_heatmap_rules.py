"""The built-in heatmap rules on constructed feature maps with a known answer (tests/core/feature_scenes.py).

Degenerate maps must give finite output. The extra rules ``ddt`` and ``ncut``: tests/extras/test_rules.py.
"""

import sys
from pathlib import Path

import pytest
import torch

from ccrop_plugins import BoxStore, HeatmapPipeline, get_localizer, heatmaps_from_features, refresh_boxes
from ccrop_plugins.heatmap_rules import distinctiveness

sys.path.insert(0, str(Path(__file__).parent))  # feature_scenes
from feature_scenes import SIZE, C, assert_every_object_outlined, boxes_of, ddt_dataset, degenerate, descriptors  # noqa: E402
from feature_scenes import exact, scene  # noqa: E402


def test_distinctiveness_outlines_every_object():
    assert_every_object_outlined("distinctiveness")


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


@pytest.mark.parametrize("method", ["channel_sum", "channel_norm", "distinctiveness"])
def test_degenerate_maps_are_finite_and_carry_no_location_when_constant_or_non_finite(method):
    features = degenerate()
    maps = HeatmapPipeline(method)(features, size=16)
    assert maps.shape == (5, 16, 16) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert maps[0].abs().sum() == 0  # constant: no location
    assert maps[1].abs().sum() == 0 and maps[2].abs().sum() == 0  # a non-finite value: the map is dropped
    sets = get_localizer("components", threshold=0.5, min_area=0.0)(maps)
    assert sets.fallback[0]
    if method in ("distinctiveness", "channel_norm"):
        # the single hot cell and the all-negative map's odd square are the only objects
        assert sets[3][0].tolist() == [[2 / 8, 5 / 8, 3 / 8, 6 / 8]]
        assert sets[4][0].tolist() == [[1 / 8, 1 / 8, 3 / 8, 3 / 8]]


def test_the_fitted_rule_example_of_docs_plugins_md_works_as_a_third_party_plugin():
    """The example in docs/plugins.md, executed as written, registered like an installed plugin."""
    import re
    import types

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

"""The built-in heatmap rules on constructed feature maps with a known answer (tests/core/feature_scenes.py).

Degenerate maps must give finite output. The extra rules ``ddt`` and ``ncut``: tests/extras/test_rules.py.
"""

import sys
from pathlib import Path

import pytest
import torch

from ccrop_plugins import BoxStore, HeatmapPipeline, get_localizer, heatmaps_from_features, refresh_boxes
from ccrop_plugins.heatmap_rules import distinctiveness
from ccrop_plugins.heatmap_rules import basic
from ccrop_plugins.heatmap_rules.basic import clip_border
from ccrop_plugins.heatmaps import normalize_maps

sys.path.insert(0, str(Path(__file__).parent))  # feature_scenes
from feature_scenes import (SIZE, C, assert_every_object_outlined, boxes_of, ddt_dataset, degenerate,  # noqa: E402
                            descriptors)
from feature_scenes import exact, scene  # noqa: E402


def test_distinctiveness_outlines_every_object():
    assert_every_object_outlined("distinctiveness")


def _kth_border_distance(features, k, ring=None):
    """Brute force: each cell's distance to its k-th nearest cell of the ring one step inside the border (or of
    the cells ``ring``, flat indices)."""
    n, c, h, w = features.shape
    if ring is None:
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[1:-1, 1:-1] = True
        inside[2:-2, 2:-2] = False
        ring = inside.flatten().nonzero()[:, 0]
    cells = features.flatten(2).transpose(1, 2)
    return torch.cdist(cells, cells[:, ring]).sort(dim=2).values[..., k - 1].reshape(n, h, w)


def test_distinctiveness_does_not_need_brighter_objects():
    """An object *darker* than its background: the channel sum points at the background, distinctiveness does not."""
    background = torch.full((C,), 2.0)
    dark = torch.full((C,), 0.5)
    features = scene([(4, 4, 9, 10, dark)], background)[None]
    assert boxes_of(heatmaps_from_features(features, method="distinctiveness"))[0][0] == [exact(4, 4, 9, 10)]
    assert boxes_of(heatmaps_from_features(features, method="channel_sum"))[0][0] != [exact(4, 4, 9, 10)]
    ring = basic._inner_ring(SIZE, SIZE, torch.device("cpu"))  # a 16 x 16 map: 52 ring cells, 32 of them used
    plain = _kth_border_distance(features, k=3, ring=ring)
    torch.testing.assert_close(distinctiveness(features)[:, 1:-1, 1:-1], plain[:, 1:-1, 1:-1])
    assert (distinctiveness(features) <= plain + 1e-5).all()  # border cells only ever lowered


def test_distinctiveness_is_the_distance_to_the_kth_nearest_border_descriptor():
    """Random features, maps of 8 to 12 cells a side (rings of 20 to 28 cells, k = 2 or 3), several per batch."""
    generator = torch.Generator().manual_seed(3)
    for height, width in [(8, 8), (9, 10), (12, 8)]:
        features = torch.randn(3, 5, height, width, generator=generator)
        k = round(0.1 * (2 * height + 2 * width - 12))
        expected = clip_border(_kth_border_distance(features, k))
        torch.testing.assert_close(distinctiveness(features), expected, rtol=1e-4, atol=1e-4)


def test_distinctiveness_samples_a_long_ring_evenly_and_cuts_batches_into_chunks(monkeypatch):
    ring = basic._inner_ring(40, 30, torch.device("cpu"))  # 128 ring cells -> 32, every fourth one
    rows, cols = ring // 30, ring % 30
    across, down = (rows == 1) | (rows == 38), (cols == 1) | (cols == 28)
    on_ring = across & (cols >= 1) & (cols <= 28) | down & (rows >= 1) & (rows <= 38)
    assert len(ring) == basic.MAX_RING_CELLS == 32 and len(set(ring.tolist())) == 32 and on_ring.all()
    steps = (rows.diff().abs() + cols.diff().abs()).tolist()  # in order around the ring, 127 / 31 cells apart
    assert min(steps) >= 2 and max(steps) <= 5
    features = torch.randn(5, 4, 40, 30, generator=torch.Generator().manual_seed(4))
    whole = distinctiveness(features)
    monkeypatch.setattr(basic, "_CHUNK_DISTANCES", 1)  # one image at a time
    torch.testing.assert_close(distinctiveness(features), whole)
    torch.testing.assert_close(distinctiveness(features[3:4]), whole[3:4])


def test_distinctiveness_keeps_a_background_of_two_textures_dark():
    """Two background textures (left, right) and two objects: distance from the image's *mean* descriptor lights a
    whole texture; distance from the border's descriptors keeps both dark and finds the two objects exactly."""
    left, right, a, b = descriptors(4, seed=7)
    features = scene([(3, 3, 7, 6, a), (9, 10, 13, 14, b)], left)
    noise = 0.05 * torch.randn(C, SIZE, 8, generator=torch.Generator().manual_seed(1))
    features[:, :, 8:] = right[:, None, None] + noise
    features[:, 9:13, 10:14] = b[:, None, None]
    boxes, sets = boxes_of(heatmaps_from_features(features[None], method="distinctiveness"), threshold="otsu")
    assert boxes[0] == sorted([exact(3, 3, 7, 6), exact(9, 10, 13, 14)]) and not sets.fallback.any()
    from_mean = (features - features.mean(dim=(1, 2), keepdim=True)).square().sum(dim=0).sqrt()[None]
    assert boxes_of(normalize_maps(clip_border(from_mean)), threshold="otsu")[0][0] != boxes[0]


def test_distinctiveness_of_small_maps_is_the_distance_from_the_image_mean():
    """Maps with a side under 8 cells have no usable ring: the distance from the image's mean descriptor."""
    features = torch.randn(2, 6, 7, 12, generator=torch.Generator().manual_seed(5))
    plain = (features - features.mean(dim=(2, 3), keepdim=True)).square().sum(dim=1).sqrt()
    torch.testing.assert_close(distinctiveness(features), clip_border(plain))


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
    if method == "channel_norm":
        assert sets[4][0].tolist() == [[1 / 8, 1 / 8, 3 / 8, 3 / 8]]
    if method == "distinctiveness":
        # that square fills 3 of the 20 cells of the border ring (k = 2): background by the border's rule; the
        # same square inside the ring is the object
        negative = features[4:].clone()
        negative[:, :, 1:3, 1:3] = negative[:, :, 4:6, 4:6]
        negative[:, :, 3:5, 3:5] = -5.0
        maps = HeatmapPipeline(method)(negative, size=16)
        found = get_localizer("components", threshold=0.5, min_area=0.0)(maps)[0][0]
        assert found.tolist() == [[3 / 8, 3 / 8, 5 / 8, 5 / 8]]


def test_the_fitted_rule_example_of_docs_plugins_md_works_as_a_third_party_plugin(registered_plugin):
    """The example in docs/plugins.md, executed as written, registered like an installed plugin."""
    import re
    import types

    text = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    code = re.search(r"(# my_package/ccrop_plugin.py: a \"far.*?)```", text, re.S).group(1)
    module = types.ModuleType("far_from_mean_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    with registered_plugin(module, "far_from_mean_plugin"):
        features, blobs = ddt_dataset(count=8)
        store = BoxStore(8, max_boxes=1)
        options = {"threshold": 0.5, "min_area": 0.0, "label_resolution": None}
        for _ in range(2):
            refresh_boxes(lambda x: x, [(features, torch.arange(8))], store, heatmap="far_from_mean",
                          heatmap_options={"power": 2.0}, localizer_options=options, progress=False)
        assert [store.get(i)[0].tolist() for i in range(8)] == [[exact(*blob)] for blob in blobs]

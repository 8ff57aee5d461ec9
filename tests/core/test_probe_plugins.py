"""A third-party plugin author's mistakes, met with a clear error or a documented fallback (helper P2's probe)."""

import importlib
import re
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from ccrop_plugins import (BoxSets, BoxStore, ContrastiveCrop, RefreshSampler, build_localizer, heatmaps_from_features,
                           hookimpl, refresh_boxes)
from ccrop_plugins import list_plugins
from ccrop_plugins.plugins import PluginWarning, load_plugins, registry

sys.path.insert(0, str(Path(__file__).parent))  # distributed_refresh: run_ranks
from distributed_refresh import gloo_group, run_ranks  # noqa: E402


def _features(n: int = 2, h: int = 5, w: int = 6) -> torch.Tensor:
    return torch.rand(n, 8, h, w, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("rule, got", [
    (lambda f: torch.rand(f.shape[0], f.shape[2] + 1, f.shape[3]), r"\(2, 6, 6\)"),  # one row too many
    (lambda f: f.sum(1).transpose(1, 2), r"\(2, 6, 5\)"),  # (N, w, h)
    (lambda f: f.sum(1).to(torch.complex64), r"\(2, 5, 6\) of dtype torch.complex64"),
])
def test_a_heatmap_rule_off_the_features_grid_is_refused(rule, got):
    # was: stretched to the image without a word (a transposed map put the boxes on the other axis), a complex map
    # cast to its real part with a UserWarning
    with pytest.raises(ValueError, match=rf"returned {got}; expected maps \(N, h, w\) = \(2, 5, 6\) \(real numbers"):
        heatmaps_from_features(_features(), size=(10, 12), method=rule)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.int64, torch.bool])
def test_a_heatmap_rule_of_another_real_dtype_gives_float32_maps_in_0_1(dtype):
    maps = heatmaps_from_features(_features(), size=(10, 12), method=lambda f: (f.sum(1) * 4).to(dtype))
    assert maps.dtype == torch.float32 and maps.shape == (2, 10, 12)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1


# Rules with dataset statistics (docs/plugins.md, "Rules with dataset statistics"), as a plugin author writes them.

class FarFromMean:
    """docs/plugins.md's example rule."""

    def __init__(self) -> None:
        self.mean = None
        self.finalized = 0

    def fit(self, features):
        cells = features.double().permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        return {"count": torch.tensor(float(len(cells))), "sum": cells.sum(0)}

    def finalize(self, totals):
        self.mean, self.finalized = totals["sum"] / totals["count"], self.finalized + 1

    def __call__(self, features):
        mean = features.mean((0, 2, 3)) if self.mean is None else self.mean.to(features)
        return (features - mean[:, None, None]).norm(dim=1)


class Finalise(FarFromMean):
    """British spelling: finalize is missing."""

    finalize = None

    def finalise(self, totals):
        self.mean = totals["sum"] / totals["count"]


class NaNStatistics(FarFromMean):
    def fit(self, features):
        return {"count": torch.tensor(float("nan")), "sum": torch.zeros(features.shape[1], dtype=torch.float64)}


class FloatCount(FarFromMean):
    def fit(self, features):
        return {"count": float(features.shape[0])}


class GrowingSum(FarFromMean):
    calls = 0  # per instance: a pass's rule, not the class (a rerun in one process starts again at 1)

    def fit(self, features):
        self.calls += 1
        return {"sum": torch.ones(1 if self.calls == 1 else features.shape[1])}


class RankKeys(FarFromMean):
    def fit(self, features):
        return {**super().fit(features), **({"extra": torch.ones(3)} if dist.get_rank() == 1 else {})}


class StatisticsPlugin:
    @hookimpl
    def ccrop_register_heatmaps(self, register):
        for name, rule in (("far", FarFromMean), ("finalise", Finalise), ("nan_statistics", NaNStatistics),
                           ("float_count", FloatCount), ("growing_sum", GrowingSum), ("rank_keys", RankKeys)):
            register(name, rule)


@pytest.fixture(scope="module")
def statistics_plugin(registered_plugin):
    with registered_plugin(StatisticsPlugin(), "statistics-plugin"):
        yield


def _batches(count: int = 4, size: int = 2):
    generator = torch.Generator().manual_seed(1)
    return [(torch.rand(size, 3, 16, 16, generator=generator), torch.arange(i, i + size))
            for i in range(0, count, size)]


def _feature_fn(images):
    return torch.rand(len(images), 8, 4, 4, generator=torch.Generator().manual_seed(len(images)))


def _pipeline(store):
    from ccrop_plugins.kept_pipelines import _PIPELINES

    (pipeline,) = _PIPELINES[store].values()
    return pipeline


def test_a_rule_with_fit_but_no_finalize_is_refused_before_the_pass(statistics_plugin):
    # was: not a fitted rule (fit and finalize are both needed), so it applied its fallback on every pass, silently
    store = BoxStore(4)
    with pytest.raises(TypeError, match=r"heatmap rule 'finalise' has fit but no finalize; a rule with dataset "
                                        r"statistics defines both"):
        refresh_boxes(_feature_fn, _batches(), store, heatmap="finalise", progress=False)
    assert store.version == 0


@pytest.mark.parametrize("rule, message", [
    ("float_count", r"TypeError: the fit of heatmap rule 'float_count' returned \{'count': 'float'\}; expected "
                    r"\{name: tensor\}"),
    ("growing_sum", r"ValueError: the fit statistics of heatmap rule 'growing_sum' changed between batches: "
                    r"\{'sum': \(\(1,\), torch.float32\)\}, then \{'sum': \(\(8,\), torch.float32\)\}"),
])
def test_fit_statistics_that_are_no_tensors_or_change_shape_are_named(statistics_plugin, rule, message):
    # was: AttributeError: 'float' object has no attribute 'detach'; a (1,) sum broadcast into the (8,) ones, silently
    store = BoxStore(4)
    with pytest.raises((TypeError, ValueError)) as error:
        refresh_boxes(_feature_fn, _batches(), store, heatmap=rule, progress=False)
    assert re.match(message, f"{type(error.value).__name__}: {error.value}")
    assert store.version == 0


def test_non_finite_fit_statistics_are_not_applied_and_named(statistics_plugin):
    # was: finalized with NaN, so every map of the next pass was NaN and every image fell back to the whole image,
    # with a warning blaming the features
    store = BoxStore(4)
    with pytest.warns(UserWarning, match=r"heatmap rule 'nan_statistics': its summed fit statistics \['count'\] hold "
                                         r"NaN or inf; not applied, the rule keeps its previous statistics"):
        refresh_boxes(_feature_fn, _batches(), store, heatmap="nan_statistics", progress=False)
    rule = _pipeline(store).rules[None]
    assert rule.mean is None and rule.finalized == 0
    with pytest.warns(UserWarning, match="not applied"):
        stats = refresh_boxes(_feature_fn, _batches(), store, heatmap="nan_statistics", progress=False)
    assert stats.fallback_fraction < 1 and store.version == 2



def test_finalize_given_numbers_passes_them_to_the_rule():
    # HeatmapPipeline.finalize is public: the NaN check of a8935c9 called .float() on each value, so a caller's
    # {'count': 4.0} was AttributeError: 'float' object has no attribute 'float' (before it, the rule took it)
    from ccrop_plugins import HeatmapPipeline

    pipeline = HeatmapPipeline(FarFromMean())
    pipeline.finalize({None: {"count": 4.0, "sum": torch.full((8,), 2.0)}})
    torch.testing.assert_close(pipeline.rule(None).mean, torch.full((8,), 0.5))

def _gloo_rank(rank, init_method, out, heatmap):
    with gloo_group(rank, init_method, timeout=20):
        # 'far': one image over two ranks, rank 0 localizes none (RefreshSampler gives it an empty shard)
        count = 1 if heatmap == "far" else 2
        images = torch.rand(count, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        shard = list(RefreshSampler(count))
        store = BoxStore(count)
        try:
            refresh_boxes(_feature_fn, [(images[shard], torch.tensor(shard))] if shard else [], store,
                          heatmap=heatmap, progress=False)
            rule = _pipeline(store).rules[None]
            result = {"mean": rule.mean, "finalized": rule.finalized, "version": store.version}
        except ValueError as error:
            result = {"error": str(error)}
        torch.save(result, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
@pytest.mark.parametrize("heatmap", ["far", "rank_keys"])
def test_fitted_statistics_under_two_gloo_ranks_one_without_images(statistics_plugin, tmp_path, heatmap):
    # was: the rank without images skipped its all_reduce and never finalized, the other waited in its all_reduce
    # (a collective mismatch: 'Connection closed by peer', or a hang); rank-dependent names aborted gloo (SIGABRT)
    run_ranks(_gloo_rank, tmp_path, heatmap)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    if heatmap == "far":
        assert [r["finalized"] for r in ranks] == [1, 1] and [r["version"] for r in ranks] == [1, 1]
        torch.testing.assert_close(ranks[0]["mean"], ranks[1]["mean"])
    else:
        for r in ranks:
            assert r["error"].startswith("the fit statistics of the heatmap rule differ between ranks")


# Localizers


def _raster_order(heatmaps):
    """Eight boxes in raster order with rising scores: the best last (against BoxSets' 'best first')."""
    boxes = [[0.1 * i, 0.0, 0.1 * i + 0.2, 0.5] for i in range(8)]
    return BoxSets.from_lists([boxes] * len(heatmaps), [[float(i) for i in range(8)]] * len(heatmaps))


class RasterPlugin:
    @hookimpl
    def ccrop_register_localizers(self, register):
        register("raster", lambda **options: _raster_order)


def test_a_localizer_returning_more_boxes_than_the_store_keeps_keeps_the_best_scored(registered_plugin):
    # was: the store kept the first four boxes (scores 0, 1, 2, 3) and dropped the four best, silently
    with registered_plugin(RasterPlugin(), "raster-plugin"):
        store = BoxStore(4, max_boxes=4)
        refresh_boxes(_feature_fn, _batches(), store, localizer="raster", progress=False)
    boxes, scores = store.get(3)
    assert scores.tolist() == [7.0, 6.0, 5.0, 4.0]
    torch.testing.assert_close(boxes[0], torch.tensor([0.7, 0.0, 0.9, 0.5]))


# Entry points (fake distributions on sys.path, as tests/core/test_plugins.py builds them)

SAMPLER = """
import pluggy
hookimpl = pluggy.HookimplMarker("ccrop_plugins")

class Edge:
    def __call__(self, low, high, centre, extent, generator=None):
        return low
"""


@pytest.fixture
def distribution(tmp_path, monkeypatch):
    """``distribution(module, source, entry=None)``: a distribution 'ccrop-probe-<module>' whose ccrop_plugins entry
    point names ``entry`` (default: the module); then ``distribution.load()`` loads the group (autoload on)."""
    modules = []

    def add(module, source, entry=None, also=""):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"ccrop_probe_{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ccrop-probe-{module}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ccrop_plugins]\n{module} = {entry or module}\n{also}")
        modules.append(module)

    def load():
        importlib.invalidate_caches()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_plugins(reload=True)
            for kind in ("heatmap", "localizer", "sampler"):
                registry(kind)
        return [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CCROP_PLUGINS_NO_AUTOLOAD", raising=False)
    add.load = load
    try:
        yield add
    finally:
        monkeypatch.setenv("CCROP_PLUGINS_NO_AUTOLOAD", "1")
        load_plugins(reload=True)
        for module in modules:
            sys.modules.pop(module, None)


@pytest.mark.parametrize("source, error", [
    ('def ccrop_register_samplers(register):\n    register("undecorated", Edge)\n',
     "ccrop_register_samplers is not marked with @ccrop_plugins.hookimpl"),
    ('marker = pluggy.HookimplMarker("ccrop-plugins")\n\n@marker\ndef ccrop_register_samplers(register):\n'
     '    register("other_marker", Edge)\n', "ccrop_register_samplers is not marked with @ccrop_plugins.hookimpl"),
    ("", "it implements no hook"),
])
def test_a_plugin_whose_hooks_pluggy_ignores_is_skipped_by_name(distribution, source, error):
    # was: loaded, registering nothing, with no warning and nothing in `ccrop plugins`: the user's sampler='undecorated'
    # was 'unknown sampler' with no hint why
    distribution("quiet", SAMPLER + source)
    messages = distribution.load()
    assert any(f"skipped plugin 'quiet' of distribution ccrop-probe-quiet: {error}; available: ccrop_register_heatmaps"
               in message for message in messages), messages
    assert [e.name for e in list_plugins(include_broken=True) if e.broken] == ["quiet"]


def test_a_plugin_that_exits_at_import_is_skipped_not_the_program(distribution):
    # was: SystemExit (a script's argparse run at import) ended the user's program, its usage line under their name
    distribution("exits", "import sys\nsys.exit(2)\n")
    messages = distribution.load()
    assert messages == ["ccrop-plugins: skipped plugin 'exits' of distribution ccrop-probe-exits: cannot load 'exits': "
                        "SystemExit: 2"]
    assert "beta" in registry("sampler")


def test_a_lookup_while_another_thread_loads_the_plugins_waits_for_all_of_them(distribution):
    # was: the lookup read a registry built half-way: without the slow plugin, or empty ("unknown sampler 'beta';
    # available: ") when four threads built their first ContrastiveCrop at once
    distribution("slow", SAMPLER + '\nimport time\ntime.sleep(0.5)\n\n@hookimpl\ndef ccrop_register_samplers('
                 'register):\n    register("slow", Edge)\n')
    loading = threading.Thread(target=load_plugins, kwargs={"reload": True})
    loading.start()
    time.sleep(0.1)  # inside the slow import
    try:
        assert sorted(registry("sampler")) == ["beta", "gaussian", "slow", "uniform"]
    finally:
        loading.join()


def _locate_centre(heatmaps):
    return BoxSets.from_lists([[[0.25, 0.25, 0.75, 0.75]]] * len(heatmaps))


class Midpoint:
    def __call__(self, low, high, centre, extent, generator=None):
        return (low + high) / 2


class _PoweredSum:
    def __init__(self, power):
        self.power = power

    def __call__(self, features):
        return features.sum(1) ** self.power


class FactoryMistakesPlugin:
    @hookimpl
    def ccrop_register_localizers(self, register):
        register("bare_localizer", _locate_centre)  # the localizer itself, not a factory of its options
        register("builds_a_number", lambda **options: 42)

    @hookimpl
    def ccrop_register_samplers(self, register):
        register("sampler_instance", Midpoint())  # an instance, not the class
        register("builds_none", lambda **options: None)
        register("needs_width", lambda width: Midpoint())  # a factory with a required option

    @hookimpl
    def ccrop_register_heatmaps(self, register):
        register("needs_power", _PoweredSum)  # a rule class with a required option


@pytest.fixture
def factory_mistakes(registered_plugin):
    with registered_plugin(FactoryMistakesPlugin(), "factory-mistakes"):
        yield


class _HandSamplers:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("by_hand", Midpoint)


def test_a_plugin_object_registered_by_hand_without_a_name_is_its_class_as_provider():
    from ccrop_plugins.plugins import plugin_manager

    plugin = _HandSamplers()
    plugin_manager.register(plugin)  # pluggy names it by its id
    try:  # was: "140520340362640"
        assert registry("sampler")["by_hand"].provider.endswith("test_probe_plugins._HandSamplers")
    finally:
        plugin_manager.unregister(plugin)


def _outside_boxes(heatmaps):
    return BoxSets.from_lists([[[0.5, 0.5, 1.5, 1.5]]] * len(heatmaps))


def test_a_localizer_error_names_the_localizer_and_the_batchs_dataset_indices():
    batches = [(torch.rand(2, 3, 16, 16), torch.tensor([7, 3]))]
    with pytest.raises(ValueError, match="box 0 of sample 0") as raised:  # was: no way to tell which image that is
        refresh_boxes(_feature_fn, batches, BoxStore(8), localizer=_outside_boxes, progress=False)
    [note] = raised.value.__notes__
    assert re.fullmatch(r"raised by localizer \S*test_probe_plugins\._outside_boxes on the batch of dataset indices "
                        r"\[7, 3\] \(row i: sample i\)", note), note


def test_a_localizer_or_sampler_registered_instead_of_its_factory_is_named(factory_mistakes):
    # was: "localizer 'bare_localizer' (from factory-mistakes) does not accept options []; accepted: heatmaps"
    # (the store's max_boxes is offered only to a factory that takes it: this one is built from no options)
    with pytest.raises(TypeError, match=r"localizer 'bare_localizer' \(from factory-mistakes\) cannot be built "
                                        r"from options \[\]; accepted: heatmaps; it requires \['heatmaps'\] "
                                        r"\(if they are the localizer's call arguments, the localizer itself was "
                                        r"registered instead of a factory of its options"):
        refresh_boxes(_feature_fn, _batches(), BoxStore(4), localizer="bare_localizer", progress=False)
    with pytest.raises(TypeError, match=r"sampler 'sampler_instance' .* requires \['low', 'high', 'centre', "
                                        r"'extent'\]"):
        ContrastiveCrop(8, sampler="sampler_instance")
    # a genuine option misspelt or left out is named as such first (was, for a moment: 'registered instead of ...')
    with pytest.raises(TypeError, match=r"'needs_width' .* does not accept options \['widht'\]; accepted: width; "
                                        r"it requires \['width'\]"):
        ContrastiveCrop(8, sampler="needs_width", widht=3)
    with pytest.raises(TypeError, match=r"'needs_width' .* cannot be built from options \[\]; accepted: width; it "
                                        r"requires \['width'\]"):
        ContrastiveCrop(8, sampler="needs_width")
    # was: "... (if they are the heatmap's call arguments, ...: a class, or lambda **options: heatmap)", which a
    # heatmap cannot follow (a registered function is the rule itself)
    with pytest.raises(TypeError, match=r"^heatmap 'needs_power' \(from factory-mistakes\) cannot be built from "
                                        r"options \[\]; accepted: power; it requires \['power'\]: give them in "
                                        r"heatmap_options$"):
        refresh_boxes(_feature_fn, _batches(), BoxStore(4), heatmap="needs_power", progress=False)


def test_a_factory_that_builds_no_callable_is_named_when_built(factory_mistakes):
    # was: the crop blamed the user ('sampler must be a registered name or a callable sampler; got NoneType'), and
    # the refresh failed after the first forward with "'int' object is not callable"
    with pytest.raises(TypeError, match=r"^sampler 'builds_none' \(from factory-mistakes\): its factory returned "
                                        r"NoneType, not a callable sampler$"):
        ContrastiveCrop(8, sampler="builds_none")
    calls = []
    with pytest.raises(TypeError, match=r"^localizer 'builds_a_number' .* returned int, not a callable localizer$"):
        refresh_boxes(lambda images: calls.append(1) or _feature_fn(images), _batches(), BoxStore(4),
                      localizer="builds_a_number", progress=False)
    assert calls == []  # before any forward


class _SizedBox:
    """A plugin localizer with options of its own only: one centred box of ``size`` (no threshold, no max_boxes)."""

    def __init__(self, size: float = 0.5) -> None:
        self.size = size

    def __call__(self, heatmaps):
        low, high = 0.5 - self.size / 2, 0.5 + self.size / 2
        return BoxSets.from_lists([[[low, low, high, high]]] * len(heatmaps))


class OwnOptionsPlugin:
    @hookimpl
    def ccrop_register_localizers(self, register):
        register("sized_box", _SizedBox)
        register("sized_box_kw", lambda *, size=0.5, **ignored: _SizedBox(size))  # **options take what is offered


def test_a_plugin_localizer_without_threshold_or_max_boxes_runs_by_name(registered_plugin):
    # docs/plugins.md: "factory(**options) returns a callable heatmaps -> BoxSets"; the refresh added the store's
    # max_boxes to every named localizer but bbox: "localizer 'sized_box' ... does not accept options ['max_boxes']"
    with registered_plugin(OwnOptionsPlugin(), "own-options"):
        store = BoxStore(4)
        refresh_boxes(_feature_fn, _batches(), store, localizer="sized_box", localizer_options={"size": 0.4},
                      progress=False)
        assert torch.allclose(store.boxes[:, 0], torch.tensor([0.3, 0.3, 0.7, 0.7]).expand(4, 4))
        assert build_localizer("sized_box_kw", max_boxes=3, options={"size": 0.2}).size == 0.2
        with pytest.raises(TypeError, match=r"localizer 'sized_box' \(from own-options\) does not accept options "
                                            r"\['threshold'\]; accepted: size"):  # asked for: not dropped
            refresh_boxes(_feature_fn, _batches(), store, localizer="sized_box", threshold=0.2, progress=False)
    assert build_localizer("components", max_boxes=3).max_boxes == 3  # offered to the built-ins that take it
    assert build_localizer("components", max_boxes=3, options={"max_boxes": 2}).max_boxes == 2
    assert build_localizer("bbox", max_boxes=3, threshold="otsu").threshold == "otsu"  # bbox takes no max_boxes
    with pytest.raises(ValueError, match=r"threshold=0.2 and localizer_options threshold=0.3 disagree"):
        build_localizer("bbox", threshold=0.2, options={"threshold": 0.3})


# Samplers


class _Quantile:
    def __init__(self, q):
        self.q = q

    def __call__(self, low, high, centre, extent, generator=None):
        return low

    def unit_quantile(self, u):
        return self.q


@pytest.mark.parametrize("sampler, got", [
    (lambda low, high, centre, extent, generator=None: np.array([0.0, 1e6]), r"returned array\(\[ +0., 1000000.\]\)"),
    (lambda low, high, centre, extent, generator=None: np.array([15.0, 25.0, 7.0]),
     r"returned array\(\[15., 25.,  7.\]\)"),
    (_Quantile(5.0), r"returned unit_quantile\(0.5\) = 5.0"),
    (_Quantile(np.array([0.5, 0.5])), r"failed a first call, .*ValueError: can only convert an array of size 1"),
    (lambda: (0, 0), r"failed a first call, .*TypeError: .* takes 0 positional arguments"),
])
def test_a_bad_sampler_is_named_when_the_crop_is_built(sampler, got):
    # was: out of [low, high] clamped to the image only (a crop that need not touch the box), a third value ignored,
    # a unit_quantile of 5 clamped, and raw TypeErrors, all from make_params, i.e. inside a DataLoader worker
    with pytest.raises(ValueError, match=rf"^sampler .* {got}"):
        ContrastiveCrop(8, sampler=sampler)


class _GoesBad:
    """Fine on check_sampler's range, then ``value`` for every other call."""

    def __init__(self, value):
        self.value = value

    def __call__(self, low, high, centre, extent, generator=None):
        return (low + high) / 2 if low[0] == 10.0 and high[1] == 50.0 else np.array([self.value, self.value])


def test_a_sampler_that_leaves_its_range_later_is_clamped_to_the_range_or_named():
    box = [[0.45, 0.45, 0.55, 0.55]]  # 100 px image: the crop's top-left lies within a few px of 50 - size / 2
    crop = ContrastiveCrop(8, sampler=_GoesBad(0.0), scale=(0.01, 0.01), ratio=(1, 1))
    params = crop.make_params((100, 100), box, torch.Generator().manual_seed(0))
    assert params["height"] == 10 and params["top"] == params["left"] == 40  # low: 45 - 5 (was 0, the image's edge)
    crop = ContrastiveCrop(8, sampler=_GoesBad(float("nan")))
    with pytest.raises(ValueError, match=r"returned a crop at \(top, left\) = \(nan, nan\)"):
        crop.make_params((100, 100), box, torch.Generator().manual_seed(0))


class _QuantileGoesBad(_GoesBad):
    """A quantile sampler whose ``unit_quantile`` is fine at 0.5 (check_sampler's probe) and ``3u - 1`` elsewhere."""

    def unit_quantile(self, u):
        return 3 * u - 1


class _ThreeLater(_GoesBad):
    """Fine on check_sampler's range, then three values."""

    def __call__(self, low, high, centre, extent, generator=None):
        return super().__call__(low, high, centre, extent) if low[0] == 10.0 else np.array([45.0, 45.0, 99.0])


def test_a_unit_quantile_that_leaves_0_1_later_keeps_the_centre_on_the_box_and_a_third_value_is_named():
    box = [[0.45, 0.45, 0.55, 0.55]]  # 100 px image, 10 px crops: top-left in [40, 50]
    crop = ContrastiveCrop(8, sampler=_QuantileGoesBad(0.0), scale=(0.01, 0.01), ratio=(1, 1))
    generator = torch.Generator().manual_seed(0)
    corners = [crop.make_params((100, 100), box, generator) for _ in range(200)]
    # was: 85 % of the centres off the box (q(u) in [-1, 2] unclamped), silently
    assert all(40 <= p["top"] <= 50 and 40 <= p["left"] <= 50 for p in corners)
    assert {p["top"] for p in corners} >= {40, 50}  # q(u) past [0, 1] lands on the range's ends
    bad = ContrastiveCrop(8, sampler=_ThreeLater(0.0))
    with pytest.raises(ValueError, match=r"returned array\(\[45\., 45\., 99\.\]\)"):  # was: the first two taken
        bad.make_params((100, 100), box, torch.Generator().manual_seed(0))


class ReturningPlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        return {"returned": Midpoint}  # instead of register("returned", Midpoint)


def test_a_hook_that_returns_its_names_instead_of_registering_them_is_named(registered_plugin):
    # was: nothing registered and no warning; sampler='returned' was only 'unknown'
    with registered_plugin(ReturningPlugin(), "returning-plugin"):
        with pytest.warns(PluginWarning, match=r"refused sampler '\*' of returning-plugin: its ccrop_register_samplers "
                                               r"hook returned dict and registered nothing; a hook calls "
                                               r"register\(name, factory\) once per name"):
            assert sorted(registry("sampler")) == ["beta", "gaussian", "uniform"]


def test_two_entry_points_naming_one_plugin_module_are_named_in_one_line(distribution):
    # was: "cannot load 'twice': ValueError: Plugin already registered under a different name: twice_again=<module
    # ...> {...}", pluggy's message with every registered plugin
    distribution("twice", SAMPLER + '@hookimpl\ndef ccrop_register_samplers(register):\n    register("twice", Edge)\n',
                 also="twice_again = twice\n")
    messages = distribution.load()
    assert messages == ["ccrop-plugins: skipped plugin 'twice_again' of distribution ccrop-probe-twice: 'twice' is "
                        "already loaded as plugin 'twice' (one entry point per plugin module is enough)"]
    assert "twice" in registry("sampler")

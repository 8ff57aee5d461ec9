"""Faults a plugin author hit, found by probing main in session 23: each test fails on the code before."""

import copy
import importlib
import pickle
import sys
import textwrap
import warnings

import numpy as np
import pluggy
import pytest
import torch

from ccrop_plugins import ContrastiveCrop, get_heatmap, get_sampler
from ccrop_plugins.heatmaps import HeatmapPipeline
from ccrop_plugins.plugins import AUTOLOAD_ENV, PluginWarning, build_localizer, load_plugins, registry
from ccrop_plugins.samplers import BetaSampler

hookimpl = pluggy.HookimplMarker("ccrop_plugins")
BOX = torch.tensor([[0.2, 0.2, 0.6, 0.7]])


class Midpoint:
    def __init__(self, who: str = "?") -> None:
        self.who = who

    def __call__(self, low, high, centre, extent, generator=None):
        return (low + high) / 2


class TrylastPlugin:
    @hookimpl(trylast=True)
    def ccrop_register_samplers(self, register):
        register("beta", Midpoint)  # a built-in's name
        register("midpoint", Midpoint)


def test_a_trylast_plugin_does_not_take_a_builtin_name(registered_plugin):
    # was: pluggy lists trylast hooks first, so its 'beta' replaced the built-in one, and the built-in was refused
    with registered_plugin(TrylastPlugin(), "trylast-plugin"):
        with pytest.warns(PluginWarning, match="refused sampler 'beta' of trylast-plugin: sampler 'beta' is already "
                                               "registered by ccrop-plugins"):
            assert isinstance(get_sampler("beta"), BetaSampler)
        assert registry("sampler")["midpoint"].provider == "trylast-plugin"


class TryfirstPlugin:
    @hookimpl(tryfirst=True)
    def ccrop_register_samplers(self, register):
        register("shared", lambda: Midpoint("first"))


class PlainPlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("shared", lambda: Midpoint("second"))


def test_the_first_plugin_registered_keeps_its_name_whatever_its_tryfirst_mark(registered_plugin):
    # was: the plain plugin registered later kept 'shared', the warning saying 'first' was a later registration
    with registered_plugin(TryfirstPlugin(), "first"), registered_plugin(PlainPlugin(), "second"):
        with pytest.warns(PluginWarning, match="refused sampler 'shared' of second: sampler 'shared' is already "
                                               "registered by first"):
            assert get_sampler("shared").who == "first"


class NamesPlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("two\nlines", Midpoint)
        register(" spaced ", Midpoint)
        register("fine", Midpoint)


def test_names_with_surrounding_spaces_or_unprintable_characters_are_refused(registered_plugin):
    # was: both accepted, breaking the lines of `ccrop plugins`
    with registered_plugin(NamesPlugin(), "names-plugin"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = sorted(registry("sampler"))
    assert names == ["beta", "fine", "gaussian", "uniform"]
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert len(messages) == 2 and all("names must be printable text without surrounding spaces" in m
                                      for m in messages)
    assert "invalid name 'two\\nlines'" in messages[0] and "invalid name ' spaced '" in messages[1]


class DuplicatePlugin:
    @hookimpl
    def ccrop_register_samplers(self, register):
        register("uniform", Midpoint)  # a built-in's name
        register("fine", Midpoint)


def test_warnings_as_errors_leave_the_registry_complete(registered_plugin):
    # was: the refusal, raised inside the hook, refused the whole plugin and left no registry: every lookup raised
    with registered_plugin(DuplicatePlugin(), "duplicate-plugin"), warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PluginWarning, match="refused sampler 'uniform' of duplicate-plugin"):
            get_sampler("fine")
        assert isinstance(get_sampler("fine"), Midpoint)


@pytest.fixture
def two_distributions(tmp_path, monkeypatch):
    """A distribution whose plugin raises on import, listed before one whose plugin registers sampler ``fake_good``;
    autoload on, as a user's process has it."""
    for dist, module, source in (("ccrop-good-fake", "ccrop_good_fake", """
            from ccrop_plugins import hookimpl

            class Edge:
                def __call__(self, low, high, centre, extent, generator=None):
                    return low

            @hookimpl
            def ccrop_register_samplers(register):
                register("fake_good", Edge)
            """), ("ccrop-broken-fake", "ccrop_broken_fake", "raise ImportError('needs foo')")):
        folder = tmp_path / dist
        folder.mkdir()
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
        info = folder / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ccrop_plugins]\n{module} = {module}\n")
        monkeypatch.syspath_prepend(str(folder))  # the broken one last, so it comes first
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        monkeypatch.setenv(AUTOLOAD_ENV, "1")
        load_plugins(reload=True)  # forget the fake plugins
        for module in ("ccrop_good_fake", "ccrop_broken_fake"):
            sys.modules.pop(module, None)


def test_warnings_as_errors_leave_every_working_plugin_loaded(two_distributions):
    # was: the first broken plugin's warning ended the loading: 'fake_good' unknown for the rest of the process
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PluginWarning, match="skipped plugin 'ccrop_broken_fake' .* ImportError: needs foo"):
            load_plugins(reload=True)
        assert get_sampler("fake_good") is not None


class TensorQuantile(Midpoint):
    """The quantile form with torch: ``unit_quantile`` returns a 0-d tensor (``as_array``: a one-element array)."""

    def __init__(self, as_array: bool = False) -> None:
        self.as_array = as_array

    def unit_quantile(self, u):
        q = torch.as_tensor(u, dtype=torch.float64) ** 2
        return q.numpy().reshape(1) if self.as_array else q


class FloatQuantile(Midpoint):
    def unit_quantile(self, u):
        return u ** 2


@pytest.mark.parametrize("as_array", [False, True])
def test_a_unit_quantile_may_return_a_one_element_tensor_or_array(as_array):
    # was: TypeError: type Tensor doesn't define __round__ method, on every make_params (not naming the sampler)
    crop = ContrastiveCrop(64, sampler=TensorQuantile(as_array))
    reference = ContrastiveCrop(64, sampler=FloatQuantile())
    params = crop.make_params((300, 400), BOX, torch.Generator().manual_seed(0))
    assert params == reference.make_params((300, 400), BOX, torch.Generator().manual_seed(0))


class ComplexSampler(Midpoint):
    def __call__(self, low, high, centre, extent, generator=None):
        return (low + high) / 2 + 1j


def test_a_sampler_returning_complex_values_is_refused():
    # was: accepted with numpy's ComplexWarning, the imaginary part dropped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the old code's ComplexWarning must not decide the test
        with pytest.raises(ValueError, match=r"sampler .*ComplexSampler.* returned complex values"):
            ContrastiveCrop(64, sampler=ComplexSampler())


class MeanFit:
    """A fitted heatmap rule: distance from the mean descriptor."""

    def __init__(self) -> None:
        self.mean = None

    def fit(self, features):
        return {"count": torch.tensor(float(features[:, 0].numel())), "sum": features.double().sum((0, 2, 3))}

    def finalize(self, totals):
        self.mean = totals["sum"] / totals["count"]

    def __call__(self, features):
        mean = features.mean((0, 2, 3)) if self.mean is None else self.mean.to(features)
        return (features - mean[:, None, None]).norm(dim=1)


def test_a_fitted_heatmap_registered_as_an_instance_is_refused(registered_heatmap):
    # was: one object fitted by every stage, the last stage's statistics applied to all, silently
    with registered_heatmap("as_instance", MeanFit()):
        with pytest.raises(TypeError, match=r"heatmap 'as_instance' .* instance of MeanFit .* register the class, "
                                            r"register\('as_instance', MeanFit\)"):
            HeatmapPipeline("as_instance")
    with registered_heatmap("as_class", MeanFit):
        assert get_heatmap("as_class") is not get_heatmap("as_class")


def closure_sampler(shift: float):
    def sample(low, high, centre, extent, generator=None):
        return np.clip(centre + shift, low, high)
    return sample


def test_a_crop_with_a_closure_sampler_copies_but_does_not_pickle():
    # was: copy.copy and copy.deepcopy refused it as unpicklable, though it is valid under 'fork'
    crop = ContrastiveCrop(32, sampler=closure_sampler(0.0))
    expected = crop.make_params((100, 100), BOX, torch.Generator().manual_seed(1))
    for copied in (copy.copy(crop), copy.deepcopy(crop)):
        assert type(copied) is ContrastiveCrop and copied is not crop
        assert copied.make_params((100, 100), BOX, torch.Generator().manual_seed(1)) == expected
    with pytest.raises(TypeError, match="its sampler .* cannot be pickled"):
        pickle.dumps(crop)


class FixedBox:
    """A localizer class without options beyond ``size``."""

    def __init__(self, size: float = 0.5) -> None:
        self.size = size

    def __call__(self, heatmaps):
        raise AssertionError("not called")


class ForwardingPlugin:
    @hookimpl
    def ccrop_register_localizers(self, register):
        register("fwd", lambda **options: FixedBox(**options))


def test_a_factory_forwarding_options_names_the_host_offered_ones(registered_plugin):
    # was: only "FixedBox.__init__() got an unexpected keyword argument 'max_boxes'", not naming the localizer
    with registered_plugin(ForwardingPlugin(), "forwarding"):
        with pytest.raises(TypeError, match="unexpected keyword argument 'max_boxes'") as caught:
            build_localizer("fwd", max_boxes=3)
    assert caught.value.__notes__ == [
        "ccrop-plugins: raised by the factory of localizer 'fwd' (from forwarding), called with options "
        "['max_boxes'], ['max_boxes'] of them offered by the host; a factory taking **options receives every option "
        "offered: name the ones it takes"]

"""stage_features: named stages from one forward that stops after the deepest one; fused in refresh_boxes."""

import pytest
import torch
from torch import nn

from ccrop_plugins import BoxStore, refresh_boxes, stage_features
from ccrop_plugins.heatmaps import normalize_maps, upsample_bilinear


class Counting(nn.Module):
    """Identity-like layer that counts its calls."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.op(x)


class Net(nn.Module):
    """stem (stride 2) -> layer1 -> layer2 (stride 2) -> head; 16 px images: 8x8 then 4x4 maps."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = Counting(nn.Conv2d(3, 4, 3, stride=2, padding=1))
        self.layer1 = Counting(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()))
        self.layer2 = Counting(nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU()))
        self.head = Counting(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)))

    def forward(self, x):
        return self.head(self.layer2(self.layer1(self.stem(x))))


def test_stages_in_the_order_given_equal_the_intermediate_outputs():
    net = Net()
    images = torch.randn(2, 3, 16, 16)
    out = stage_features(net, ["layer2", "stem"])(images)
    assert list(out) == ["layer2", "stem"]
    stem = net.stem.op(images)
    torch.testing.assert_close(out["stem"], stem)
    torch.testing.assert_close(out["layer2"], net.layer2.op(net.layer1.op(stem)))
    assert out["layer2"].shape == (2, 6, 4, 4) and out["stem"].shape == (2, 4, 8, 8)


def test_forward_stops_after_the_deepest_requested_stage():
    net = Net()
    stage_features(net, "layer1")(torch.randn(1, 3, 16, 16))
    assert (net.stem.calls, net.layer1.calls, net.layer2.calls, net.head.calls) == (1, 1, 0, 0)
    stage_features(net, ["layer1", "layer2"])(torch.randn(1, 3, 16, 16))
    assert (net.layer2.calls, net.head.calls) == (1, 0)
    assert not any(m._forward_hooks for m in net.modules())  # no hook left behind
    stage_features(net, "layer1", stop_early=False)(torch.randn(1, 3, 16, 16))
    assert net.head.calls == 1


def test_dotted_and_wrapped_names():
    class Wrapper(nn.Module):  # like DistributedDataParallel: the model under ``module``
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x)

    model = nn.Sequential()
    model.add_module("backbone", Net())
    images = torch.randn(1, 3, 16, 16)
    direct = stage_features(model, "backbone.layer1.op.0")(images)["backbone.layer1.op.0"]
    assert direct.shape == (1, 4, 8, 8)
    wrapped = stage_features(Wrapper(model), "backbone.layer1")(images)["backbone.layer1"]
    torch.testing.assert_close(wrapped, direct.relu())


def test_a_compiled_models_stages_are_named_as_the_models():
    # torch.compile wraps the model under ``_orig_mod``: 'layer2' was "unknown stage 'layer2' of OptimizedModule;
    # valid names are ...: _orig_mod". The eager backend compiles nothing: no compiler needed.
    net = Net()
    compiled = torch.compile(net, backend="eager")
    images = torch.randn(2, 3, 16, 16)
    expected = stage_features(net, ["layer1", "layer2"])(images)
    got = stage_features(compiled, ["layer1", "layer2"])(images)
    assert list(got) == ["layer1", "layer2"]
    torch.testing.assert_close(got["layer2"], expected["layer2"])
    with pytest.raises(ValueError, match=r"unknown stage 'layer9' of OptimizedModule; .*: stem, layer1, layer2, head$"):
        stage_features(compiled, "layer9")


def test_bad_names_and_outputs():
    with pytest.raises(ValueError, match=r"unknown stage 'layer9' of Net; .*stem, layer1, layer2, head"):
        stage_features(Net(), ["layer1", "layer9"])
    with pytest.raises(ValueError, match="at least one stage"):
        stage_features(Net(), [])
    with pytest.raises(ValueError, match="unique"):
        stage_features(Net(), ["layer1", "layer1"])
    with pytest.raises(TypeError, match="nn.Module"):
        stage_features(lambda x: x, "layer1")
    with pytest.raises(ValueError, match=r"stage 'head' must output feature maps \(B, C, h, w\); got \(1, 2\)"):
        stage_features(Net(), "head")(torch.randn(1, 3, 16, 16))

    class Skips(Net):
        def forward(self, x):
            return self.layer1(self.stem(x))

    with pytest.raises(RuntimeError, match=r"stages \['layer2'\] were not run"):
        stage_features(Skips(), ["layer1", "layer2"])(torch.randn(1, 3, 16, 16))



@pytest.mark.parametrize("stages", [None, 5, b"layer1"])
def test_stages_that_are_not_names_are_refused(stages):
    with pytest.raises(TypeError, match=f"stages must be a stage name or a list of them; got {type(stages).__name__}"):
        stage_features(Net(), stages)
    in_order = ("layer1", "layer2")
    assert stage_features(Net(), in_order).stages == stage_features(Net(), iter(in_order)).stages == in_order

@pytest.mark.parametrize("stop_early", ["no", None, 0])
def test_stop_early_that_is_not_a_bool_is_refused(stop_early):
    with pytest.raises(TypeError, match=f"stop_early must be True or False; got {stop_early!r}"):  # 'no' was True
        stage_features(Net(), "layer1", stop_early=stop_early)


def test_tuple_output_gives_its_last_item():
    class Multi(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Counting(nn.Identity())

        def forward(self, x):
            return self.backbone(x)

    model = Multi()
    model.backbone.op = type("Pair", (nn.Module,), {"forward": lambda self, x: (x * 2, x * 3)})()
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(stage_features(model, "backbone")(x)["backbone"], x * 3)


def test_refresh_fuses_stages_by_geometric_mean_on_the_finest_grid():
    net = Net()
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    seen = []

    def localizer(maps):
        seen.append(maps)
        from ccrop_plugins import get_localizer

        return get_localizer("components", max_boxes=2)(maps)

    extractor = stage_features(net, ["layer1", "layer2"])
    net.train()
    refresh_boxes(extractor, [(images, torch.arange(3))], BoxStore(3, max_boxes=2), localizer=localizer,
                  heatmap="distinctiveness", progress=False)
    assert net.training and net.layer1.training  # eval for the pass, restored after
    with torch.no_grad():
        net.eval()
        stages = extractor(images)
    from ccrop_plugins.heatmap_rules import distinctiveness

    fine = normalize_maps(distinctiveness(stages["layer1"]))
    coarse = normalize_maps(distinctiveness(stages["layer2"]))
    coarse = upsample_bilinear(coarse, (8, 8)).clamp(0, 1)
    expected = normalize_maps((fine.clamp_min(1e-6) * coarse.clamp_min(1e-6)).sqrt())
    expected = upsample_bilinear(expected, (16, 16)).clamp(0, 1)
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=0)


def test_a_torchvision_resnet_stops_before_layer4_and_the_head():
    import torchvision

    resnet = torchvision.models.resnet18(weights=None).eval()
    called = []
    resnet.layer4.register_forward_hook(lambda *args: called.append("layer4"))
    resnet.fc.register_forward_hook(lambda *args: called.append("fc"))
    out = stage_features(resnet, ["layer2", "layer3"])(torch.randn(2, 3, 64, 64))
    assert out["layer2"].shape == (2, 128, 8, 8) and out["layer3"].shape == (2, 256, 4, 4)
    assert called == []

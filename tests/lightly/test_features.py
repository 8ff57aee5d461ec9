"""feature_extractor: the last stage before pooling, sharing the model's parameters."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from ccrop_lightly import LayerOutput, feature_extractor


def test_torchvision_resnet_stops_at_layer4_and_shares_parameters():
    resnet = torchvision.models.resnet18(weights=None)
    extractor = feature_extractor(resnet).eval()
    assert extractor(torch.rand(2, 3, 64, 64)).shape == (2, 512, 2, 2)
    assert extractor[-1] is resnet.layer4
    assert {id(p) for p in extractor.parameters()} <= {id(p) for p in resnet.parameters()}


def test_lightly_style_sequential_backbone_loses_its_pooling():
    resnet = torchvision.models.resnet18(weights=None)
    backbone = nn.Sequential(*list(resnet.children())[:-1])  # lightly's examples
    extractor = feature_extractor(backbone).eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        features = extractor(images)
        assert features.shape == (1, 512, 2, 2)
        # Pooling the map gives the backbone's own output: nothing else was dropped.
        assert torch.allclose(features.mean(dim=(2, 3)), backbone.eval()(images).flatten(1), atol=1e-6)
    head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert len(feature_extractor(head)) == 2


def test_named_layer_of_any_module():
    resnet = torchvision.models.resnet18(weights=None).eval()
    extractor = feature_extractor(resnet, layer="layer3")
    assert isinstance(extractor, LayerOutput)
    assert extractor(torch.rand(1, 3, 64, 64)).shape == (1, 256, 4, 4)
    with pytest.raises(ValueError, match=r"unknown stage 'layer9' of ResNet; .*such as: conv1, bn1"):
        feature_extractor(resnet, layer="layer9")


@pytest.mark.parametrize("lightly_style", [False, True])
def test_stages_by_name_return_a_dict_from_one_forward_stopped_early(lightly_style):
    resnet = torchvision.models.resnet18(weights=None).eval()
    model = nn.Sequential(*list(resnet.children())[:-1]) if lightly_style else resnet
    calls = []
    resnet.layer4.register_forward_hook(lambda *_: calls.append("layer4"))
    resnet.layer2.register_forward_hook(lambda *_: calls.append("layer2"))
    extractor = feature_extractor(model, stages="layer3")
    with torch.no_grad():
        maps = extractor(torch.rand(2, 3, 64, 64))
    assert list(maps) == ["layer3"] and maps["layer3"].shape == (2, 256, 4, 4)
    assert calls == ["layer2"]  # one forward, stopped after layer3: layer4 never ran
    fused = feature_extractor(model, stages=["layer2", "layer4"])
    with torch.no_grad():
        maps = fused(torch.rand(1, 3, 64, 64))
    assert {name: tuple(m.shape) for name, m in maps.items()} == {"layer2": (1, 128, 8, 8), "layer4": (1, 512, 2, 2)}
    assert {id(p) for p in fused.parameters()} <= {id(p) for p in resnet.parameters()}


def test_stage_errors_name_the_valid_names():
    resnet = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match=r"unknown stage 'layer5'.*layer1, layer2, layer3, layer4"):
        feature_extractor(nn.Sequential(*list(resnet.children())[:-1]), stages="layer5")
    with pytest.raises(ValueError, match="give layer or stages, not both"):
        feature_extractor(resnet, layer="layer3", stages="layer3")


def test_other_modules_pass_through_and_bad_input_is_named():
    conv = nn.Conv2d(3, 8, 3)
    assert feature_extractor(conv) is conv
    with pytest.raises(ValueError, match="holds only pooling / flatten / linear layers"):
        feature_extractor(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    with pytest.raises(TypeError, match="torch.nn.Module; got function"):
        feature_extractor(lambda x: x)


def test_a_compiled_backbone_is_looked_through_sharing_its_parameters():
    # torch.compile wraps the module in an OptimizedModule, which is no nn.Sequential: Lightly's compiled
    # nn.Sequential(*list(resnet.children())[:-1]) kept its pooling (1 x 1 maps, every box the whole image) and
    # stages="layer2" was unknown ("valid names ... such as: _orig_mod"). backend="eager": no compiler needed.
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    backbone = nn.Sequential(*list(resnet.children())[:-1])
    compiled = torch.compile(backbone, backend="eager")
    images = torch.rand(1, 3, 64, 64)
    extractor = feature_extractor(compiled)
    with torch.no_grad():
        assert extractor(images).shape == (1, 512, 2, 2)
        assert torch.equal(extractor(images), feature_extractor(backbone)(images))
    assert extractor[-1] is resnet.layer4  # the same parameters, no copy
    for stages in ("layer2", "_orig_mod.layer2", ["_orig_mod.layer2", "layer3"]):
        with torch.no_grad():
            maps = feature_extractor(compiled, stages=stages)(images)
        assert {name: tuple(m.shape) for name, m in maps.items()} == {
            "layer2": (1, 128, 8, 8), **({"layer3": (1, 256, 4, 4)} if isinstance(stages, list) else {})}
    assert feature_extractor(torch.compile(resnet, backend="eager"), layer="layer3")(images).shape == (1, 256, 4, 4)
    with pytest.raises(ValueError, match=r"unknown stage 'layer5'.*layer1, layer2, layer3, layer4"):
        feature_extractor(compiled, stages="layer5")


@pytest.mark.parametrize("wrap", [nn.DataParallel, torch.optim.swa_utils.AveragedModel,
                                  lambda module: nn.DataParallel(torch.compile(module, backend="eager"))],
                         ids=["DataParallel", "AveragedModel", "DataParallel-of-compiled"])
def test_a_wrapped_backbone_is_looked_through(wrap):
    # DDP / DataParallel / an EMA copy (AveragedModel) of Lightly's nn.Sequential backbone kept its pooling (1 x 1
    # maps: every box the whole image, the warning blamed the stem) and stages="layer2" was "unknown stage 'layer2' of
    # DataParallel; valid names are ...: 0, 1, 2, ..." (DDP: the same, tested in tests/core/test_wrapped_models.py).
    torch.manual_seed(0)
    backbone = nn.Sequential(*list(torchvision.models.resnet18(weights=None).eval().children())[:-1])
    wrapped = wrap(backbone)
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(feature_extractor(wrapped)(images), feature_extractor(backbone)(images))
        for stages in ("layer2", "module.layer2"):
            maps = feature_extractor(wrapped, stages=stages)(images)
            assert torch.equal(maps["layer2"], feature_extractor(backbone, stages="layer2")(images)["layer2"])

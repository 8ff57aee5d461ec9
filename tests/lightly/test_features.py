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
    with pytest.raises(ValueError, match=r"no submodule 'layer9'; some of its submodules: conv1, bn1"):
        feature_extractor(resnet, layer="layer9")


def test_other_modules_pass_through_and_bad_input_is_named():
    conv = nn.Conv2d(3, 8, 3)
    assert feature_extractor(conv) is conv
    with pytest.raises(ValueError, match="holds only pooling / flatten / linear layers"):
        feature_extractor(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    with pytest.raises(TypeError, match="torch.nn.Module; got function"):
        feature_extractor(lambda x: x)

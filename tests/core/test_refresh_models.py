"""The refresh pass on researchers' models: layouts, in-place steps, bound methods, tuple outputs. Found by probing
main in session 23: each test fails on the code before."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from ccrop_plugins import BoxStore, refresh_boxes, stage_features


def _object_images(count: int = 2, height: int = 48, width: int = 64) -> torch.Tensor:
    images = torch.zeros(count, 3, height, width)
    images[:, :, 8:20, 40:60] = 1.0
    return images


def _refresh(feature_fn, images: torch.Tensor, **options):
    store = BoxStore(len(images), max_boxes=1)
    stats = refresh_boxes(feature_fn, [(images, torch.arange(len(images)))], store, progress=False, **options)
    return store, stats


class _ChannelsLast(nn.Module):
    """The image as features, laid out ``(B, h, w, C)`` as a Swin stage gives them."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 2, 3, 1)


@pytest.mark.parametrize("size", [(48, 64), (32, 32)])
def test_channels_last_maps_are_refused_naming_the_layout(size):
    # Before: (2, 48, 64, 3) read as 48 channels of a 64 x 3 grid: the box [0.0, 0.625, 1.0, 0.938] for an object at
    # [0.625, 0.167, 0.938, 0.417], without a word.
    images = _object_images(2, *size)
    with pytest.raises(ValueError, match=rf"features \(2, {size[0]}, {size[1]}, 3\) look channels-last \(B, h, w, C\)"
                                         r".*e\.g\. features\.permute\(0, 3, 1, 2\)"):
        _refresh(_ChannelsLast(), images, localizer="bbox")
    swin_like = lambda x: torch.ones(len(x), 1, 1, 768)  # noqa: E731  (a 32 px image at Swin's last stage)
    with pytest.raises(ValueError, match=r"\(2, 1, 1, 768\) look channels-last"):
        _refresh(swin_like, images)


def test_maps_of_very_wide_images_are_not_taken_for_channels_last():
    images = _object_images(2, 16, 256)
    store, _ = _refresh(lambda x: nn.functional.avg_pool2d(x, 8), images, localizer="bbox")  # (2, 3, 2, 32)
    x0, _, x1, _ = store.boxes[0, 0].tolist()  # the object spans x 0.156 to 0.234
    assert x0 <= 0.16 and 0.23 <= x1 <= 0.3


def test_a_stage_is_not_changed_by_later_in_place_steps():
    # Before: bn1's output came back after ReLU(inplace=True) had run on it (min 0.0 against -1.35), as soon as a
    # deeper stage was asked for too.
    torch.manual_seed(0)
    model = resnet18().eval()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        alone = stage_features(model, "bn1")(images)["bn1"]
        fused = stage_features(model, ["bn1", "layer1.0.bn2", "layer2"])(images)
        late = stage_features(model, ["layer1.0.bn2"])(images)["layer1.0.bn2"]
    assert alone.min() < 0 and torch.equal(fused["bn1"], alone) and torch.equal(fused["layer1.0.bn2"], late)


def test_one_module_named_twice_is_refused():
    # Before: 'layer2' and 'module.layer2' of a DataParallel model both taken: layer2 weighed twice in the fusion.
    model = nn.DataParallel(resnet18())
    with pytest.raises(ValueError, match=r"stages \['layer2', 'module.layer2'\] name one module \('module.layer2'\)"):
        stage_features(model, ["layer2", "module.layer2", "layer3"])


class _TrainingNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm, self.drop = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Dropout2d(0.5)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.relu(self.norm(self.conv(images))))


def test_a_bound_method_runs_its_module_in_eval_mode():
    # Before: model.forward_features ran in train mode: the pass moved BatchNorm's statistics and drew dropout, so two
    # passes over the same images gave different boxes.
    torch.manual_seed(0)
    net = _TrainingNet().train()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    first, _ = _refresh(net.forward_features, images)
    second, _ = _refresh(net.forward_features, images)
    assert all(torch.equal(value, before[name]) for name, value in net.state_dict().items())
    assert net.training and net.drop.training and torch.equal(first.boxes, second.boxes)


def test_a_one_by_one_stage_beside_a_useful_one_is_named_as_adding_nothing():
    # Before: "the maps of stage 'b' are 1x1 ..., so every box is the whole image", beside a right box from stage 'a'.
    images = _object_images()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store, stats = _refresh(lambda x: {"a": x, "b": x.mean(dim=(2, 3), keepdim=True)}, images, localizer="bbox")
    texts = [str(w.message) for w in caught if "1x1" in str(w.message)]
    assert texts == ["refresh_boxes: the maps of stage 'b' are 1x1 for (48, 64) images: they add nothing to the fused "
                     "heatmap, whose boxes come from stage(s) ['a']; leave them out, larger images, or a backbone "
                     "with less downsampling"]
    assert stats.fallback_fraction == 0.0


def test_a_tuple_output_says_its_last_item_was_read():
    # Before: "features must have shape (N, C, h, w); got (2, 10)" for a model returning (maps, logits), and "stage
    # ... must output feature maps (B, C, h, w); got NoneType" for MultiheadAttention's (tokens, None).
    images = _object_images()
    with pytest.raises(ValueError, match=r"got \(2, 10\)") as raised:
        _refresh(lambda x: (x, torch.zeros(len(x), 10)), images)
    assert raised.value.__notes__[0] == ("the feature function returned a tuple of 2 items; the refresh localizes with "
                                         "its last item")

    class Pair(nn.Module):
        def forward(self, x):
            return x, None

    model = nn.Sequential(Pair())
    with pytest.raises(ValueError, match=r"stage '0' must output feature maps \(B, C, h, w\); got NoneType as the last "
                                         r"item of its tuple of 2$"):
        stage_features(model, "0", stop_early=False)(images)


def test_an_error_in_a_heatmap_rule_is_named():
    # Before: "mat1 and mat2 shapes cannot be multiplied" with no word of the rule that raised it.
    def broken_rule(features):
        return features.flatten(1) @ torch.ones(3, 3)

    with pytest.raises(RuntimeError) as raised:
        _refresh(lambda x: x, _object_images(), heatmap=broken_rule)
    assert raised.value.__notes__ == [f"raised by heatmap rule {__name__}.test_an_error_in_a_heatmap_rule_is_named."
                                      "<locals>.broken_rule"]

"""Transformer and other non-ResNet backbones with ``ContrastiveCropHook(feature_stages=...)``: a ViT's tokens make
maps in a real Runner (MoCo v3's ``MoCoV3ViT``, mmpretrain's ``VisionTransformer``); a backbone whose output is no
maps is refused before training; an ``out_indices`` entry names the module its backbone counts (``stages.py``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

VIT_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _vit_config(setup, folder, tmp_path, backbone: dict, **hook):
    """The small SimCLR config with ``backbone`` (32 px images, patches of 8: a 4x4 grid) and a neck of its width."""
    cfg = setup.small_config("mmpretrain", folder, tmp_path, **hook)
    cfg.model.backbone = backbone
    cfg.model.neck.update(in_channels=32, with_avg_pool=False)  # the cls token (B, 32) is the model's feature
    cfg.experiment_name = f"vit_{tmp_path.name}"  # else two Runners of one second share mmengine's instances
    cfg.train_dataloader.num_workers, cfg.train_dataloader.persistent_workers = 2, False
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("backbone_type, stages, layer", [
    ("MoCoV3ViT", None, "layers.1"),  # the default: the last layer's patch tokens (its output is the cls token)
    ("VisionTransformer", [1], "layers.1"),  # an out_indices entry: layers[1]
    ("VisionTransformer", ["layers.0"], "layers.0"),
])
def test_a_vit_refreshes_from_its_patch_tokens(setup, train, object_folder, tmp_path, backbone_type, stages, layer):
    # was: stages=None trained the whole warm-up, then the first refresh failed ("features must have shape (N, C, h,
    # w); got (8, 48)") and stopped the run; [1] / 'layers.1' was refused before training ("got (1, 17, 48)")
    torch.manual_seed(0)
    backbone = dict(type=backbone_type, arch=VIT_ARCH, img_size=32, patch_size=8)
    # channel_norm: a random ViT's token norms follow the bright squares (its channel sum is about as often negative)
    cfg = _vit_config(setup, object_folder, tmp_path, backbone, feature_stages=stages, localizer="bbox",
                      heatmap="channel_norm", threshold=0.5)
    runner = train(cfg)
    hook = setup.ccrop_hook(runner)
    assert hook.store.version == 1 and hook.last_stats.images == 16
    assert hook.last_stats.fallback_fraction < 1.0  # real boxes, not the whole image for every one
    boxes = hook.store.state_dict()["boxes"][:, 0]
    assert (boxes[:, 2:] - boxes[:, :2]).prod(1).min() < 0.9

    # The maps are the layer's patch tokens (the cls token dropped) on the 4x4 patch grid.
    images = torch.randn(2, 3, 32, 32)
    vit = runner.model.backbone
    tokens = []
    handle = dict(vit.named_modules())[layer].register_forward_hook(lambda m, i, o: tokens.append(o))
    with torch.no_grad():
        maps = hook._features(images)
        handle.remove()
    assert list(maps) == [layer]
    expected = tokens[0][:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    assert torch.equal(maps[layer], expected)


def test_a_backbone_whose_output_is_no_maps_is_refused_before_training(setup, coordinate_folder, tmp_path):
    # MLP-Mixer's output is (B, C, L): with feature_stages=None nothing was checked before training, and the first
    # refresh after the whole warm-up failed ("features must have shape (N, C, h, w)") and stopped the run.
    from mmengine.runner import Runner

    arch = dict(embed_dims=32, num_layers=2, tokens_mlp_dims=16, channels_mlp_dims=64)
    cfg = _vit_config(setup, coordinate_folder, tmp_path, dict(type="MlpMixer", arch=arch, img_size=32, patch_size=8))
    cfg.train_dataloader.num_workers = 0
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r"feature_stages=None, run once on a blank \(1, 3, 32, 32\) image before "
                                         r"training: MlpMixer's output is \(1, 32, 16\), not feature maps \(B, C, h, "
                                         r"w\) .*name a stage that outputs maps with feature_stages"):
        runner.train()
    assert runner.message_hub.get_info("iter", 0) == 0  # no iteration ran


class _Model(nn.Module):
    """A model as the hook sees it: a ``backbone`` attribute."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone


@pytest.mark.parametrize("backbone, modules", [
    # MobileNet's ``layers`` lists module NAMES ('layer1' ... 'conv2'): an int meant layers.<i>, not a module
    (dict(type="MobileNetV2", widen_factor=0.25), ["layer1", "layer2", "conv2"]),
    (dict(type="MobileNetV3", arch="small"), ["layer0", "layer1", "layer12"]),
    # ConvNeXt and Swin count ``stages``: was "(0 stages: [])"
    (dict(type="ConvNeXt", arch=dict(depths=[1, 1], channels=[8, 16])), ["stages.0", "stages.1", "stages.1"]),
    (dict(type="SwinTransformer", arch=dict(embed_dims=8, depths=[1, 1], num_heads=[1, 1]), img_size=32,
          window_size=2, out_indices=(1,)), ["stages.0", "stages.1", "stages.1"]),
    (dict(type="ResNet_CIFAR", depth=18, base_channels=8, stem_channels=8), ["layer1", "layer2", "layer4"]),
])
def test_an_out_indices_entry_names_the_module_its_backbone_counts(backbone, modules):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from ccrop_mm.stages import check_stages_run, feature_fn

    with DefaultScope.overwrite_default_scope("mmpretrain"):
        model = _Model(MODELS.build(backbone))
    for stage, module in zip((0, 1, -1), modules):
        features = feature_fn(model, [stage])
        assert features.stages == (module,), stage
        check_stages_run(features, [stage], (32, 32), 3)  # the module gives maps (B, C, h, w)
        maps = features(torch.zeros(2, 3, 32, 32))[module]
        assert maps.ndim == 4 and maps.shape[0] == 2


def test_an_out_indices_entry_of_a_backbone_without_stages_says_so():
    from ccrop_mm.stages import feature_fn

    with pytest.raises(ValueError, match=r"feature_stages entry 1 is not an out_indices entry of Conv2d \(no "
                                         r"res_layers, layers or stages to index\); name the module instead"):
        feature_fn(_Model(nn.Conv2d(3, 8, 3)), [1])


def test_fewer_tokens_than_patches_are_named_as_a_masking_backbone():
    # MAE's MAEViT keeps 25 % of the patches in its forward: the refusal named neither the cause nor the methods served.
    from ccrop_mm.token_maps import as_maps

    with pytest.raises(ValueError, match=r"got \(1, 5, 48\): fewer tokens than patches, a backbone that masks patches "
                                         r"in its forward \(MAE's MAEViT"):
        as_maps(torch.rand(1, 5, 48), (4, 4), "layers.1")
    assert as_maps(torch.rand(1, 17, 48), (4, 4), "layers.1").shape == (1, 48, 4, 4)  # a cls token and 16 patches


def _brightness_vit():
    """A one-layer ViT (8 px patches) whose patch tokens are their patch's mean brightness: no position embedding, an
    identity layer."""
    from mmpretrain.models import VisionTransformer

    vit = VisionTransformer(arch=dict(embed_dims=3, num_layers=1, num_heads=1, feedforward_channels=4), img_size=32,
                            patch_size=8)
    with torch.no_grad():
        vit.patch_embed.projection.weight.fill_(1 / 192)
        vit.patch_embed.projection.bias.zero_()
        vit.pos_embed.zero_()
    vit.layers[0] = nn.Identity()
    return vit


def test_a_vit_refresh_size_that_is_no_multiple_of_its_patches_is_localized_on_whole_patches():
    # 36 px with 8 px patches: the patch embedding padded the bottom and right to a 5 x 5 grid over 40 px, and that grid
    # laid over the 36 px image drew every box toward the top left, silently (an object in the right half was boxed at
    # [0.4, 0.8] in x). Now the images are resized to whole patches (40 px): the box reaches the right edge.
    from ccrop_mm.stages import feature_fn
    from ccrop_plugins import get_heatmap, get_localizer

    model = nn.Module()
    model.backbone = _brightness_vit()
    token_maps = feature_fn(model, None)  # {'layers.0': maps}

    def features(images):
        return token_maps(images)["layers.0"]

    flat = features(torch.ones(1, 3, 36, 36))
    assert tuple(flat.shape[-2:]) == (5, 5) and float(flat.std()) < 1e-4  # no padded (darker) last row or column
    image = torch.zeros(1, 3, 36, 36)
    image[..., 18:] = 1.0  # the right half
    maps = features(image)
    heat = get_heatmap("channel_sum")(maps)
    box = get_localizer("bbox", threshold=0.6)(heat / heat.amax()).boxes[0, 0].tolist()
    assert box[2] == pytest.approx(1.0) and box[0] >= 0.45 and box[1] == 0.0 and box[3] == pytest.approx(1.0)
    assert tuple(features(torch.zeros(1, 3, 32, 32)).shape[-2:]) == (4, 4)  # whole patches already: as given

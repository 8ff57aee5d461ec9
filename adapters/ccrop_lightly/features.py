"""The refresh pass needs the backbone's last feature map *before* pooling: build that module."""

from __future__ import annotations

from torch import Tensor, nn

# Layers that follow the last feature map in torchvision classifiers and in lightly's
# ``nn.Sequential(*list(resnet.children())[:-1])`` backbones.
_HEAD_LAYERS = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.Flatten,
    nn.Linear,
    nn.Dropout,
    nn.Identity,
)
_RESNET_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class LayerOutput(nn.Module):
    """Run ``model`` and return the output of its submodule ``layer`` (any architecture).

    The whole model runs (including its head), so prefer :func:`feature_extractor` on a
    ResNet or an ``nn.Sequential``, which stops at the last stage.

    Args:
        model: the network; its parameters are shared, not copied.
        layer: the dotted name of a submodule (``model.get_submodule(layer)``), whose output
            must be a ``(B, C, h, w)`` feature map.
    """

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        try:
            self.layer = model.get_submodule(layer)
        except AttributeError:
            names = [name for name, _ in model.named_modules() if name][:12]
            raise ValueError(f"model has no submodule {layer!r}; some of its submodules: {', '.join(names)}") from None
        self.model = model
        self.layer_name = layer

    def forward(self, images: Tensor) -> Tensor:
        captured: list[Tensor] = []
        handle = self.layer.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
        try:
            self.model(images)
        finally:
            handle.remove()
        return captured[-1]


def feature_extractor(model: nn.Module, layer: str | None = None) -> nn.Module:
    """A module mapping images ``(B, 3, H, W)`` to the last stage's features ``(B, C, h, w)``.

    The result shares the parameters of ``model`` (no copy), so it follows training.

    - a torchvision ResNet (``conv1`` ... ``layer4`` attributes): the stem and the four
      stages, without ``avgpool`` and ``fc``;
    - an ``nn.Sequential`` (lightly's examples use ``nn.Sequential(*list(resnet.children())[:-1])``):
      the same sequence without its trailing pooling / flatten / linear / dropout / identity layers;
    - any module with ``layer`` given: :class:`LayerOutput` (that submodule's output);
    - any other module is returned as is: its output must already be a feature map.

    Args:
        model: the backbone.
        layer: dotted name of the submodule whose output is the feature map (optional).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: an ``nn.Sequential`` with nothing before its head layers, or an unknown ``layer``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if layer is not None:
        return LayerOutput(model, layer)
    if all(isinstance(getattr(model, name, None), nn.Module) for name in _RESNET_STAGES):
        return nn.Sequential(*(getattr(model, name) for name in _RESNET_STAGES))
    if isinstance(model, nn.Sequential):
        layers = list(model)
        while layers and isinstance(layers[-1], _HEAD_LAYERS):
            layers.pop()
        if not layers:
            raise ValueError(
                "the nn.Sequential holds only pooling / flatten / linear layers; "
                "pass the backbone whose output is a (B, C, h, w) feature map"
            )
        return nn.Sequential(*layers)
    return model

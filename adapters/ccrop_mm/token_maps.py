"""Feature maps from a transformer backbone's tokens, for ``ContrastiveCropHook(feature_stages=...)`` on ViTs.

mmpretrain's ``VisionTransformer`` (``MoCoV3ViT``, ``DeiT``, ``BEiT``... are its kind) runs its ``layers`` on tokens
``(B, T, C)``: ``num_extra_tokens`` leading ones (the cls token; DeiT's distillation token) and then the ``h * w``
patch tokens of the grid its ``patch_embed`` made in this forward (mmcv's and mmpretrain's ``PatchEmbed.forward``
return ``(tokens, (h, w))``; the grid follows the image size). A Swin stage returns ``(tokens, (h, w))`` itself. The
heatmap rules take maps ``(B, C, h, w)``, so :class:`TokenMaps` turns each named module's tokens into them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ccrop_plugins import StageFeatures


def is_token_backbone(backbone: nn.Module) -> bool:
    """Whether ``backbone`` works on patch tokens, recognised by what it has (no framework class imported): a
    ``patch_embed`` module and an int ``num_extra_tokens`` (``VisionTransformer``, ``MoCoV3ViT``, Swin)."""
    extra = getattr(backbone, "num_extra_tokens", None)
    return (isinstance(getattr(backbone, "patch_embed", None), nn.Module) and isinstance(extra, int)
            and not isinstance(extra, bool))


def last_layer(backbone: nn.Module) -> str | None:
    """The name of a ViT's last transformer layer (``'layers.11'``), or ``None`` for a backbone without a ``layers``
    ``ModuleList`` (Swin: its default output is already maps)."""
    layers = getattr(backbone, "layers", None)
    return f"layers.{len(layers) - 1}" if isinstance(layers, nn.ModuleList) and len(layers) else None


class TokenMaps(StageFeatures):
    """The core's :class:`~ccrop_plugins.StageFeatures` of a token backbone: ``{stage: (B, C, h, w)}`` from one
    forward that stops after the deepest of ``stages`` (module names inside ``backbone``, shared, not copied).

    A stage's tokens ``(B, T, C)`` lose their ``T - h * w`` leading extra tokens and are laid on the patch grid
    ``(h, w)`` of this forward (read from ``patch_embed``'s output, or from a ``(tokens, (h, w))`` output); maps
    ``(B, C, h, w)`` pass as they are; a tuple or list output gives its last item, as in the core.
    """

    def __init__(self, backbone: nn.Module, stages: Sequence[str]) -> None:
        super().__init__(backbone, stages)
        self._grids: list[tuple[int, int]] = []  # the patch grids of the forward running
        self.patch = patch_stride(backbone)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``images (B, C, H, W)`` -> ``{stage: (B, C_s, h, w)}``, the images first resized to whole patches
        (:func:`on_whole_patches`)."""
        images = on_whole_patches(images, self.patch)
        self._grids = []
        # Registered before the stages' hooks: a stage that is patch_embed itself reads the grid of its own output.
        handle = self.model.patch_embed.register_forward_hook(self._read_grid)
        try:
            return super().forward(images)
        finally:
            handle.remove()

    def feature_map(self, output: Any, stage: str) -> Tensor:
        return as_maps(output, self._grids[-1] if self._grids else None, stage)

    def _read_grid(self, module: nn.Module, inputs: Any, output: Any) -> None:
        grid = _grid_of(output)
        if grid is not None:
            self._grids.append(grid)


def patch_stride(backbone: nn.Module) -> tuple[int, int] | None:
    """The ``(height, width)`` stride of ``backbone.patch_embed``'s projection (a ViT's patch size), or ``None``."""
    projection = getattr(getattr(backbone, "patch_embed", None), "projection", None)
    return (int(projection.stride[0]), int(projection.stride[1])) if isinstance(projection, nn.Conv2d) else None


def on_whole_patches(images: Tensor, stride: tuple[int, int] | None) -> Tensor:
    """``images (B, C, H, W)`` resized (bilinear) so that each side is the nearest multiple of the patch ``stride`` (at
    least one patch). The patch embedding pads a partial patch at the bottom and right (36 px with 8 px patches: a
    5 x 5 grid over 40 px), so its grid, laid over the image, drew every box toward the top left; a box normalised
    to the image is the same on the resized one."""
    if stride is None:
        return images
    size = tuple(max(1, int(side / step + 0.5)) * step for side, step in zip(images.shape[-2:], stride))
    return images if size == tuple(images.shape[-2:]) else F.interpolate(images, size=size, mode="bilinear",
                                                                          align_corners=False)


def as_maps(output: Any, grid: tuple[int, int] | None, stage: str) -> Tensor:
    """A module's ``output`` as maps ``(B, C, h, w)``: tokens ``(B, T, C)`` on the patch ``grid`` ``(h, w)`` (the
    ``T - h * w`` leading extra tokens dropped), a ``(tokens, (h, w))`` pair on its own grid, maps as they are."""
    own_grid = _grid_of(output)
    if own_grid is not None:
        output, grid = output[0], own_grid
    elif isinstance(output, (tuple, list)) and output:
        output = output[-1]
    if isinstance(output, Tensor) and output.ndim == 4:
        return output
    if isinstance(output, Tensor) and output.ndim == 3 and grid is not None and output.shape[1] >= grid[0] * grid[1]:
        batch, tokens, channels = output.shape
        patches = output[:, tokens - grid[0] * grid[1]:]  # the cls (and distillation) tokens lead
        return patches.transpose(1, 2).reshape(batch, channels, *grid)
    shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
    cells = "no patch grid was read" if grid is None else f"the patch grid of this forward is {grid[0]}x{grid[1]}"
    masked = isinstance(output, Tensor) and output.ndim == 3 and grid is not None  # fewer tokens than patches
    raise ValueError(f"stage {stage!r} must output feature maps (B, C, h, w) or patch tokens (B, T, C) with T at "
                     f"least h*w ({cells}); got {shape}" + (
                         ": fewer tokens than patches, a backbone that masks patches in its forward (MAE's MAEViT, "
                         "SimMIM, BEiT) has no map of the whole image; ContrastiveCrop serves contrastive methods "
                         "(SimCLR, MoCo, BYOL, SimSiam) whose backbone sees every patch" if masked else ""))


def _grid_of(output: Any) -> tuple[int, int] | None:
    """``(h, w)`` of a ``(tokens (B, T, C), (h, w))`` output (``PatchEmbed``, a Swin stage), else ``None``."""
    if not (isinstance(output, (tuple, list)) and len(output) == 2 and isinstance(output[0], Tensor)
            and output[0].ndim == 3):
        return None
    size = output[1]
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return int(size[0]), int(size[1])
    return None

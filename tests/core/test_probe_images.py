"""ContrastiveCrop on odd images and tensors (session 11 probe): each either cropped as documented or refused."""

from __future__ import annotations

import pytest
import torch

from ccrop_plugins import ContrastiveCrop


def test_a_tensor_with_several_leading_dimensions_is_cropped_as_documented():
    # The crop takes (..., C, H, W) (image_size_of accepts it); a (B, V, C, H, W) stack of views passed the check,
    # then failed inside torch's interpolate: "Input and output must have the same number of spatial dimensions".
    crop = ContrastiveCrop(16)
    images = torch.rand(2, 3, 4, 20, 24, generator=torch.Generator().manual_seed(0))
    params = crop.make_params((20, 24), torch.tensor([[0.1, 0.2, 0.6, 0.9]]), torch.Generator().manual_seed(1))
    out = crop(images, params=params)
    assert out.shape == (2, 3, 4, 16, 16)
    assert torch.allclose(out[1, 2], crop.apply(images[1, 2], params))  # each image cut alike
    assert crop(images[0, 0], params=params).shape == (4, 16, 16)  # (C, H, W) and (B, C, H, W) unchanged


@pytest.mark.parametrize("shape", [(2, 20, 24, 3), (2, 2, 20, 24, 4)])
def test_a_channels_last_batch_is_refused_not_cropped_along_the_wrong_axes(shape):
    # was: only a 3-D (H, W, C) was caught; a (B, H, W, 3) batch was read as 20 channels of 3-pixel-wide images
    with pytest.raises(ValueError, match=r"looks like \(\.\.\., H, W, C\).*movedim\(-1, -3\)"):
        ContrastiveCrop(16)(torch.zeros(shape, dtype=torch.uint8))

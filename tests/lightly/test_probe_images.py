"""The Lightly adapter on odd images (session 11 probe): what the collate refuses, a direct call refuses too."""

from __future__ import annotations

import pytest
import torch

from ccrop_lightly import CCropSimCLRTransform


@pytest.mark.parametrize("image, message", [
    (torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0)) * 255,
     r"a float image tensor must hold values in \[0, 1\] .*got values in \[0.\d+, 25\d.*divide by 255"),
    (torch.zeros(3, 20, 24, dtype=torch.bool), r"tensor of dtype torch.bool; allowed: torch.uint8, torch.uint16"),
    (torch.zeros(3, 20, 24, dtype=torch.int8), r"tensor of dtype torch.int8; allowed"),
])
def test_a_transform_called_directly_checks_a_tensor_as_the_collate_does(image, message):
    # CCropSimCLRTransform()(tensor) outside CCropCollate (a dataset's transform=...): a [0, 255] float tensor gave
    # views saturated to one colour (every value 2.25 after Normalize), silently; bool / int8 tensors failed in
    # torchvision's colour jitter with "Input type bool is not supported", naming no allowed dtype.
    transform = CCropSimCLRTransform(input_size=16)
    with pytest.raises(ValueError, match=message):
        transform(image)
    views = transform(image.float() / 255 if image.is_floating_point() else image.to(torch.uint8))  # the fix works
    assert [tuple(view.shape) for view in views] == [(3, 16, 16)] * 2
    assert len({round(float(v), 4) for v in views[0].flatten()}) > 1 or not image.is_floating_point()

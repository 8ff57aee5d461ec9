"""to_rgb: every image mode and tensor layout the collate and the refresh accept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ccrop_lightly import to_rgb


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "RGB"])
def test_pil_modes_become_rgb(mode):
    image = Image.new("RGB", (5, 4), (10, 200, 30)).convert(mode)
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == (5, 4)


def test_alpha_is_dropped_not_composited():
    rgba = Image.new("RGBA", (2, 2), (10, 200, 30, 0))  # fully transparent
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [10, 200, 30]


def test_tensor_layouts():
    assert to_rgb(torch.rand(4, 5)).shape == (3, 4, 5)
    gray = torch.rand(1, 4, 5)
    assert torch.equal(to_rgb(gray)[2], gray[0])
    rgba = torch.rand(4, 4, 5)
    assert torch.equal(to_rgb(rgba), rgba[:3])
    rgb = torch.rand(3, 4, 5)
    assert to_rgb(rgb) is rgb


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"shape \(2, 4, 5\); allowed: \(H, W\), \(1, H, W\), \(3, H, W\), \(4, H, W\)"):
        to_rgb(torch.rand(2, 4, 5))
    with pytest.raises(TypeError, match="got ndarray"):
        to_rgb(np.zeros((4, 4, 3)))

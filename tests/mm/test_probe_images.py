"""The MM crop on odd images (session 11 probe): an array it cannot cut right is named, never an OpenCV assertion
from a DataLoader worker or a crop along the wrong axes."""

from __future__ import annotations

import itertools
import uuid

import numpy as np
import pytest
from mmengine.registry import TRANSFORMS, DefaultScope

_SCOPES = itertools.count()


def _crop(**options):
    DefaultScope.get_instance(f"probe_images_{uuid.uuid4().hex}_{next(_SCOPES)}", scope_name="mmpretrain")
    return TRANSFORMS.build(dict(type="ContrastiveCrop", scale=16, **options))


def _array(shape):
    return np.random.default_rng(0).integers(0, 200, shape).astype(np.uint8)


@pytest.mark.parametrize("backend", ["cv2", "pillow"])
def test_a_channels_first_array_is_named_not_cut_along_the_wrong_axes(backend):
    # A (C, H, W) array (a step that transposed the image, np.asarray of a tensor) was read as 3 pixels high with
    # 40 channels: cv2 cut and resized it into a (16, 16, 40) "image", silently; pillow advised backend='cv2'.
    with pytest.raises(TypeError, match=r"got uint8 \(3, 32, 40\); it looks like \(C, H, W\) \(else: 3 pixels high, "
                                        r"40 channels\): pass img.transpose\(1, 2, 0\)"):
        _crop(backend=backend)({"img": _array((3, 32, 40)), "sample_idx": 0})
    out = _crop(backend=backend)({"img": _array((3, 32, 40)).transpose(1, 2, 0), "sample_idx": 0})["img"]
    assert out.shape == (16, 16, 3)


@pytest.mark.parametrize("interpolation, channels, most", [("area", 5, 4), ("bilinear", 600, 512)])
def test_more_channels_than_opencvs_resize_takes_are_named(interpolation, channels, most):
    # A multispectral TIFF (LoadImageFromFile(color_type='unchanged')): OpenCV's "(-215:Assertion failed) func != 0
    # && cn <= 4 in function 'resize'" ('area') or "!dsize.empty()" (over 512 channels) from a DataLoader worker.
    crop = _crop(interpolation=interpolation)
    with pytest.raises(TypeError, match=rf"got uint8 \(20, 24, {channels}\); OpenCV's resize with interpolation "
                                        rf"'{interpolation}' takes up to {most} channels"):
        crop({"img": _array((20, 24, channels)), "sample_idx": 0})
    assert _crop()({"img": _array((20, 24, 5)), "sample_idx": 0})["img"].shape == (16, 16, 5)  # bilinear: fine

"""The note refresh_boxes adds to an error raised inside the feature function always names the images' shape, dtype
and device (and the dtype a module's float images were cast to), and gives the float-images hint only where the
dtype may be the cause: images not floating point. It gave the hint for every error, also float32 images to a float32
model that failed for another reason (here: 4 channels for a 3-channel convolution)."""

import pytest
import torch
from torch import nn

from ccrop_plugins import BoxStore, refresh_boxes

HINT = "the refresh loader must yield float images"


def _note(feature_fn, images: torch.Tensor) -> str:
    with pytest.raises(RuntimeError) as raised:  # torch's own error, its type unchanged
        refresh_boxes(feature_fn, [(images, torch.arange(len(images)))], BoxStore(len(images)), progress=False)
    (note,) = raised.value.__notes__
    assert note.startswith(f"refresh_boxes: raised by the feature function on a batch of images of shape "
                           f"{tuple(images.shape)}, dtype {images.dtype}, on cpu (moved to cpu"), note
    return note


def _conv(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, 3, padding=1).to(dtype)


def _images(channels: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(2, channels, 8, 8, generator=torch.Generator().manual_seed(0)).to(dtype)


def test_float32_images_to_a_float32_model_failing_for_another_reason_get_no_dtype_hint():
    note = _note(_conv(), _images(channels=4))  # "expected input[2, 4, 8, 8] to have 3 channels"
    assert note.endswith("(moved to cpu)") and HINT not in note  # was: the hint, blaming the images' dtype


def test_integer_images_get_the_hint_and_cast_float_images_name_the_cast():
    assert HINT in _note(_conv(torch.float64), _images(dtype=torch.uint8))  # never cast: 0..255 is no model input
    note = _note(_conv(torch.float64), _images(channels=4))  # float32 images cast to the float64 model, then 4 != 3
    assert note.endswith("(moved to cpu, cast to the module's torch.float64)") and HINT not in note


def test_a_plain_function_gets_the_hint_for_images_that_are_not_floating_point_only():
    def features(images):
        return nn.functional.conv2d(images, torch.ones(4, 3, 3, 3))

    assert HINT in _note(features, _images(dtype=torch.uint8))
    assert HINT not in _note(features, _images(channels=4))
    assert HINT not in _note(features, _images(channels=4, dtype=torch.float64))  # no parameters to compare with

"""to_rgb: every image mode and tensor layout the collate and the refresh accept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ccrop_lightly import load_image, to_rgb
from ccrop_lightly.image_mode import read_item


@pytest.mark.parametrize("mode", ["L", "LA", "La", "P", "RGBA", "RGBa", "CMYK", "I;16", "RGB"])
def test_pil_modes_become_rgb(mode):
    image = Image.new("RGB", (5, 4), (10, 200, 30)).convert(mode)
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == (5, 4)


def test_alpha_is_dropped_not_composited():
    rgba = Image.new("RGBA", (2, 2), (10, 200, 30, 0))  # fully transparent
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [10, 200, 30]


def test_premultiplied_gray_with_alpha_is_unpremultiplied_as_rgba_is_and_reaches_the_views():
    # PIL converts La to neither RGB nor L ("conversion from La to L not supported"): CCropCollate and the refresh
    # loader failed with PIL's error on such an image, naming neither the image nor a remedy.
    from ccrop_lightly import BoxStore, CCropCollate, CCropSimCLRTransform

    half = np.array([[[50, 50, 50, 128]]], dtype=np.uint8)  # grey 50 at alpha 128: stored premultiplied as 25
    gray = Image.fromarray(half[..., [0, 3]], "LA").convert("La")
    colour = Image.fromarray(half, "RGBA").convert("RGBa")
    assert gray.getpixel((0, 0)) == (25, 128)
    assert np.asarray(to_rgb(gray)).tolist() == np.asarray(to_rgb(colour)).tolist() == [[[49, 49, 49]]]
    collate = CCropCollate(CCropSimCLRTransform(input_size=8, gaussian_blur=0.0), BoxStore(1))
    views, _, _ = collate([(Image.new("La", (12, 12), 0), 0, 0)])
    assert [tuple(v.shape) for v in views] == [(1, 3, 8, 8)] * 2


def test_tensor_layouts():
    assert to_rgb(torch.rand(4, 5)).shape == (3, 4, 5)
    gray = torch.rand(1, 4, 5)
    assert torch.equal(to_rgb(gray)[2], gray[0])
    rgba = torch.rand(4, 4, 5)
    assert torch.equal(to_rgb(rgba), rgba[:3])
    rgb = torch.rand(3, 4, 5)
    assert to_rgb(rgb) is rgb


def test_bad_inputs():
    with pytest.raises(ValueError,
                       match=r"shape \(2, 4, 5\); allowed: \(H, W\), \(1, H, W\), \(3, H, W\), \(4, H, W\)"):
        to_rgb(torch.rand(2, 4, 5))
    with pytest.raises(TypeError, match=r"got a numpy array of shape \(4, 4, 3\) \(float64\)"):
        to_rgb(np.zeros((4, 4, 3)))


def test_sixteen_bit_grayscale_is_scaled_not_white(tmp_path):
    # issue 12: PIL's convert("RGB") clips I;16 at 255, so every 16-bit PNG became white.
    values = np.array([[0, 257 * 64], [257 * 128, 65535]], dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    image = Image.open(path)
    assert image.mode == "I;16"
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].tolist() == [[0, 64], [128, 255]]
    assert (rgb[..., 0] == rgb[..., 2]).all()
    assert np.asarray(to_rgb(load_image(path)))[..., 1].tolist() == [[0, 64], [128, 255]]


def _truncated_jpeg(path):
    noise = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_load_image_names_a_truncated_file(tmp_path):
    path = _truncated_jpeg(tmp_path / "broken.jpg")
    with pytest.raises(OSError, match=r"cannot read image '.*broken\.jpg': OSError: image file is truncated"):
        load_image(path)


def test_read_item_names_the_file_of_image_folder_and_lightly_datasets(tmp_path):
    from lightly.data import LightlyDataset
    from torchvision.datasets import ImageFolder

    folder = tmp_path / "images" / "a"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "good.png")
    _truncated_jpeg(folder / "zz_broken.jpg")
    for dataset in (ImageFolder(str(tmp_path / "images")), LightlyDataset(str(tmp_path / "images"))):
        assert read_item(dataset, 0)[0].size == (8, 8)
        with pytest.raises(OSError, match=r"cannot read image '.*zz_broken\.jpg' \(sample 1 of \w+\): "
                                          r"OSError: image file is truncated"):
            read_item(dataset, 1)


def test_float_tensors_outside_zero_one_are_refused():
    # torchvision's convention is [0, 1]; a [0, 255] float tensor or a normalised one (a dataset that kept
    # its ToTensor + Normalize) gave silently saturated views and refresh inputs.
    assert to_rgb(torch.full((3, 4, 5), 1.0)).shape == (3, 4, 5)
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*got values in \[3, 250\].*divide by 255"):
        to_rgb(torch.linspace(3, 250, 60).reshape(3, 4, 5))
    with pytest.raises(ValueError, match=r"got values in \[-2.1, 2.6\].*already normalised"):
        to_rgb(torch.linspace(-2.1, 2.6, 20).reshape(4, 5))


def test_a_float_pil_image_is_refused_not_made_black():
    # PIL's convert("RGB") of mode F clips at 255 and rounds 0.0-1.0 values to 0 or 1: a black image.
    with pytest.raises(ValueError, match=r"mode F \(32-bit float"):
        to_rgb(Image.fromarray(np.full((4, 5), 0.5, dtype=np.float32)))


def test_a_float_image_file_is_named(tmp_path):
    # In a folder of thousands, to_rgb's 'mode F' refusal named neither the file nor the sample: load_image names the
    # file; a mode F image from another loader gets its sample named by the collate and the refresh loader.
    from ccrop_lightly import BoxStore, CCropCollate, CCropSimCLRTransform, make_refresh_loader

    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(tmp_path / "depth.tif")
    with pytest.raises(OSError, match=r"cannot read image '.*depth\.tif': a 32-bit float image \(PIL mode F\)"):
        load_image(tmp_path / "depth.tif")
    float_image = Image.fromarray(np.full((32, 32), 0.5, dtype=np.float32))
    collate = CCropCollate(CCropSimCLRTransform(input_size=32, gaussian_blur=0.0), BoxStore(1))
    with pytest.raises(ValueError, match=r"mode F") as raised:
        collate([(float_image, 0, 0)])
    assert raised.value.__notes__ == ["the image of batch item 0 (sample 0)"]
    loader = make_refresh_loader([(float_image, 0)], input_size=32, num_workers=0, normalize=None)
    with pytest.raises(ValueError, match=r"mode F") as raised:
        next(iter(loader))
    assert raised.value.__notes__ == ["the image of sample 0 of list"]


def test_the_collate_names_a_dataset_that_normalises(tmp_path):
    from torchvision.transforms import v2

    from ccrop_lightly import BoxStore, CCropCollate, CCropSimCLRTransform

    normalise = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.2] * 3)])
    image = normalise(Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)))
    collate = CCropCollate(CCropSimCLRTransform(input_size=32, gaussian_blur=0.0), BoxStore(1))
    with pytest.raises(ValueError, match="already normalised"):
        collate([(image, 0, 0)])


def test_sixteen_bit_tensors_from_torchvision_io_are_scaled_like_pil(tmp_path):
    # torchvision.io.decode_image reads a 16-bit PNG as torch.uint16: the collate failed in the worker with
    # torchvision's "Input type uint16 is not supported", without naming the dtype or the allowed ones.
    from torchvision.io import decode_image

    from ccrop_lightly import BoxStore, CCropCollate, CCropSimCLRTransform

    values = np.array([[0, 257 * 64], [257 * 128, 65535]], dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    tensor = decode_image(str(path))
    assert tensor.dtype == torch.uint16
    rgb = to_rgb(tensor)
    assert rgb.dtype == torch.uint8 and rgb.shape == (3, 2, 2)
    assert rgb[0].tolist() == np.asarray(to_rgb(Image.open(path)))[..., 0].tolist() == [[0, 64], [128, 255]]
    views, _, _ = CCropCollate(CCropSimCLRTransform(input_size=8), BoxStore(1))([(tensor, 0, 0)])
    assert [tuple(v.shape) for v in views] == [(1, 3, 8, 8)] * 2


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.bool])
def test_other_integer_tensors_are_refused_naming_the_dtype(dtype):
    with pytest.raises(ValueError, match=rf"tensor of dtype {dtype}; allowed: torch.uint8, torch.uint16"):
        to_rgb(torch.zeros(3, 4, 4, dtype=dtype))


def test_a_tensor_that_needs_grad_is_collated_as_its_values():
    # torchvision's colour jitter writes in place: "Output 2 of Unbind is a view and is being modified inplace".
    from ccrop_lightly import CCropCollate, CCropSimCLRTransform
    from ccrop_plugins import BoxStore

    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(0), requires_grad=True)
    collate = CCropCollate(CCropSimCLRTransform(input_size=32, gaussian_blur=0.0), BoxStore(20))
    (first, second), *_ = collate([(image, 0, 0)])
    assert first.shape == second.shape == (1, 3, 32, 32) and not first.requires_grad

"""The refresh loader: un-augmented, resized, RGB images with their dataset index."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from lightly.data import LightlyDataset
from lightly.transforms import SimCLRTransform
from PIL import Image
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import v2

from ccrop_lightly import (
    BoxStore,
    CCropCollate,
    CCropMultiViewTransform,
    CCropSimCLRTransform,
    CCropViewTransform,
    IndexedDataset,
    RefreshImages,
    make_refresh_loader,
)
from ccrop_plugins import ContrastiveCrop, RefreshSampler

CIFAR = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}


def test_items_of_lightly_indexed_and_bare_datasets(quadrant_folder):
    lightly_dataset = LightlyDataset(str(quadrant_folder))
    image, index = RefreshImages(lightly_dataset, 16, normalize=None)[3]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and index == 3
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    # Red top-left quadrant survives the resize: no augmentation.
    assert image[0, :7, :7].min() > 0.99 and image[1:, :7, :7].max() < 0.01
    gray = Image.new("L", (10, 20), 128)
    for dataset in (IndexedDataset([(gray, 0)]), [gray], [(gray, 1)]):
        image, index = RefreshImages(dataset, 8)[0]
        assert image.shape == (3, 8, 8) and index == 0


def test_loader_covers_the_dataset_in_order(quadrant_folder):
    loader = make_refresh_loader(LightlyDataset(str(quadrant_folder)), 16, batch_size=5, num_workers=2)
    assert isinstance(loader.sampler, RefreshSampler) and len(loader.sampler) == 16  # no process group: all
    indices = torch.cat([batch[1] for batch in loader])
    assert indices.tolist() == list(range(16))


class _TwoViews:
    """Two views per item, made without a ``transform`` attribute (a custom multi-view dataset)."""

    def __init__(self, images: LightlyDataset) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[list[Image.Image], int, int]:
        image = self.images[index][0]
        return [image, image], 0, index


def test_bad_inputs_are_named(quadrant_folder):
    transformed = LightlyDataset(str(quadrant_folder), transform=SimCLRTransform(input_size=8))
    with pytest.raises(ValueError,
                       match="item 0 of _TwoViews holds 2 images: the dataset applies a multi-view transform"):
        RefreshImages(_TwoViews(LightlyDataset(str(quadrant_folder))), 8)[0]
    # A dataset whose own transform moves content at random: its boxes would fit none of the views (was accepted).
    for random_steps in (transformed, LightlyDataset(str(quadrant_folder), transform=T.RandomHorizontalFlip())):
        with pytest.raises(ValueError, match=r"the refresh loader: the dataset's own transform holds Random\w+.*, "
                                             r"which changes each image at random on every read"):
            RefreshImages(random_steps, 8)
    with pytest.raises(ValueError, match="input_size must be a positive int or \\(height, width\\); got 0"):
        RefreshImages([], 0)
    with pytest.raises(TypeError, match="map-style"):
        RefreshImages(iter([]), 8)


def test_numpy_integer_sizes_are_ints_and_switches_must_be_bools(quadrant_folder):
    """batch_size=np.int64(8) was "batch_size of the refresh loader must be an integer >= 1; got 8";
    persistent_workers='no' was read as True and distributed='no' accepted."""
    dataset = LightlyDataset(str(quadrant_folder))
    loader = make_refresh_loader(dataset, 8, batch_size=np.int64(8), num_workers=np.int64(1), persistent_workers=True,
                                 distributed=np.False_)
    assert type(loader.batch_size) is int and loader.batch_size == 8 and loader.persistent_workers is True
    assert len(next(iter(loader))[1]) == 8
    with pytest.raises(TypeError, match=r"make_refresh_loader: persistent_workers must be True or False; got 'no'"):
        make_refresh_loader(dataset, 8, num_workers=1, persistent_workers="no")
    with pytest.raises(TypeError, match=r"make_refresh_loader: distributed must be True, False or None \(detect\); "
                                        r"got 'no'"):
        make_refresh_loader(dataset, 8, distributed="no")


def test_a_custom_normalize_of_the_transform_reaches_the_refresh(quadrant_folder):
    # issue 12: a custom normalize= on the transform had to be repeated by hand for the refresh.
    dataset = LightlyDataset(str(quadrant_folder))
    transform = CCropSimCLRTransform(input_size=24, normalize=CIFAR)
    collate = CCropCollate(transform, BoxStore(len(dataset)), dataset=dataset)
    for source in (transform, collate):
        loader = make_refresh_loader(dataset, transform=source, batch_size=4)
        assert loader.dataset.size == (24, 24)
        assert loader.dataset.normalize == {key: pytest.approx(value) for key, value in CIFAR.items()}
    images, _ = next(iter(make_refresh_loader(dataset, transform=transform, batch_size=4)))
    expected = (1.0 - CIFAR["mean"][0]) / CIFAR["std"][0]  # the red quadrant, CIFAR-normalised
    assert images.shape == (4, 3, 24, 24) and float(images[0, 0, 2, 2]) == pytest.approx(expected, abs=1e-4)
    plain = make_refresh_loader(dataset, transform=CCropSimCLRTransform(input_size=24, normalize=None))
    assert plain.dataset.normalize is None
    # An explicit size overrides the views' (localize at another resolution); a different normalize is refused.
    assert make_refresh_loader(dataset, 40, transform=transform).dataset.size == (40, 40)
    with pytest.raises(ValueError, match="normalize=None differs from the training views' normalisation"):
        make_refresh_loader(dataset, transform=transform, normalize=None)
    with pytest.raises(TypeError, match="needs the training transform .* or input_size; got neither"):
        make_refresh_loader(dataset)
    assert make_refresh_loader(dataset, (16, 24), normalize=None).dataset.size == (16, 24)


class _Steps(nn.Module):
    """A module of one's own that runs the steps of an ``nn.ModuleList`` in turn."""

    def __init__(self, *steps) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(steps)

    def forward(self, image):
        for step in self.transforms:
            image = step(image)
        return image


@pytest.mark.parametrize("name", ["DINOTransform", "SwaVTransform", "SimCLRTransform"])
def test_a_lightly_transform_for_the_refresh_is_answered_as_the_collate_answers_it(quadrant_folder, name):
    # make_refresh_loader (so BoxRefreshCallback) said only "transform must be a CCropMultiViewTransform ..., got
    # DINOTransform"; CCropCollate said what to build instead.
    import lightly.transforms

    dataset = LightlyDataset(str(quadrant_folder))
    instead = ("use ccrop_lightly's CCropSimCLRTransform, which takes the same arguments" if name == "SimCLRTransform"
               else "build its views as CCropViewTransform(ContrastiveCrop(size, scale=...)")
    with pytest.raises(TypeError,
                       match=rf"got {name}: lightly's {name} cannot crop around boxes; " + re.escape(instead)):
        make_refresh_loader(dataset, transform=getattr(lightly.transforms, name)())


@pytest.mark.parametrize("nesting", ["Sequential", "Sequential in Compose", "ModuleList in Sequential"])
def test_a_normalize_inside_an_nn_sequential_of_the_view_reaches_the_refresh(quadrant_folder, nesting):
    # torchvision documents nn.Sequential of its v2 transforms as their scriptable form; the refresh looked only into
    # Compose, found no Normalize and localized unnormalised images under normalised views (also through the
    # callback, which reads the CCropCollate's transform), silently.
    to_float = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    normalize = v2.Normalize(mean=CIFAR["mean"], std=CIFAR["std"])
    steps = {
        "Sequential": nn.Sequential(v2.RandomHorizontalFlip(), *to_float, normalize),
        "Sequential in Compose": v2.Compose([v2.RandomHorizontalFlip(), nn.Sequential(*to_float, normalize)]),
        "ModuleList in Sequential": nn.Sequential(v2.RandomHorizontalFlip(), _Steps(*to_float, normalize)),
    }[nesting]
    view = CCropViewTransform(ContrastiveCrop(24), steps)
    transform = CCropMultiViewTransform([view, view])
    dataset = LightlyDataset(str(quadrant_folder))
    collate = CCropCollate(transform, BoxStore(len(dataset)), dataset=dataset)
    for source in (transform, collate):
        loader = make_refresh_loader(dataset, transform=source, batch_size=4)
        assert loader.dataset.normalize == {key: pytest.approx(value) for key, value in CIFAR.items()}
    images, _ = next(iter(make_refresh_loader(dataset, transform=collate, batch_size=4)))
    expected = (1.0 - CIFAR["mean"][0]) / CIFAR["std"][0]  # the red quadrant, CIFAR-normalised as the views are
    assert float(images[0, 0, 2, 2]) == pytest.approx(expected, abs=1e-4)


def test_a_truncated_image_is_named_by_the_refresh_loader(tmp_path, first_batch_raises):
    import numpy as np

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    noise = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(folder / "b.jpg", quality=90)
    data = (folder / "b.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 2])
    loader = make_refresh_loader(LightlyDataset(str(folder)), 8, batch_size=2, num_workers=1)
    first_batch_raises(loader, OSError, r"cannot read image '.*b\.jpg' \(sample 1 of LightlyDataset\)")

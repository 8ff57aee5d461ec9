"""IndexedDataset: (image, target) -> (image, target, index)."""

from __future__ import annotations

import pytest
from torchvision.datasets import ImageFolder

from ccrop_lightly import IndexedDataset


def test_adds_the_index(quadrant_folder):
    base = ImageFolder(str(quadrant_folder))
    dataset = IndexedDataset(base)
    assert len(dataset) == len(base) == 16
    image, target, index = dataset[5]
    assert index == 5 and target == base[5][1] and image.size == (48, 48)


def test_bad_datasets_and_items():
    with pytest.raises(TypeError, match="map-style dataset.*got int"):
        IndexedDataset(3)
    with pytest.raises(ValueError,
                       match=r"item 1 of list is a tuple of 4 items; IndexedDataset expects \(image, target\) pairs"):
        IndexedDataset([("a", 0), ("b", 0, "x", "y")])[1]


def test_lightly_dataset_items_get_the_index(quadrant_folder):
    from lightly.data import LightlyDataset

    dataset = IndexedDataset(LightlyDataset(str(quadrant_folder)))
    image, target, index = dataset[7]
    assert index == 7 and image.size == (48, 48) and isinstance(target, int)


def test_a_truncated_image_is_named_in_the_training_loader(tmp_path, first_batch_raises):
    # issue 12: PIL's "image file is truncated" without the file's name.
    import numpy as np
    from PIL import Image
    from torch.utils.data import DataLoader

    folder = tmp_path / "images" / "cats"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    noise = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(folder / "b.jpg", quality=90)
    data = (folder / "b.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 2])
    loader = DataLoader(IndexedDataset(ImageFolder(str(tmp_path / "images"))), batch_size=2, num_workers=1,
                        collate_fn=lambda batch: batch)
    first_batch_raises(loader, OSError, r"cannot read image '.*cats/b\.jpg' \(sample 1 of ImageFolder\)")


@pytest.mark.parametrize("subset", [False, True])
def test_a_truncated_image_of_a_plain_lightly_dataset_is_named(tmp_path, first_batch_raises, subset):
    # A LightlyDataset without IndexedDataset reads its images in the worker before the collate function: the
    # worker's error was PIL's "image file is truncated (..)", naming no file. CCropCollate(dataset=...) now wraps the
    # folder's loader; the images read as before, and the refresh loader still adds the sample index.
    import numpy as np
    from lightly.data import LightlyDataset
    from PIL import Image
    from torch.utils.data import DataLoader, Subset

    from ccrop_lightly import CCropCollate, CCropSimCLRTransform, make_refresh_loader
    from ccrop_plugins import BoxStore

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(folder / "a.png")
    noise = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(folder / "b.jpg", quality=90)
    data = (folder / "b.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 2])
    lightly_dataset = LightlyDataset(str(folder))
    before = lightly_dataset[0][0].tobytes()
    dataset = Subset(lightly_dataset, [1, 0]) if subset else lightly_dataset
    collate = CCropCollate(CCropSimCLRTransform(input_size=8), BoxStore(2), dataset=dataset)
    assert lightly_dataset[0][0].tobytes() == before  # read as before
    loader = DataLoader(dataset, batch_size=2, num_workers=1, persistent_workers=True, collate_fn=collate)
    first_batch_raises(loader, OSError, r"cannot read image '.*images/b\.jpg': OSError: image file is truncated")
    refresh = make_refresh_loader(lightly_dataset, 8, batch_size=2, num_workers=0)
    first_batch_raises(refresh, OSError, r"cannot read image '.*images/b\.jpg' \(sample 1 of LightlyDataset\): "
                                         r"OSError: image file is truncated")

"""The exported scene folder loads in lightly, torchvision and MMPretrain with the same labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lightly.data import LightlyDataset
from mmpretrain.datasets import CustomDataset
from torchvision.datasets import ImageFolder

from ccrop_scenes import generate_scenes, load_annotations, load_labels, write_image_folder


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory) -> Path:
    scenes = generate_scenes(30, image_size=32, objects_per_image=(1, 3), object_area=(0.03, 0.1), num_classes=5,
                             seed=3)
    return write_image_folder(scenes, tmp_path_factory.mktemp("scenes"))


def test_lightly_torchvision_and_mmpretrain_agree_on_files_and_labels(scene_folder):
    truth = load_labels(scene_folder)
    lightly_set = LightlyDataset(str(scene_folder))
    lightly_labels = {name: int(lightly_set[i][1]) for i, name in enumerate(lightly_set.get_filenames())}
    folder = ImageFolder(str(scene_folder))
    folder_labels = {Path(path).relative_to(scene_folder).as_posix(): label for path, label in folder.samples}
    mm = CustomDataset(data_root=str(scene_folder), pipeline=[])
    mm_labels = {
        Path(mm.get_data_info(i)["img_path"]).relative_to(scene_folder).as_posix(): int(mm.get_data_info(i)["gt_label"])
        for i in range(len(mm))
    }
    assert len(truth) == 30
    assert lightly_labels == truth
    assert folder_labels == truth
    assert mm_labels == truth
    # annotations.json at the root is not mistaken for an image by any loader.
    assert folder.classes == lightly_set.dataset.classes == list(mm.CLASSES) == sorted({n.split("/")[0] for n in truth})


def test_loaded_pixels_equal_the_generated_images(scene_folder):
    scenes = generate_scenes(30, image_size=32, objects_per_image=(1, 3), object_area=(0.03, 0.1), num_classes=5,
                             seed=3)
    dataset = LightlyDataset(str(scene_folder))
    for position, name in enumerate(dataset.get_filenames()[:5]):
        index = int(Path(name).stem)
        assert np.array_equal(np.asarray(dataset[position][0].convert("RGB")), scenes.images[index])
        boxes = load_annotations(scene_folder)[name]
        assert np.allclose(boxes, scenes.boxes[index], atol=1 / 32)

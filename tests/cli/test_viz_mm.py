"""``ccrop viz --checkpoint`` on an MMPretrain run's checkpoint: the mm hook's store is indexed as MMPretrain's
``CustomDataset`` lists the folder (its default extensions, no ``.tiff`` / ``.webp``; no hidden files), not as
torchvision / Lightly do. The folder it trained on was refused ("the box store holds 3 samples but ... has 5
images"); another folder of the same list count is still refused, by the ``images`` digest the hook saves."""

from __future__ import annotations

import inspect
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmpretrain.datasets import CustomDataset
from PIL import Image

import ccrop_cli.output.viz as viz
from ccrop_cli.main import main
from ccrop_cli.output.image_folder import IMAGE_EXTENSIONS, list_image_files
from ccrop_mm.checkpoint_boxes import CHECKPOINT_KEY, checkpoint_entry, image_list_digest
from ccrop_plugins import BoxSets, BoxStore, images_digest

NAMES = ("cat/a.png", "cat/b.webp", "cat/c.tiff", "cat/.d.png", "cat/sub/e.png", "dog/f.PNG", "dog/g.tif",
         "dog/.hidden/h.png", "top.png")
"""png, webp, tiff, a hidden dot-file, a file in a hidden folder (mmengine searches those), an image at the top
(``with_label=False`` reads it, class folders do not)."""


@pytest.fixture
def mixed(tmp_path) -> Path:
    root = tmp_path / "mixed"
    formats = {".webp": "WEBP", ".tiff": "TIFF", ".tif": "TIFF"}
    for index, name in enumerate(NAMES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16 + 2 * index, 24), (10 * index, 80, 160)).save(
            path, format=formats.get(path.suffix.lower(), "PNG"))
    return root


def _dataset_files(dataset: CustomDataset, root: Path) -> list[str]:
    return [Path(os.path.relpath(dataset.get_data_info(i)["img_path"], root)).as_posix() for i in range(len(dataset))]


def _box_of(name: str) -> list[float]:
    """A box of its own for each file: drawn on another image, it shows."""
    k = NAMES.index(name)
    return [0.05 * k, 0.04 * k, 0.5 + 0.05 * k, 0.6]


def _mm_checkpoint(path: Path, files: list[str], digest: str | None) -> Path:
    """A checkpoint as the mm hook saves it: ``checkpoint['ccrop']`` (its own ``checkpoint_entry``) with one box set
    per image of the run's dataset (``files``, in its index order)."""
    store = BoxStore(len(files), max_boxes=2)
    store.update(list(range(len(files))), BoxSets.from_lists([torch.tensor([_box_of(name)]) for name in files]))
    checkpoint = {"meta": {"epoch": 2, "iter": 6}, "state_dict": {"backbone.weight": torch.zeros(2)},
                  CHECKPOINT_KEY: checkpoint_entry(store, False, 6, digest)}
    torch.save(checkpoint, path)
    return path


def test_mmpretrain_extensions_are_custom_datasets():
    from ccrop_cli.output.image_folder import MMPRETRAIN_EXTENSIONS

    default = inspect.signature(CustomDataset.__init__).parameters["extensions"].default
    assert MMPRETRAIN_EXTENSIONS == tuple(default)
    assert set(MMPRETRAIN_EXTENSIONS) < set(IMAGE_EXTENSIONS)


@pytest.mark.parametrize("with_label", [True, False])
@pytest.mark.parametrize("torchvisions", [False, True])
def test_the_mm_listing_is_custom_datasets(mixed, with_label, torchvisions):
    from ccrop_cli.output.image_folder import MMPRETRAIN_EXTENSIONS, list_mmpretrain_files

    extensions = IMAGE_EXTENSIONS if torchvisions else MMPRETRAIN_EXTENSIONS
    dataset = CustomDataset(data_root=str(mixed), with_label=with_label, extensions=extensions)
    assert list_mmpretrain_files(mixed, with_label=with_label, extensions=extensions) == _dataset_files(dataset, mixed)


@pytest.mark.parametrize("with_label", [True, False])
def test_viz_draws_the_mm_hooks_boxes_on_the_images_it_trained_on(mixed, tmp_path, monkeypatch, capsys, with_label):
    dataset = CustomDataset(data_root=str(mixed), with_label=with_label)
    files = _dataset_files(dataset, mixed)
    assert len(files) < len(list_image_files(mixed))  # the webp, tiff and hidden files are not the run's
    checkpoint = _mm_checkpoint(tmp_path / "epoch_2.pth", files, image_list_digest(dataset))
    drawn = {}

    def draw_box_sets(images, predicted, truth, path, titles):
        drawn.update(predicted=predicted, titles=titles)
        return path

    monkeypatch.setattr(viz, "draw_box_sets", draw_box_sets)
    args = ["viz", str(mixed), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--images", "16",
            "--pairs", "1", "--pair-images", "2"]
    assert main(args) == 0, capsys.readouterr().err
    assert drawn["titles"] == files
    for name, boxes in zip(drawn["titles"], drawn["predicted"]):
        np.testing.assert_allclose(boxes, [_box_of(name)], atol=1e-5, err_msg=name)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pairs_0.png", "pairs_1.png"]
    assert f"ccrop viz: {len(files)} images" in capsys.readouterr().out


def test_an_mm_checkpoint_without_a_digest_is_matched_by_count(mixed, tmp_path, capsys):
    files = _dataset_files(CustomDataset(data_root=str(mixed)), mixed)
    checkpoint = _mm_checkpoint(tmp_path / "old.pth", files, None)
    out = tmp_path / "out"
    assert main(["viz", str(mixed), "--checkpoint", str(checkpoint), "--out", str(out), "--pair-images", "1"]) == 0
    assert f"ccrop viz: {len(files)} images" in capsys.readouterr().out


def test_viz_refuses_an_mm_checkpoint_of_another_folder(mixed, tmp_path, capsys):
    dataset = CustomDataset(data_root=str(mixed))
    checkpoint = _mm_checkpoint(tmp_path / "epoch_2.pth", _dataset_files(dataset, mixed), image_list_digest(dataset))
    options = ["--checkpoint", str(checkpoint), "--pair-images", "1"]

    renamed = shutil.copytree(mixed, tmp_path / "renamed")  # the same counts, one other file
    (renamed / "cat/a.png").rename(renamed / "cat/z.png")
    assert main(["viz", str(renamed), *options, "--out", str(tmp_path / "o1")]) == 2
    error = capsys.readouterr().err
    assert "the boxes in the mm hook's checkpoint" in error and "were made on another list of 5 images" in error
    assert "give the folder it was trained on" in error

    grown = shutil.copytree(mixed, tmp_path / "grown")
    Image.new("RGB", (16, 16)).save(grown / "dog/new.png")
    assert main(["viz", str(grown), *options, "--out", str(tmp_path / "o2")]) == 2
    error = capsys.readouterr().err
    assert "holds 5 samples but" in error and "has 6 images as MMPretrain's CustomDataset lists it" in error
    assert not list((tmp_path / "o1").glob("*.png")) and not list((tmp_path / "o2").glob("*.png"))


def test_a_lightly_checkpoint_keeps_the_torchvision_list(mixed, tmp_path, capsys):
    files = list_image_files(mixed)
    store = BoxStore(len(files), max_boxes=2)
    torch.save({"callbacks": {"BoxRefreshCallback": {"store": store.state_dict(), "images": images_digest(files)}}},
               tmp_path / "last.ckpt")
    out = tmp_path / "out"
    assert main(["viz", str(mixed), "--checkpoint", str(tmp_path / "last.ckpt"), "--out", str(out),
                 "--pair-images", "1"]) == 0
    assert f"ccrop viz: {len(files)} images" in capsys.readouterr().out


def test_a_concat_dataset_checkpoint_is_drawn_from_the_parts_parent_folder(tmp_path, capsys):
    """An MM run on ConcatDataset([folder a, folder b]) keeps a's images, then b's (the digest over the parts in
    order): the parent folder, whose class folders a and b list them in that order, draws it; one part's folder is
    refused with the hint (it named no way forward)."""
    parent = tmp_path / "parent"
    for name in ("a/1.png", "a/2.png", "b/3.png", "b/4.png", "b/5.png"):
        (parent / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 16), (40 * int(name[2]), 80, 160)).save(parent / name)
    parts = [CustomDataset(data_root=str(parent / "a"), with_label=False),
             CustomDataset(data_root=str(parent / "b"), with_label=False)]
    files = [name for part in parts for name in _dataset_files(part, parent)]
    assert files == ["a/1.png", "a/2.png", "b/3.png", "b/4.png", "b/5.png"]
    store = BoxStore(len(files), max_boxes=2)
    store.update(list(range(len(files))), BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.6, 0.7]])] * len(files)))
    checkpoint = tmp_path / "concat.pth"
    torch.save({"meta": {"epoch": 2}, CHECKPOINT_KEY: checkpoint_entry(store, False, 6, image_list_digest(*parts))},
               checkpoint)
    options = ["--checkpoint", str(checkpoint), "--pair-images", "1"]
    assert main(["viz", str(parent), *options, "--out", str(tmp_path / "o1")]) == 0
    assert main(["viz", str(parent / "b"), *options, "--out", str(tmp_path / "o2")]) == 2
    assert ("(a run on a ConcatDataset of folders: give a folder that lists their images in the parts' order, such as "
            "their parent folder when the parts are its subfolders in name order)") in capsys.readouterr().err

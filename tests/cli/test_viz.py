"""Pictures, box JSON export/import, checkpoint loading, the image-folder order and ``ccrop viz``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightly.data import LightlyDataset
from PIL import Image
from torchvision.datasets import ImageFolder

from ccrop_cli.output.box_json import export_boxes, find_store_state, import_boxes, load_store_from_checkpoint
from ccrop_cli.output.image_folder import list_image_files
from ccrop_cli.main import main
from ccrop_cli.output.pictures import draw_box_sets, draw_heatmaps, draw_view_pairs
from ccrop_plugins import BoxSets, BoxStore
from ccrop_scenes import generate_scenes, write_image_folder


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(12, image_size=32, objects_per_image=(1, 3), object_area=(0.05, 0.15), seed=7)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, scenes):
    root = tmp_path_factory.mktemp("scenes")
    write_image_folder(scenes, root)
    return root


def _store(num_samples: int, filled: list[int]) -> BoxStore:
    store = BoxStore(num_samples, max_boxes=3)
    box_sets = BoxSets.from_lists(
        [torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 0.9, 1.0]])[: 1 + i % 2] for i in filled],
        [torch.tensor([2.0, 1.0])[: 1 + i % 2] for i in filled],
    )
    store.update(filled, box_sets)
    store.update(filled[:1], BoxSets.from_lists([torch.tensor([[0.0, 0.0, 0.25, 0.25]])]))  # version 2
    return store


def _assert_same_store(got: BoxStore, expected: BoxStore) -> None:
    assert len(got) == len(expected) and got.version == expected.version
    for index in range(len(expected)):
        a, b = got.get(index), expected.get(index)
        assert (a is None) == (b is None), index
        if a is not None:
            assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6)


def _decodes(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


def test_pictures_are_png_files_that_decode(tmp_path, scenes):
    heat = np.stack([(mask > 0).astype(np.float32) for mask in scenes.masks])
    widths = [
        _decodes(draw_heatmaps(scenes.images, heat, tmp_path / "heat.png"))[0],
        _decodes(draw_box_sets(scenes.images, scenes.boxes, scenes.boxes, tmp_path / "boxes.png"))[0],
        _decodes(
            draw_view_pairs(
                scenes.images[0],
                {"RandomResizedCrop": [([0, 0, 0.5, 0.5], [0.2, 0.2, 1, 1])],
                 "multi": [([0, 0, 1, 1], [0.1, 0, 0.9, 1])]},
                tmp_path / "pairs.png",
                ground_truth=scenes.boxes[0],
            )
        )[0],
    ]
    assert min(widths) >= 300  # upscaled: legible, not 32 px
    with pytest.raises(TypeError, match="uint8"):
        draw_heatmaps(scenes.images.astype(np.float32), heat, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="heatmaps must have shape"):
        draw_heatmaps(scenes.images, heat[:3], tmp_path / "bad.png")


def test_a_view_at_the_edge_of_a_one_pixel_picture_is_drawn(tmp_path):
    # ccrop viz --display-size 1: a view whose corner rounded to the picture's edge was an empty slice (numpy's
    # "zero-size array to reduction operation minimum" in imshow)
    pixel = np.full((1, 1, 3), 200, dtype=np.uint8)
    pairs = {"RandomResizedCrop": [([0.6, 0.6, 1.0, 1.0], [0.0, 0.0, 0.4, 0.4])]}
    assert _decodes(draw_view_pairs(pixel, pairs, tmp_path / "pairs.png"))[0] > 0


def test_json_round_trip_by_file_name_and_by_index(tmp_path):
    store = _store(5, [0, 2, 3])
    keys = [f"c/{i}.png" for i in range(5)]
    path = export_boxes(store, keys, tmp_path / "boxes.json")
    document = json.loads(path.read_text())
    assert document["keyed_by"] == "file_name" and document["store_version"] == 2
    assert document["samples"]["c/1.png"] == {"boxes": [], "scores": []}
    _assert_same_store(import_boxes(path, keys), store)

    # Another dataset order: each file keeps its boxes.
    reordered = import_boxes(path, keys[::-1])
    assert torch.allclose(reordered.get(4)[0], store.get(0)[0])
    assert reordered.get(3) is None

    by_index = export_boxes(store, None, tmp_path / "by_index.json")
    assert json.loads(by_index.read_text())["keyed_by"] == "index"
    _assert_same_store(import_boxes(by_index), store)


@pytest.mark.parametrize("keys", ["abc", [1, 2, 3], [None, "b", "c"]])
def test_export_names_keys_that_are_not_file_names(tmp_path, keys):
    # "abc" was written as the keys 'a', 'b', 'c' (a string read as its characters); ints as '1', '2', '3'
    with pytest.raises(TypeError, match="keys must be a list of file names"):
        export_boxes(_store(3, [0, 1, 2]), keys, tmp_path / "boxes.json")


def test_import_rejects_boxes_of_another_dataset(tmp_path):
    path = export_boxes(_store(3, [0]), ["a.png", "b.png", "c.png"], tmp_path / "boxes.json")
    with pytest.raises(ValueError, match="not in this dataset"):
        import_boxes(path, ["a.png", "b.png", "x.png"])
    (tmp_path / "other.json").write_text(json.dumps({"boxes": []}))
    with pytest.raises(ValueError, match="not a ccrop box file"):
        import_boxes(tmp_path / "other.json")
    with pytest.raises(ValueError, match="got 2 keys"):
        export_boxes(_store(3, [0]), ["a.png", "b.png"], tmp_path / "short.json")


def test_import_without_keys_of_a_file_keyed_by_name_says_to_pass_them(tmp_path):
    # was "holds boxes for 3 samples not in this dataset, e.g. ['a.png', ...]; the dataset has 3 samples, e.g.
    # ['0', '1', '2']": there was no dataset, only a missing keys= argument
    path = export_boxes(_store(3, [0]), ["a.png", "b.png", "c.png"], tmp_path / "boxes.json")
    with pytest.raises(ValueError, match=r"boxes.json is keyed by file name \(e.g. \['a.png', 'b.png', 'c.png'\]\); "
                                         r"pass keys=<the dataset's file names in index order>"):
        import_boxes(path)
    assert len(import_boxes(path, ["a.png", "b.png", "c.png"])) == 3


def test_store_found_anywhere_in_a_saved_checkpoint(tmp_path):
    store = _store(6, [1, 4, 5])
    checkpoint = {
        "epoch": 3,
        "state_dict": {"backbone.weight": torch.zeros(2)},
        "callbacks": {"SomeCallback{'x': 1}": {"other": [1, 2], "nested": [{"store": store.state_dict()}]}},
    }
    torch.save(checkpoint, tmp_path / "last.ckpt")
    _assert_same_store(load_store_from_checkpoint(tmp_path / "last.ckpt"), store)
    assert find_store_state({"a": [1, {"b": 2}]}) is None
    torch.save({"state_dict": {}}, tmp_path / "empty.ckpt")
    with pytest.raises(ValueError, match="no box store found"):
        load_store_from_checkpoint(tmp_path / "empty.ckpt")


def test_file_order_matches_imagefolder_and_lightly(folder, tmp_path):
    files = list_image_files(folder)
    assert files == LightlyDataset(str(folder)).get_filenames()
    assert files == [Path(p).relative_to(folder).as_posix() for p, _ in ImageFolder(str(folder)).samples]
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("b.png", "a.jpg", "c.PNG"):
        Image.new("RGB", (8, 8)).save(flat / name, format="PNG")
    (flat / "notes.txt").write_text("not an image")
    assert list_image_files(flat) == LightlyDataset(str(flat)).get_filenames() == ["a.jpg", "b.png", "c.PNG"]


def test_viz_draws_boxes_and_pairs_from_json_and_checkpoint(folder, scenes, tmp_path):
    files = list_image_files(folder)
    by_index = {int(name.split("/")[1].split(".")[0]): i for i, name in enumerate(files)}
    store = BoxStore(len(files), max_boxes=4)
    store.update(
        [by_index[i] for i in range(len(scenes))],
        BoxSets.from_lists([torch.from_numpy(b) for b in scenes.boxes]),
    )
    export_boxes(store, files, tmp_path / "boxes.json")
    torch.save({"callbacks": {"box_store": store.state_dict()}}, tmp_path / "run.ckpt")
    for source in (["--boxes", str(tmp_path / "boxes.json")], ["--checkpoint", str(tmp_path / "run.ckpt")]):
        out = tmp_path / source[0].strip("-")
        args = ["viz", str(folder), *source, "--out", str(out), "--pairs", "2", "--pair-images", "2", "--images", "6"]
        assert main(args) == 0
        written = sorted(p.name for p in out.iterdir())
        assert written == ["box_sets.png", "pairs_0.png", "pairs_1.png"]
        assert all(_decodes(out / name)[0] > 300 for name in written)


def test_viz_refuses_the_boxes_of_another_list_of_images(folder, tmp_path, capsys):
    """A BoxRefreshCallback checkpoint drawn on a folder of the same count but other files (one renamed: the order
    shifts) drew each box on another image, silently; the digest the callback saves beside the store (the same as
    the mm hook's) tells. The folder it was trained on, moved, draws."""
    import shutil

    from ccrop_lightly.callback import image_list_digest

    files = list_image_files(folder)
    state = {"store": _store(len(files), list(range(len(files)))).state_dict(),
             "images": image_list_digest(LightlyDataset(str(folder)))}
    torch.save({"callbacks": {"BoxRefreshCallback": state}}, tmp_path / "run.ckpt")
    moved = shutil.copytree(folder, tmp_path / "moved")
    options = ["--checkpoint", str(tmp_path / "run.ckpt"), "--pairs", "1", "--pair-images", "1", "--images", "2"]
    assert main(["viz", str(moved), *options, "--out", str(tmp_path / "o1")]) == 0

    renamed = shutil.copytree(folder, tmp_path / "renamed")
    first = renamed / files[0]
    first.rename(first.with_name("zz_" + first.name))
    (renamed / "annotations.json").unlink(missing_ok=True)  # a user's folder: no ground truth to trip over
    assert main(["viz", str(renamed), *options, "--out", str(tmp_path / "o2")]) == 2
    assert (f"were made on another list of images (the same count, {len(files)}, but other files or another order)"
            in capsys.readouterr().err)


def test_viz_refuses_a_store_of_another_size(folder, tmp_path, capsys):
    torch.save({"store": BoxStore(3).state_dict()}, tmp_path / "small.ckpt")
    assert main(["viz", str(folder), "--checkpoint", str(tmp_path / "small.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "the box store holds 3 samples but" in capsys.readouterr().err


def test_an_annotations_json_that_is_a_folder_is_named(folder, tmp_path, capsys):
    # Was read as "no ground truth": the pictures drawn without it, without a word (ccrop demo: no recall measured).
    import shutil

    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / "annotations.json").unlink()
    (copy / "annotations.json").mkdir()
    files = list_image_files(copy)
    export_boxes(_store(len(files), [0]), files, tmp_path / "boxes.json")
    assert main(["viz", str(copy), "--boxes", str(tmp_path / "boxes.json"), "--out", str(tmp_path / "o")]) == 2
    assert "annotations.json is not a file (a folder?)" in capsys.readouterr().err

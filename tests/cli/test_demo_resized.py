"""``ccrop demo --data``: large images are read from a resized copy made once; small folders are used in place."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from ccrop_cli.demo.resized import COPY_FOLDER, MANIFEST, resized_copy
from ccrop_cli.demo.user_data import list_images
from ccrop_cli.errors import UserError


def _image(path, size, mode="RGB", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, quality=90)
    return path


def test_a_folder_of_small_images_is_used_in_place(tmp_path):
    data = tmp_path / "data"
    for index, size in enumerate([(64, 48), (40, 64), (64, 64)]):
        _image(data / f"img{index}.png", size)
    names = list_images(data)
    assert resized_copy(data, names, tmp_path / "out", side=64) == (data, 0, 0.0)
    assert not (tmp_path / "out").exists()


def test_large_images_are_shrunk_small_ones_copied_names_and_order_kept(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    _image(data / "cats" / "b big.JPG", (300, 200))  # upper-case extension, a space in the name
    _image(data / "cats" / "a_gray.jpg", (90, 400), mode="L")
    _image(data / "dogs" / "ü.png", (50, 40), mode="RGBA")  # small: copied byte for byte
    _image(data / "dogs" / "palette.png", (128, 128), mode="P")
    names = list_images(data)
    folder, resized, seconds = resized_copy(data, names, out, side=64)
    assert folder == out / COPY_FOLDER and resized == 3 and seconds > 0
    assert list_images(folder) == names  # dataset-index order of the copy = the user's folder's
    with Image.open(folder / "cats" / "b big.JPG") as image:
        assert image.size == (96, 64) and image.mode == "RGB"  # shortest side 64, aspect kept
    with Image.open(folder / "cats" / "a_gray.jpg") as image:
        assert image.size == (64, 284) and image.mode == "RGB"
    with Image.open(folder / "dogs" / "palette.png") as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    assert (folder / "dogs" / "ü.png").read_bytes() == (data / "dogs" / "ü.png").read_bytes()
    # The copy looks like the image (each channel's mean within a few levels).
    with Image.open(data / "cats" / "b big.JPG") as original, Image.open(folder / "cats" / "b big.JPG") as copy:
        assert np.allclose(np.asarray(original).mean((0, 1)), np.asarray(copy).mean((0, 1)), atol=3)


def test_the_copy_is_reused_and_made_again_when_a_source_changes(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    _image(data / "a.jpg", (200, 150))
    _image(data / "b.jpg", (150, 200), seed=1)
    names = list_images(data)
    folder, _, seconds = resized_copy(data, names, out, side=64)
    assert seconds > 0
    made = os.stat(folder / "a.jpg").st_mtime_ns
    assert resized_copy(data, names, out, side=64) == (folder, 2, 0.0)  # reused
    assert os.stat(folder / "a.jpg").st_mtime_ns == made
    (folder / "stray.png").write_bytes((folder / "a.jpg").read_bytes())
    _image(data / "a.jpg", (210, 150), seed=2)  # the source changed: a fresh copy, the stray file gone
    assert resized_copy(data, names, out, side=64)[2] > 0
    assert list_images(folder) == names
    with Image.open(folder / "a.jpg") as image:
        assert image.size == (90, 64)
    assert json.loads((out / MANIFEST).read_text())["side"] == 64
    assert resized_copy(data, names, out, side=48)[2] > 0  # another size: made again


def test_a_foreign_folder_where_the_copy_goes_is_refused_not_removed(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    _image(data / "a.jpg", (200, 150))
    _image(data / "b.jpg", (200, 150))
    (out / COPY_FOLDER).mkdir(parents=True)
    (out / COPY_FOLDER / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="was not made by ccrop demo"):
        resized_copy(data, list_images(data), out, side=64)
    assert (out / COPY_FOLDER / "mine.txt").read_text() == "keep"


def test_a_copy_stopped_midway_is_made_again(tmp_path, monkeypatch):
    from ccrop_cli.demo import resized

    data, out = tmp_path / "data", tmp_path / "out"
    for index in range(3):
        _image(data / f"img{index}.jpg", (200, 150), seed=index)
    names = list_images(data)
    real_copy, copied = resized._copy, []

    def copy_then_stop(*args):  # Ctrl-C after the first image
        if copied:
            raise KeyboardInterrupt
        copied.append(real_copy(*args))

    monkeypatch.setattr(resized, "_copy", copy_then_stop)
    with pytest.raises(KeyboardInterrupt):
        resized_copy(data, names, out, side=64)
    monkeypatch.setattr(resized, "_copy", real_copy)
    # Before: 'OUT/data/resized exists but was not made by ccrop demo' on every later run with this --out.
    folder, count, seconds = resized_copy(data, names, out, side=64)
    assert folder == out / COPY_FOLDER and count == 3 and seconds > 0
    assert list_images(folder) == names and (out / MANIFEST).is_file()
    assert not (out / "data" / "resized.partial").exists()


def test_a_copy_that_cannot_be_written_is_a_user_error(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    _image(data / "a.jpg", (200, 150))
    _image(data / "b.jpg", (200, 150))
    out.mkdir()
    (out / "data").write_text("a file where the copy's folder goes")
    with pytest.raises(UserError, match="cannot write the resized copy of --data in"):
        resized_copy(data, list_images(data), out, side=64)


def test_data_inside_the_copy_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    data = out / COPY_FOLDER
    _image(data / "a.jpg", (200, 150))
    _image(data / "b.jpg", (200, 150))
    with pytest.raises(UserError, match="lies inside"):
        resized_copy(data, list_images(data), out, side=64)
    assert (data / "a.jpg").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["lightly", "mmpretrain"])
def test_demo_on_large_images_trains_on_the_copy_and_measures_the_users_boxes(tmp_path, framework):
    from ccrop_cli.main import main
    from ccrop_scenes import write_image_folder
    from ccrop_scenes.second_look import generate_second_look

    data, out = tmp_path / "data", tmp_path / "out"
    write_image_folder(generate_second_look(24, image_size=128, seed=0), data)  # --quick: views 32, refresh 48
    args = ["demo", "--quick", "--framework", framework, "--data", str(data), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert (report["resized"].startswith("resized copies of 24 of 24 images")
            and str(out / COPY_FOLDER) in report["resized"])
    assert "Trained on resized copies of 24 of 24 images" in (out / "report.md").read_text()
    assert report["config"]["data"] == str(data)
    assert report["pair_quality"]["multi"]["oracle"]["pairs"] == 24 * 4
    assert 0.0 <= report["final_box_recall"]["multi (box sets)"] <= 1.0
    with Image.open(out / COPY_FOLDER / list_images(data)[0]) as image:
        assert image.size == (96, 96)


@pytest.mark.parametrize("sizes, detail", [
    ([(300, 200), (200, 300)], "(shortest side over 128 px, shrunk to 128 px) in"),  # all shrunk: no "rest"
    ([(300, 200), (64, 64)], "(shortest side over 128 px, shrunk to 128 px; the rest copied as they are) in"),
])
def test_the_copy_note_says_the_rest_is_copied_only_when_there_is_a_rest(tmp_path, capsys, sizes, detail):
    # "resized copies of 400 of 400 images (...; the rest copied as they are)" spoke of a rest there was not.
    from ccrop_cli.demo.command import _resized_copy
    from ccrop_cli.demo.config import DemoConfig

    data = tmp_path / "data"
    for index, size in enumerate(sizes):
        _image(data / f"img{index}.png", size)
    folder, note = _resized_copy(data, list_images(data), tmp_path / "out", DemoConfig(), turned=0)
    count = sum(min(size) > 128 for size in sizes)
    assert note.startswith(f"resized copies of {count} of 2 images {detail} {folder}, made in ")

"""``ccrop viz`` on images with an EXIF orientation (phone photos): the ground truth of ``annotations.json`` is
upright (the shared reader), the box store is in the frame its loader read (Lightly: stored pixels; MMPretrain:
upright), so viz asks which (``--exif``) and draws images and boxes in that one frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import ccrop_cli.output.viz as viz
from ccrop_cli.demo.upright import boxes_to_stored
from ccrop_cli.main import main
from ccrop_cli.output.box_json import export_boxes
from ccrop_plugins import BoxSets, BoxStore

ORIENTATION = 0x0112


def _stored(orientation: int) -> Image.Image:
    """A 48x32 stored image with a white object at x 4-19, y 4-13 of its stored pixels."""
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[4:14, 4:20] = 255
    image = Image.fromarray(pixels)
    image.getexif()[ORIENTATION] = orientation
    return image


def _object_box(image: Image.Image) -> np.ndarray:
    """The white object's normalised x0, y0, x1, y1 (pixel edges)."""
    ys, xs = np.nonzero(np.asarray(image.convert("L")) > 127)
    return np.array([xs.min() / image.width, ys.min() / image.height, (xs.max() + 1) / image.width,
                     (ys.max() + 1) / image.height])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_boxes_map_back_onto_the_stored_pixels(orientation):
    stored = _stored(orientation)
    upright = ImageOps.exif_transpose(stored)
    mapped = boxes_to_stored(_object_box(upright)[None], orientation)[0]
    np.testing.assert_allclose(mapped, _object_box(stored), atol=1e-6)


@pytest.fixture
def phone_folder(tmp_path) -> tuple[Path, Path]:
    """A folder of a phone photo (EXIF orientation 6) and a plain image, with upright COCO boxes of their objects."""
    root = tmp_path / "images"
    root.mkdir()
    images = []
    for index, orientation in enumerate((6, 1)):
        stored = _stored(orientation)
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        stored.save(root / f"{index}.jpg", quality=95, exif=exif.tobytes())
        upright = ImageOps.exif_transpose(stored)
        x0, y0, x1, y1 = _object_box(upright) * np.array([upright.width, upright.height] * 2)
        images.append(({"id": index, "file_name": f"{index}.jpg"},
                       {"image_id": index, "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}))
    (root / "annotations.json").write_text(json.dumps({"images": [i for i, _ in images],
                                                       "annotations": [a for _, a in images]}))
    store = BoxStore(2)
    store.update([0, 1], BoxSets.from_lists([np.array([[0.1, 0.1, 0.5, 0.5]], np.float32)] * 2))
    return root, export_boxes(store, ["0.jpg", "1.jpg"], tmp_path / "boxes.json")


def _viz(root: Path, boxes: Path, *options: str) -> int:
    return main(["viz", str(root), "--boxes", str(boxes), "--out", str(root.parent / "viz"), "--images", "2",
                 "--pair-images", "2", "--pairs", "1", "--display-size", "64", *options])


def test_turned_images_without_exif_say_which_frames_there_are(phone_folder, capsys):
    assert _viz(*phone_folder) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ccrop viz: error: 1 of the images to draw carry an EXIF orientation (0.jpg (orientation 6)); the "
                   "box store's boxes are in the pixels its training read: the stored ones with Lightly (PIL), the "
                   "upright ones with MMPretrain (OpenCV). Say which to draw: --exif stored or --exif upright"]


@pytest.mark.parametrize("frame", ["stored", "upright"])
def test_ground_truth_lands_on_its_object_in_either_frame(phone_folder, frame, monkeypatch):
    # Before: the stored pixels were drawn with the upright boxes of the shared reader: the box of the phone photo
    # lay beside its object (and the view pairs were sampled on the stored, sideways size).
    drawn = []
    monkeypatch.setattr(viz, "draw_box_sets", lambda images, predicted, truth, path, titles: drawn.extend(
        zip(images, truth)) or path)
    monkeypatch.setattr(viz, "draw_view_pairs", lambda picture, pairs, path, ground_truth: drawn.append(
        (picture, ground_truth)) or path)
    assert _viz(*phone_folder, "--exif", frame) == 0
    assert len(drawn) == 4
    for picture, truth in drawn:
        x0, y0, x1, y1 = np.round(truth[0] * 64).astype(int)
        inside = picture[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].mean()
        assert inside > 200 and picture.mean() < 100, (frame, truth)
    phone = drawn[0][0]  # upright: a portrait object (taller than wide) in the picture; stored: a landscape one
    ys, xs = np.nonzero(phone.mean(axis=2) > 127)
    assert (np.ptp(ys) > np.ptp(xs)) == (frame == "upright")

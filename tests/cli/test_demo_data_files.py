"""``ccrop demo --data``: the files both frameworks read alike, and a clear error before training otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccrop_cli.demo.user_data import check_images, list_images
from ccrop_cli.errors import UserError
from ccrop_cli.main import main


def _folder(root: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(root / f"img{index}.png")
    return root


def test_gif_files_are_not_images_of_the_folder(tmp_path):
    _folder(tmp_path)
    Image.new("P", (40, 40)).save(tmp_path / "anim.gif")  # Lightly and MMPretrain's loaders skip or fail on it
    assert list_images(tmp_path) == ["img0.png", "img1.png", "img2.png"]
    check_images(tmp_path, list_images(tmp_path))


def test_grayscale_palette_and_rgba_images_pass(tmp_path):
    _folder(tmp_path, 1)
    Image.new("L", (30, 20), 128).save(tmp_path / "gray.png")
    Image.new("P", (30, 20)).save(tmp_path / "palette.png")
    Image.new("RGBA", (30, 20), (10, 20, 30, 0)).save(tmp_path / "alpha.png")
    Image.new("RGB", (30, 20)).save(tmp_path / "photo.jpg")
    check_images(tmp_path, list_images(tmp_path))


def test_sixteen_bit_images_are_refused_with_their_names_and_mode(tmp_path):
    _folder(tmp_path)
    Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)).save(tmp_path / "depth.png")
    assert Image.open(tmp_path / "depth.png").mode.startswith("I")
    with pytest.raises(UserError, match=r"1 file\(s\) have more than 8 bits per channel.*depth\.png \(mode I"):
        check_images(tmp_path, list_images(tmp_path))


def test_exif_rotated_images_are_refused(tmp_path):
    _folder(tmp_path)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 30)).save(tmp_path / "phone.jpg", exif=exif)
    with pytest.raises(UserError, match=r"EXIF rotation.*phone\.jpg \(orientation 6\)"):
        check_images(tmp_path, list_images(tmp_path))


def test_unreadable_files_are_named_and_many_are_counted(tmp_path):
    _folder(tmp_path)
    for index in range(5):
        (tmp_path / f"broken{index}.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"5 file\(s\) cannot be read as images: broken0\.png .*, \.\.\.$"):
        check_images(tmp_path, list_images(tmp_path))


def test_the_demo_stops_before_training_on_a_sixteen_bit_image(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    data = _folder(tmp_path / "data")
    Image.fromarray(np.zeros((20, 30), dtype=np.uint16)).save(data / "depth.png")
    assert main(["demo", "--data", str(data), "--out", str(tmp_path / "out"), "--quick", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "depth.png (mode I" in error and "8 bits per channel" in error
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_truncated_jpeg_is_refused_before_training(tmp_path):
    # Its header opens; PIL (Lightly) fails in a DataLoader worker at the first epoch, while OpenCV
    # (MMPretrain) reads it silently with a grey lower half.
    import io

    _folder(tmp_path)
    encoded = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(encoded, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    with pytest.raises(UserError,
                       match=r"1 file\(s\) cannot be read as images: cut\.jpg \(OSError: image file is truncated"):
        check_images(tmp_path, list_images(tmp_path))

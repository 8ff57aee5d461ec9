"""``ccrop demo --data`` on a stranger's folder: phone photos, odd files and annotations written by other tools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccrop_cli.demo.resized import COPY_FOLDER, resized_copy
from ccrop_cli.demo.user_data import check_images, list_images, load_user_annotations
from ccrop_cli.errors import UserError
from ccrop_cli.main import main


def _folder(root: Path, count: int = 3, size: tuple[int, int] = (40, 32)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / f"img{index}.png")
    return root


def _phone_photo(path: Path, orientation: int = 6) -> np.ndarray:
    """A 60x30 JPEG (left third white) whose EXIF orientation turns it; returns the stored pixels."""
    pixels = np.zeros((30, 60, 3), dtype=np.uint8)
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return pixels


# -- EXIF orientation (phone photos) -------------------------------------------------------------------------------
def test_turned_images_are_named_and_refused_unless_the_caller_writes_them_upright(tmp_path):
    _folder(tmp_path)
    _phone_photo(tmp_path / "phone.jpg", 6)
    _phone_photo(tmp_path / "odd.jpg", 0)  # an invalid value: ignored by PIL's exif_transpose and OpenCV alike
    names = list_images(tmp_path)
    with pytest.raises(UserError, match=r"1 file\(s\) carry an EXIF rotation.*phone\.jpg \(orientation 6\)"):
        check_images(tmp_path, names)  # ccrop bench localize trains on the folder itself
    assert check_images(tmp_path, names, upright=True) == {"phone.jpg": 6}


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_copy_holds_turned_images_upright_as_opencv_reads_the_original(tmp_path, orientation):
    import cv2

    data, out = _folder(tmp_path / "data"), tmp_path / "out"
    _phone_photo(data / "phone.jpg", orientation)
    folder, resized, _ = resized_copy(data, list_images(data), out, side=64)  # small images: copied for it alone
    assert folder == out / COPY_FOLDER and resized == 0
    seen_by_opencv = cv2.imread(str(data / "phone.jpg"), cv2.IMREAD_COLOR)[..., ::-1]  # MMPretrain's reading
    with Image.open(folder / "phone.jpg") as copy:
        assert copy.getexif().get(0x0112) is None
        upright = np.asarray(copy.convert("RGB"))  # Lightly's reading
    assert upright.shape == seen_by_opencv.shape == ((30, 60, 3) if orientation == 3 else (60, 30, 3))
    assert np.abs(upright.astype(int) - seen_by_opencv).mean() < 2
    assert cv2.imread(str(folder / "phone.jpg"), cv2.IMREAD_COLOR).shape == upright.shape
    assert (folder / "img0.png").read_bytes() == (data / "img0.png").read_bytes()


def test_a_large_turned_image_is_shrunk_upright(tmp_path):
    data, out = _folder(tmp_path / "data"), tmp_path / "out"
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (300, 200), (200, 10, 10)).save(data / "big.jpg", exif=exif)
    folder, resized, _ = resized_copy(data, list_images(data), out, side=64)
    with Image.open(folder / "big.jpg") as copy:
        assert resized == 1 and copy.size == (64, 96)  # upright 200x300, shortest side 64


def test_annotations_of_a_turned_image_are_in_its_upright_pixels(tmp_path):
    _folder(tmp_path)
    _phone_photo(tmp_path / "phone.jpg", 6)  # stored 60x30, shown 30x60
    entry = {"id": 1, "file_name": "phone.jpg"}
    coco = {"images": [entry], "annotations": [{"image_id": 1, "bbox": [0, 0, 30, 30]}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    boxes = load_user_annotations(tmp_path, list_images(tmp_path))
    assert boxes["phone.jpg"] == pytest.approx(np.array([[0.0, 0.0, 1.0, 0.5]]))
    entry.update(width=30, height=60)  # the upright size: accepted
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    assert load_user_annotations(tmp_path, list_images(tmp_path))["phone.jpg"] == pytest.approx(boxes["phone.jpg"])
    entry.update(width=60, height=30)  # the stored size (a tool that ignored the orientation)
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(UserError, match=r"60x30 is not the shape of phone\.jpg \(30x60 as shown: its EXIF orientation 6"
                                        r".*give the upright image's size"):
        load_user_annotations(tmp_path, list_images(tmp_path))


class _Stop(Exception):
    """Raised instead of training: the test needs what the demo did before it."""


def _train_root(monkeypatch, argv: list[str]) -> Path:
    """Run ``ccrop demo argv`` up to its training and return the folder it would train on."""
    import ccrop_cli.demo.command as command

    seen = {}

    def train(framework, config, train_root, out, progress):
        seen["root"] = train_root
        raise _Stop

    monkeypatch.setattr(command, "_train", train)
    with pytest.raises(_Stop):
        main(["demo", *argv, "--quick", "--no-progress"])
    return seen["root"]


def test_the_demo_trains_on_upright_copies_of_turned_images(tmp_path, monkeypatch, capsys):
    data = _folder(tmp_path / "data")
    _phone_photo(data / "phone.jpg", 6)
    root = _train_root(monkeypatch, ["--data", str(data), "--out", str(tmp_path / "out")])
    folder = tmp_path / "out" / COPY_FOLDER
    assert root == folder
    with Image.open(root / "phone.jpg") as copy:
        assert copy.size == (30, 60)
    log = capsys.readouterr().out
    assert "1 image(s) carry an EXIF orientation (phone.jpg): trained on, drawn and measured upright" in log
    assert f"copies of 4 images (1 with an EXIF orientation written upright; the rest copied as they are) in {folder}" \
        in log


# -- the --data argument -------------------------------------------------------------------------------------------
def test_an_empty_data_argument_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch, capsys):
    # `ccrop demo --data "$DIR"` with DIR unset: Path("") is the current folder, which was used silently.
    _folder(tmp_path / "here")
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error (option_types.user_path), as for any path
        main(["demo", "--data", "", "--out", str(tmp_path / "out"), "--quick", "--no-progress"])
    assert exit_info.value.code == 2
    assert "argument --data: empty path (an unset variable in \"$DIR\"?)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- annotations.json written by other tools -----------------------------------------------------------------------
def _write_coco(root: Path, coco: dict, prefix: bytes = b"") -> None:
    (root / "annotations.json").write_bytes(prefix + json.dumps(coco, ensure_ascii=False).encode("utf-8"))


def test_annotations_with_a_byte_order_mark_are_read(tmp_path):
    # Windows tools (PowerShell's Out-File, Notepad's "UTF-8 with BOM") start the file with one: json refused it.
    _folder(tmp_path)
    (tmp_path / "img0.png").rename(tmp_path / "chat é.png")
    coco = {"images": [{"id": 1, "file_name": "chat é.png"}], "annotations": [{"image_id": 1, "bbox": [0, 0, 20, 16]}]}
    _write_coco(tmp_path, coco, prefix=b"\xef\xbb\xbf")
    boxes = load_user_annotations(tmp_path, list_images(tmp_path))
    assert boxes["chat é.png"] == pytest.approx(np.array([[0.0, 0.0, 0.5, 0.5]]))


@pytest.mark.parametrize("on_disk, listed", [("NFD", "NFC"), ("NFC", "NFD")])
def test_names_in_either_unicode_form_match(tmp_path, on_disk, listed):
    # A name macOS wrote (NFD: 'e' + an accent) and the same name from a labelling tool (NFC) look alike everywhere:
    # the demo skipped the image's boxes as 'not in the folder', ccrop viz stopped with 'is not an image under'.
    import unicodedata

    _folder(tmp_path)
    name = "café_crème.png"
    (tmp_path / "img0.png").rename(tmp_path / unicodedata.normalize(on_disk, name))
    stored = unicodedata.normalize(on_disk, name)
    coco = {"images": [{"id": 1, "file_name": unicodedata.normalize(listed, name)}],
            "annotations": [{"image_id": 1, "bbox": [0, 0, 20, 16]}]}
    _write_coco(tmp_path, coco)
    boxes = load_user_annotations(tmp_path, list_images(tmp_path))
    assert list(boxes) == [stored] and boxes[stored] == pytest.approx(np.array([[0.0, 0.0, 0.5, 0.5]]))


def _coco_of_three(boxes: list[dict]) -> dict:
    return {"images": [{"id": i, "file_name": f"img{i}.png"} for i in range(3)],
            "annotations": [dict(ann, image_id=ann.get("image_id", 0)) for ann in boxes]}


def test_crowd_regions_are_not_measured_and_the_log_says_so(tmp_path):
    # COCO's evaluation ignores iscrowd 1 boxes (one box around many objects); they were counted as objects.
    _folder(tmp_path)
    _write_coco(tmp_path, _coco_of_three([{"bbox": [0, 0, 40, 32], "iscrowd": 1},
                                          {"bbox": [0, 0, 20, 16], "iscrowd": 0},
                                          {"image_id": 1, "bbox": [0, 0, 10, 8], "iscrowd": 1}]))
    notes = []
    boxes = load_user_annotations(tmp_path, list_images(tmp_path), notes)
    assert boxes["img0.png"] == pytest.approx(np.array([[0.0, 0.0, 0.5, 0.5]]))
    assert boxes["img1.png"].shape == (0, 4)
    assert notes == ["annotations.json: 2 crowd annotation(s) (iscrowd 1, e.g. annotations[0] [0, 0, 40, 32]) are not "
                     "measured: one box around many objects, which COCO's evaluation ignores too"]


def test_boxes_of_zero_width_or_height_are_not_measured_and_the_log_says_so(tmp_path):
    # Labelling tools export a click without a drag as [x, y, 0, 0]: one such box refused the whole file.
    _folder(tmp_path)
    _write_coco(tmp_path, _coco_of_three([{"bbox": [5, 5, 0, 10]}, {"bbox": [0, 0, 20, 16]}, {"bbox": [3, 4, 0, 0]}]))
    notes = []
    boxes = load_user_annotations(tmp_path, list_images(tmp_path), notes)
    assert boxes["img0.png"] == pytest.approx(np.array([[0.0, 0.0, 0.5, 0.5]]))
    assert notes == ["annotations.json: 2 box(es) of zero width or height (e.g. annotations[0] [5, 5, 0, 10]) are not "
                     "measured: they cover no object"]
    _write_coco(tmp_path, _coco_of_three([{"bbox": [5, 5, -2, 10]}]))  # a negative size is still an error
    with pytest.raises(UserError, match=r"annotations\[0\]: 'bbox' \[x, y, w, h\] needs w > 0 and h > 0"):
        load_user_annotations(tmp_path, list_images(tmp_path))


def test_a_box_that_stored_as_float32_has_no_width_is_not_measured(tmp_path):
    # Exporters' float noise on the right edge: [39.9999999, 10, 0.5, 5] in a 40 px image kept x0 < x1 in float64 but
    # not in the stored float32; the demo crashed after training, writing the report ("box 1 ... is not a valid box").
    _folder(tmp_path)
    _write_coco(tmp_path, _coco_of_three([{"bbox": [39.9999999, 10, 0.5, 5]}, {"bbox": [0, 0, 20, 16]},
                                          {"bbox": [10.3, 10, 1e-7, 3]}]))
    notes = []
    boxes = load_user_annotations(tmp_path, list_images(tmp_path), notes)
    assert boxes["img0.png"] == pytest.approx(np.array([[0.0, 0.0, 0.5, 0.5]]))
    assert notes == ["annotations.json: 2 box(es) of zero width or height (e.g. annotations[0] [39.9999999, 10, 0.5, "
                     "5]) are not measured: they cover no object"]


def test_normalised_boxes_are_named_not_measured_as_misses(tmp_path):
    # YOLO-style boxes (or COCO's divided by the image size) were read as sub-pixel boxes at the top-left corner: the
    # report said recall 0.00 without a word.
    _folder(tmp_path)
    _write_coco(tmp_path, _coco_of_three([{"bbox": [0.14, 0.23, 0.25, 0.25]},
                                          {"image_id": 1, "bbox": [0.5, 0, 0.5, 1]}]))
    with pytest.raises(UserError, match=r"every 'bbox' lies inside its image's first pixel \(e\.g\. annotations\[0\] "
                                        r"\[0\.14, 0\.23, 0\.25, 0\.25\]\): 'bbox' is \[x, y, w, h\] in pixels; "
                                        r"normalised boxes .* must be multiplied by the image's width and height"):
        load_user_annotations(tmp_path, list_images(tmp_path))
    _write_coco(tmp_path, _coco_of_three([{"bbox": [0.14, 0.23, 0.25, 0.25]}, {"bbox": [0, 0, 20, 16]}]))
    assert len(load_user_annotations(tmp_path, list_images(tmp_path))["img0.png"]) == 2  # one tiny box among others


# -- files that are not images -------------------------------------------------------------------------------------
_APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(60)


def test_macos_metadata_files_are_named_with_the_command_that_removes_them(tmp_path):
    # A folder copied from a Mac onto a USB disk, or unzipped: '._IMG_1.JPG' beside IMG_1.JPG, a __MACOSX folder.
    data = _folder(tmp_path / "my photos")
    (data / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # no image name: ignored, as the frameworks ignore it
    assert list_images(data) == ["img0.png", "img1.png", "img2.png"]
    (data / "._img0.png").write_bytes(_APPLE_DOUBLE)
    with pytest.raises(UserError, match=r"1 macOS metadata file\(s\) with an image name: \._img0\.png; .* Delete them:"
                                        r" find '.*my photos' -name '\._\*' -delete$"):
        list_images(data)
    (data / "._img0.png").unlink()
    (data / "__MACOSX").mkdir()
    (data / "__MACOSX" / "._img1.png").write_bytes(_APPLE_DOUBLE)  # named as such, not as a class folder
    with pytest.raises(UserError, match=r"__MACOSX/\._img1\.png; .*; rm -r '.*my photos/__MACOSX'$"):
        list_images(data)


def test_an_image_id_of_another_type_than_the_entry_names_it(tmp_path):
    # Tools that write ids as strings in one list and numbers in the other: "image_id 1 is not the id" was all it said.
    _folder(tmp_path)
    _write_coco(tmp_path, {"images": [{"id": "1", "file_name": "img0.png"}],
                           "annotations": [{"image_id": 1, "bbox": [0, 0, 4, 4]}]})
    with pytest.raises(UserError, match=r"annotations\[0\]: image_id 1 is not the id of any entry of 'images' "
                                        r"\(an entry has id '1', a str: write both ids alike\)"):
        load_user_annotations(tmp_path, list_images(tmp_path))


def test_annotations_without_images_name_the_format_and_an_image_info_file_lists_no_objects(tmp_path):
    _folder(tmp_path)
    _write_coco(tmp_path, {"annotations": [{"image_id": 0, "bbox": [0, 0, 4, 4]}], "categories": []})
    with pytest.raises(UserError, match=r"no 'images' list \(keys: 'annotations', 'categories'\); the demo reads COCO "
                                        r"detection files: \{\"images\": \[\{\"id\": 1, \"file_name\""):
        load_user_annotations(tmp_path, list_images(tmp_path))
    _write_coco(tmp_path, {"images": [{"id": 0, "file_name": "img0.png"}]})  # as COCO's test-set image_info files
    boxes = load_user_annotations(tmp_path, list_images(tmp_path))
    assert list(boxes) == ["img0.png"] and boxes["img0.png"].shape == (0, 4)


def test_a_file_name_in_another_case_names_the_image_when_only_one_matches(tmp_path):
    # Labelled on macOS or Windows, whose disks ignore case: the entry was skipped as "not in DIR", with its boxes.
    for name in ("Cats/IMG_1.JPG", "Cats/IMG_2.JPG", "dogs/a.png", "dogs/A.PNG"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (40, 20)).save(tmp_path / name, format="PNG")
    _write_coco(tmp_path, {"images": [{"id": 1, "file_name": "cats/img_1.jpg"}, {"id": 2, "file_name": "IMG_2.jpg"},
                                      {"id": 3, "file_name": "a.png"}],  # the same case wins
                           "annotations": [{"image_id": 1, "bbox": [0, 0, 20, 10]}]})
    notes = []
    boxes = load_user_annotations(tmp_path, list_images(tmp_path), notes)
    assert sorted(boxes) == ["Cats/IMG_1.JPG", "Cats/IMG_2.JPG", "dogs/a.png"] and notes == []
    assert boxes["Cats/IMG_1.JPG"] == pytest.approx(np.array([[0.0, 0.0, 0.5, 0.5]]))
    _write_coco(tmp_path, {"images": [{"id": 1, "file_name": "dogs/a.Png"}], "annotations": []})
    with pytest.raises(UserError, match=r"file_name 'dogs/a.Png' matches 2 images \(dogs/A.PNG, dogs/a.png\)"):
        load_user_annotations(tmp_path, list_images(tmp_path))


def test_pictures_neither_framework_reads_are_named_not_dropped_silently(tmp_path, monkeypatch, capsys):
    import ccrop_cli.demo.command as command
    from ccrop_cli.demo.user_data import ignored_pictures

    data = tmp_path / "phone"
    data.mkdir()
    for name in ("IMG_1.HEIC", "IMG_2.HEIC", "loop.gif"):
        (data / name).write_bytes(b"\x00" * 16)  # iPhone photos, an animation: not in torchvision's extensions
    (data / "notes.txt").write_text("not a picture: not named")
    with pytest.raises(UserError, match=r"no images found \(looked for .*\); 3 picture\(s\) in formats neither "
                                        r"framework reads \(.HEIC 2, .gif 1; e.g. IMG_1.HEIC\) are left out: convert"):
        list_images(data)
    _folder(data)
    assert list_images(data) == ["img0.png", "img1.png", "img2.png"]
    assert ignored_pictures(data).startswith("3 picture(s)")
    monkeypatch.setattr(command, "_train", lambda *args, **kwargs: (_ for _ in ()).throw(_Stop()))
    with pytest.raises(_Stop):
        main(["demo", "--data", str(data), "--out", str(tmp_path / "out"), "--quick", "--no-progress"])
    assert "ccrop demo: 3 picture(s) in formats neither framework reads (.HEIC 2, .gif 1" in capsys.readouterr().out


def test_a_home_folder_written_with_a_tilde_after_the_equals_sign_is_found(tmp_path, monkeypatch):
    # The shell expands `--data ~/photos` but leaves `--data=~/photos` as it is: "not a folder" before.
    _folder(tmp_path / "photos")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _train_root(monkeypatch, ["--data=~/photos", "--out", str(tmp_path / "out")]) == tmp_path / "photos"


def test_an_output_folder_written_with_a_tilde_after_the_equals_sign_goes_home(tmp_path, monkeypatch):
    # `--out=~/demo` made a folder named '~' in the current folder (one `rm -r ~` away from a disaster).
    import ccrop_cli.demo.command as command

    _folder(tmp_path / "photos")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(command, "_train", lambda *args, **kwargs: (_ for _ in ()).throw(_Stop()))
    with pytest.raises(_Stop):
        main(["demo", "--data", str(tmp_path / "photos"), "--out=~/demo", "--quick", "--no-progress"])
    assert (tmp_path / "demo").is_dir() and not (tmp_path / "here" / "~").exists()


def test_file_names_mmpretrain_cannot_list_are_refused_before_training(tmp_path, capsys):
    # A Latin-1 name (an old zip file, a Windows share) was a UnicodeEncodeError traceback from writing
    # MMPretrain's list of images; a name with a line break would have been read as two names.
    import os

    from ccrop_cli.demo.user_data import check_listable

    data = _folder(tmp_path / "data")
    latin1 = Path(os.fsdecode(os.fsencode(data) + b"/caf\xe9.png"))
    latin1.write_bytes((data / "img0.png").read_bytes())
    names = list_images(data)
    args = ["demo", "--data", str(data), "--out", str(tmp_path / "out"), "--quick", "--no-progress"]
    assert main([*args, "--framework", "mmpretrain"]) == 2
    error = capsys.readouterr().err
    assert "1 file name(s) are not one line of UTF-8: 'caf\\udce9.png'; MMPretrain reads" in error
    assert "or use --framework lightly" in error and not (tmp_path / "out" / "mm_work_dir").exists()
    latin1.unlink()
    (data / "two\nlines.png").write_bytes((data / "img0.png").read_bytes())
    with pytest.raises(UserError, match=r"1 file name\(s\) are not one line of UTF-8: 'two\\nlines.png'"):
        check_listable(data, list_images(data))
    check_listable(data, [name for name in names if name.startswith("img")])


def test_a_lab_image_is_refused_for_its_colour_space_not_its_bit_depth(tmp_path):
    # 8 bits per channel, but PIL and OpenCV make different RGB of it; the error blamed "more than 8 bits".
    _folder(tmp_path)
    Image.new("RGB", (30, 20), (200, 30, 60)).convert("LAB").save(tmp_path / "lab.tif")
    with pytest.raises(UserError, match=r"1 file\(s\) are in a colour space the two frameworks' loaders turn into RGB "
                                        r"differently \(allowed modes: 1, L, .*\); convert them to RGB: lab.tif"):
        check_images(tmp_path, list_images(tmp_path))


# -- image sizes ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1, 1), (200, 1), (15, 40)])
def test_an_image_under_16_pixels_on_a_side_is_refused_with_its_size(tmp_path, size, capsys):
    # A 1x1 (or 200x1) image has no object to localise: the demo trained on such a folder and wrote a report of
    # meaningless boxes, without a word.
    data = _folder(tmp_path / "data")
    _folder(tmp_path / "data" / "tiny", count=1, size=size)
    (tmp_path / "data" / "tiny" / "img0.png").rename(tmp_path / "data" / "icon.png")
    (tmp_path / "data" / "tiny").rmdir()
    with pytest.raises(UserError, match=rf"1 file\(s\) are smaller than 16 px on a side .*: icon.png "
                                        rf"\({size[0]}x{size[1]} px\)"):
        check_images(data, list_images(data))  # ccrop bench localize --data too
    assert main(["demo", "--quick", "--no-progress", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert "icon.png" in capsys.readouterr().err and not (tmp_path / "out" / "report.md").exists()
    check_images(data, [name for name in list_images(data) if name != "icon.png"])
    _folder(tmp_path / "edge", count=2, size=(16, 300))
    check_images(tmp_path / "edge", list_images(tmp_path / "edge"))  # 16 px is taken

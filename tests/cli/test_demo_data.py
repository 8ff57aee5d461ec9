"""``ccrop demo --data``: the user's folder (flat or by class) and its optional annotations.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ccrop_cli.demo.user_data import list_images, load_user_annotations
from ccrop_cli.errors import UserError


def _folder(root, names, size=(40, 20)):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (120, 30, 200)).save(root / name)
    return root


def test_lists_images_in_the_frameworks_order(tmp_path):
    from lightly.data import LightlyDataset

    flat = _folder(tmp_path / "flat", ["b.png", "a.jpg", "c.GIF"])
    (flat / "notes.txt").write_text("x")
    by_class = _folder(tmp_path / "by_class", ["dogs/e.jpg", "cats/c.png", "cats/sub/d.png"])
    for root in (flat, by_class):
        assert list_images(root) == LightlyDataset(str(root)).get_filenames()
    assert list_images(by_class) == ["cats/c.png", "cats/sub/d.png", "dogs/e.jpg"]


def test_images_beside_class_folders_are_a_user_error(tmp_path):
    # The frameworks would read only the class folders and drop a.png without a word.
    _folder(tmp_path, ["a.png", "cats/c.png"])
    with pytest.raises(UserError, match=r"1 images at the top \(a.png\) and sub-folders \(cats\)"):
        list_images(tmp_path)


def test_no_images_or_no_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_annotations_are_normalised_and_sizes_read_from_files(tmp_path):
    _folder(tmp_path, ["cats/a.png", "dogs/b.png"])
    coco = {"images": [{"id": 7, "file_name": "cats/a.png"},
                       {"id": "b", "file_name": "dogs/b.png", "width": 40, "height": 20}],
            "annotations": [{"image_id": 7, "bbox": [10, 5, 20, 10]}, {"image_id": 7, "bbox": [30, 10, 20, 20]}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    boxes = load_user_annotations(tmp_path, list_images(tmp_path))
    assert boxes["cats/a.png"] == pytest.approx(np.array([[0.25, 0.25, 0.75, 0.75], [0.75, 0.5, 1.0, 1.0]]))
    assert boxes["dogs/b.png"].shape == (0, 4)


def test_without_annotations_gives_none(tmp_path):
    _folder(tmp_path, ["a.png"])
    assert load_user_annotations(tmp_path, ["a.png"]) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected an object"),
        ('{"images": [], "annotations": {}}', "'annotations' must be a list"),
        ('{"images": [{"file_name": "a.png"}], "annotations": []}', r"images\[0\] must be an object with 'id'"),
        ('{"images": [{"id": 1, "file_name": "zz.png"}], "annotations": []}', "'zz.png' is not an image"),
        ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "bbox": [0, 0, 1, 1]}]}',
         "image_id 2 is not the id"),
        ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [0, 0, 1]}]}',
         r"annotations\[0\]: 'bbox' must be \[x, y, w, h\]"),
        ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [0, 0, -1, 3]}]}',
         "w > 0 and h > 0"),
        # two entries for one file: the boxes of the first were silently dropped
        ('{"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "a.png"}], "annotations": []}',
         r"images\[1\]: file_name 'a.png' is also images\[0\] \(id 1\)"),
        # 1e400 parses as inf: int(inf) raised OverflowError
        ('{"images": [{"id": 1, "file_name": "a.png", "width": 1e400, "height": 20}], "annotations": []}',
         r"'width' and 'height' must be whole numbers of pixels >= 1; got inf, 20"),
        # a size in (0, 1) (normalised) was int() 0: ZeroDivisionError; 40.5 was cut to 40, silently
        ('{"images": [{"id": 1, "file_name": "a.png", "width": 0.5, "height": 0.25}], "annotations": '
         '[{"image_id": 1, "bbox": [0, 0, 0.1, 0.1]}]}',
         r"images\[0\]: 'width' and 'height' must be whole numbers of pixels >= 1; got 0.5, 0.25"),
        ('{"images": [{"id": 1, "file_name": "a.png", "width": 40.5, "height": 20}], "annotations": []}',
         r"images\[0\]: 'width' and 'height' must be whole numbers of pixels >= 1; got 40.5, 20"),
        # an image_id that is a list or dict: TypeError unhashable; true matched the id 1
        *((f'{{"images": [{{"id": 1, "file_name": "a.png"}}], "annotations": [{{"image_id": {image_id}, '
           '"bbox": [0, 0, 1, 1]}]}', rf"annotations\[0\]: 'image_id' must be an integer or a string \(the id of an "
           rf"entry of 'images'\); got {shown}")
          for image_id, shown in (("[1]", r"\[1\]"), ('{"id": 1}', r"\{'id': 1\}"), ("true", "True"))),
        # "1" was read as not crowd: the region measured as one object
        ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [0, 0, 1, 1], '
         '"iscrowd": "1"}]}', r"annotations\[0\]: 'iscrowd' must be 0 or 1 \(1: a crowd region, not measured\); "
         "got '1'"),
    ],
)
def test_malformed_annotations_name_the_file_and_the_problem(tmp_path, text, message):
    _folder(tmp_path, ["a.png"])
    (tmp_path / "annotations.json").write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        load_user_annotations(tmp_path, ["a.png"])
    assert "annotations.json" in str(caught.value)


# -- ccrop demo --data end to end ------------------------------------------------------------------
def _scenes_folder(root, with_annotations=True):
    from ccrop_scenes import write_image_folder
    from ccrop_scenes.second_look import generate_second_look

    write_image_folder(generate_second_look(24, image_size=32, seed=0), root)
    if not with_annotations:
        (root / "annotations.json").unlink()
    return root


@pytest.mark.slow
def test_demo_on_a_folder_with_annotations_measures_against_them(tmp_path):
    from ccrop_cli.main import main

    data = _scenes_folder(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["demo", "--quick", "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["data"] == str(data) and report["config"]["images"] == 24
    recall = report["final_box_recall"]["multi (box sets)"]
    assert 0.0 <= recall <= 1.0 and 0.0 <= report["final_object_hit_rate"] <= 1.0
    assert 0.0 <= report["refreshes"][0]["box_recall"] <= 1.0
    assert report["pair_quality"]["multi"]["oracle"]["pairs"] == 24 * 4
    assert (out / "view_pairs_oracle.png").is_file()
    assert not (out / "data").exists()  # the user's folder is used in place, nothing generated


@pytest.mark.slow
def test_demo_on_a_folder_without_annotations_gives_box_statistics_only(tmp_path):
    from ccrop_cli.main import main

    data = _scenes_folder(tmp_path / "data", with_annotations=False)
    out = tmp_path / "out"
    assert main(["demo", "--quick", "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["final_box_recall"]["multi (box sets)"] is None and report["pair_quality"] is None
    assert report["refreshes"][0]["box_recall"] is None and report["refreshes"][0]["mean_boxes"] >= 1.0
    assert 1.0 <= report["final_box_stats"]["mean_boxes"] <= 4.0
    assert "No ground truth" in (out / "report.md").read_text()
    for name in ("heatmaps.png", "box_sets.png", "view_pairs.png"):
        assert (out / name).is_file()


def test_demo_with_malformed_annotations_stops_before_training(tmp_path, capsys):
    from ccrop_cli.main import main

    data = _folder(tmp_path / "data", ["a.png", "b.png"])
    (data / "annotations.json").write_text(
        '{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1}]}'
    )
    assert main(["demo", "--quick", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "annotations.json" in err and "annotations[0] must be an object with 'image_id' and 'bbox'" in err


def test_demo_data_refuses_images_and_setting(tmp_path, capsys):
    from ccrop_cli.main import main

    data = _folder(tmp_path / "data", ["a.png", "b.png"])
    assert main(["demo", "--quick", "--data", str(data), "--images", "10", "--out", str(tmp_path / "out")]) == 2
    assert "--images does not apply with --data" in capsys.readouterr().err


def test_mmpretrain_config_lists_a_flat_folder(tmp_path):
    """CustomDataset's own scan refuses a flat folder; the demo hands it the images it found."""
    from ccrop_cli.demo.config import DemoConfig
    from ccrop_cli.demo.mm_run import build_config

    data = _folder(tmp_path / "data", ["b.png", "a.jpg", "c.png"])
    cfg = build_config(DemoConfig(data=str(data), images=3, batch_size=3), data, tmp_path / "work", progress=False)
    dataset = cfg.train_dataloader.dataset
    assert dataset.with_label is False
    assert open(dataset.ann_file).read().split() == ["a.jpg", "b.png", "c.png"]


def test_a_class_folder_without_images_is_a_user_error(tmp_path):
    # torchvision's ImageFolder (under LightlyDataset) refuses a class without images: a traceback at training.
    _folder(tmp_path, ["cats/a.png", "dogs/b.png"])
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "birds").mkdir()
    (tmp_path / "birds" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=r"2 class folder\(s\) hold no images: \.ipynb_checkpoints, birds; "
                                        r".*hidden folders count as classes"):
        list_images(tmp_path)


def test_a_video_file_in_the_folder_is_a_user_error(tmp_path):
    # LightlyDataset turns a folder with any video in it into a video dataset (or fails without PyAV).
    _folder(tmp_path, ["cats/a.png", "cats/b.png"])
    (tmp_path / "cats" / "clip.MOV").write_bytes(b"not really a video")
    with pytest.raises(UserError, match=r"1 video file\(s\) \(cats/clip\.MOV\).*move them out"):
        list_images(tmp_path)


def test_file_names_with_dot_slash_or_only_the_base_name_find_their_image(tmp_path):
    # COCO exports often write "./a.png" or the bare file name; both were "not an image under DIR".
    _folder(tmp_path, ["cats/a.png", "dogs/b.png", "dogs/c.png", "birds/c.png"], size=(40, 20))
    coco = {"images": [{"id": 1, "file_name": "./cats/a.png"}, {"id": 2, "file_name": "b.png"},
                       {"id": 3, "file_name": "export/images/birds/c.png"}],
            "annotations": [{"image_id": 2, "bbox": [10, 5, 20, 10]}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    boxes = load_user_annotations(tmp_path, list_images(tmp_path))
    assert sorted(boxes) == ["birds/c.png", "cats/a.png", "dogs/b.png"]
    assert boxes["dogs/b.png"] == pytest.approx(np.array([[0.25, 0.25, 0.75, 0.75]]))
    coco["images"][2]["file_name"] = "c.png"  # two images are called c.png: refused, naming both
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(UserError, match=r"images\[2\]: file_name 'c.png' matches 2 images \(birds/c.png, dogs/c.png\)"):
        load_user_annotations(tmp_path, list_images(tmp_path))


def test_a_declared_size_of_another_shape_than_the_file_is_a_user_error(tmp_path):
    # Boxes are normalised by the declared size: right for a uniformly resized image, wrong for a cropped,
    # padded or turned one (silently shifted ground truth before).
    _folder(tmp_path, ["a.png"], size=(40, 20))
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 400, "height": 200}],
            "annotations": [{"image_id": 1, "bbox": [100, 50, 200, 100]}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    boxes = load_user_annotations(tmp_path, ["a.png"])  # resized 10x: the same normalised box
    assert boxes["a.png"] == pytest.approx(np.array([[0.25, 0.25, 0.75, 0.75]]))
    coco["images"][0].update(width=200, height=400)
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(UserError, match=r"images\[0\]: width x height 200x400 is not the shape of a.png \(40x20\)"):
        load_user_annotations(tmp_path, ["a.png"])


def test_an_out_folder_inside_the_data_folder_is_refused(tmp_path, capsys, monkeypatch):
    # `cd photos; ccrop demo --data .` put outputs/demo among the images: the check of the folder's
    # layout then blamed the user's images ("images at the top and sub-folders (outputs)")
    from ccrop_cli.main import main

    _folder(tmp_path, ["a.png", "b.png"])
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--data", ".", "--quick", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "--out outputs/demo lies inside --data ." in error and "choose an --out outside" in error
    assert not (tmp_path / "outputs").exists()
    (tmp_path / "outputs" / "demo").mkdir(parents=True)  # a run that got further before
    assert main(["demo", "--data", ".", "--quick", "--no-progress"]) == 2
    assert "--out outputs/demo lies inside --data ." in capsys.readouterr().err


def test_annotations_without_any_object_are_reported_as_nothing_to_measure(tmp_path):
    # An annotations.json that lists the images but no boxes gave "recall 0.00" and "false-positive pairs 1.00".
    import torch

    from ccrop_cli.demo.config import DemoConfig, DemoRun
    from ccrop_cli.demo.report import write_outputs

    data = _folder(tmp_path / "data", ["a.png", "b.png"], size=(32, 32))
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}], "annotations": []}
    (data / "annotations.json").write_text(json.dumps(coco))
    annotations = load_user_annotations(data, list_images(data))
    config = DemoConfig(data=str(data), images=2, refresh_size=32, batch_size=2)
    torch.manual_seed(0)
    run = DemoRun(feature_fn=torch.nn.Conv2d(3, 4, 3, stride=4), filenames=["a.png", "b.png"])
    (tmp_path / "out").mkdir()
    report = write_outputs(tmp_path / "out", config, "lightly", data, run, 1.0, annotations)
    assert report["final_box_recall"] == {"multi (box sets)": None, "paper (one box)": None}
    assert report["pair_quality"] is None
    assert "annotations.json lists no objects" in report["setting"]


def test_a_symlink_loop_in_the_folder_is_a_user_error(tmp_path):
    # The frameworks follow links: a/back -> .. listed a/0.png 41 times (to the OS's link depth), silently.
    _folder(tmp_path, ["a/0.png", "b/1.png"])
    (tmp_path / "a" / "back").symlink_to("..")
    with pytest.raises(UserError, match=r"a/back links back to a folder above it"):
        list_images(tmp_path)


def test_a_link_to_a_missing_image_is_a_user_error(tmp_path):
    # Lightly's flat listing kept z.png (a link to nothing) while the demo's skipped it: four images against three,
    # so the box store's indices shifted, and Lightly failed on z.png in a worker (FileNotFoundError).
    _folder(tmp_path, ["0.png", "1.png"])
    (tmp_path / "z.png").symlink_to(tmp_path / "missing.png")
    with pytest.raises(UserError, match=r"1 link\(s\) to missing files: z.png"):
        list_images(tmp_path)
    (tmp_path / "z.png").unlink()
    (tmp_path / "z.png").symlink_to(tmp_path / "0.png")  # a working link stays an image
    assert list_images(tmp_path) == ["0.png", "1.png", "z.png"]


def test_the_demo_skips_annotations_of_images_not_in_the_folder(tmp_path, capsys, monkeypatch):
    # A folder made of part of a labelled set (e.g. 500 COCO images with the whole set's annotations): every entry
    # of an absent file was an error ("file_name 'zz.png' is not an image under DIR") before any training.
    import ccrop_cli.demo.command as command
    from ccrop_cli.main import main

    data = _folder(tmp_path / "data", ["a.png", "b.png"], size=(40, 20))
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png", "width": 9, "height": 9},
                       {"id": 3, "file_name": "other/zz.png"}],
            "annotations": [{"image_id": 1, "bbox": [10, 5, 20, 10]}, {"image_id": 2, "bbox": [1, 1, 0, 0]},
                            {"image_id": 3, "bbox": [0, 0, 5, 5]}]}
    (data / "annotations.json").write_text(json.dumps(coco))
    notes: list[str] = []
    boxes = load_user_annotations(data, list_images(data), notes)
    assert notes == [f"annotations.json lists 2 image(s) that are not in {data} (gone.png, other/zz.png): skipped, "
                     "with their boxes"]
    assert sorted(boxes) == ["a.png"]
    assert boxes["a.png"] == pytest.approx(np.array([[0.25, 0.25, 0.75, 0.75]]))
    with pytest.raises(UserError, match=r"images\[1\]: file_name 'gone.png' is not an image under"):
        load_user_annotations(data, list_images(data))  # other callers (viz, bench localize): still an error

    def reached(*args, **kwargs):
        raise KeyboardInterrupt("training starts")

    monkeypatch.setattr(command, "_train", reached)
    # Stopped where training would start: Ctrl-C's one line and status 130 (ccrop_cli.main)
    assert main(["demo", "--quick", "--data", str(data), "--out", str(tmp_path / "out"), "--no-progress"]) == 130
    assert "annotations.json lists 2 image(s) that are not in" in capsys.readouterr().out

    coco["images"] = coco["images"][1:]  # no entry names an image of the folder: file names of another layout
    coco["annotations"] = coco["annotations"][1:]
    (data / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(UserError, match=r"images\[0\]: file_name 'gone.png' is not an image under .*none of the 2"):
        load_user_annotations(data, list_images(data), [])


def test_the_demo_names_boxes_reaching_past_their_image(tmp_path, capsys, monkeypatch):
    # [x0, y0, x1, y1] boxes written as COCO's [x, y, w, h] reach past the image and were clipped without a word.
    import ccrop_cli.demo.command as command
    from ccrop_cli.main import main

    data = _folder(tmp_path / "data", ["a.png", "b.png"], size=(40, 20))
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
            "annotations": [{"image_id": 1, "bbox": [10, 5, 20, 10]}, {"image_id": 1, "bbox": [-0.5, 0, 40.9, 20]},
                            {"image_id": 2, "bbox": [20, 10, 30, 15]}]}  # x0, y0, x1, y1 = 20, 10, 30, 15
    (data / "annotations.json").write_text(json.dumps(coco))
    notes: list[str] = []
    boxes = load_user_annotations(data, list_images(data), notes)
    assert boxes["b.png"] == pytest.approx(np.array([[0.5, 0.5, 1.0, 1.0]]))  # clipped, as before
    assert notes == ["annotations.json: 1 of 3 boxes reach more than 1 px past their image (e.g. annotations[2] "
                     "[20, 10, 30, 15] in a 40x20 image) and were clipped to it; 'bbox' is [x, y, w, h] in pixels "
                     "(boxes written as [x0, y0, x1, y1] look like this)"]

    def reached(*args, **kwargs):
        raise KeyboardInterrupt("training starts")

    monkeypatch.setattr(command, "_train", reached)
    # Stopped where training would start: Ctrl-C's one line and status 130 (ccrop_cli.main)
    assert main(["demo", "--quick", "--data", str(data), "--out", str(tmp_path / "out"), "--no-progress"]) == 130
    assert "ccrop demo: annotations.json: 1 of 3 boxes reach more than 1 px past" in capsys.readouterr().out

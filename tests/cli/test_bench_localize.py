"""``ccrop bench localize --quick``: real (tiny) pre-training, every figure in range, checkpoints reused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ccrop_cli.bench.localize import summarise
from ccrop_cli.experiment.pair_quality import object_hit_rate
from ccrop_cli.main import main
from ccrop_scenes import write_image_folder
from ccrop_scenes.second_look import generate_second_look

FRACTIONS = ("recall", "precision", "hit_rate", "fp_pairs", "share_box")


@pytest.fixture(scope="module")
def quick(tmp_path_factory, extras_plugin):  # ddt: the ccrop_extras plugin (autoload is off in the tests)
    tmp = tmp_path_factory.mktemp("bench_localize")
    folder = write_image_folder(generate_second_look(24, image_size=32, seed=0), tmp / "look")
    args = ["bench", "localize", "--quick", "--seeds", "0", "--settings", "multi-small", "--data", str(folder),
            "--rules", "channel_sum", "ddt", "--checkpoints", str(tmp / "ckpt"), "--json", str(tmp / "out.json")]
    assert main(args) == 0
    return tmp, args, json.loads((tmp / "out.json").read_text())


def test_every_figure_in_range(quick):
    _, _, out = quick
    assert set(out["results"]) == {"multi-small", str(quick[0] / "look")}  # --settings multi-small, --data look
    for rows in out["results"].values():
        measured = [name for name in rows if not name.startswith("reference")]
        assert len(measured) == 2 * 5 * 2  # rules x stages x thresholds
        for name in measured:
            for metric in FRACTIONS:
                assert 0.0 <= rows[name][metric][0] <= 1.0, (name, metric)
            assert 1.0 <= rows[name]["boxes_per_image"][0] <= 4.0
            assert rows[name]["maps_per_second"][0] > 0
        assert rows["reference | ground-truth boxes"]["recall"][0] == 1.0


def test_checkpoints_are_saved_and_reused(quick, capsys):
    tmp, args, _ = quick
    saved = sorted(p.name for p in (tmp / "ckpt").iterdir())
    assert saved == ["look_s0.pt", "multi-small_s0.pt"]
    before = (tmp / "ckpt" / "look_s0.pt").stat().st_mtime_ns
    assert main(args) == 0
    assert (tmp / "ckpt" / "look_s0.pt").stat().st_mtime_ns == before
    assert "recall@0.5" in capsys.readouterr().out


def test_the_demos_setting_is_a_row():
    from ccrop_cli.bench.localize import STAGES
    from ccrop_cli.demo.config import DemoConfig
    from ccrop_cli.experiment.strategies import BOX_SET_OPTIONS, get_strategy

    assert STAGES["convnet"]["stride 1+2"] == tuple(DemoConfig().stages)  # the demo's fused stride-1 and 2 stages
    assert get_strategy("multi").localizer_options == BOX_SET_OPTIONS  # the bench's box sets take the same options


def test_hit_rate_counts_centres_inside_boxes():
    gt = [np.array([[0.1, 0.1, 0.2, 0.2], [0.7, 0.7, 0.9, 0.9]], dtype=np.float32)]
    assert object_hit_rate([torch.tensor([[0.0, 0.0, 0.3, 0.3]])], gt) == 0.5
    assert object_hit_rate([torch.tensor([[0.0, 0.0, 1.0, 1.0]])], gt) == 1.0


def test_summarise_gives_mean_and_spread():
    rows = summarise([{"a": {"recall": 0.2}}, {"a": {"recall": 0.4}}])
    assert rows["a"]["recall"][:2] == pytest.approx([0.3, 0.1])


def test_data_without_annotations_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["bench", "localize", "--quick", "--seeds", "0", "--settings", "--rules", "channel_sum",
                 "--data", str(tmp_path / "empty")]) == 2  # channel_sum: ddt is there only after the quick fixture
    assert "annotations.json" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--rules", "foo"], ["--thresholds", "2"], ["--images", "0"], ["--seeds", "-1"],
                                    ["--seeds", str(2**64)]])
def test_bad_options_are_one_line_errors_before_any_work(option, capsys):
    try:
        code = main(["bench", "localize", "--quick", *option])
    except SystemExit as exit_:  # argparse's own usage error
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and option[0] in err


def test_third_look_is_a_data_kind(tmp_path):
    from ccrop_cli.bench.localize import BenchConfig, load_kind

    kind = load_kind("third-look", 0, BenchConfig(images=4, scene_size=24), tmp_path)
    assert kind.name == "third-look" and kind.images.shape == (4, 24, 24, 3) and len(kind.gt) == 4


def _user_folder(root, annotations):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cats/a.png", "dogs/b.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / name)
    (root / "annotations.json").write_text(json.dumps(annotations))
    return root


def test_data_reads_annotations_as_the_demo_does(tmp_path):
    # width/height left out and "./" names (the demo's documented format) were a KeyError traceback
    from ccrop_cli.bench.localize import BenchConfig, load_kind

    coco = {"images": [{"id": 1, "file_name": "./cats/a.png"}, {"id": 2, "file_name": "dogs/b.png"}],
            "annotations": [{"image_id": 1, "bbox": [10, 10, 20, 20]}]}
    kind = load_kind(str(_user_folder(tmp_path, coco)), 0, BenchConfig(images=4, scene_size=32), tmp_path)
    assert kind.filenames == ["cats/a.png", "dogs/b.png"] and kind.images.shape == (2, 32, 32, 3)
    assert kind.gt[0] == pytest.approx(np.array([[0.25, 0.25, 0.75, 0.75]])) and kind.gt[1].shape == (0, 4)


def test_malformed_data_annotations_are_one_line_before_any_work(tmp_path, capsys):
    coco = {"images": [{"id": 1, "file_name": "cats/a.png"}], "annotations": [{"image_id": 1, "bbox": "10,10,20,20"}]}
    folder = _user_folder(tmp_path, coco)
    assert main(["bench", "localize", "--quick", "--seeds", "0", "--settings", "--rules", "channel_sum",
                 "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "annotations[0]: 'bbox' must be [x, y, w, h]" in err and "Traceback" not in err

"""User errors end as one line ``ccrop <cmd>: error: ...`` with exit status 2; bugs keep their traceback.

Covers ``ccrop viz`` (checkpoints loaded weights-only, malformed box files named, index-keyed
JSON accepted) and ``ccrop demo`` (an output folder that cannot be written is refused before
training).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ccrop_cli import main as main_module
from ccrop_cli.errors import UserError
from ccrop_cli.main import main
from ccrop_cli.output.box_json import export_boxes, import_boxes, load_store_from_checkpoint
from ccrop_cli.output.image_folder import list_image_files
from ccrop_plugins import BoxSets, BoxStore
from ccrop_scenes import generate_scenes, write_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    scenes = generate_scenes(4, image_size=32, objects_per_image=(1, 2), object_area=(0.05, 0.15), seed=3)
    return write_image_folder(scenes, tmp_path_factory.mktemp("scenes"))


def _filled_store(count: int) -> BoxStore:
    store = BoxStore(count, max_boxes=2)
    store.update(list(range(count)), BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.6, 0.7]])] * count))
    return store


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ccrop {command}: error: "), err
    return err[0]


def _viz(folder: Path, tmp_path: Path, *source: str) -> int:
    return main(["viz", str(folder), *source, "--out", str(tmp_path / "viz"), "--pairs", "1", "--pair-images", "1",
                 "--images", "2"])


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: what a hostile checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


# -- ccrop viz --checkpoint: weights only -----------------------------------------------------
def test_a_checkpoint_that_would_run_code_is_refused_unread(folder, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    torch.save({"store": _filled_store(4).state_dict(), "extra": _Payload(marker)}, tmp_path / "evil.ckpt")
    assert _viz(folder, tmp_path, "--checkpoint", str(tmp_path / "evil.ckpt")) == 2
    line = _one_error_line(capsys, "viz")
    assert "refused to load checkpoint" in line and "evil.ckpt" in line and "mkdir" in line
    assert not marker.exists()


def test_an_mmengine_checkpoint_loads_with_the_scoped_allow_list(tmp_path):
    import ccrop_mm  # noqa: F401  (the MM extra is installed in CI: a missing one fails here)
    from mmengine.logging import HistoryBuffer

    buffer = HistoryBuffer()
    buffer.update(0.5)
    store = _filled_store(3)
    checkpoint = {
        "meta": {"epoch": 2},
        "state_dict": {"w": torch.zeros(2)},
        "message_hub": {"log_scalars": {"train/loss": buffer}, "runtime_info": {"lr": np.array([0.1])}},
        "ccrop": {"box_store": store.state_dict()},
    }
    torch.save(checkpoint, tmp_path / "epoch_2.pth")
    loaded = load_store_from_checkpoint(tmp_path / "epoch_2.pth")
    assert len(loaded) == 3 and loaded.version == store.version
    # The mmengine allow-list admits mmengine's types, not anything that comes with them.
    checkpoint["extra"] = _Payload(tmp_path / "payload-ran")
    torch.save(checkpoint, tmp_path / "mixed.pth")
    with pytest.raises(UserError, match="mkdir"):
        load_store_from_checkpoint(tmp_path / "mixed.pth")
    assert not (tmp_path / "payload-ran").exists()


def test_a_file_that_is_no_checkpoint_is_named(folder, tmp_path, capsys):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    assert _viz(folder, tmp_path, "--checkpoint", str(tmp_path / "notes.ckpt")) == 2
    assert "notes.ckpt" in _one_error_line(capsys, "viz")
    (tmp_path / "garbage.pt").write_bytes(b"\x80\x04garbage")  # a pickle header: was "it needs objects that a box
    assert _viz(folder, tmp_path, "--checkpoint", str(tmp_path / "garbage.pt")) == 2  # checkpoint does not hold"
    line = _one_error_line(capsys, "viz")
    assert "garbage.pt is not a readable torch checkpoint (" in line and "needs objects" not in line
    assert _viz(folder, tmp_path, "--checkpoint", str(tmp_path / "missing.ckpt")) == 2
    assert "missing.ckpt is not a file" in _one_error_line(capsys, "viz")


# -- ccrop viz --boxes: malformed files are named --------------------------------------------
def test_malformed_json_names_the_file(folder, tmp_path, capsys):
    (tmp_path / "broken.json").write_text('{"format": "ccrop-boxes", "samples": {')
    assert _viz(folder, tmp_path, "--boxes", str(tmp_path / "broken.json")) == 2
    line = _one_error_line(capsys, "viz")
    assert "broken.json is not valid JSON" in line


def test_a_box_file_without_samples_says_so(folder, tmp_path, capsys):
    (tmp_path / "nosamples.json").write_text(json.dumps({"format": "ccrop-boxes", "num_samples": 4}))
    assert _viz(folder, tmp_path, "--boxes", str(tmp_path / "nosamples.json")) == 2
    assert "nosamples.json has no 'samples' mapping" in _one_error_line(capsys, "viz")


@pytest.mark.parametrize("document", [
    {"samples": {"00_disc/00000.png": {"boxes": [[0.0, 0.0, 1.0, 1.0]] * 200, "scores": [1.0] * 200}}},  # int8 overflow
    {"max_boxes": 500, "samples": {"00_disc/00000.png": {"boxes": [[0.0, 0.0, 1.0, 1.0]], "scores": [1.0]}}},  # store's
])
def test_a_box_file_with_more_boxes_than_a_store_holds_is_one_line(folder, tmp_path, capsys, document):
    (tmp_path / "many.json").write_text(json.dumps({"format": "ccrop-boxes", **document}))
    assert _viz(folder, tmp_path, "--boxes", str(tmp_path / "many.json")) == 2
    line = _one_error_line(capsys, "viz")
    assert "many.json has " in line and "boxes per sample" in line and "a box store holds at most 127" in line


def test_a_bad_box_is_named_by_its_file_name(folder, tmp_path, capsys):
    files = list_image_files(folder)
    path = export_boxes(_filled_store(len(files)), files, tmp_path / "boxes.json")
    document = json.loads(path.read_text())
    document["samples"][files[2]]["boxes"][0] = [0.8, 0.1, 0.2, 0.7]  # x0 > x1
    path.write_text(json.dumps(document))
    assert _viz(folder, tmp_path, "--boxes", str(path)) == 2
    line = _one_error_line(capsys, "viz")
    assert f"sample {files[2]!r}" in line and "boxes.json" in line
    document["samples"][files[1]] = {"boxes": [[0.1, 0.1, 0.5]], "scores": [1.0]}
    path.write_text(json.dumps(document))
    with pytest.raises(UserError, match=f"sample {files[1]!r}"):
        import_boxes(path, files)


def test_index_keyed_json_is_read_by_index(folder, tmp_path, capsys):
    files = list_image_files(folder)
    store = _filled_store(len(files))
    path = export_boxes(store, None, tmp_path / "by_index.json")
    assert json.loads(path.read_text())["keyed_by"] == "index"
    read = import_boxes(path, files)
    assert len(read) == len(files) and torch.equal(read.get(3)[0], store.get(3)[0])
    assert _viz(folder, tmp_path, "--boxes", str(path)) == 0
    capsys.readouterr()
    short = export_boxes(_filled_store(2), None, tmp_path / "short.json")
    assert _viz(folder, tmp_path, "--boxes", str(short)) == 2
    assert "keyed by index and holds 2 samples, but the dataset has 4" in _one_error_line(capsys, "viz")


# -- the boundary ----------------------------------------------------------------------------
def test_bad_option_values_are_one_line(folder, tmp_path, capsys):
    assert _viz(folder, tmp_path, "--boxes", "x.json", "--display-size", "0") == 2
    assert "--display-size must be a positive integer" in _one_error_line(capsys, "viz")
    assert main(["demo", "--quick", "--epochs", "1", "--warmup-epochs", "1", "--out", str(tmp_path / "d")]) == 2
    assert "--epochs 1 must exceed --warmup-epochs 1" in _one_error_line(capsys, "demo")
    # With no warm-up the first refresh comes after --interval epochs: --epochs 1 --warmup-epochs 0 trained without one.
    assert main(["demo", "--quick", "--epochs", "1", "--warmup-epochs", "0", "--out", str(tmp_path / "d")]) == 2
    assert "--epochs 1 must exceed --interval 1 when --warmup-epochs is 0" in _one_error_line(capsys, "demo")
    assert main(["study", "--quick", "--box-scale", "4", "1", "--out", str(tmp_path / "s")]) == 2
    assert "--box-scale must be 0 < min <= max" in _one_error_line(capsys, "study")


def test_the_bench_group_alone_or_with_help_lists_its_commands(capsys):
    # both were "ccrop: unknown command 'bench'" / "'bench --help'"
    assert main(["bench"]) == 2
    assert _one_error_line(capsys, "bench") == ("ccrop bench: error: name one of: speed, pairs, lightly, localize, mm "
                                                "(e.g. 'ccrop bench speed --help')")
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("  bench speed ") and "  bench mm " in out


def test_output_into_a_closed_pipe_ends_without_a_traceback():
    # 'ccrop plugins | head -1' printed a BrokenPipeError traceback
    process = subprocess.Popen([sys.executable, "-m", "ccrop_cli.main", "plugins"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # the reader leaves before the command writes
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


@pytest.mark.parametrize("error", [
    MemoryError("Unable to allocate 6.98 TiB for an array with shape (256, 100000, 100000, 3) and data type uint8"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 120000000000 bytes. Error code 12 (Cannot allocate memory)"),
])
def test_sizes_beyond_the_memory_are_one_line(monkeypatch, capsys, error):
    # 'ccrop bench pairs --image-size 100000', 'ccrop study --image-size 100000': numpy's and torch's tracebacks
    def too_big(args):
        raise error

    monkeypatch.setattr("ccrop_cli.plugins_command.run", too_big)
    assert main(["plugins"]) == 2
    line = _one_error_line(capsys, "plugins")
    assert "not enough memory for these sizes (" in line and str(error)[:30] in line
    assert "use smaller image sizes" in line


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr("ccrop_cli.plugins_command.run", broken)
    with pytest.raises(KeyError, match="a bug"):
        main_module.main(["plugins"])

    def other_runtime_error(args):
        raise RuntimeError("Given groups=1, weight of size [4, 3, 3, 3]")

    monkeypatch.setattr("ccrop_cli.plugins_command.run", other_runtime_error)
    with pytest.raises(RuntimeError, match="Given groups=1"):
        main_module.main(["plugins"])


# -- ccrop demo: the output folder is checked before training --------------------------------
def test_demo_refuses_an_unwritable_output_before_training(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "report.md").mkdir(parents=True)  # report.md cannot be written (even as root)
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 2
    assert "report.md exists and cannot be overwritten" in _one_error_line(capsys, "demo")
    assert not (out / "data").exists()  # nothing generated, nothing trained
    (tmp_path / "a-file").write_text("")
    assert main(["demo", "--quick", "--no-progress", "--out", str(tmp_path / "a-file")]) == 2
    assert "is not a writable folder" in _one_error_line(capsys, "demo")


def test_demo_refuses_a_negative_seed_and_unknown_stages_before_any_data(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--seed", "-1", "--out", str(out)]) == 2
    assert "--seed must be an integer >= 0; got -1" in _one_error_line(capsys, "demo")
    assert main(["demo", "--quick", "--stages", "5", "99", "--out", str(out)]) == 2
    assert "--stages: unknown stage '99'; the convnet backbone's stages are" in _one_error_line(capsys, "demo")
    assert not (out / "data").exists()


def test_mmpretrain_demo_refuses_unknown_stages_before_training(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--quick", "--no-progress", "--framework", "mmpretrain", "--stages", "backbone.layer9"]
    assert main([*argv, "--out", str(out)]) == 2
    assert ("--stages: unknown stage 'backbone.layer9'; the MMPretrain ResNet-18 backbone's stages are"
            in _one_error_line(capsys, "demo"))
    assert not list(out.glob("mm_work_dir/epoch_*.pth"))


@pytest.mark.parametrize("argv, message", [
    (["bench", "speed", "--rounds", "0"], "argument --rounds: expected a positive integer; got 0"),
    (["bench", "mm", "--rounds", "-1"], "argument --rounds: expected a positive integer; got -1"),
    (["bench", "lightly", "--batch-size", "0"], "argument --batch-size: expected a positive integer; got 0"),
    (["bench", "speed", "--seed", "x"], "argument --seed: expected an integer in [0, 2**63); got 'x'"),
    # were torch's "Overflow when unpacking long long" after the work began, or negative seeds taken
    (["bench", "mm", "--seed", "99999999999999999999"],
     "argument --seed: expected an integer in [0, 2**31) (it also seeds NumPy"),
    (["bench", "pairs", "--seed", "-1"], "argument --seed: expected an integer in [0, 2**63); got -1"),
    (["viz", "folder", "--boxes", "b.json", "--out", "o", "--seed", str(2**64)],
     "argument --seed: expected an integer"),
    # sizes that exhausted the memory (bench mm --crop-size 100000 was killed by the kernel), or ran for ever
    (["bench", "mm", "--crop-size", "100000"],
     "argument --crop-size: expected a side in pixels from 16 to 1024"),
    (["bench", "lightly", "--input-size", "5000"], "argument --input-size: expected a side in pixels from 16 to 1024"),
    (["study", "--image-size", "100000"], "argument --image-size: expected a side in pixels from 1 to 1024"),
    (["bench", "pairs", "--image-size", "2000"], "argument --image-size: expected a side in pixels from 1 to 1024"),
])
def test_bench_counts_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's exit, before anything runs
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_viz_bad_alpha_is_one_line_before_drawing(folder, tmp_path, capsys):
    # was the core's ValueError traceback, raised after box_sets.png had been drawn
    store_file = tmp_path / "boxes.json"
    export_boxes(_filled_store(4), list_image_files(folder), store_file)
    for alpha in ("0", "-1", "nan"):
        assert _viz(folder, tmp_path, "--boxes", str(store_file), "--alpha", alpha) == 2
        assert "--alpha must be a finite number > 0" in _one_error_line(capsys, "viz")
    assert not (tmp_path / "viz").exists()


def test_viz_names_an_image_it_cannot_decode(tmp_path, capsys):
    # was PIL's "OSError: image file is truncated" traceback, without the file's name
    import io

    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    encoded = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(encoded, "JPEG")
    (root / "a.jpg").write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    Image.new("RGB", (32, 32)).save(root / "b.png")
    store_file = tmp_path / "boxes.json"
    export_boxes(_filled_store(2), list_image_files(root), store_file)
    assert _viz(root, tmp_path, "--boxes", str(store_file)) == 2
    assert "cannot read image a.jpg of" in _one_error_line(capsys, "viz")


@pytest.mark.parametrize("option, message", [
    (["--threshold", "foo"], "--threshold: threshold must be a number in [0, 1) or one of mean, otsu; got 'foo'"),
    (["--heatmap", "foo"], "--heatmap: unknown heatmap 'foo'; available:"),
    (["--localizer", "blobs"], "--localizer: unknown localizer 'blobs'; available:"),
    (["--stage", "layer9"], "--stage: unknown stage 'layer9' of ResNet"),
])
def test_bench_mm_refresh_options_are_one_line_before_any_timing(option, message, capsys):
    # were tracebacks from the refresh pass, after the whole pipeline comparison had run
    assert main(["bench", "mm", "--rounds", "1", "--samples", "1", "--images", "1", "--image-size", "32", "32",
                 "--crop-size", "16", *option]) == 2
    captured = capsys.readouterr()
    assert message in _one_error_line_of(captured.err, "bench mm") and "pipeline:" not in captured.out


def _one_error_line_of(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith(f"ccrop {command}: error: "), err
    return lines[-1]


@pytest.mark.parametrize("content", [b"", b"not a pickle", b"\x80\x04garbage"])
def test_bench_pairs_names_a_checkpoint_that_is_not_a_saved_module(tmp_path, capsys, content):
    # were torch.load's UnpicklingError / EOFError tracebacks
    path = tmp_path / "backbone.pt"
    path.write_bytes(content)
    assert main(["bench", "pairs", "--quick", "--checkpoint", str(path)]) == 2
    line = _one_error_line_of(capsys.readouterr().err, "bench pairs")
    assert f"--checkpoint {path} cannot be read as a torch.save'd nn.Module (" in line


@pytest.mark.parametrize("argv, message", [
    (["bench", "pairs", "--quick", "--no-model", "--alpha", "0"], "--alpha must be a finite number > 0"),
    (["bench", "pairs", "--quick", "--batch-size", "1"], "--batch-size must be at least 2"),
    # were the scenes' ValueError and DataLoader's traceback
    (["bench", "pairs", "--quick", "--image-size", "8"], "--image-size must be at least 16 (the generated scenes'"),
    (["bench", "lightly", "--images", "8", "--repeats", "1", "--alpha", "-1"], "--alpha must be a finite number > 0"),
    (["bench", "lightly", "--repeats", "1", "--folder", "missing-folder"], "--folder missing-folder: not a folder"),
])
def test_bench_pairs_and_lightly_options_are_one_line_before_any_work(argv, message, capsys):
    # were the core's / lightly's ValueError tracebacks, some after minutes of measuring
    assert main(argv) == 2
    assert message in _one_error_line_of(capsys.readouterr().err, " ".join(argv[:2]))


def test_bench_lightly_folder_with_an_empty_class_is_one_line(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    for name in ("0.png", "1.png"):
        Image.new("RGB", (32, 32)).save(tmp_path / "a" / name)
    assert main(["bench", "lightly", "--repeats", "1", "--folder", str(tmp_path)]) == 2
    line = _one_error_line_of(capsys.readouterr().err, "bench lightly")
    assert "class folder(s) hold no images: .ipynb_checkpoints" in line


@pytest.mark.parametrize("argv", [
    ["bench", "localize", "--quick", "--settings", "multi-small", "--rules", "channel_sum", "--json"],
    ["bench", "pairs", "--quick", "--no-model", "--out"],
])
def test_bench_output_files_are_checked_before_any_work(argv, tmp_path, capsys):
    # a folder (or an unwritable place) was found only when the figures were written, after the whole bench
    assert main([*argv, str(tmp_path)]) == 2
    line = _one_error_line_of(capsys.readouterr().err, " ".join(argv[:2]))
    assert f"{argv[-1]} {tmp_path} is a folder; give a file name" in line


def test_viz_out_that_is_a_file_is_one_line(folder, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")  # was mkdir's FileExistsError traceback after reading the store
    assert main(["viz", str(folder), "--boxes", str(tmp_path / "b.json"), "--out", str(tmp_path / "taken")]) == 2
    assert f"--out {tmp_path / 'taken'} is not a writable folder" in _one_error_line(capsys, "viz")


def test_viz_out_inside_the_image_folder_is_refused(folder, tmp_path, capsys):
    # was accepted: the PNG files landed among the images, and the next run read them as a class of the folder
    store_file = tmp_path / "boxes.json"
    export_boxes(_filled_store(4), list_image_files(folder), store_file)
    for out in (folder / "viz", folder):
        assert main(["viz", str(folder), "--boxes", str(store_file), "--out", str(out), "--images", "1",
                     "--pair-images", "1", "--pairs", "1"]) == 2
        assert "lies inside the image folder" in _one_error_line(capsys, "viz")
    assert not (folder / "viz").exists() and len(list_image_files(folder)) == 4


@pytest.mark.parametrize("option, value", [("--pairs", "17"), ("--images", "257"), ("--pair-images", "65"),
                                           ("--display-size", "20000")])
def test_viz_drawing_options_have_an_upper_bound(folder, tmp_path, capsys, option, value):
    # were accepted: --pairs 2000 drew for minutes a PNG 4,000 panels wide, --display-size 20000 held 1.2 GB an image
    assert main(["viz", str(folder), "--boxes", "x.json", "--out", str(tmp_path / "viz"), option, value]) == 2
    assert f"{option} must be at most" in _one_error_line(capsys, "viz")


def test_viz_draws_sixteen_bit_images_as_training_sees_them_and_names_float_images(tmp_path, capsys):
    # a 16-bit PNG was drawn nearly white (PIL's convert('RGB') clips at 255) while training (ccrop_lightly.to_rgb)
    # saw it scaled by 1/257; a float TIFF was drawn white too
    from PIL import Image

    from ccrop_cli.output.viz import _display_image

    root = tmp_path / "images"
    root.mkdir()
    values = (np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16)
    Image.fromarray(values).save(root / "a.png")
    Image.fromarray(np.rint(values / 257).astype(np.uint8)).save(root / "b.png")
    assert np.abs(_display_image(root, "a.png", 32).astype(int) - _display_image(root, "b.png", 32)).max() <= 1
    Image.fromarray(values.astype(np.float32)).save(root / "c.tif")
    store_file = tmp_path / "boxes.json"
    export_boxes(_filled_store(3), list_image_files(root), store_file)
    assert main(["viz", str(root), "--boxes", str(store_file), "--out", str(tmp_path / "viz"),
                 "--pair-images", "1"]) == 2
    assert "cannot draw image c.tif of" in _one_error_line(capsys, "viz")


@pytest.mark.parametrize("scores, shown", [
    ([float("nan")], "scores must be finite and >= 0; got nan"),  # was the store's ValueError traceback, naming
    ([-1.0], "scores must be finite and >= 0; got -1.0"),         # "sample 0" and no file
    (["a"], "'scores' must be a list of numbers, one per box; got ['a']"),  # was "too many dimensions 'str'"
])
def test_viz_names_a_bad_score_in_a_box_file(folder, tmp_path, capsys, scores, shown):
    files = list_image_files(folder)
    path = export_boxes(_filled_store(4), files, tmp_path / "boxes.json")
    document = json.loads(path.read_text())
    document["samples"][files[1]]["scores"] = scores
    path.write_text(json.dumps(document))
    assert _viz(folder, tmp_path, "--boxes", str(path)) == 2
    line = _one_error_line(capsys, "viz")
    assert f"sample {files[1]!r} in {path}: {shown}" in line


def test_viz_reads_annotations_as_the_demo_documents_them(tmp_path, capsys):
    # the demo's documented annotations.json (width/height left out, './' file names) was read with the generated
    # scenes' reader: KeyError: 'width' traceback, while ccrop demo --data accepted the same folder
    from PIL import Image

    root = tmp_path / "images"
    (root / "c").mkdir(parents=True)
    for index in range(3):
        Image.new("RGB", (32, 32), (40 * index, 0, 0)).save(root / "c" / f"{index}.png")
    coco = {"images": [{"id": i, "file_name": f"./c/{i}.png"} for i in range(3)],
            "annotations": [{"id": 0, "image_id": 0, "bbox": [2, 2, 10, 10], "category_id": 1}]}
    (root / "annotations.json").write_text(json.dumps(coco))
    store_file = export_boxes(_filled_store(3), list_image_files(root), tmp_path / "boxes.json")
    assert _viz(root, tmp_path, "--boxes", str(store_file)) == 0
    capsys.readouterr()
    coco["annotations"][0]["bbox"] = [2, 2, 10]
    (root / "annotations.json").write_text(json.dumps(coco))
    assert _viz(root, tmp_path, "--boxes", str(store_file)) == 2
    assert "annotations[0]" in _one_error_line(capsys, "viz")

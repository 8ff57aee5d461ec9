"""Path options of every command: ``~`` is the home folder also where the shell leaves it (``--out=~/x``)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccrop_cli.main import COMMANDS, main

PATH_OPTIONS = [  # (command, other arguments it needs, option, destination)
    ("viz", ["images", "--out=o"], "--boxes", "boxes"),
    ("viz", ["images", "--out=o"], "--checkpoint", "checkpoint"),
    ("viz", ["images", "--boxes=b.json"], "--out", "out"),
    ("bench lightly", [], "--folder", "folder"),
    ("bench pairs", [], "--checkpoint", "checkpoint"),
    ("bench pairs", [], "--out", "out"),
    ("study", [], "--out", "out"),
    ("demo", [], "--out", "out"),
    ("demo", [], "--data", "data"),
    ("bench localize", [], "--data", "data"),
    ("bench localize", [], "--checkpoints", "checkpoints"),
    ("bench localize", [], "--json", "json"),
]


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    return parser


@pytest.mark.parametrize("command, others, option, dest", PATH_OPTIONS)
def test_a_tilde_after_the_equals_sign_is_the_home_folder(command, others, option, dest, tmp_path, monkeypatch):
    # The shell expands `--out ~/x` but not `--out=~/x`: the commands made a folder named '~' in the current folder.
    monkeypatch.setenv("HOME", str(tmp_path))
    args = _parser(command).parse_args([*others, f"{option}=~/x"])
    value = getattr(args, dest)
    assert Path(value[0] if isinstance(value, list) else value) == tmp_path / "x"  # bench localize --data: a list


def test_viz_reads_and_writes_home_folders_written_with_a_tilde(tmp_path, monkeypatch, capsys):
    from ccrop_cli.output.box_json import export_boxes
    from ccrop_plugins import BoxSets, BoxStore

    images = tmp_path / "images"
    images.mkdir()
    for index in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * index, np.uint8)).save(images / f"{index}.png")
    store = BoxStore(2)
    store.update(range(2), BoxSets.from_lists([np.array([[0.1, 0.1, 0.6, 0.6]], np.float32)] * 2))
    export_boxes(store, ["0.png", "1.png"], tmp_path / "boxes.json")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = ["viz", "~/images", "--boxes=~/boxes.json", "--out=~/viz", "--images", "2", "--pair-images", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "viz" / "box_sets.png").is_file() and not (tmp_path / "here" / "~").exists()


@pytest.mark.parametrize("command, others, option, dest", PATH_OPTIONS)
def test_an_empty_path_is_refused_not_read_as_the_current_folder(command, others, option, dest, capsys):
    # `--out "$OUT"` with OUT unset: Path("") is the current folder, where viz and study wrote their files.
    with pytest.raises(SystemExit) as exit_info:
        _parser(command).parse_args([*others, option, ""])
    assert exit_info.value.code == 2
    assert f"argument {option}: empty path (an unset variable in \"$DIR\"?)" in capsys.readouterr().err

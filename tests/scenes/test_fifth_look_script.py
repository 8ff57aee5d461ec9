"""``python scripts/fifth_look.py DIR``: the fifth look's folder (README.md); bad values are one usage line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fifth_look.py"


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_writes_a_folder_with_its_boxes(tmp_path):
    done = _run(str(tmp_path / "five"), "--images", "3", "--seed", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    coco = json.loads((tmp_path / "five" / "annotations.json").read_text())
    assert len(coco["images"]) == 3 and all((tmp_path / "five" / i["file_name"]).is_file() for i in coco["images"])


@pytest.mark.parametrize("argv, message", [
    # were FileNotFoundError tracebacks ('.../annotations.json'): no image made the folder
    (["DIR", "--images", "0"], "argument --images: expected a positive integer; got 0"),
    (["DIR", "--images", "-1"], "argument --images: expected a positive integer; got -1"),
    # was numpy's 'ValueError: expected non-negative integer' traceback
    (["DIR", "--seed", "-1"], "argument --seed: expected an integer >= 0; got -1"),
    # a script's "$DIR" with DIR unset: Path("") is the current folder, written into when empty
    (["", "--images", "2"], 'argument root: empty path (an unset variable in "$OUT"?)'),
    # was a NotADirectoryError traceback
    (["FILE", "--images", "2"], "is a file, not a folder; name a new folder"),
])
def test_bad_values_are_one_usage_line_before_anything_is_written(tmp_path, argv, message):
    (tmp_path / "file").write_text("x")
    work = tmp_path / "work"
    work.mkdir()
    names = {"DIR": str(tmp_path / "out"), "FILE": str(tmp_path / "file")}
    done = _run(*[names.get(item, item) for item in argv], cwd=work)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("scripts/fifth_look.py: error: ") and message in lines[-1]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists() and list(work.iterdir()) == []

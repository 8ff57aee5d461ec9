"""Findings D1 and D4-D9 of probe P5 (session 20) on the ``ccrop`` command line, fixed in session 21.

``--help`` states every default once; ``bench localize --data`` names a missing folder as the demo does; the
frameworks' known, harmless warnings stay out of the programs' output; one seed has no spread; the demo's report
marks the refreshes of a fitted heatmap rule made before its first fit, and its final boxes are a file ``ccrop viz``
reads.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ccrop_cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ccrop {command}: error: "), err
    return err[0]


# -- D1: --help states each default once -------------------------------------------------------------------------------
# Options without a default: filters, files to read or write, and --only/--exif style choices that are off unless given.
NO_DEFAULT = {
    "plugins": {"--kind"},
    "demo": {"--data"},
    "viz": {"--boxes", "--checkpoint", "--out", "--exif"},
    "bench pairs": {"--checkpoint", "--out", "--box-scales"},
    "bench localize": {"--data", "--checkpoints", "--json"},
}


def _help_entries(capsys, command: str) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The command's parser and ``{first option string: its entry}`` of what ``ccrop COMMAND --help`` prints."""
    parser = argparse.ArgumentParser(prog=f"ccrop {command}")
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    entries: dict[str, str] = {}
    name = None
    for line in capsys.readouterr().out.splitlines():
        start = re.match(r"  (-[-\w]+)", line)
        if start:
            name = start.group(1)
            entries[name] = line
        elif name is not None and line.startswith("   "):
            entries[name] += " " + line.strip()
        else:
            name = None
    return parser, entries


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_states_its_default_once(capsys, command):
    # Before: demo --warmup-epochs/--interval had no help at all; 13 study options, bench speed --rounds --crops --seed,
    # bench lightly --batch-size --alpha, bench mm --images/--samples/--rounds/--localizer/--heatmap and bench
    # localize --seeds showed no default.
    parser, entries = _help_entries(capsys, command)
    for action in parser._actions:
        if action.nargs == 0 or not action.option_strings:  # -h, flags, positionals
            continue
        name = action.option_strings[0]
        count = entries[name].lower().count("default")
        if name in NO_DEFAULT.get(command, ()):
            assert count <= 1, (command, entries[name])
        else:
            assert count == 1, (command, entries[name])


def test_stated_defaults_are_the_code_defaults(capsys):
    from ccrop_cli.demo.config import DemoConfig
    from ccrop_cli.study.config import StudyConfig

    _, demo = _help_entries(capsys, "demo")
    assert f"(default: {DemoConfig.warmup_epochs}; 2 with --framework mmpretrain)" in demo["--warmup-epochs"]
    assert f"(default: {DemoConfig.interval})" in demo["--interval"]
    _, study = _help_entries(capsys, "study")
    defaults = StudyConfig()
    for option, value in (("--epochs", defaults.epochs), ("--train-images", defaults.train_images),
                          ("--settings", "mixed-small"), ("--strategies", "rrc multi-box"),
                          ("--boxes", "learned oracle"), ("--box-scale", "1 4"), ("--alpha", defaults.alpha)):
        assert f"(default: {value})" in study[option], option
    _, localize = _help_entries(capsys, "bench localize")
    assert "(default: 0 1 2)" in localize["--seeds"]
    _, mm = _help_entries(capsys, "bench mm")
    assert "(default: components)" in mm["--localizer"] and mm["--same-draws"].count("default") == 1


# -- D5: bench localize --data names a missing folder as the demo does -------------------------------------------------
@pytest.mark.parametrize("make", [None, "file"])
def test_bench_localize_data_that_is_no_folder(tmp_path, capsys, make):
    # Before: "--data /nonexistent: no annotations.json in it", where demo and bench lightly say "not a folder".
    path = tmp_path / "nonexistent"
    if make == "file":
        path.write_text("x")
    assert main(["bench", "localize", "--quick", "--seeds", "0", "--settings", "--rules", "channel_sum",
                 "--data", str(path)]) == 2
    assert _one_error_line(capsys, "bench localize").endswith(
        f"--data {path}: not a folder (expected an image folder with annotations.json)")


# -- D6: the frameworks' known warnings stay out of the programs' output -----------------------------------------------
def test_bench_mm_error_is_the_only_line_on_stderr():
    # Before: mmcv's "UserWarning: Fail to import ``MultiScaleDeformableAttention`` ..." (2 lines) came first.
    program = "import sys; from ccrop_cli.main import main; sys.exit(main(['bench', 'mm', '--localizer', 'nope']))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr == "ccrop bench mm: error: --localizer: unknown localizer 'nope'; available: bbox, components\n"


def test_other_warnings_and_log_records_still_show():
    import logging
    import warnings

    from ccrop_cli.framework_warnings import KnownLogRecords, hide_known_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hide_known_warnings()
        warnings.warn("Only use 'alpha' for pillow backend.")
        warnings.warn("Fail to import ``MultiScaleDeformableAttention`` from ``mmcv.ops.multi_scale_deform_attn``, ")
        warnings.warn("Only use 'alpha' for pillow backend.", DeprecationWarning)  # another category: shown
        warnings.warn("something else")
    assert [(str(w.message), w.category) for w in caught] == [
        ("Only use 'alpha' for pillow backend.", DeprecationWarning), ("something else", UserWarning)]
    record = logging.LogRecord("mmengine", logging.WARNING, "", 0, '"FileClient" will be deprecated in future. '
                               "Please use io functions in https://...", None, None)
    other = logging.LogRecord("mmengine", logging.WARNING, "", 0, "Epoch(train) [1][1/2]", None, None)
    assert [KnownLogRecords().filter(r) for r in (record, other)] == [False, True]


# -- D7: one seed has no spread ----------------------------------------------------------------------------------------
def test_bench_localize_one_seed_has_no_spread():
    # Before: "0.67 ± 0.00", a spread over one seed.
    from ccrop_cli.bench.localize import format_table, summarise

    row = {"recall": 2 / 3, "precision": 0.5, "hit_rate": 1.0, "boxes_per_image": 2.0, "maps_per_second": 100.0,
           "fp_pairs": 0.1, "share_box": 0.4}
    one = format_table("single", summarise([{"a | last | 0.1": row}]), [0])
    assert "| a | last | 0.1 | 0.67 ± - | 0.50 ± - |" in one and "0.00" not in one
    two = format_table("single", summarise([{"a | last | 0.1": row}, {"a | last | 0.1": {**row, "recall": 0.5}}]),
                       [0, 1])
    assert "| a | last | 0.1 | 0.58 ± 0.08 | 0.50 ± 0.00 |" in two


# -- D8, D9: the demo's report and boxes -------------------------------------------------------------------------------
def _demo_outputs(tmp_path, heatmap: str, store=None):
    """:func:`write_outputs` of a fake two-refresh run on two images (no training)."""
    from ccrop_cli.demo.config import DemoConfig, DemoRun
    from ccrop_cli.demo.report import write_outputs

    data = tmp_path / "data"
    for index, name in enumerate(["a/x.png", "a/y.png"]):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(index).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / name)
    config = DemoConfig(data=str(data), images=2, refresh_size=32, batch_size=2, heatmap=heatmap)
    stats = {"mean_boxes": 1.0, "mean_box_area": 0.25, "fallback_fraction": 0.0, "seconds": 0.1}
    boxes = [torch.tensor([[0.0, 0.0, 0.5, 0.5]])] * 2
    torch.manual_seed(0)
    run = DemoRun(feature_fn=torch.nn.Conv2d(3, 4, 3, stride=4), filenames=["a/x.png", "a/y.png"],
                  refreshes=[(1, stats, boxes), (3, stats, boxes)], store=store)
    (tmp_path / "out").mkdir(exist_ok=True)
    return write_outputs(tmp_path / "out", config, "lightly", data, run, 1.0, None), data, tmp_path / "out"


def test_the_report_marks_refreshes_before_a_fitted_rules_first_fit(tmp_path, extras_plugin):
    # Before: the header said "heatmap ddt" while the first refresh ran on ddt's fallback, distinctiveness.
    report, _, out = _demo_outputs(tmp_path, "ddt")
    assert [r["before_first_fit"] for r in report["refreshes"]] == [True, False]
    markdown = (out / "report.md").read_text()
    assert "| 2 (before fit) |" in markdown and "| 4 |" in markdown
    assert "the refresh marked *before fit* ran on the rule's fallback (ddt's: distinctiveness)" in markdown


def test_a_rule_without_statistics_marks_no_refresh(tmp_path):
    report, _, out = _demo_outputs(tmp_path, "distinctiveness")
    assert [r["before_first_fit"] for r in report["refreshes"]] == [False, False]
    assert "before fit" not in (out / "report.md").read_text()


def test_the_demo_writes_its_final_boxes_for_viz(tmp_path, capsys):
    # Before: no ccrop command wrote a --boxes file; the demo's store was dropped with the run.
    from ccrop_cli.output.box_json import import_boxes
    from ccrop_cli.output.image_folder import list_image_files
    from ccrop_plugins import BoxSets, BoxStore

    store = BoxStore(2, max_boxes=4)
    second = torch.tensor([[0.2, 0.3, 0.9, 1.0], [0.0, 0.0, 0.3, 0.3]])
    store.update([0, 1], BoxSets.from_lists([torch.tensor([[0.1, 0.1, 0.6, 0.7]]), second]))
    report, data, out = _demo_outputs(tmp_path, "distinctiveness", store)
    assert report["boxes"] == {"file": str(out / "boxes.json"), "image_folder": str(data)}
    loaded = import_boxes(out / "boxes.json", keys=list_image_files(data))
    assert all(torch.equal(loaded.get(i)[0], store.get(i)[0]) for i in range(2))
    assert f"ccrop viz {data} --boxes {out / 'boxes.json'} --out {out / 'viz'}" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["viz", str(data), "--boxes", str(out / "boxes.json"), "--out", str(out / "viz"), "--images", "2",
                 "--pair-images", "1", "--pairs", "1"]) == 0
    assert (out / "viz" / "box_sets.png").is_file()
    _demo_outputs(tmp_path, "distinctiveness")  # a run without a store leaves no earlier run's boxes.json
    assert not (out / "boxes.json").exists()

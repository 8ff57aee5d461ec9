"""``ccrop bench localize / pairs / mm``: options that were silently dropped or ignored are one-line errors before
any work (session 17 probe)."""

from __future__ import annotations

import pytest

from ccrop_cli.main import main


def _error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("option, item, values", [
    ("--data", "folder", (["a/scenes"], ["b/scenes"])),
    ("--settings", "setting", (["single"], ["multi-small"])),
    ("--rules", "rule", (["channel_sum"], ["channel_norm"])),
    ("--thresholds", "threshold", (["0.3"], ["otsu"])),
    ("--seeds", "seed", (["0"], ["1"])),
])
def test_localize_list_option_given_twice_is_refused(option, item, values, capsys):
    # argparse kept the last list only: '--data a --data b' measured b alone
    argv = ["bench", "localize", "--quick", option, *values[0], option, *values[1]]
    assert main(argv) == 2
    assert _error(capsys) == (f"ccrop bench localize: error: {option} given twice; list every {item} after one "
                              f"{option}")


@pytest.mark.parametrize("data, first, second", [
    (["a/scenes", "b/scenes"], "--data a/scenes", "--data b/scenes"),
    (["x/single"], "the setting single", "--data x/single"),
])
def test_localize_checkpoint_name_clash_is_refused(tmp_path, data, first, second, capsys):
    # both kinds read and wrote one DIR/<name>_s<seed>.pt: the second was measured with the first's backbone
    argv = ["bench", "localize", "--quick", "--rules", "channel_sum", "--data", *(str(tmp_path / d) for d in data),
            "--checkpoints", str(tmp_path / "ck")]
    assert main(argv) == 2
    name = data[-1].split("/")[-1]
    first = first.replace(data[0], str(tmp_path / data[0])) if first.startswith("--") else first
    assert _error(capsys) == (
        f"ccrop bench localize: error: --checkpoints: {first} and {second.replace(data[-1], str(tmp_path / data[-1]))}"
        f" would share one checkpoint file {name}_s<seed>.pt (the second measured with the first's backbone); give "
        "the folders distinct last names, or measure them in separate runs with other --checkpoints folders")


def test_localize_default_rules_leave_out_unloaded_plugin_rules(tmp_path, monkeypatch, capsys):
    # the default named ddt and ncut (ccrop_extras): '--rules: unknown heatmap 'ddt'' with no --rules given
    from ccrop_extras import plugin
    from ccrop_plugins.plugins import plugin_manager

    name = plugin_manager.get_name(plugin) if plugin_manager.is_registered(plugin) else None
    if name is not None:  # another test of this process registered it: out for this one (was a skip)
        plugin_manager.unregister(plugin)
    try:
        _default_rules_without_plugins(tmp_path, monkeypatch, capsys)
    finally:
        if name is not None:
            plugin_manager.register(plugin, name=name)


def _default_rules_without_plugins(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CCROP_PLUGINS_NO_AUTOLOAD", "1")
    assert main(["bench", "localize", "--quick", "--settings", "single", "--seeds", "0", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert ("note: --rules default leaves out ddt, ncut (CCROP_PLUGINS_NO_AUTOLOAD is set; the ccrop_extras plugin "
            "adds them); measuring channel_sum, channel_norm, distinctiveness") in err
    last = err.strip().splitlines()[-1]
    assert last == f"ccrop bench localize: error: --json {tmp_path} is a folder; give a file name"
    assert main(["bench", "localize", "--quick", "--rules", "ddt"]) == 2
    assert _error(capsys).endswith("(CCROP_PLUGINS_NO_AUTOLOAD is set: installed plugins are not loaded)")


@pytest.mark.parametrize("option", [["--epochs", "3"], ["--batch-size", "8"], ["--thresholds", "0.2"],
                                    ["--workers", "0"], ["--progress"]])
def test_pairs_model_options_with_no_model_are_refused(option, capsys):
    assert main(["bench", "pairs", "--no-model", "--quick", *option]) == 2
    assert _error(capsys) == (f"ccrop bench pairs: error: {option[0]} does not apply with --no-model (oracle boxes "
                              "only, no pre-training); leave it out or drop --no-model")


def test_pairs_out_under_a_file_names_the_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "x.json"
    assert main(["bench", "pairs", "--no-model", "--quick", "--out", str(out)]) == 2
    assert _error(capsys) == f"ccrop bench pairs: error: --out {out}: {tmp_path / 'afile'} is a file, not a folder"


@pytest.mark.parametrize("option, text", [
    (["--threshold", "2"], "--threshold: threshold must lie in [0, 1) or be one of mean, otsu; got 2.0"),
    (["--stage", "layer9"], "--stage: unknown stage 'layer9' of ResNet"),
    (["--core-level", "5"], "--core-level: "),
    (["--heatmap", "nope"], "--heatmap: "),
])
def test_mm_only_pipeline_still_checks_refresh_options(option, text, capsys):
    assert main(["bench", "mm", "--only", "pipeline", "--rounds", "1", "--samples", "1", "--images", "1",
                 *option]) == 2
    assert _error(capsys).startswith(f"ccrop bench mm: error: {text}")

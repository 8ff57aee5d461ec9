"""``ccrop study``'s ``results.json``: read, resumed from, written whole after every run."""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from ccrop_cli.errors import UserError
from ccrop_cli.study.config import StudyConfig
from ccrop_cli.study.report import boxes_of

_FIELDS = {f.name for f in fields(StudyConfig)}


def read_results(results_file: Path) -> dict[str, Any]:
    try:
        saved = json.loads(results_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:  # e.g. a write cut short
        raise UserError(f"{results_file} is not valid JSON ({error}); remove it, or start afresh with "
                        "--fresh") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("runs", []), list):
        raise UserError(f"{results_file} is not a study's results file; remove it, or start afresh with --fresh")
    return saved


def saved_runs(
    args: argparse.Namespace, config: StudyConfig, results_file: Path
) -> tuple[StudyConfig, list[dict[str, Any]], list[dict[str, Any]], str]:
    """The config, runs, untrained baselines and command to start from.

    ``--report-only`` takes all four from ``results.json``; otherwise its runs are kept when
    the study differs from the saved one at most in the number of seeds (``--fresh``: never).
    """
    command = command_line(args)
    if args.report_only:
        if not results_file.exists():
            raise UserError(f"--report-only needs {results_file}; run the study first")
        saved = read_results(results_file)
        if not isinstance(saved.get("config"), dict):  # e.g. a `bench pairs --out` file: was KeyError: 'config'
            raise UserError(f"{results_file} is not a study's results file (it has no 'config' of a study); remove "
                            "it, or start afresh with --fresh")
        config = StudyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()
                                if k in _FIELDS})
        runs, baselines = _records(saved, results_file)
        return config, runs, baselines, saved.get("command", command)
    if results_file.exists() and not args.fresh:
        saved = read_results(results_file)
        # Runs are keyed by seed: a study with more (or fewer) seeds resumes from the same runs.
        theirs = _without_seeds(saved["config"] if isinstance(saved.get("config"), dict) else {})
        ours = _without_seeds(json.loads(json.dumps(asdict(config))))
        if ours == theirs:
            runs, baselines = _records(saved, results_file)
            print(f"resuming: {len(runs)} runs already in {results_file}")
            return config, runs, baselines, command
        changed = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        print(f"{results_file} holds a study with other {', '.join(changed)}: starting afresh (it will be overwritten)")
    return config, [], [], command


_SETS = ("settings", "strategies", "boxes")
"""The config's lists whose order only orders the report: ``--strategies multi-box rrc`` resumes ``rrc multi-box``."""


def _without_seeds(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without ``seeds``, its :data:`_SETS` sorted: what must match for a study to resume."""
    return {k: sorted(map(str, v)) if k in _SETS and isinstance(v, list) else v
            for k, v in config.items() if k != "seeds"}


def _records(saved: dict[str, Any], results_file: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runs and the untrained baselines of a results file, each run once (:func:`_once`)."""
    return _once(saved.get("runs", []), results_file), _once(saved.get("random_init", []), results_file)


def _once(records: list[Any], results_file: Path) -> list[Any]:
    """``records`` (runs, or untrained baselines) with a copy of the same run (merged results of parallel studies)
    counted once; two different records of one (setting, strategy, boxes, seed) are refused, naming it."""
    kept: dict[tuple, Any] = {}
    for record in records:
        if not isinstance(record, dict):
            raise UserError(f"{results_file} is not a study's results file (a run is {str(record)[:60]}, not a "
                            "mapping); remove it, or start afresh with --fresh")
        key = _run_key(record)
        if key in kept and kept[key] != record:  # two measurements of one run: the report would count the seed twice
            raise UserError(f"{results_file} holds two different records of one run ({_run_text(key)}); a merge of "
                            "parallel studies must keep each run once: remove one of them")
        kept.setdefault(key, record)
    return list(kept.values())


def _run_key(record: dict[str, Any]) -> tuple:
    if "strategy" not in record:  # an untrained baseline: one per setting and seed
        return record.get("setting"), None, None, record.get("seed")
    return record.get("setting"), record["strategy"], boxes_of(record), record.get("seed")


def _run_text(key: tuple) -> str:
    setting, strategy, boxes, seed = key
    if strategy is None:
        return f"setting {setting}, random init, seed {seed}"
    return f"setting {setting}, strategy {strategy}, boxes {boxes}, seed {seed}"


def save_results(
    path: Path,
    config: StudyConfig,
    runs: list[dict[str, Any]],
    oracle: dict[str, dict[str, float]],
    baselines: list[dict[str, Any]],
    command: str,
) -> None:
    payload = {
        "command": command,
        "config": asdict(config),
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
        "oracle_false_positive_rate": oracle,
        "random_init": baselines,
        "runs": runs,
    }
    partial = path.with_name(path.name + ".partial")  # written whole, then renamed: a study stopped while saving
    partial.write_text(json.dumps(payload, indent=1))  # keeps its last results.json, every finished run in it
    os.replace(partial, path)


def command_line(args: argparse.Namespace) -> str:
    """The command line that reproduces this study (options left at their default are omitted)."""
    parts = ["ccrop study"]
    for name, value in sorted(vars(args).items()):
        if name in ("no_progress", "fresh", "report_only") or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts.append(f"{flag} {' '.join(map(str, value))}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)

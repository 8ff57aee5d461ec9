"""The study's outputs: a Markdown report (means, paired differences) and three PNG plots.

A run is one ``(setting, strategy, boxes, seed)``; ``boxes`` is where the crop's boxes came
from: ``learned`` (the localizer's refreshes), ``oracle`` (the folder's ground-truth boxes,
the ceiling any localizer can reach) or ``none`` (RandomResizedCrop, which uses no boxes).
Runs of the same seed share weights, shuffling and augmentation draws, so strategies are
compared seed by seed (paired t-test over seeds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from ccrop_cli.experiment.scene_settings import get_scene_setting  # noqa: E402
from ccrop_cli.experiment.strategies import get_strategy  # noqa: E402

Run = dict[str, Any]

#: The headline figures of a run, in % (key in the run record, column title).
METRICS: tuple[tuple[str, str], ...] = (
    ("object", "object probe"),
    ("map", "multi-label mAP"),
    ("linear", "image label, linear"),
    ("knn", "image label, kNN"),
    ("object_view", "object probe, crops at view size"),
)
#: The figures compared seed by seed with RandomResizedCrop.
PAIRED = tuple(m for m in METRICS if m[0] != "knn")
BASELINE = ("rrc", "none")


def boxes_of(run: Run) -> str:
    """The run's box source; RandomResizedCrop runs have none (old results: ``learned``)."""
    if run["strategy"] == "rrc":
        return "none"
    return run.get("boxes", "learned")


def variants(config: Any) -> list[tuple[str, str]]:
    """The ``(strategy, boxes)`` pairs a study runs, RandomResizedCrop first when present."""
    out: list[tuple[str, str]] = []
    for strategy in config.strategies:
        sources = ["none"] if strategy == "rrc" else list(getattr(config, "boxes", ("learned",)))
        out += [(strategy, source) for source in sources]
    return out


def variant_label(strategy: str, boxes: str) -> str:
    label = get_strategy(strategy).label
    return label if boxes in ("none", "learned") else f"{label}, {boxes} boxes"


def runs_of(runs: list[Run], setting: str, strategy: str, boxes: str | None = None) -> list[Run]:
    return [
        r for r in runs
        if r["setting"] == setting and r["strategy"] == strategy and (boxes is None or boxes_of(r) == boxes)
    ]


def current_runs(runs: list[Run], config: Any) -> list[Run]:
    """The runs (or baselines) of the seeds ``config`` asks for, ``0 .. config.seeds - 1``."""
    return [r for r in runs if r["seed"] < config.seeds]


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation; one value has no sample spread: ``None`` (printed ``-``, as ``ccrop bench
    localize`` prints one seed's), not 0."""
    if not values:
        return float("nan"), float("nan")
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else None


def _value(run: Run, key: str) -> float | None:
    value = run.get(key)
    return None if value is None else 100.0 * float(value)


def paired_difference(
    runs: list[Run], setting: str, variant: tuple[str, str], metric: str, baseline: tuple[str, str] = BASELINE
) -> dict[str, Any] | None:
    """``variant`` minus ``baseline`` on ``metric`` (points), seed by seed, with a paired t-test.

    Returns ``None`` when no seed has both runs; otherwise ``seeds``, ``differences``,
    ``mean`` and ``p`` (two-sided ``scipy.stats.ttest_rel``; ``None`` for fewer than 2 seeds
    or identical differences).
    """
    ours = {r["seed"]: _value(r, metric) for r in runs_of(runs, setting, *variant)}
    theirs = {r["seed"]: _value(r, metric) for r in runs_of(runs, setting, *baseline)}
    seeds = sorted(s for s in ours if s in theirs and ours[s] is not None and theirs[s] is not None)
    if not seeds:
        return None
    a = np.asarray([ours[s] for s in seeds])
    b = np.asarray([theirs[s] for s in seeds])
    p = None
    if len(seeds) > 1 and np.ptp(a - b) > 0:
        p = float(stats.ttest_rel(a, b).pvalue)
    return {"seeds": seeds, "differences": (a - b).tolist(), "mean": float((a - b).mean()), "p": p}


def summarise(runs: list[Run], config: Any) -> list[dict[str, Any]]:
    """One row per (setting, strategy, boxes): mean and sample std over seeds of the figures."""
    rows = []
    for setting in config.settings:
        for strategy, boxes in variants(config):
            group = runs_of(runs, setting, strategy, boxes)
            if not group:
                continue
            last = [r["refreshes"][-1] for r in group if r["refreshes"]]
            row: dict[str, Any] = {"setting": setting, "strategy": strategy, "boxes": boxes, "seeds": len(group)}
            for key, _ in METRICS:
                values = [v for v in (_value(r, key) for r in group) if v is not None]
                row[key], row[f"{key}_std"] = _mean_std(values) if values else (None, None)
            row["box_recall"] = _mean_std([e["box_recall"] for e in last])[0] if last else None
            row["false_positive_rate"] = (
                _mean_std([e["false_positive_rate"] for e in last])[0]
                if last
                else _mean_std([r["warmup_false_positive_rate"] for r in group])[0]
            )
            row["train_seconds"] = _mean_std([r["train_seconds"] for r in group])[0]
            row["refresh_seconds"] = _mean_std([r["refresh_seconds"] for r in group])[0]
            rows.append(row)
    return rows


def _cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1f} +- " + ("-" if std is None else f"{std:.1f}")


def _signed(value: float) -> str:
    return f"{value:+.1f}"


def write_table(
    path: Path,
    config: Any,
    runs: list[Run],
    oracle: dict[str, dict[str, float]],
    command: str,
    baselines: list[dict[str, Any]] | None = None,
) -> str:
    """Write ``results.md`` and return its text.

    Only the runs and baselines of the seeds ``config`` asks for (``0 .. seeds - 1``) are counted: ``results.json``
    keeps the runs of a study with more seeds (a later one resumes from them), which the header's seed count would
    otherwise not describe.
    """
    left_out = len(runs) - len(current_runs(runs, config))
    runs, baselines = current_runs(runs, config), current_runs(baselines or [], config)
    lines = _header_lines(config, command)
    if left_out:
        lines += [f"Left out: {left_out} saved run(s) of seed {config.seeds} or above in results.json (this "
                  f"report covers seeds 0-{config.seeds - 1}; a study with more --seeds uses them).", ""]
    lines += _results_lines(config, runs, oracle, baselines)
    lines += _paired_lines(config, runs)
    lines += _per_seed_lines(config, runs)
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def _header_lines(config: Any, command: str) -> list[str]:
    """The command, the sizes of the study and what each measure asks."""
    eval_size = getattr(config, "eval_size", None) or config.scene_size
    box_scale = getattr(config, "box_scale", (1.0, 4.0))
    return [
        "# ccrop study results",
        "",
        f"Command: `{command}`",
        "",
        f"Backbone {config.backbone}, scenes {config.scene_size} px, views {config.image_size} px, "
        f"box refresh at {config.refresh_size} px, "
        f"{config.train_images} train / {config.test_images} held-out test images per setting, "
        f"{config.epochs} epochs (warm-up {config.warmup_epochs}, refresh every {config.interval}), "
        f"batch {config.batch_size}, learned boxes: heatmap {getattr(config, 'heatmap', 'channel_sum')} of stage(s) "
        f"{', '.join(getattr(config, 'stages', None) or ('last',))}, threshold k = {config.threshold}, "
        f"alpha = {config.alpha}, "
        f"colour jitter strength {getattr(config, 'cj_strength', 0.5)}, "
        f"box-scale crops {box_scale[0]:g}-{box_scale[1]:g}x "
        f"the box, {config.seeds} seed(s), device {getattr(config, 'device', 'cpu')}. "
        f"Evaluation of the frozen backbone at {eval_size} px (object crops at their native size). "
        "Figures in %, mean +- sample std over seeds.",
        "",
        "- object probe: linear probe on the features of each ground-truth object's crop, top-1 over objects;",
        "- multi-label mAP: one-vs-rest linear probes on the image features, which classes the image holds;",
        "- image label: the folder's class (mixed-class scenes: the largest object's), linear probe and kNN;",
        "- object probe, crops at view size: the same object probe with every crop resized to the view size.",
        "",
    ]


def _results_lines(
    config: Any, runs: list[Run], oracle: dict[str, dict[str, float]], baselines: list[dict[str, Any]] | None
) -> list[str]:
    """The main table: every measure per setting and strategy, with the untrained baseline first."""
    rows = summarise(runs, config)
    lines = [
        "| setting | strategy | " + " | ".join(title for _, title in METRICS)
        + " | box recall@0.5 (last refresh) | false-positive pairs (last refresh; oracle boxes)"
        + " | train s | refresh s |",
        "|---|---|" + "---|" * (len(METRICS) + 4),
    ]
    for setting in config.settings:
        untrained = [b for b in baselines or [] if b["setting"] == setting]
        if untrained:
            cells = []
            for key, _ in METRICS:
                values = [v for v in (_value(b, key) for b in untrained) if v is not None]
                cells.append(_cell(*_mean_std(values)) if values else "-")
            lines.append(f"| {setting} | random init, no pre-training | {' | '.join(cells)} | - | - | - | - |")
        for row in (r for r in rows if r["setting"] == setting):
            recall = "-" if row["box_recall"] is None else f"{row['box_recall']:.2f}"
            fp_oracle = oracle.get(row["setting"], {}).get(row["strategy"])
            fp = f"{row['false_positive_rate']:.2f}" + (f" ({fp_oracle:.2f})" if fp_oracle is not None else "")
            cells = " | ".join(_cell(row[key], row[f"{key}_std"]) for key, _ in METRICS)
            lines.append(
                f"| {setting} | {variant_label(row['strategy'], row['boxes'])} | {cells} "
                f"| {recall} | {fp} | {row['train_seconds']:.0f} | {row['refresh_seconds']:.1f} |"
            )
    return lines


def _paired_lines(config: Any, runs: list[Run]) -> list[str]:
    """Per-seed differences to RandomResizedCrop, their mean and the paired t-test's p."""
    lines = [
        "",
        "Paired differences to RandomResizedCrop (points; per seed, mean, two-sided paired t-test over seeds):",
        "",
        "| setting | strategy | " + " | ".join(title for _, title in PAIRED) + " |",
        "|---|---|" + "---|" * len(PAIRED),
    ]
    for setting in config.settings:
        for variant in variants(config):
            if variant == BASELINE:
                continue
            cells = []
            for key, _ in PAIRED:
                diff = paired_difference(runs, setting, variant, key)
                if diff is None:
                    cells.append("-")
                    continue
                p = "-" if diff["p"] is None else f"{diff['p']:.3f}"
                per_seed = ", ".join(_signed(d) for d in diff["differences"])
                cells.append(f"{per_seed} (mean {_signed(diff['mean'])}, p {p})")
            if any(c != "-" for c in cells):
                lines.append(f"| {setting} | {variant_label(*variant)} | {' | '.join(cells)} |")
    return lines


def _per_seed_lines(config: Any, runs: list[Run]) -> list[str]:
    """Every seed's object probe / mAP / image-label figures."""
    lines = ["", "Per-seed object probe / mAP / image-label linear (%):", ""]
    for setting in config.settings:
        for strategy, boxes in variants(config):
            group = sorted(runs_of(runs, setting, strategy, boxes), key=lambda r: r["seed"])
            if group:
                values = ", ".join(
                    " / ".join("-" if _value(r, k) is None else f"{_value(r, k):.1f}"
                               for k in ("object", "map", "linear"))
                    for r in group
                )
                lines.append(f"- {setting}, {strategy} ({boxes} boxes): {values}")
    return lines


REPORT_FILES = ("results.md", "accuracy.png", "box_recall.png", "false_positive_rate.png")
"""What :func:`write_table` and :func:`write_plots` write into the study's folder."""


def remove_report(out: Path) -> None:
    """Remove an earlier study's report from ``out`` (a study starting afresh): interrupted before its own report, it
    left the old one beside its new results.json, describing other runs."""
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)


def write_plots(out: Path, config: Any, runs: list[Run], oracle: dict[str, dict[str, float]]) -> list[Path]:
    """``accuracy.png``, ``box_recall.png`` and ``false_positive_rate.png`` in ``out`` (seeds of ``config`` only)."""
    runs = current_runs(runs, config)
    return [
        _accuracy_plot(out / "accuracy.png", config, runs),
        _refresh_plot(out / "box_recall.png", config, runs, "box_recall", "box recall at IoU 0.5", None),
        _refresh_plot(
            out / "false_positive_rate.png", config, runs, "false_positive_rate", "false-positive pair rate", oracle
        ),
    ]


def _short(strategy: str, boxes: str) -> str:
    return strategy if boxes in ("none", "learned") else f"{strategy}\n({boxes})"


def _accuracy_plot(path: Path, config: Any, runs: list[Run]) -> Path:
    settings = config.settings
    names = variants(config)
    figure, axes = plt.subplots(
        1, len(settings), figsize=(max(5.2, 1.1 * len(names) + 2) * len(settings), 3.8), squeeze=False
    )
    metrics = [(k, t) for k, t in METRICS if any(r.get(k) is not None for r in runs)] or list(METRICS[2:])
    width = 0.8 / len(metrics)
    for ax, setting in zip(axes[0], settings):
        present = [v for v in names if runs_of(runs, setting, *v)]
        x = np.arange(len(present))
        for m_index, (key, title) in enumerate(metrics):
            offset = (m_index - (len(metrics) - 1) / 2) * width
            values = [[v for v in (_value(r, key) for r in runs_of(runs, setting, *var)) if v is not None]
                      for var in present]
            stats_ = [_mean_std(v) if v else (np.nan, 0.0) for v in values]
            spread = [0.0 if s is None else s for _, s in stats_]  # one seed: no error bar
            ax.bar(x + offset, [m for m, _ in stats_], width, yerr=spread, capsize=2, label=title)
            for i, seeds in enumerate(values):  # every seed as a dot: the spread is part of the result
                ax.scatter([x[i] + offset] * len(seeds), seeds, color="black", s=6, zorder=3)
        ax.set_xticks(x, [_short(*v) for v in present], fontsize=7)
        ax.set_ylabel("held-out figure (%)")
        ax.set_title(get_scene_setting(setting).label, fontsize=9)
        lows = [v for r in runs if r["setting"] == setting for k, _ in metrics if (v := _value(r, k)) is not None]
        if lows:
            ax.set_ylim(max(0.0, min(lows) - 10), min(100.0, max(lows) + 5))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _refresh_plot(
    path: Path, config: Any, runs: list[Run], key: str, label: str, oracle: dict[str, dict[str, float]] | None
) -> Path:
    settings = config.settings
    figure, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 3.6), squeeze=False)
    colours = dict(zip(config.strategies, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, setting in zip(axes[0], settings):
        for strategy, boxes in variants(config):
            group = runs_of(runs, setting, strategy, boxes)
            if not group:
                continue
            colour = colours[strategy]
            style = ":" if boxes == "oracle" else "-"
            name = strategy if boxes in ("none", "learned") else f"{strategy} ({boxes})"
            if key == "false_positive_rate":
                # Before the first refresh every strategy crops like RandomResizedCrop.
                warm = np.mean([r["warmup_false_positive_rate"] for r in group])
                if not any(r["refreshes"] for r in group):
                    ax.axhline(warm, color=colour, label=f"{name} (no boxes)")
                    continue
            epochs = sorted({e["epoch"] + 1 for r in group for e in r["refreshes"]})
            if not epochs:
                continue
            means = [np.mean([e[key] for r in group for e in r["refreshes"] if e["epoch"] + 1 == ep]) for ep in epochs]
            if key == "false_positive_rate":
                epochs, means = [0, *epochs], [warm, *means]
            ax.plot(epochs, means, marker="o", color=colour, linestyle=style, label=name)
            if oracle is not None and boxes == "learned" and strategy in oracle.get(setting, {}):
                ax.axhline(oracle[setting][strategy], color=colour, linestyle=":", linewidth=1)
        ax.set_xlabel("boxes refreshed after epoch (0 = warm-up, RandomResizedCrop)")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        title = get_scene_setting(setting).label
        ax.set_title(title + ("\n(dotted: with ground-truth boxes)" if oracle is not None else ""), fontsize=9)
        if ax.get_legend_handles_labels()[0]:  # a study of RandomResizedCrop alone has no refresh to plot
            ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

"""The study's outputs: a Markdown table (mean and std over seeds) and three PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ccrop_cli.experiment.scene_settings import get_scene_setting  # noqa: E402
from ccrop_cli.experiment.strategies import get_strategy  # noqa: E402

Run = dict[str, Any]


def _runs_of(runs: list[Run], setting: str, strategy: str) -> list[Run]:
    return [r for r in runs if r["setting"] == setting and r["strategy"] == strategy]


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarise(runs: list[Run], settings: tuple[str, ...], strategies: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per (setting, strategy): mean and sample std over seeds of the headline figures."""
    rows = []
    for setting in settings:
        for strategy in strategies:
            group = _runs_of(runs, setting, strategy)
            if not group:
                continue
            last = [r["refreshes"][-1] for r in group if r["refreshes"]]
            row: dict[str, Any] = {"setting": setting, "strategy": strategy, "seeds": len(group)}
            for key in ("linear", "knn"):
                row[key], row[f"{key}_std"] = _mean_std([100 * r[key] for r in group])
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


def write_table(
    path: Path,
    config: Any,
    runs: list[Run],
    oracle: dict[str, dict[str, float]],
    command: str,
    baselines: list[dict[str, Any]] | None = None,
) -> str:
    """Write ``results.md`` and return its text."""
    rows = summarise(runs, config.settings, config.strategies)
    lines = [
        "# ccrop study results",
        "",
        f"Command: `{command}`",
        "",
        f"Backbone {config.backbone}, scenes {config.scene_size} px, views {config.image_size} px, "
        f"box refresh at {config.refresh_size} px, "
        f"{config.train_images} train / {config.test_images} held-out test images per setting, "
        f"{config.epochs} epochs (warm-up {config.warmup_epochs}, refresh every {config.interval}), "
        f"batch {config.batch_size}, threshold k = {config.threshold}, alpha = {config.alpha}, "
        f"{config.seeds} seed(s). Accuracies in %, mean +- sample std over seeds.",
        "",
        "| setting | strategy | linear top-1 | kNN top-1 | box recall@0.5 (last refresh) | false-positive pairs "
        "(last refresh; oracle boxes) | train s | refresh s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting in config.settings:
        untrained = [b for b in baselines or [] if b["setting"] == setting]
        if untrained:
            linear, linear_std = _mean_std([100 * b["linear"] for b in untrained])
            knn, knn_std = _mean_std([100 * b["knn"] for b in untrained])
            lines.append(
                f"| {setting} | random init, no pre-training | {linear:.1f} +- {linear_std:.1f} "
                f"| {knn:.1f} +- {knn_std:.1f} | - | - | 0 | 0 |"
            )
        for row in (r for r in rows if r["setting"] == setting):
            recall = "-" if row["box_recall"] is None else f"{row['box_recall']:.2f}"
            fp_oracle = oracle.get(row["setting"], {}).get(row["strategy"])
            fp = f"{row['false_positive_rate']:.2f}" + (f" ({fp_oracle:.2f})" if fp_oracle is not None else "")
            lines.append(
                f"| {row['setting']} | {get_strategy(row['strategy']).label} "
                f"| {row['linear']:.1f} +- {row['linear_std']:.1f} | {row['knn']:.1f} +- {row['knn_std']:.1f} "
                f"| {recall} | {fp} | {row['train_seconds']:.0f} | {row['refresh_seconds']:.1f} |"
            )
    lines += ["", "Per-seed linear / kNN accuracy (%):", ""]
    for setting in config.settings:
        for strategy in config.strategies:
            group = sorted(_runs_of(runs, setting, strategy), key=lambda r: r["seed"])
            if group:
                values = ", ".join(f"{100 * r['linear']:.1f} / {100 * r['knn']:.1f}" for r in group)
                lines.append(f"- {setting}, {strategy}: {values}")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_plots(out: Path, config: Any, runs: list[Run], oracle: dict[str, dict[str, float]]) -> list[Path]:
    """``accuracy.png``, ``box_recall.png`` and ``false_positive_rate.png`` in ``out``."""
    return [
        _accuracy_plot(out / "accuracy.png", config, runs),
        _refresh_plot(out / "box_recall.png", config, runs, "box_recall", "box recall at IoU 0.5", None),
        _refresh_plot(
            out / "false_positive_rate.png", config, runs, "false_positive_rate", "false-positive pair rate", oracle
        ),
    ]


def _accuracy_plot(path: Path, config: Any, runs: list[Run]) -> Path:
    settings = config.settings
    figure, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 3.6), squeeze=False)
    width = 0.38
    for ax, setting in zip(axes[0], settings):
        names = [s for s in config.strategies if _runs_of(runs, setting, s)]
        x = np.arange(len(names))
        for offset, (key, label) in zip((-width / 2, width / 2), (("linear", "linear probe"), ("knn", "kNN (k=20)"))):
            stats = [_mean_std([100 * r[key] for r in _runs_of(runs, setting, s)]) for s in names]
            ax.bar(x + offset, [m for m, _ in stats], width, yerr=[s for _, s in stats], capsize=3, label=label)
            for s_index, s in enumerate(names):  # every seed as a dot: the spread is part of the result
                seeds = [100 * r[key] for r in _runs_of(runs, setting, s)]
                ax.scatter([x[s_index] + offset] * len(seeds), seeds, color="black", s=8, zorder=3)
        ax.set_xticks(x, names)
        ax.set_ylabel("top-1 accuracy on held-out images (%)")
        ax.set_title(get_scene_setting(setting).label, fontsize=9)
        lows = [100 * r[k] for r in runs if r["setting"] == setting for k in ("linear", "knn")]
        if lows:
            ax.set_ylim(max(0.0, min(lows) - 10), min(100.0, max(lows) + 5))
        ax.legend(fontsize=8)
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
        for strategy in config.strategies:
            group = _runs_of(runs, setting, strategy)
            if not group:
                continue
            colour = colours[strategy]
            if key == "false_positive_rate":
                # Before the first refresh every strategy crops like RandomResizedCrop.
                warm = np.mean([r["warmup_false_positive_rate"] for r in group])
                if not any(r["refreshes"] for r in group):
                    ax.axhline(warm, color=colour, label=f"{strategy} (no boxes)")
                    continue
            epochs = sorted({e["epoch"] + 1 for r in group for e in r["refreshes"]})
            if not epochs:
                continue
            means = [np.mean([e[key] for r in group for e in r["refreshes"] if e["epoch"] + 1 == ep]) for ep in epochs]
            if key == "false_positive_rate":
                epochs, means = [0, *epochs], [warm, *means]
            ax.plot(epochs, means, marker="o", color=colour, label=strategy)
            if oracle is not None and strategy in oracle.get(setting, {}):
                ax.axhline(oracle[setting][strategy], color=colour, linestyle=":", linewidth=1)
        ax.set_xlabel("boxes refreshed after epoch (0 = warm-up, RandomResizedCrop)")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        title = get_scene_setting(setting).label
        ax.set_title(title + ("\n(dotted: with ground-truth boxes)" if oracle is not None else ""), fontsize=9)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

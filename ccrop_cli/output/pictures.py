"""PNG pictures of what ContrastiveCrop sees: heatmaps, box sets and view pairs (matplotlib, Agg).

Images are ``uint8`` ``(H, W, 3)`` RGB arrays; boxes and views are normalised
``x0, y0, x1, y1`` in ``[0, 1]`` (``x`` along the width). Small images are shown with
nearest-neighbour upscaling, so 64 px scenes keep their pixels sharp.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

GROUND_TRUTH_COLOUR = "#00e676"
PREDICTED_COLOUR = "#ff1744"
PAIR_COLOURS = ("#ffea00", "#00e5ff", "#ff4081", "#76ff03", "#ff9100", "#d500f9")
PANEL_INCHES = 1.6
DPI = 110

ViewPair = tuple[Sequence[float], Sequence[float]]


def draw_heatmaps(images: np.ndarray, heatmaps: np.ndarray, path: str | Path, columns: int = 8) -> Path:
    """Draw each image above its heatmap overlay.

    Args:
        images: ``(N, H, W, 3)`` uint8 RGB.
        heatmaps: ``(N, H, W)`` floats in ``[0, 1]`` (any ``(N, h, w)`` is stretched over the image).
        path: the PNG file to write.
        columns: images per row.

    Returns:
        ``path`` as a ``Path``.
    """
    images = _check_images(images)
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.ndim != 3 or len(heatmaps) != len(images):
        raise ValueError(f"heatmaps must have shape (N, H, W) with N = {len(images)}; got {heatmaps.shape}")
    columns = max(1, min(int(columns), len(images)))
    grid_rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(
        2 * grid_rows, columns, figsize=(columns * PANEL_INCHES, 2 * grid_rows * PANEL_INCHES + 0.4), squeeze=False
    )
    height, width = images.shape[1:3]
    for index in range(grid_rows * columns):
        top, bottom = axes[2 * (index // columns), index % columns], axes[2 * (index // columns) + 1, index % columns]
        _blank(top)
        _blank(bottom)
        if index >= len(images):
            continue
        top.imshow(images[index], interpolation="nearest")
        # The heatmap over a grey copy of the image: colour then only ever means "heat".
        bottom.imshow(images[index].mean(axis=-1), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        bottom.imshow(
            heatmaps[index], cmap="inferno", alpha=0.7, vmin=0.0, vmax=1.0,
            extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear",
        )
    figure.suptitle("images and their heatmaps (below each image; bright = more object)", fontsize=10)
    return _save(figure, path)


def draw_box_sets(
    images: np.ndarray,
    predicted: Sequence[Sequence[Sequence[float]]],
    ground_truth: Sequence[Sequence[Sequence[float]]] | None,
    path: str | Path,
    columns: int = 8,
    titles: Sequence[str] | None = None,
) -> Path:
    """Draw predicted box sets (red, dashed) over ground-truth boxes (green, solid).

    Args:
        images: ``(N, H, W, 3)`` uint8 RGB.
        predicted: per image, ``(k, 4)`` boxes (array, tensor or nested lists).
        ground_truth: per image, ``(m, 4)`` boxes, or ``None`` when there is no ground truth.
        path: the PNG file to write.
        columns: images per row.
        titles: optional short caption per image (e.g. the file name).

    Returns:
        ``path`` as a ``Path``.
    """
    images = _check_images(images)
    if len(predicted) != len(images) or (ground_truth is not None and len(ground_truth) != len(images)):
        raise ValueError(f"need one predicted (and ground-truth) box list per image ({len(images)} images)")
    columns = max(1, min(int(columns), len(images)))
    grid_rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(
        grid_rows, columns, figsize=(columns * PANEL_INCHES, grid_rows * PANEL_INCHES + 0.6), squeeze=False
    )
    height, width = images.shape[1:3]
    for index in range(grid_rows * columns):
        ax = axes[index // columns, index % columns]
        _blank(ax)
        if index >= len(images):
            continue
        ax.imshow(images[index], interpolation="nearest")
        if ground_truth is not None:
            for box in _as_boxes(ground_truth[index]):
                _rectangle(ax, box, width, height, GROUND_TRUTH_COLOUR, "-", 1.8)
        for box in _as_boxes(predicted[index]):
            _rectangle(ax, box, width, height, PREDICTED_COLOUR, "--", 1.6)
        if titles is not None:
            ax.set_title(str(titles[index]), fontsize=6)
    handles = [Line2D([], [], color=PREDICTED_COLOUR, linestyle="--", linewidth=1.6, label="predicted box set")]
    if ground_truth is not None:
        handles.insert(0, Line2D([], [], color=GROUND_TRUTH_COLOUR, linewidth=1.8, label="ground truth"))
    figure.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False)
    return _save(figure, path)


def draw_view_pairs(
    image: np.ndarray,
    pairs: Mapping[str, Sequence[ViewPair]],
    path: str | Path,
    ground_truth: Sequence[Sequence[float]] | None = None,
) -> Path:
    """Draw sampled view pairs per strategy: rectangles on the image, then the crops.

    One row per strategy (e.g. RandomResizedCrop, ContrastiveCrop (paper), ContrastiveCrop
    (multi-object)): the image with each pair's two rectangles in one colour (view a solid,
    view b dashed), followed by the cropped views, each pair side by side, shown square as
    the training resize makes them.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        pairs: strategy label -> list of ``(view_a, view_b)`` normalised ``x0, y0, x1, y1``.
        path: the PNG file to write.
        ground_truth: optional ``(m, 4)`` object boxes, drawn thin in green.

    Returns:
        ``path`` as a ``Path``.
    """
    image = _check_images(np.asarray(image)[None])[0]
    if not pairs:
        raise ValueError("pairs must hold at least one strategy label with view pairs")
    height, width = image.shape[:2]
    most = max(len(p) for p in pairs.values())
    columns = 1 + 2 * most
    # Sized so that every crop panel is square (the training resize makes views square).
    left, right, top, bottom, gap = 0.13, 0.985, 0.92, 0.02, 0.08
    panels = 1.3 + (columns - 1)
    figure, axes = plt.subplots(
        len(pairs), columns,
        figsize=(
            panels * PANEL_INCHES * (1 + gap) / (right - left),
            len(pairs) * PANEL_INCHES * (1 + 1.5 * gap) / (top - bottom),
        ),
        squeeze=False, gridspec_kw={"width_ratios": [1.3] + [1.0] * (columns - 1)},
    )
    for row, (label, view_pairs) in enumerate(pairs.items()):
        overview = axes[row, 0]
        _blank(overview)
        overview.imshow(image, interpolation="nearest")
        if ground_truth is not None:
            for box in _as_boxes(ground_truth):
                _rectangle(overview, box, width, height, GROUND_TRUTH_COLOUR, "-", 1.0)
        overview.set_ylabel(_wrap(label), fontsize=8, rotation=0, ha="right", va="center", labelpad=8)
        for column in range(1, columns):
            _blank(axes[row, column])
        for number, (view_a, view_b) in enumerate(view_pairs):
            colour = PAIR_COLOURS[number % len(PAIR_COLOURS)]
            for side, (view, style) in enumerate(((view_a, "-"), (view_b, "--"))):
                _rectangle(overview, _as_boxes([view])[0], width, height, colour, style, 2.0)
                title = f"pair {number + 1} {'ab'[side]}" if row == 0 else None
                _draw_view(axes[row, 1 + 2 * number + side], _cut(image, view), colour, style, title)
    figure.subplots_adjust(left=left, right=right, top=top, bottom=bottom, wspace=gap, hspace=1.5 * gap)
    return _save(figure, path, tight=False)


def _draw_view(ax: Axes, crop: np.ndarray, colour: str, style: str, title: str | None) -> None:
    """One cropped view, framed in its pair's colour and line style."""
    ax.imshow(crop, interpolation="nearest", aspect="auto")
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(3.0)
        spine.set_linestyle(style)
    if title is not None:
        ax.set_title(title, fontsize=7)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W, 3) RGB array; got shape {images.shape}")
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (0-255); got {images.dtype}")
    return images


def _as_boxes(boxes: object) -> np.ndarray:
    array = np.asarray(boxes.tolist() if hasattr(boxes, "tolist") else boxes, dtype=np.float64)
    return array.reshape(-1, 4)


def _rectangle(ax: Axes, box: np.ndarray, width: int, height: int, colour: str, style: str, line: float) -> None:
    """A normalised box as a rectangle along pixel edges (pixel ``c`` spans ``[c - 0.5, c + 0.5]``)."""
    x0, y0, x1, y1 = box * np.array([width, height, width, height]) - 0.5
    ax.add_patch(
        Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linestyle=style, linewidth=line)
    )


def _cut(image: np.ndarray, view: Sequence[float]) -> np.ndarray:
    height, width = image.shape[:2]
    x0, y0, x1, y1 = _as_boxes([view])[0]
    # At least one pixel, inside the picture (a view at the edge of a tiny picture rounded to an empty slice).
    top, left = min(int(round(y0 * height)), height - 1), min(int(round(x0 * width)), width - 1)
    return image[top : max(int(round(y1 * height)), top + 1), left : max(int(round(x1 * width)), left + 1)]


def _blank(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _wrap(label: str, width: int = 18) -> str:
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _save(figure: plt.Figure, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        figure.tight_layout(rect=(0, 0, 1, 0.94))
    figure.savefig(path, dpi=DPI, facecolor="white")
    plt.close(figure)
    return path

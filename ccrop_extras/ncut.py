"""Several objects per image from the feature affinity graph: normalised cuts (TokenCut's binarised affinity),
repeated on the cells that are left (docs/plugins.md, "How the shipped extra rules work")."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from ccrop_plugins.sizes import real_number
from ccrop_plugins.threads import one_cpu_thread

FOREGROUND_RULES = ("smaller", "peak")


class NormalizedCut:
    """Multi-object heatmap: object ``k`` (0-based, in the order found) scores ``1 - k / (2 max_objects)``, the
    background 0 (so any threshold below 0.5 gives one box per object).

    Args (a value outside the allowed range is a ``ValueError`` naming it):
        max_objects: cuts per image (each finds at most one object), an integer ``>= 1``.
        tau: cosine similarity in ``[-1, 1)`` above which two cells are joined (weight 1; else ``1e-5``).
        max_cut: stop when the cut's eigenvalue (0 for a perfect split, about 1 for none) exceeds this, ``(0, 2]``.
        max_cells: maps with more cells are average-pooled to at most this many first (``O(cells^3)`` per image),
            an integer ``>= 4``; the map is upsampled back to ``(h, w)`` bilinearly.
        foreground: which side of a cut is the object: ``"smaller"`` (fewer cells) or ``"peak"`` (the side
            holding the eigenvector's largest magnitude, TokenCut's rule).

    Shapes: features ``(N, C, h, w)`` -> maps ``(N, h, w)``.
    """

    def __init__(self, max_objects: int = 3, tau: float = 0.2, max_cut: float = 0.5, max_cells: int = 256,
                 foreground: str = "smaller") -> None:
        # real_number: None and text are refused by name too (were int()/float() errors naming no option, or '0.2' read)
        objects, tau_value, cut, cells = (real_number(v) for v in (max_objects, tau, max_cut, max_cells))
        if objects is None or not objects.is_integer() or objects < 1:
            raise ValueError(f"max_objects of heatmap 'ncut' must be a positive integer; got {max_objects!r}")
        if tau_value is None or not -1.0 <= tau_value < 1.0:
            raise ValueError(f"tau of heatmap 'ncut' must lie in [-1, 1); got {tau!r}")
        if cut is None or not 0.0 < cut <= 2.0:
            raise ValueError(f"max_cut of heatmap 'ncut' must lie in (0, 2]; got {max_cut!r}")
        if cells is None or not cells.is_integer() or cells < 4:
            raise ValueError(f"max_cells of heatmap 'ncut' must be an integer >= 4; got {max_cells!r}")
        if foreground not in FOREGROUND_RULES:
            raise ValueError(f"unknown foreground rule {foreground!r} of heatmap 'ncut'; "
                             f"available: {', '.join(FOREGROUND_RULES)}")
        self.max_objects, self.tau, self.max_cut = int(max_objects), float(tau), float(max_cut)
        self.max_cells, self.foreground = int(max_cells), foreground

    def __call__(self, features: Tensor) -> Tensor:
        n, channels, height, width = features.shape
        grid = _pooled_grid(height, width, self.max_cells)
        pooled = features if grid == (height, width) else F.adaptive_avg_pool2d(features, grid)
        cells = pooled.flatten(2).transpose(1, 2).float()  # (N, M, C)
        cells = torch.nan_to_num(cells, nan=0.0, posinf=0.0, neginf=0.0)
        cells = F.normalize(cells - cells.mean(dim=1, keepdim=True), dim=2)
        affinity = torch.where(cells @ cells.transpose(1, 2) > self.tau, 1.0, 1e-5)
        maps = _repeated_cuts(affinity, grid, self.max_objects, self.max_cut, self.foreground).reshape(n, *grid)
        if grid != (height, width):
            maps = F.interpolate(maps[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        return maps

    def __repr__(self) -> str:
        return (f"NormalizedCut(max_objects={self.max_objects}, tau={self.tau}, max_cut={self.max_cut}, "
                f"max_cells={self.max_cells}, foreground={self.foreground!r})")


def _pooled_grid(height: int, width: int, max_cells: int) -> tuple[int, int]:
    if height * width <= max_cells:
        return height, width
    scale = math.sqrt(max_cells / (height * width))
    return max(1, int(height * scale)), max(1, int(width * scale))


def _repeated_cuts(affinity: Tensor, grid: tuple[int, int], max_objects: int, max_cut: float,
                   foreground: str) -> Tensor:
    """``(N, M, M)`` affinities of ``grid`` cells -> ``(N, M)`` maps (object ``k``: ``1 - k / (2 max_objects)``)."""
    n, cells, _ = affinity.shape
    device = affinity.device
    keep = torch.ones(n, cells, dtype=torch.bool, device=device)
    active = torch.ones(n, dtype=torch.bool, device=device)
    maps = torch.zeros(n, cells, device=device)
    eye = torch.eye(cells, device=device)
    for k in range(max_objects):
        active &= keep.sum(dim=1) >= 2
        if not bool(active.any()):
            break
        links = affinity * (keep[:, :, None] & keep[:, None, :])
        degree = links.sum(dim=2)
        scale = torch.where(keep, degree.clamp_min(1e-12).rsqrt(), 0.0)
        laplacian = eye - scale[:, :, None] * links * scale[:, None, :]
        # Removed cells: isolated, with an eigenvalue (3) above the normalised Laplacian's range
        # [0, 2], so the two smallest eigenpairs belong to the cells that are left.
        laplacian = laplacian + torch.diag_embed((~keep).float() * 2.0)
        with one_cpu_thread(laplacian.device):  # two threads on a busy 2-core machine: measured 70x slower
            values, vectors = torch.linalg.eigh(laplacian)
        active &= values[:, 1] <= max_cut
        vector = vectors[:, :, 1] * scale  # the generalised eigenvector D^-1/2 z
        mean = (vector * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp_min(1)
        high = (vector > mean) & keep
        low = ~high & keep
        if foreground == "smaller":
            take_high = high.sum(dim=1) <= low.sum(dim=1)
        else:
            peak = (vector.abs() * keep).argmax(dim=1)
            take_high = high.gather(1, peak[:, None])[:, 0]
        side = torch.where(take_high[:, None], high, low) & active[:, None]
        objects = _peak_component(side, (vector.abs() * side).argmax(dim=1), grid)
        maps[objects] = 1.0 - k / (2 * max_objects)
        keep &= ~objects
    return maps


def _peak_component(side: Tensor, peak: Tensor, grid: tuple[int, int]) -> Tensor:
    """The 8-connected part of each image's ``side`` ``(N, M)`` that holds its ``peak`` cell: one object per cut."""
    flags = side.reshape(-1, *grid).cpu().numpy()
    out = np.zeros_like(flags)
    eight = np.ones((3, 3), dtype=bool)
    for i in np.flatnonzero(flags.reshape(len(flags), -1).any(axis=1)):
        labels, _ = ndimage.label(flags[i], structure=eight)
        label = labels.reshape(-1)[int(peak[i])]
        out[i] = labels == (label if label else labels.reshape(-1)[np.flatnonzero(labels)[0]])
    return torch.from_numpy(out.reshape(len(flags), -1)).to(side.device)

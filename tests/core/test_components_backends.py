"""``components`` labels with OpenCV when it is installed and with scipy otherwise: the same box sets."""

import cv2  # installed with the mmpretrain extra, which the test environment has
import numpy as np
import pytest
import torch

from ccrop_plugins import get_localizer, heatmaps_from_features
from ccrop_plugins.localizers import components


@pytest.mark.parametrize("threshold, resolution", [(0.1, 64), ("otsu", 64), (0.3, None), ("mean", 16)])
def test_opencv_and_scipy_labelling_give_the_same_box_sets(monkeypatch, threshold, resolution):
    assert components.cv2 is cv2
    generator = torch.Generator().manual_seed(11)
    maps = torch.cat(
        [
            heatmaps_from_features(torch.randn(20, 4, 7, 7, generator=generator), size=96).pow(4),
            torch.rand(20, 96, 96, generator=generator).pow(20),  # many small blobs, ties of mass
            torch.zeros(2, 96, 96),  # nothing found: fallback
        ]
    )
    maps[3, 10, 10] = float("nan")
    maps[4, 20:30, 20:30] = float("inf")
    localizer = get_localizer("components", threshold=threshold, label_resolution=resolution, max_boxes=6, min_area=0.0)
    with_opencv = localizer(maps)
    monkeypatch.setattr(components, "cv2", None)
    with_scipy = localizer(maps)
    for name in ("boxes", "scores", "counts", "fallback"):
        assert torch.equal(getattr(with_opencv, name), getattr(with_scipy, name)), name
    assert with_opencv.fallback[-2:].all() and (with_opencv.counts > 2).any()  # several boxes somewhere


def test_batches_of_any_chunk_count_share_one_pool_of_torch_get_num_threads_threads():
    # was: one pool per distinct chunk count (min(threads, chunks) workers each, never shut down): with 4 threads,
    # batches of 2, 3 and 4 chunks kept 2 + 3 + 4 = 9 pool threads (at 16 threads, a GPU refresh: 300+ OS threads)
    import threading

    def pool_threads():
        return [t for t in threading.enumerate() if t.name.startswith("ccrop-components")]

    localizer = get_localizer("components", label_resolution=None)
    threads, before = torch.get_num_threads(), len(pool_threads())
    torch.set_num_threads(4)
    try:
        for chunks in (2, 3, 4, 3, 2):  # 16 maps of 64 x 64 cells per chunk
            localizer(torch.rand(16 * chunks, 64, 64, generator=torch.Generator().manual_seed(chunks)))
    finally:
        torch.set_num_threads(threads)
    assert len(pool_threads()) - before <= 4


def test_mass_summed_run_by_run_equals_the_sum_cell_by_cell():
    # _label_sums adds runs of equal labels (a run may cross from one row into the next): the same float64 sums as
    # adding every cell, with labels in any order, a label split into many runs, and a run of one cell at either end
    rng = np.random.default_rng(5)
    labels = np.repeat(rng.integers(0, 40, 3000), rng.integers(1, 9, 3000)).astype(np.int32)
    labels[0], labels[-1] = 39, 7
    weights = rng.random(len(labels)).astype(np.float32)
    sums = components._label_sums(labels, weights, 40)
    assert sums.dtype == np.float64 and sums.shape == (41,)
    np.testing.assert_allclose(sums, np.bincount(labels, weights=weights.astype(np.float64), minlength=41),
                               rtol=1e-12, atol=0)
    assert sums[40] == 0.0

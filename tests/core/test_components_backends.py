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


def test_runs_give_the_cell_by_cell_sums_extents_and_areas():
    # the labelling call returns labels only (OpenCV's statistics cost 3x its labelling): each component's mass,
    # box and area come from runs of equal labels along the rows; the same as reading every cell
    rng = np.random.default_rng(5)
    flags = rng.random((7, 23, 31)) < 0.55  # many components, some touching the maps' edges
    flags[3] = True  # one component of every cell
    flags[5] = False  # none
    labels, runs, image, extents, area = components._label_maps(flags)
    count = int(labels.max())
    assert labels.shape == flags.shape and count == len(area) > 20
    assert set(np.unique(labels[flags])) == set(range(1, count + 1)) and not labels[~flags].any()
    assert ((runs.stops - 1) // 31 == runs.starts // 31).all()  # no run crosses the end of a row
    weights = rng.random(flags.shape).astype(np.float32)
    cell_by_cell = np.bincount(labels.ravel(), weights=weights.ravel().astype(np.float64), minlength=count + 1)
    np.testing.assert_allclose(runs.sums(weights, count), cell_by_cell, rtol=1e-12, atol=0)
    for label in range(1, count + 1):
        maps, rows, cols = np.nonzero(labels == label)
        assert len(set(maps)) == 1 and image[label - 1] == maps[0] and area[label - 1] == len(rows)
        assert extents[label - 1].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_opencv_labels_on_one_thread_and_gets_its_thread_count_back(monkeypatch):
    # OpenCV's pool gains nothing in the labelling, and its workers slowed the refresh's next forward by 1-5 % on 2
    # cores: the localizer holds OpenCV to one thread while it labels, and gives the count back, also after an error
    seen = []
    label = components._label

    def recording(tall):
        seen.append(cv2.getNumThreads())
        return label(tall)

    monkeypatch.setattr(components, "_label", recording)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        localizer = get_localizer("components")
        localizer(torch.rand(40, 32, 32, generator=torch.Generator().manual_seed(2)))
        assert seen and set(seen) == {1} and cv2.getNumThreads() == 3
        monkeypatch.setattr(components, "_label", lambda tall: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            localizer(torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(3)))
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(threads)

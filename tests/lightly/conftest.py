"""Image folders for the Lightly adapter tests, written once per session.

``quadrant_folder``: 16 RGB images of 48 x 48 px in two class folders; each image is split
into four 24 x 24 quadrants of pure colours, red always top-left, the other three
(green, blue, yellow) permuted per image. A crop's colour tells where it came from.

``scenes_folder``: 16 generated object-in-clutter scenes (the project's own data), 48 px.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccrop_scenes import generate_scenes

# `import lightning_simclr` in the tests (this folder is not on sys.path); the DDP tests also run it as a script
if "lightning_simclr" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("lightning_simclr", Path(__file__).with_name("lightning_simclr.py"))
    sys.modules["lightning_simclr"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["lightning_simclr"])

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
QUADRANT_SIZE = 24
# The red quadrant's inner box, normalised x0, y0, x1, y1: pixels 6..18 of 48 on both axes.
RED_INNER_BOX = (0.125, 0.125, 0.375, 0.375)


def quadrant_image(index: int) -> np.ndarray:
    others = list(itertools.permutations([GREEN, BLUE, YELLOW]))[index % 6]
    colours = [RED, *others]
    image = np.zeros((2 * QUADRANT_SIZE, 2 * QUADRANT_SIZE, 3), dtype=np.uint8)
    for quadrant, colour in enumerate(colours):
        row, col = divmod(quadrant, 2)
        image[row * QUADRANT_SIZE : (row + 1) * QUADRANT_SIZE, col * QUADRANT_SIZE : (col + 1) * QUADRANT_SIZE] = colour
    return image


def _red_fraction(views) -> np.ndarray:
    """Fraction of pure-red pixels per view; ``views`` (B, 3, H, W) in [0, 1] (no normalisation)."""
    r, g, b = views[:, 0], views[:, 1], views[:, 2]
    red = (r > 0.5) & (g < 0.5) & (b < 0.5)
    return red.float().mean(dim=(1, 2)).numpy()


@pytest.fixture(scope="session")
def red_fraction():
    """``red_fraction(views (B, 3, H, W)) -> (B,)``: the share of pure-red pixels of each view."""
    return _red_fraction


@pytest.fixture(scope="session")
def red_box():
    """The red quadrant's inner box, normalised ``x0, y0, x1, y1``."""
    return RED_INNER_BOX


@pytest.fixture(scope="session")
def quadrant_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quadrants")
    for index in range(16):
        folder = root / f"class_{index % 2}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(quadrant_image(index)).save(folder / f"img_{index:02d}.png")
    return root


@pytest.fixture(scope="session")
def scenes_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    scenes = generate_scenes(16, image_size=48, num_classes=2, seed=3)
    for index, (image, label) in enumerate(zip(scenes.images, scenes.labels)):
        folder = root / scenes.class_names[int(label)]
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"scene_{index:02d}.png")
    return root


@pytest.fixture(scope="session")
def first_batch_raises():
    """``first_batch_raises(loader, exception, match)``: assert that the loader's first batch raises, and end its
    worker processes at once.

    torch re-raises a worker's error from a frame that holds the exception itself; that cycle keeps the iterator
    alive until a later garbage collection, which clears the index queues' feeder threads before the iterator's
    shutdown, so each worker then waits out its 5 s join timeout (5-10 s lost in whichever test runs next).
    """

    def check(loader, exception, match):
        iterator = iter(loader)
        with pytest.raises(exception, match=match) as caught:
            next(iterator)
        traceback.clear_frames(caught.tb)  # breaks the cycle: the iterator goes with its last reference, below
        del iterator
        return caught

    return check

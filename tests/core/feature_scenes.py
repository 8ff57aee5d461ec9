"""Constructed feature maps with a known answer, shared by the heatmap-rule tests (tests/core, tests/extras).

Scenes: a background descriptor everywhere plus objects (rectangles of cells) with their own descriptors; a rule
must make the object cells the hot ones, so that the components localizer recovers each object's exact box.
Importable once the test puts this folder on ``sys.path``.
"""

import math

import torch

from ccrop_plugins import get_localizer, heatmaps_from_features

C = 12
SIZE = 16


def scene(objects, background, noise=0.05, seed=0):
    """``(C, 16, 16)`` features: ``background`` everywhere, ``objects`` = [(top, left, bottom, right, descriptor)]."""
    generator = torch.Generator().manual_seed(seed)
    features = background[:, None, None].repeat(1, SIZE, SIZE) + noise * torch.randn(C, SIZE, SIZE, generator=generator)
    for top, left, bottom, right, descriptor in objects:
        features[:, top:bottom, left:right] = descriptor[:, None, None] + noise * torch.randn(
            C, bottom - top, right - left, generator=generator
        )
    return features


def descriptors(count, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(C, generator=generator) * 2 for _ in range(count)]


def exact(top, left, bottom, right):
    return [left / SIZE, top / SIZE, right / SIZE, bottom / SIZE]


def boxes_of(maps, threshold=0.3):
    sets = get_localizer("components", threshold=threshold, min_area=0.0, max_boxes=4, label_resolution=None)(maps)
    return [sorted(sets[i][0].tolist()) for i in range(len(maps))], sets


BLOBS = [(2, 3, 6, 8), (10, 10, 14, 15), (9, 1, 12, 4)]


def three_object_scenes(count=4):
    background, a, b, c = descriptors(4)
    return torch.stack(
        [scene([(*BLOBS[0], a), (*BLOBS[1], b), (*BLOBS[2], c)], background, seed=s) for s in range(count)]
    )


def ddt_dataset(count=12, flip=False):
    """Every image: the common object on a shared background; the object's descriptor differs most
    from the background in one channel, whose sign ``flip`` chooses (so the eigenvector's sign flips)."""
    background = torch.full((C,), 1.0)
    common = background.clone()
    common[0] = -2.0 if flip else 4.0
    common[1:4] += 0.5
    generator = torch.Generator().manual_seed(5)
    images, blobs = [], []
    for s in range(count):
        top, left = (int(v) for v in torch.randint(0, 10, (2,), generator=generator))
        blob = (top, left, top + 5, left + 6)
        images.append(scene([(*blob, common)], background, seed=s))
        blobs.append(blob)
    return torch.stack(images), blobs


def degenerate():
    constant = torch.full((C, 8, 8), 3.0)
    with_nan = torch.randn(C, 8, 8, generator=torch.Generator().manual_seed(0))
    with_nan[2, 3, 3] = math.nan
    with_inf = torch.randn(C, 8, 8, generator=torch.Generator().manual_seed(1))
    with_inf[0, 1, 1] = math.inf
    hot = torch.zeros(C, 8, 8)
    hot[:, 5, 2] = 4.0
    negative = -torch.rand(C, 8, 8, generator=torch.Generator().manual_seed(2)) - 1.0
    negative[:, 1:3, 1:3] = -5.0
    return torch.stack([constant, with_nan, with_inf, hot, negative])


def assert_every_object_outlined(method):
    """``method``'s maps of :func:`three_object_scenes` give each image the three exact boxes, no fallback."""
    boxes, sets = boxes_of(heatmaps_from_features(three_object_scenes(), method=method))
    assert boxes == [sorted(exact(*blob) for blob in BLOBS)] * len(boxes) and not sets.fallback.any()

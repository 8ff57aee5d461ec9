"""Seeded, vectorised generator of synthetic object-in-clutter image datasets.

Every image shows one or more instances of a single object class (the image
label) on a cluttered background. The background (smooth colour noise, thin
curved strokes and blurry blobs) is drawn from a distribution that does not
depend on the label, so the only class evidence sits inside the ground-truth
boxes. This makes the data suitable for testing object-centric cropping such
as ContrastiveCrop: a crop that misses the object carries no label signal.

Conventions used throughout this module:

* Images are ``uint8`` arrays of shape ``(N, H, W, 3)`` (RGB, ``H == W``).
* Pixel ``(row, col)`` covers the continuous square
  ``[col, col + 1) x [row, row + 1)``; its centre is ``(col + 0.5, row + 0.5)``.
* Boxes are ``float32`` ``(k, 4)`` arrays ``[x0, y0, x1, y1]`` normalised by
  the image width / height, so ``0 <= x0 < x1 <= 1`` and
  ``0 <= y0 < y1 <= 1``. They are the tight boxes of the rendered object
  masks: the object's pixels span exactly the columns
  ``x0 * W <= col < x1 * W`` and the rows ``y0 * H <= row < y1 * H``.

All randomness comes from ``numpy.random.SeedSequence(seed)``; the same
arguments give byte-identical output on the same platform.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["CLASS_NAMES", "Scenes", "generate_scenes"]

#: Class names, prefixed with the label so that an alphabetical listing of
#: class folders (as ``torchvision.datasets.ImageFolder`` does) equals label
#: order.
CLASS_NAMES: tuple[str, ...] = (
    "00_disc",
    "01_square",
    "02_triangle",
    "03_ring",
    "04_cross",
    "05_striped_ellipse",
    "06_checker_square",
    "07_star",
    "08_hollow_square",
    "09_crescent",
)

_MAX_OBJECTS = 16  # instance ids must fit in the uint8 instance map
_MIN_OBJECT_PIXELS = 16  # smallest allowed object box, in pixels (4 x 4)
_MAX_FILL = 0.5  # objects_per_image[1] * object_area[0] must stay below this
_MAX_OVERLAP = 0.1  # intersection / smaller box area between two instances
_ASPECT = 1.5  # box aspect ratio w / h is log-uniform in [1/_ASPECT, _ASPECT]
_ROTATION_JITTER = np.pi / 6  # shapes turn by k * 90 deg +- 30 deg
_CHUNK = 512  # images rendered per vectorised batch (bounds memory)
_NOISE_STD = 0.012  # per-pixel sensor noise, in [0, 1] intensity units


@dataclass
class Scenes:
    """A synthetic dataset: images, image labels and per-instance boxes.

    Attributes:
        images: ``uint8`` array ``(N, H, W, 3)``, RGB.
        labels: ``int64`` array ``(N,)``; the image label in
            ``[0, len(class_names))``: the class of every object in the image,
            or with ``mixed_classes`` the class of its largest object.
        boxes: ``N`` ``float32`` arrays of shape ``(k_i, 4)``: tight boxes
            ``[x0, y0, x1, y1]`` of the ``k_i`` instances of image ``i``,
            normalised to ``[0, 1]`` by image width and height.
        class_names: Name of every label; sorted so that the alphabetical
            order of the names equals label order.
        masks: ``uint8`` array ``(N, H, W)`` of instance ids: ``0`` is
            background and ``j + 1`` marks the pixels of instance
            ``boxes[i][j]``.
        object_labels: ``N`` ``int64`` arrays ``(k_i,)``: the class of every
            instance, aligned with ``boxes``. Without ``mixed_classes`` every
            entry equals the image label; ``None`` at construction means
            exactly that.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: list[np.ndarray]
    class_names: list[str]
    masks: np.ndarray
    object_labels: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.object_labels is None:
            self.object_labels = [
                np.full(len(boxes), label, dtype=np.int64) for label, boxes in zip(self.labels, self.boxes)
            ]

    def __len__(self) -> int:
        """Number of images."""
        return int(self.labels.shape[0])


@dataclass
class _Config:
    """Validated arguments of :func:`generate_scenes`."""

    image_size: int
    objects_per_image: tuple[int, int]
    object_area: tuple[float, float]
    num_classes: int
    mixed_classes: bool = False


@dataclass
class _Layout:
    """Per-instance parameters of one batch of images (``M`` instances).

    Attributes:
        image: ``(M,)`` index of the image each instance belongs to.
        slot: ``(M,)`` index of the instance inside its image.
        label: ``(M,)`` class of the instance.
        box: ``(M, 4)`` integer layout box ``[x0, y0, w, h]`` in pixels; the
            shape is drawn inside it.
        angle: ``(M,)`` rotation of the shape, radians.
        colour: ``(M, 3)`` main RGB colour in ``[0, 1]``.
        shape_params: ``(M, 3)`` uniform ``[0, 1)`` draws that each class maps
            to its own shape parameters (thickness, stripe count, ...).
        texture_params: ``(M, 3)`` uniform ``[0, 1)`` draws for shading.
    """

    image: np.ndarray
    slot: np.ndarray
    label: np.ndarray
    box: np.ndarray
    angle: np.ndarray
    colour: np.ndarray
    shape_params: np.ndarray
    texture_params: np.ndarray


def generate_scenes(
    num_images: int,
    *,
    image_size: int = 64,
    objects_per_image: tuple[int, int] = (1, 1),
    object_area: tuple[float, float] = (0.10, 0.30),
    num_classes: int = 10,
    seed: int = 0,
    mixed_classes: bool = False,
) -> Scenes:
    """Generate a labelled synthetic dataset of objects on cluttered backgrounds.

    Labels are balanced: ``label = i % num_classes``, then shuffled. Each image
    holds a uniform random number of instances in ``objects_per_image``, all
    of the image's class; with ``mixed_classes`` the instances of an image
    belong to *different* classes instead: the largest (by layout box area)
    has the image's label, the others distinct classes drawn uniformly from
    the rest, so an image-level label no longer describes every object
    (``Scenes.object_labels`` does). Instance ``j`` gets a layout box whose area fraction
    is uniform in ``object_area`` (up to rounding to whole pixels, i.e. a few
    percent for small boxes) with an aspect ratio in ``[2/3, 3/2]``. Its shape
    is rotated by a multiple of 90 degrees plus up to +-30 degrees, then
    stretched to touch all four sides of the layout box. The reported box is
    the tight box of the drawn pixels: it lies inside the layout box and
    equals it up to pixel sampling of thin tips, so its area fraction lies
    in ``[0.5 * object_area[0], 1.05 * object_area[1]]`` (tested). Two layout
    boxes of one image overlap by at most 10 % of the smaller one's area
    (hence IoU < 0.1), and all boxes lie inside the image. Crowded settings
    redraw all boxes of an image until they fit, which favours the smaller
    sizes of the range.

    Visual statistics: each class has its own shape and texture (flat with a
    shading ramp, stripes, or checkers) and a class-centred hue with +-0.15
    jitter (overlapping neighbouring classes). Backgrounds are smooth colour
    noise plus thin strokes and blurry blobs, all independent of the label.

    Args:
        num_images: Number of images ``N``, at least 1.
        image_size: Height and width ``H = W`` in pixels, at least 16.
        objects_per_image: Inclusive ``(min, max)`` instances per image,
            ``1 <= min <= max <= 16``.
        object_area: Inclusive ``(min, max)`` layout-box area as a fraction of
            the image area, ``0 < min <= max <= 1``; small objects such as
            ``(0.02, 0.08)`` are supported as long as ``min * H * W >= 16``.
        num_classes: Number of classes, ``1..10``; uses the first
            ``num_classes`` entries of :data:`CLASS_NAMES`.
        seed: Non-negative integer seed.
        mixed_classes: Draw the objects of an image from different classes
            (needs ``objects_per_image[1] <= num_classes``). The default
            ``False`` gives byte-identical output to earlier versions.

    Returns:
        The generated :class:`Scenes`.

    Raises:
        ValueError: If an argument is outside its allowed range, or the
            requested objects cannot fit (``max_objects > 1`` and
            ``max_objects * min_area > 0.5``), or ``mixed_classes`` asks for
            more objects than classes.
        RuntimeError: If non-overlapping placement fails repeatedly (only for
            very crowded settings close to the limit above).
    """
    config = _validate(num_images, image_size, objects_per_image, object_area, num_classes, seed, mixed_classes)
    images, labels, boxes, masks, object_labels = _generate(num_images, config, seed, draw_objects=True)
    return Scenes(
        images=images,
        labels=labels,
        boxes=boxes,
        class_names=list(CLASS_NAMES[: config.num_classes]),
        masks=masks,
        object_labels=object_labels,
    )


# --------------------------------------------------------------------------
# argument validation


def _as_int(name: str, value: object) -> int:
    """Return ``value`` as an ``int`` or raise ``ValueError`` naming it."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _as_pair(name: str, value: object) -> tuple[object, object]:
    """Return ``value`` as a 2-tuple or raise ``ValueError`` naming it."""
    try:
        first, second = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair, got {value!r}") from None
    return first, second


def _validate(
    num_images: object,
    image_size: object,
    objects_per_image: object,
    object_area: object,
    num_classes: object,
    seed: object,
    mixed_classes: object = False,
) -> _Config:
    """Check every argument of :func:`generate_scenes`.

    Returns:
        The normalised arguments.

    Raises:
        ValueError: Naming the bad argument, its value and the allowed range.
    """
    n = _as_int("num_images", num_images)
    if n < 1:
        raise ValueError(f"num_images must be >= 1, got {n}")
    size = _as_int("image_size", image_size)
    if size < 16:
        raise ValueError(f"image_size must be >= 16, got {size}")
    lo, hi = _objects_per_image(objects_per_image)
    a_lo, a_hi = _object_area(object_area, size, hi)
    classes = _as_int("num_classes", num_classes)
    if not 1 <= classes <= len(CLASS_NAMES):
        raise ValueError(f"num_classes must be in [1, {len(CLASS_NAMES)}], got {classes}")
    seed_int = _as_int("seed", seed)
    if seed_int < 0:
        raise ValueError(f"seed must be >= 0, got {seed_int}")
    if not isinstance(mixed_classes, (bool, np.bool_)):
        raise ValueError(f"mixed_classes must be True or False, got {mixed_classes!r}")
    if mixed_classes and hi > classes:
        raise ValueError(
            f"mixed_classes needs a distinct class per object: objects_per_image[1] = {hi} "
            f"exceeds num_classes = {classes}"
        )
    return _Config(size, (lo, hi), (a_lo, a_hi), classes, bool(mixed_classes))


def _objects_per_image(objects_per_image: object) -> tuple[int, int]:
    """``objects_per_image`` checked: ``1 <= min <= max <= _MAX_OBJECTS``."""
    lo_raw, hi_raw = _as_pair("objects_per_image", objects_per_image)
    lo, hi = _as_int("objects_per_image[0]", lo_raw), _as_int("objects_per_image[1]", hi_raw)
    if not 1 <= lo <= hi <= _MAX_OBJECTS:
        raise ValueError(
            f"objects_per_image must satisfy 1 <= min <= max <= {_MAX_OBJECTS}, "
            f"got {tuple(objects_per_image)!r}"  # type: ignore[arg-type]
        )
    return lo, hi


def _object_area(object_area: object, size: int, most_objects: int) -> tuple[float, float]:
    """``object_area`` checked: a range in ``(0, 1]``, objects of at least ``_MIN_OBJECT_PIXELS``, and room for them."""
    a_lo_raw, a_hi_raw = _as_pair("object_area", object_area)
    try:
        a_lo, a_hi = float(a_lo_raw), float(a_hi_raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"object_area must hold two numbers, got {object_area!r}") from None
    if not (0.0 < a_lo <= a_hi <= 1.0):
        raise ValueError(f"object_area must satisfy 0 < min <= max <= 1, got {(a_lo, a_hi)!r}")
    if a_lo * size * size < _MIN_OBJECT_PIXELS:
        raise ValueError(
            f"object_area[0] * image_size**2 must be >= {_MIN_OBJECT_PIXELS} pixels, got "
            f"{a_lo} * {size}**2 = {a_lo * size * size:.1f}; raise object_area[0] to >= "
            f"{_MIN_OBJECT_PIXELS / size**2:.4f} or image_size"
        )
    if most_objects > 1 and most_objects * a_lo > _MAX_FILL:
        raise ValueError(
            f"objects do not fit: objects_per_image[1] * object_area[0] = {most_objects} * {a_lo} "
            f"= {most_objects * a_lo:.3f} must be <= {_MAX_FILL}"
        )
    return a_lo, a_hi


# --------------------------------------------------------------------------
# top-level driver


def _generate(
    num_images: int, config: _Config, seed: int, *, draw_objects: bool
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Draw labels and counts, then render the images in batches.

    Args:
        num_images: ``N``.
        config: Validated arguments.
        seed: Root seed.
        draw_objects: ``False`` renders the backgrounds only, consuming the
            same random numbers (used by tests to locate object pixels).

    Returns:
        ``(images, labels, boxes, masks, object_labels)`` as described in
        :class:`Scenes`.
    """
    num_chunks = -(-num_images // _CHUNK)
    root, *chunk_seeds = np.random.SeedSequence(seed).spawn(1 + num_chunks)
    rng = np.random.default_rng(root)
    labels = rng.permutation(np.arange(num_images, dtype=np.int64) % config.num_classes)
    lo, hi = config.objects_per_image
    counts = rng.integers(lo, hi + 1, size=num_images)

    size = config.image_size
    images = np.empty((num_images, size, size, 3), dtype=np.uint8)
    masks = np.zeros((num_images, size, size), dtype=np.uint8)
    boxes: list[np.ndarray] = []
    object_labels: list[np.ndarray] = []
    for chunk, chunk_seed in enumerate(chunk_seeds):
        part = slice(chunk * _CHUNK, (chunk + 1) * _CHUNK)
        chunk_rng = np.random.default_rng(chunk_seed)
        chunk_boxes, chunk_labels = _render_chunk(
            chunk_rng, labels[part], counts[part], config, images[part], masks[part], draw_objects
        )
        boxes.extend(chunk_boxes)
        object_labels.extend(chunk_labels)
    return images, labels, boxes, masks, object_labels


def _render_chunk(
    rng: np.random.Generator,
    labels: np.ndarray,
    counts: np.ndarray,
    config: _Config,
    out_images: np.ndarray,
    out_masks: np.ndarray,
    draw_objects: bool,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Render one batch of ``n`` images into ``out_images`` / ``out_masks``.

    Returns:
        ``n`` tight-box arrays ``(k_i, 4)`` (normalised xyxy, ``float32``)
        and ``n`` instance-class arrays ``(k_i,)`` (``int64``).
    """
    size = config.image_size
    layout = _sample_layout(rng, labels, counts, config)
    canvas = _sample_background(rng, len(labels), size)
    _draw_distractors(rng, canvas)
    if draw_objects:
        pixel_boxes = _draw_objects(canvas, out_masks, layout)
    else:
        pixel_boxes = np.zeros((len(layout.image), 4), dtype=np.int64)
    _finish(rng, canvas, out_images)

    normalised = (pixel_boxes / size).astype(np.float32)
    splits = np.cumsum(counts)[:-1]
    return np.split(normalised, splits), np.split(layout.label.astype(np.int64), splits)


def _finish(rng: np.random.Generator, canvas: np.ndarray, out: np.ndarray) -> None:
    """Add uniform sensor noise of std ``_NOISE_STD`` and quantise to ``uint8``.

    Args:
        canvas: ``float32`` ``(n, H, W, 3)`` in ``[0, 1]``; overwritten.
        out: ``uint8`` array of the same shape receiving the result.
    """
    noise = rng.random(canvas.shape, dtype=np.float32)
    half_width = _NOISE_STD * np.sqrt(3.0) * 255.0
    canvas *= 255.0
    canvas += (2.0 * half_width) * noise - (half_width - 0.5)  # +0.5 rounds on truncation
    np.clip(canvas, 0.0, 255.0, out=canvas)
    out[...] = canvas.astype(np.uint8)


# --------------------------------------------------------------------------
# layout: box placement and per-instance parameters


def _sample_layout(
    rng: np.random.Generator, labels: np.ndarray, counts: np.ndarray, config: _Config
) -> _Layout:
    """Place the instances of every image and draw their appearance."""
    image, slot, box = _place_boxes(rng, counts, config.image_size, config.object_area)
    m = len(image)
    quarter_turns = rng.integers(0, 4, size=m)
    jitter = rng.uniform(-_ROTATION_JITTER, _ROTATION_JITTER, size=m)
    if config.mixed_classes:
        label = _mixed_labels(rng, labels, image, slot, box, config.num_classes)
    else:
        label = labels[image]
    return _Layout(
        image=image,
        slot=slot,
        label=label,
        box=box,
        angle=(quarter_turns * (np.pi / 2) + jitter).astype(np.float32),
        colour=_object_colours(rng, label, len(CLASS_NAMES)),
        shape_params=rng.random((m, 3), dtype=np.float32),
        texture_params=rng.random((m, 3), dtype=np.float32),
    )


def _mixed_labels(
    rng: np.random.Generator,
    labels: np.ndarray,
    image: np.ndarray,
    slot: np.ndarray,
    box: np.ndarray,
    num_classes: int,
) -> np.ndarray:
    """Distinct classes for the instances of every image (``mixed_classes``).

    The instance with the largest layout box keeps the image label (ties: the
    lower slot); the others take the image's other classes in a uniformly
    random order, drawn without replacement.

    Returns:
        ``(M,)`` class of every instance, in layout order.
    """
    n, k_max = len(labels), int(slot.max()) + 1
    # A random ranking of the classes per image, with the image's own class last.
    keys = rng.random((n, num_classes))
    keys[np.arange(n), labels] = np.inf
    others = np.argsort(keys, axis=1)  # (n, C): the other classes first, in random order
    area = np.full((n, k_max), -1, dtype=np.int64)
    area[image, slot] = box[:, 2] * box[:, 3]
    largest = area.argmax(axis=1)  # first maximum: the lowest slot on ties
    # Rank of each instance among its image's non-largest instances, in slot order.
    rank = slot - (slot > largest[image])
    label = others[image, np.minimum(rank, num_classes - 1)]
    is_largest = slot == largest[image]
    label[is_largest] = labels[image[is_largest]]
    return label.astype(np.int64)


def _object_colours(rng: np.random.Generator, label: np.ndarray, num_hues: int) -> np.ndarray:
    """Saturated colours whose hue is centred on a class-specific value.

    Class ``c`` has mean hue ``c / num_hues``; the jitter of +-0.15 makes
    the hue ranges of the two nearest classes on each side overlap, so
    colour is a cue but not a sufficient one.

    Returns:
        ``(M, 3)`` RGB in ``[0, 1]``.
    """
    m = len(label)
    hue = (label / num_hues + rng.uniform(-0.15, 0.15, size=m)) % 1.0
    sat = rng.uniform(0.55, 1.0, size=m)
    val = rng.uniform(0.6, 1.0, size=m)
    return _hsv_to_rgb(hue, sat, val)


def _draw_box_sizes(
    rng: np.random.Generator, m: int, size: int, area: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``m`` integer box sizes ``(w, h)`` with area fraction in ``area``."""
    frac = rng.uniform(area[0], area[1], size=m)
    aspect = np.exp(rng.uniform(-np.log(_ASPECT), np.log(_ASPECT), size=m))
    w = np.clip(np.rint(np.sqrt(frac * aspect) * size), 4, size).astype(np.int64)
    h = np.clip(np.rint(frac * size * size / w), 4, size).astype(np.int64)
    return w, h


def _overlap_fraction(cand: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """Intersection area divided by the smaller box's area.

    Args:
        cand: ``(..., 4)`` boxes ``[x0, y0, w, h]``.
        placed: ``(..., 4)`` boxes, broadcastable against ``cand``.

    Returns:
        Array of the broadcast shape without the last axis.
    """
    ix = np.minimum(cand[..., 0] + cand[..., 2], placed[..., 0] + placed[..., 2])
    ix = np.maximum(ix - np.maximum(cand[..., 0], placed[..., 0]), 0)
    iy = np.minimum(cand[..., 1] + cand[..., 3], placed[..., 1] + placed[..., 3])
    iy = np.maximum(iy - np.maximum(cand[..., 1], placed[..., 1]), 0)
    smaller = np.minimum(cand[..., 2] * cand[..., 3], placed[..., 2] * placed[..., 3])
    return ix * iy / smaller


def _place_boxes(
    rng: np.random.Generator,
    counts: np.ndarray,
    size: int,
    area: tuple[float, float],
    restarts: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place ``counts[i]`` boxes in every image, overlapping by at most 10 %.

    Images in which some box could not be placed start over with fresh sizes
    and positions, up to ``restarts`` times.

    Returns:
        ``(image, slot, box)``: ``(M,)`` image index, ``(M,)`` slot index and
        ``(M, 4)`` integer boxes ``[x0, y0, w, h]`` in pixels, ordered by
        image then slot.

    Raises:
        RuntimeError: If some image could not be filled.
    """
    k_max = int(counts.max())
    boxes = np.zeros((len(counts), k_max, 4), dtype=np.int64)
    pending = np.arange(len(counts))
    for _ in range(restarts):
        attempt, ok = _try_place_boxes(rng, counts[pending], size, area)
        boxes[pending[ok]] = attempt[ok]
        pending = pending[~ok]
        if pending.size == 0:
            break
    else:
        raise RuntimeError(
            f"could not place {counts[pending].max()} objects without overlap in "
            f"{pending.size} images; lower objects_per_image or object_area"
        )
    image, slot = np.nonzero(np.arange(k_max)[None, :] < counts[:, None])
    return image, slot, boxes[image, slot]


def _try_place_boxes(
    rng: np.random.Generator,
    counts: np.ndarray,
    size: int,
    area: tuple[float, float],
    candidates: int = 32,
    rounds: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """One rejection-sampling pass of :func:`_place_boxes`.

    Slot ``j`` is placed for all images at once: each image draws a size and
    ``candidates`` positions, and keeps the first position whose overlap with
    its already placed boxes is at most ``_MAX_OVERLAP``; images without a
    valid candidate redraw the size, for up to ``rounds`` rounds.

    Returns:
        ``(boxes, ok)``: ``(n, max(counts), 4)`` boxes ``[x0, y0, w, h]`` and
        the ``(n,)`` mask of images whose boxes were all placed.
    """
    n, k_max = len(counts), int(counts.max())
    boxes = np.zeros((n, k_max, 4), dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    for j in range(k_max):
        todo = np.flatnonzero(ok & (counts > j))
        for _ in range(rounds):
            if todo.size == 0:
                break
            m = todo.size
            w, h = _draw_box_sizes(rng, m, size, area)
            x0 = rng.integers(0, (size - w + 1)[:, None], size=(m, candidates))
            y0 = rng.integers(0, (size - h + 1)[:, None], size=(m, candidates))
            cand = np.stack(np.broadcast_arrays(x0, y0, w[:, None], h[:, None]), axis=-1)
            placed = boxes[todo, None, :j]  # (m, 1, j, 4)
            valid = (_overlap_fraction(cand[:, :, None], placed) <= _MAX_OVERLAP).all(axis=-1)
            found = valid.any(axis=1)
            rows = np.flatnonzero(found)
            boxes[todo[rows], j] = cand[rows, valid[rows].argmax(axis=1)]
            todo = todo[~found]
        ok[todo] = False
    return boxes, ok


# --------------------------------------------------------------------------
# background: smooth colour noise plus label-independent distractors


def _bilinear_matrix(size: int, grid: int) -> np.ndarray:
    """``(size, grid)`` matrix that bilinearly upsamples ``grid`` samples."""
    pos = (np.arange(size) + 0.5) / size * (grid - 1)
    left = np.clip(np.floor(pos).astype(np.int64), 0, grid - 2)
    frac = (pos - left).astype(np.float32)
    mat = np.zeros((size, grid), dtype=np.float32)
    mat[np.arange(size), left] = 1.0 - frac
    mat[np.arange(size), left + 1] = frac
    return mat


def _sample_background(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Smooth multi-scale colour noise around a random muted base colour.

    Octaves of Gaussian noise on 4x4, 8x8 and 16x16 grids are summed on the
    16x16 grid and bilinearly upsampled to the image once.

    Returns:
        ``float32`` ``(n, size, size, 3)`` in roughly ``[0, 1]``.
    """
    base = _hsv_to_rgb(
        rng.random(n), rng.uniform(0.0, 0.45, size=n), rng.uniform(0.25, 0.85, size=n)
    )
    strength = rng.uniform(0.5, 1.5, size=(n, 1, 1, 1)).astype(np.float32)
    finest = 16
    texture = np.zeros((n, finest, finest, 3), dtype=np.float32)
    for grid, amplitude in ((4, 0.16), (8, 0.09), (finest, 0.05)):
        luma = rng.standard_normal((n, grid, grid, 1), dtype=np.float32)
        chroma = rng.standard_normal((n, grid, grid, 3), dtype=np.float32)
        coarse = (0.8 * amplitude) * luma + (0.5 * amplitude) * chroma  # (n, g, g, 3)
        texture += coarse if grid == finest else _upsample(coarse, _bilinear_matrix(finest, grid))
    texture *= strength
    texture += base[:, None, None, :]
    # bilinear weights sum to one, so the base colour passes through unchanged
    return np.ascontiguousarray(_upsample(texture, _bilinear_matrix(size, finest)))


def _upsample(coarse: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Separable upsampling ``up @ coarse @ up.T`` of ``(n, g, g, 3)`` to ``(n, S, S, 3)``.

    Written as two plain 2-D matrix products, which run through BLAS (a
    broadcast ``up @ coarse`` would not).
    """
    n, grid, _, channels = coarse.shape
    size = up.shape[0]
    # rows: (n, gy, gx*3) -> (n*gx*3, gy) @ up.T -> (n, gx, 3, S)
    rows = coarse.transpose(0, 2, 3, 1).reshape(-1, grid) @ up.T
    rows = rows.reshape(n, grid, channels * size)  # (n, gx, 3*Sy)
    # cols: (n, 3*Sy, gx) @ up.T -> (n, 3, Sy, Sx)
    cols = rows.transpose(0, 2, 1).reshape(-1, grid) @ up.T
    return cols.reshape(n, channels, size, size).transpose(0, 2, 3, 1)


def _stroke_centres(rng: np.random.Generator, n: int, strokes: int, dots: int, size: int) -> np.ndarray:
    """Centres of dots along random smoothly curving strokes.

    Returns:
        ``(n, strokes * dots, 2)`` ``(x, y)`` centres in pixels.
    """
    scale = size / 64.0
    start = rng.uniform(0, size, size=(n, strokes, 1, 2))
    heading = rng.uniform(0, 2 * np.pi, size=(n, strokes, 1))
    bend = rng.uniform(-0.07, 0.07, size=(n, strokes, 1))
    step = rng.uniform(0.9, 1.3, size=(n, strokes, 1)) * scale
    t = np.arange(dots)
    angle = heading + bend * t
    delta = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * step[..., None]
    path = start + np.cumsum(delta, axis=2) - delta[:, :, :1]
    return path.reshape(n, strokes * dots, 2)


def _draw_distractors(rng: np.random.Generator, canvas: np.ndarray) -> None:
    """Alpha-blend thin curved strokes and blurry blobs onto ``canvas``.

    All distractors are sums of axis-aligned Gaussians, which are separable,
    so one batched matrix product renders every distractor of every image.
    Their number, position, size and colour never depend on the label; they
    are soft-edged (blurry blobs, hair-thin strokes) and hence unlike the
    hard-edged class shapes.

    Args:
        canvas: ``float32`` ``(n, H, W, 3)``, modified in place.
    """
    n, size = canvas.shape[0], canvas.shape[1]
    scale = size / 64.0
    strokes, dots, blobs = 4, 20, 8
    stroke_xy = _stroke_centres(rng, n, strokes, dots, size)
    blob_xy = rng.uniform(0, size, size=(n, blobs, 2))
    centres = np.concatenate([stroke_xy, blob_xy], axis=1)  # (n, K, 2)

    stroke_sigma = np.repeat(rng.uniform(0.45, 0.8, size=(n, strokes, 1)), dots, axis=1)
    blob_sigma = rng.uniform(1.2, 4.0, size=(n, blobs, 2))
    sigma = np.concatenate([np.broadcast_to(stroke_sigma, (n, strokes * dots, 2)), blob_sigma], axis=1)
    sigma = sigma * scale

    active_strokes = rng.integers(1, strokes + 1, size=(n, 1))
    active_blobs = rng.integers(3, blobs + 1, size=(n, 1))
    stroke_on = np.repeat(np.arange(strokes)[None, :] < active_strokes, dots, axis=1)
    blob_on = np.arange(blobs)[None, :] < active_blobs
    opacity = np.concatenate(
        [
            np.repeat(rng.uniform(0.5, 0.9, size=(n, strokes)), dots, axis=1) * stroke_on,
            rng.uniform(0.35, 0.85, size=(n, blobs)) * blob_on,
        ],
        axis=1,
    ).astype(np.float32)

    stroke_colour = np.repeat(_random_colours(rng, n * strokes).reshape(n, strokes, 3), dots, axis=1)
    blob_colour = _random_colours(rng, n * blobs).reshape(n, blobs, 3)
    colour = np.concatenate([stroke_colour, blob_colour], axis=1).astype(np.float32)

    centres, sigma = centres.astype(np.float32), sigma.astype(np.float32)
    grid = np.arange(size, dtype=np.float32) + 0.5
    gx = _gaussian_profile(grid[None, None, :], centres[..., 0:1], sigma[..., 0:1])  # (n, K, W)
    gy = _gaussian_profile(grid[None, :, None], centres[:, None, :, 1], sigma[:, None, :, 1])
    weights = np.concatenate([np.ones_like(colour[..., :1]), colour], axis=-1)  # (n, K, 4)
    weights *= opacity[..., None]
    right = gx[..., None] * weights[:, :, None, :]  # (n, K, W, 4)
    summed = gy @ right.reshape(n, -1, size * 4)  # (n, H, K) @ (n, K, W * 4)
    summed = summed.reshape(n, size, size, 4)
    coverage = summed[..., :1]
    # alpha = min(coverage, 1) over the coverage-weighted mean colour
    # summed[..., 1:] / coverage, i.e. canvas * (1 - alpha) + summed * min(1, 1 / coverage)
    canvas *= 1.0 - np.minimum(coverage, 1.0)
    canvas += summed[..., 1:] / np.maximum(coverage, 1.0)


def _gaussian_profile(grid: np.ndarray, centre: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Unnormalised ``float32`` Gaussian ``exp(-(grid - centre)^2 / 2 sigma^2)``.

    Values below ``1e-6`` are flushed to zero: subnormal floats would make the
    following matrix product many times slower.
    """
    z = (grid - centre) / sigma
    profile = np.exp(-0.5 * z * z)
    profile[profile < 1e-6] = 0.0
    return profile


def _random_colours(rng: np.random.Generator, m: int) -> np.ndarray:
    """``(m, 3)`` RGB colours with uniform hue, any saturation and value."""
    return _hsv_to_rgb(rng.random(m), rng.uniform(0.1, 1.0, size=m), rng.uniform(0.15, 1.0, size=m))


def _hsv_to_rgb(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Vectorised HSV to RGB; inputs ``(m,)`` in ``[0, 1]``, output ``(m, 3)``."""
    k = (np.array([5.0, 3.0, 1.0]) + hue[:, None] * 6.0) % 6.0
    ramp = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return (val[:, None] * (1.0 - sat[:, None] * ramp)).astype(np.float32)


# --------------------------------------------------------------------------
# objects: class shapes in a local coordinate frame
#
# A shape lives in its own frame ``(x, y)`` (x right, y down, roughly
# ``[-1, 1]^2``). ``mask(x, y, p)`` gets ``(n, S, S)`` coordinates and ``p``,
# an ``(n, 1, 1, 3)`` array of uniform draws; it returns a boolean mask and a
# texture in ``[0, 1]`` (``None`` for a plain shape). ``outline(p)`` gets the
# same draws as ``(n, 3)`` and returns ``(n, P, 2)`` boundary points that
# include the shape's extreme points in every direction (polygon vertices, or
# a dense sampling of curved boundaries); they are used to fit the rotated
# shape exactly into its layout box.

_ShapeResult = tuple[np.ndarray, "np.ndarray | None"]


def _circle_points(count: int = 96) -> np.ndarray:
    """``(count, 2)`` points on the unit circle."""
    t = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _fixed_outline(points: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Outline function returning the same ``(P, 2)`` points for every instance."""

    def outline(p: np.ndarray) -> np.ndarray:
        return np.broadcast_to(points, (len(p), *points.shape))

    return outline


_SQUARE_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
_TRIANGLE_CORNERS = np.array([[0.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _disc_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    return x * x + y * y <= 1.0, None


def _square_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    return np.maximum(np.abs(x), np.abs(y)) <= 1.0, None


def _triangle_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    # apex (0, -1), base from (-1, 1) to (1, 1)
    return (y <= 1.0) & (2.0 * np.abs(x) <= y + 1.0), None


def _ring_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    radius2 = x * x + y * y
    inner = 1.0 - (0.3 + 0.2 * p[..., 0])
    return (radius2 <= 1.0) & (radius2 >= inner * inner), None


def _cross_half_width(p: np.ndarray) -> np.ndarray:
    return 0.22 + 0.16 * p[..., 0]


def _cross_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    half = _cross_half_width(p)
    ax, ay = np.abs(x), np.abs(y)
    inside = (ax <= 1.0) & (ay <= 1.0)
    return inside & ((ax <= half) | (ay <= half)), None


def _cross_outline(p: np.ndarray) -> np.ndarray:
    half = _cross_half_width(p)[:, None]
    one = np.ones_like(half)
    ends = [(one, half), (one, -half), (-one, half), (-one, -half)]
    xs = np.concatenate([e[0] for e in ends] + [e[1] for e in ends], axis=1)
    ys = np.concatenate([e[1] for e in ends] + [e[0] for e in ends], axis=1)
    return np.stack([xs, ys], axis=-1)


def _striped_ellipse_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    stripes = 2.5 + 2.0 * p[..., 0]
    phi = np.pi * p[..., 1]
    phase = np.sin(np.pi * stripes * (x * np.cos(phi) + y * np.sin(phi)))
    return x * x + y * y <= 1.0, (phase > 0).astype(np.float32)


def _checker_square_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    cells = 3.0 + np.floor(2.0 * p[..., 0])  # 3 or 4 cells per side
    ix = np.floor((x + 1.0) * 0.5 * cells)
    iy = np.floor((y + 1.0) * 0.5 * cells)
    mask = np.maximum(np.abs(x), np.abs(y)) <= 1.0
    return mask, ((ix + iy) % 2.0).astype(np.float32)


_STAR_POINTS = 5


def _star_inner_radius(p: np.ndarray) -> np.ndarray:
    return 0.4 + 0.12 * p[..., 0]


def _star_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    inner = _star_inner_radius(p)
    half_sector = np.pi / _STAR_POINTS
    theta = np.arctan2(x, -y) % (2.0 * half_sector)  # 0 along the upward tip
    alpha = np.minimum(theta, 2.0 * half_sector - theta)
    # distance to the edge from a tip (radius 1) to an inner vertex (radius inner)
    edge = inner * np.sin(half_sector) / (inner * np.sin(half_sector - alpha) + np.sin(alpha))
    return x * x + y * y <= edge * edge, None


def _star_outline(p: np.ndarray) -> np.ndarray:
    # Tips are fitted at radius 0.9: the box clips the last 10 % of each tip,
    # so thin tips of small stars still reach the pixel rows at the box edge.
    angle = np.arange(2 * _STAR_POINTS) * (np.pi / _STAR_POINTS)
    radius = np.where(np.arange(2 * _STAR_POINTS) % 2 == 0, 0.9, _star_inner_radius(p)[:, None])
    return np.stack([radius * np.sin(angle), -radius * np.cos(angle)], axis=-1)


def _hollow_square_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    cheb = np.maximum(np.abs(x), np.abs(y))
    return (cheb <= 1.0) & (cheb >= 1.0 - (0.28 + 0.14 * p[..., 0])), None


def _crescent_bite(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre offset and radius of the disc cut out of the unit disc."""
    return 0.3 + 0.2 * p[..., 0], 0.75 + 0.15 * p[..., 1]


def _crescent_mask(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> _ShapeResult:
    shift, bite = _crescent_bite(p)
    return (x * x + y * y <= 1.0) & ((x - shift) ** 2 + y * y > bite * bite), None


def _crescent_outline(p: np.ndarray) -> np.ndarray:
    shift, bite = _crescent_bite(p)
    points = np.broadcast_to(_circle_points(), (len(p), 96, 2))
    kept = (points[..., 0] - shift[:, None]) ** 2 + points[..., 1] ** 2 > (bite * bite)[:, None]
    # (-1, 0) always survives the bite; use it in place of removed points
    return np.where(kept[..., None], points, np.array([-1.0, 0.0]))


class _Shape(NamedTuple):
    """Mask and outline functions of one class (see the section comment)."""

    mask: Callable[[np.ndarray, np.ndarray, np.ndarray], _ShapeResult]
    outline: Callable[[np.ndarray], np.ndarray]


_CIRCLE = _fixed_outline(_circle_points())

#: Shape of every class, indexed by label.
_SHAPES: tuple[_Shape, ...] = (
    _Shape(_disc_mask, _CIRCLE),
    _Shape(_square_mask, _fixed_outline(_SQUARE_CORNERS)),
    _Shape(_triangle_mask, _fixed_outline(_TRIANGLE_CORNERS)),
    _Shape(_ring_mask, _CIRCLE),
    _Shape(_cross_mask, _cross_outline),
    _Shape(_striped_ellipse_mask, _CIRCLE),
    _Shape(_checker_square_mask, _fixed_outline(_SQUARE_CORNERS)),
    _Shape(_star_mask, _star_outline),
    _Shape(_hollow_square_mask, _fixed_outline(_SQUARE_CORNERS)),
    _Shape(_crescent_mask, _crescent_outline),
)


def _local_frame(
    box: np.ndarray, angle: np.ndarray, outline: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shape-frame coordinates of a ``(n, S, S)`` grid of box pixels.

    Grid pixel ``(r, c)`` is image pixel ``(y0 + r, x0 + c)``. The shape is
    rotated by ``angle`` and then scaled per axis so that the rotated outline
    exactly spans the box, so the drawn shape touches all four box sides.

    Args:
        box: ``(n, 4)`` integer ``[x0, y0, w, h]``.
        angle: ``(n,)`` rotation in radians.
        outline: ``(n, P, 2)`` outline points in the shape frame.

    Returns:
        ``(x, y, inside)``: shape-frame coordinates of every grid pixel centre
        and the mask of grid pixels inside the box, all ``(n, S, S)``.
    """
    w, h = box[:, 2], box[:, 3]
    side = int(max(w.max(), h.max()))
    centres = np.arange(side, dtype=np.float32) + 0.5
    tx = centres[None, None, :] / w[:, None, None].astype(np.float32)  # in [0, 1) inside the box
    ty = centres[None, :, None] / h[:, None, None].astype(np.float32)
    inside = (tx < 1.0) & (ty < 1.0)

    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    qx = cos * outline[..., 0] - sin * outline[..., 1]  # rotated outline, (n, P)
    qy = sin * outline[..., 0] + cos * outline[..., 1]
    qx0, qx1 = qx.min(axis=1), qx.max(axis=1)
    qy0, qy1 = qy.min(axis=1), qy.max(axis=1)
    gx = (qx0[:, None, None] + tx * (qx1 - qx0)[:, None, None]).astype(np.float32)
    gy = (qy0[:, None, None] + ty * (qy1 - qy0)[:, None, None]).astype(np.float32)
    cos = cos[:, :, None].astype(np.float32)
    sin = sin[:, :, None].astype(np.float32)
    return cos * gx + sin * gy, cos * gy - sin * gx, inside


def _shade(x: np.ndarray, y: np.ndarray, texture: "np.ndarray | None", q: np.ndarray) -> np.ndarray:
    """Blend weight towards the secondary colour, ``(n, S, S)`` in ``[0, 1]``.

    Plain shapes get a linear shading ramp of random direction and strength
    up to 0.6; textured shapes use their binary texture.
    """
    if texture is not None:
        return texture
    direction = 2.0 * np.pi * q[..., 0]
    ramp = 0.5 + 0.5 * (x * np.cos(direction) + y * np.sin(direction))
    return np.clip(ramp, 0.0, 1.0) * (0.6 * q[..., 1])


def _secondary_colour(colour: np.ndarray, textured: bool, q: np.ndarray) -> np.ndarray:
    """Colour that the shading / texture blends towards, ``(n, 3)``.

    Plain shapes shade towards a darker version of the main colour; textured
    shapes alternate with a much darker or much lighter tone (50/50).
    """
    if not textured:
        return colour * 0.45
    dark = colour * 0.2
    light = 1.0 - (1.0 - colour) * 0.2
    return np.where(q[:, 2:3] < 0.5, dark, light)


def _draw_objects(canvas: np.ndarray, masks: np.ndarray, layout: _Layout) -> np.ndarray:
    """Paint every instance onto ``canvas`` and record it in ``masks``.

    Instances of one class are rendered together on a per-instance grid of
    the size of the largest box, then scattered into the images.

    Args:
        canvas: ``float32`` ``(n, H, W, 3)``, modified in place.
        masks: ``uint8`` ``(n, H, W)`` instance ids, modified in place.
        layout: The batch's instances.

    Returns:
        ``(M, 4)`` integer tight boxes ``[x0, y0, x1, y1]`` in pixels
        (exclusive ``x1, y1``), in layout order.
    """
    tight = np.zeros((len(layout.image), 4), dtype=np.int64)
    for label in np.unique(layout.label):
        sel = np.flatnonzero(layout.label == label)
        shape = _SHAPES[label]
        box = layout.box[sel]
        params = layout.shape_params[sel]
        x, y, inside = _local_frame(box, layout.angle[sel], shape.outline(params))
        mask, texture = shape.mask(x, y, params[:, None, None, :])
        mask = _ensure_nonempty(mask & inside, box)
        shade = _shade(x, y, texture, layout.texture_params[sel][:, None, None, :])[..., None]
        main = layout.colour[sel]
        second = _secondary_colour(main, texture is not None, layout.texture_params[sel])
        colour = main[:, None, None, :] + shade * (second - main)[:, None, None, :]

        inst, row, col = np.nonzero(mask)
        img = layout.image[sel][inst]
        ys, xs = box[inst, 1] + row, box[inst, 0] + col
        canvas[img, ys, xs] = colour[inst, row, col]
        masks[img, ys, xs] = (layout.slot[sel][inst] + 1).astype(np.uint8)
        tight[sel] = _mask_extent(mask) + np.tile(box[:, :2], 2)
    return tight


def _ensure_nonempty(mask: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Switch on the centre pixel of any empty ``(n, S, S)`` mask."""
    empty = np.flatnonzero(~mask.any(axis=(1, 2)))
    mask[empty, box[empty, 3] // 2, box[empty, 2] // 2] = True
    return mask


def _mask_extent(mask: np.ndarray) -> np.ndarray:
    """Tight ``[c0, r0, c1, r1]`` (exclusive end) of non-empty ``(n, S, S)`` masks."""
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    side = mask.shape[1]
    r0, c0 = rows.argmax(axis=1), cols.argmax(axis=1)
    r1 = side - rows[:, ::-1].argmax(axis=1)
    c1 = side - cols[:, ::-1].argmax(axis=1)
    return np.stack([c0, r0, c1, r1], axis=1)

"""A second image "look", unlike :func:`generate_scenes`: to check that defaults are not tuned to it.

The generator's scenes are flat-coloured geometric shapes with a class hue on smooth colour noise
with thin strokes. These scenes differ in every respect the box stage could latch on to:

* backgrounds: natural 1/f ("pink") noise in a random palette, oriented gratings with wobble, or
  a cell mosaic (cobblestones), each with speckles;
* objects: irregular blobs, rings with an uneven rim, stars of 5-8 points, and two classes that
  are defined by *texture* rather than colour: a dotted blob and a striped blob whose mean colour
  is drawn near the local background's;
* colour is not tied to the class (a random hue per object), sizes vary over a wide range
  (``object_area``, default 2-20 % of the image), edges are anti-aliased, and a little blur and
  sensor noise are added.

:func:`generate_second_look` returns the generator's :class:`Scenes`, so
:func:`write_image_folder` stores it with the same COCO-style ``annotations.json``. Every image
shows 1-4 objects of the image's class; boxes are the tight boxes of each object's own pixels
(coverage >= 0.5 on the anti-aliased mask), normalised ``x0, y0, x1, y1``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ccrop_scenes.generator import Scenes, _as_int, _as_pair

__all__ = ["SECOND_LOOK_CLASSES", "generate_second_look"]

SECOND_LOOK_CLASSES: tuple[str, ...] = ("00_blob", "01_ring", "02_star", "03_dotted", "04_striped")
_SUPERSAMPLE = 2  # shapes are drawn on a 2x grid and averaged: anti-aliased edges
_MAX_OVERLAP = 0.1  # intersection / smaller box area between two objects of one image


def generate_second_look(
    num_images: int,
    *,
    image_size: int = 64,
    objects_per_image: tuple[int, int] = (1, 4),
    object_area: tuple[float, float] = (0.02, 0.20),
    seed: int = 0,
) -> Scenes:
    """Generate ``num_images`` seeded scenes of the second look (see the module docstring).

    Args:
        num_images: images ``N >= 1``.
        image_size: side ``H = W >= 16`` in pixels.
        objects_per_image: inclusive ``(min, max)`` objects per image, ``1 <= min <= max <= 8``.
        object_area: inclusive ``(min, max)`` area of each object's layout box as a fraction of
            the image, ``0 < min <= max <= 0.5``.
        seed: non-negative seed; the same arguments give the same images.

    Returns:
        :class:`Scenes` with ``uint8`` images ``(N, H, W, 3)``, balanced labels, boxes and
        instance masks.

    Raises:
        ValueError: for an argument outside its range.
    """
    _validate(num_images, image_size, objects_per_image, object_area, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    return _generate(_scene, SECOND_LOOK_CLASSES, rng, num_images, image_size, objects_per_image, object_area)


def _generate(
    scene: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
    rng: np.random.Generator,
    num_images: int,
    image_size: int,
    objects_per_image: tuple[int, int],
    object_area: tuple[float, float],
) -> Scenes:
    """Balanced shuffled labels, then ``scene(rng, size, label, count, area) -> (image, mask, boxes)``
    per image with a drawn object count: the loop every generated look shares."""
    labels = np.arange(num_images) % len(class_names)
    rng.shuffle(labels)
    images = np.empty((num_images, image_size, image_size, 3), dtype=np.uint8)
    masks = np.zeros((num_images, image_size, image_size), dtype=np.uint8)
    boxes: list[np.ndarray] = []
    for i in range(num_images):
        count = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
        images[i], masks[i], image_boxes = scene(rng, image_size, int(labels[i]), count, object_area)
        boxes.append(image_boxes)
    return Scenes(images=images, labels=labels.astype(np.int64), boxes=boxes, class_names=list(class_names),
                  masks=masks)


def _validate(num_images: int, image_size: int, objects: tuple[int, int], area: tuple[float, float], seed: int) -> None:
    _check_shared(num_images, objects, area, seed)
    if _as_int("image_size", image_size) < 16:
        raise ValueError(f"image_size must be an integer >= 16; got {image_size!r}")


def _check_shared(num_images: int, objects: tuple[int, int], area: tuple[float, float], seed: int) -> None:
    """The arguments the looks share, as ``ValueError`` naming them: text, ``None``, a bool or a lone number too
    (were ``int()``'s and unpacking errors, or ``True`` taken as one image)."""
    if _as_int("num_images", num_images) < 1:
        raise ValueError(f"num_images must be a positive integer; got {num_images!r}")
    low, high = (_as_int(f"objects_per_image[{i}]", v) for i, v in enumerate(_as_pair("objects_per_image", objects)))
    if not (1 <= low <= high <= 8):
        raise ValueError(f"objects_per_image must satisfy 1 <= min <= max <= 8; got {objects!r}")
    pair = _as_pair("object_area", area)
    try:
        a_low, a_high = (float(v) for v in pair)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"object_area must hold two numbers, got {area!r}") from None
    if not (0 < a_low <= a_high <= 0.5):
        raise ValueError(f"object_area must satisfy 0 < min <= max <= 0.5; got {area!r}")
    if _as_int("seed", seed) < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")


def _scene(rng: np.random.Generator, size: int, label: int, count: int, area: tuple[float, float]):
    canvas = _background(rng, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    placed: list[np.ndarray] = []
    for _ in range(count * 20):  # rejection sampling of non-overlapping layout boxes
        if len(placed) == count:
            break
        side = np.sqrt(rng.uniform(*area)) * size
        aspect = np.exp(rng.uniform(-0.4, 0.4))
        w, h = max(side * aspect, 4.0), max(side / aspect, 4.0)
        if w >= size or h >= size:
            continue
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        box = np.array([x0, y0, x0 + w, y0 + h])
        if all(_overlap(box, other) <= _MAX_OVERLAP for other in placed):
            placed.append(box)
    boxes = []
    for slot, box in enumerate(placed):
        alpha = _shape_alpha(rng, size, label, box)
        fill = _fill(rng, size, label, box, canvas)
        canvas = canvas * (1 - alpha[..., None]) + fill * alpha[..., None]
        own = alpha >= 0.5
        if not own.any():  # a very thin shape: keep its strongest pixel
            own = alpha >= alpha.max()
        mask[own] = slot + 1
        rows, cols = np.nonzero(own)
        boxes.append([cols.min() / size, rows.min() / size, (cols.max() + 1) / size, (rows.max() + 1) / size])
    canvas = _finish(rng, canvas)
    return canvas, mask, np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


# -- backgrounds ----------------------------------------------------------------------------------
def _pink_noise(rng: np.random.Generator, size: int, exponent: float) -> np.ndarray:
    """``(size, size)`` noise with a ``1/f^exponent`` spectrum, scaled to ``[0, 1]``."""
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / radius**exponent
    spectrum[0, 0] = 0
    field = np.fft.ifft2(spectrum).real
    return (field - field.min()) / max(np.ptp(field), 1e-9)


def _palette(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Map ``values`` in ``[0, 1]`` through a random 3-colour ramp -> ``(..., 3)``."""
    colours = rng.uniform(0.1, 0.9, size=(3, 3))
    t = np.clip(values, 0, 1)[..., None] * 2
    low = np.where(t < 1, colours[0], colours[1])
    high = np.where(t < 1, colours[1], colours[2])
    frac = np.where(t < 1, t, t - 1)
    return low * (1 - frac) + high * frac


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # natural-image-like 1/f noise
        canvas = _palette(rng, _pink_noise(rng, size, rng.uniform(1.2, 2.0)))
    elif kind == 1:  # a wobbly grating (wood grain / fabric)
        y, x = np.mgrid[0:size, 0:size] / size
        theta, freq = rng.uniform(0, np.pi), rng.uniform(3, 9)
        wobble = _pink_noise(rng, size, 2.0) * rng.uniform(0.5, 2.0)
        phase = (x * np.cos(theta) + y * np.sin(theta)) * freq + wobble
        canvas = _palette(rng, 0.5 + 0.35 * np.sin(2 * np.pi * phase))
    else:  # a cell mosaic (cobblestones) with uneven cell shades
        cells = rng.uniform(0, size, size=(int(rng.integers(12, 40)), 2))
        y, x = np.mgrid[0:size, 0:size]
        dist = (x[..., None] - cells[:, 0]) ** 2 + (y[..., None] - cells[:, 1]) ** 2
        nearest = np.sort(dist, axis=-1)
        shade = rng.uniform(0.2, 0.8, size=len(cells))[dist.argmin(axis=-1)]
        edge = np.clip((np.sqrt(nearest[..., 1]) - np.sqrt(nearest[..., 0])) / 2, 0, 1)
        canvas = _palette(rng, shade * (0.6 + 0.4 * edge))
    speckles = rng.random((size, size)) < rng.uniform(0.0, 0.03)
    canvas[speckles] = rng.uniform(0, 1, size=(int(speckles.sum()), 3))
    return canvas


# -- objects ------------------------------------------------------------------------------------
def _polar_grid(rng: np.random.Generator, size: int, box: np.ndarray):
    """Angle and radius (in units of the box's half-sides, rotated) on a supersampled grid."""
    n = size * _SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / _SUPERSAMPLE
    y, x = np.meshgrid(coords, coords, indexing="ij")
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    u, v = (x - cx) / ((box[2] - box[0]) / 2), (y - cy) / ((box[3] - box[1]) / 2)
    turn = rng.uniform(0, 2 * np.pi)
    return np.arctan2(v, u) + turn, np.sqrt(u**2 + v**2)


def _wavy(rng: np.random.Generator, theta: np.ndarray, amount: float) -> np.ndarray:
    """A random smooth radius profile ``r(theta)`` around 1, kept inside ``[0.55, 1]``."""
    profile = np.ones_like(theta)
    for k in range(2, 6):
        profile += amount / k * rng.normal() * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.clip(profile / (1 + amount), 0.55, 1.0)


def _shape_alpha(rng: np.random.Generator, size: int, label: int, box: np.ndarray) -> np.ndarray:
    theta, radius = _polar_grid(rng, size, box)
    name = SECOND_LOOK_CLASSES[label]
    if name == "01_ring":
        outer = _wavy(rng, theta, 0.5)
        inside = (radius <= outer) & (radius >= outer * rng.uniform(0.45, 0.7))
    elif name == "02_star":
        points, inner = int(rng.integers(5, 9)), rng.uniform(0.35, 0.6)
        spike = np.abs(np.cos(points * theta / 2)) ** rng.uniform(1.5, 4.0)
        inside = radius <= inner + (1 - inner) * spike
    else:  # blob, dotted and striped share irregular outlines; the fill tells them apart
        inside = radius <= _wavy(rng, theta, 0.8)
    n = _SUPERSAMPLE
    return inside.reshape(size, n, size, n).mean(axis=(1, 3))


def _fill(rng: np.random.Generator, size: int, label: int, box: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    """``(size, size, 3)`` colour of the object's pixels (only read under its mask)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    name = SECOND_LOOK_CLASSES[label]
    x0, y0, x1, y1 = (int(v) for v in (box[0], box[1], np.ceil(box[2]), np.ceil(box[3])))
    local = canvas[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    if name in ("03_dotted", "04_striped"):
        # Texture, not colour: the mean colour stays near the background under the object.
        base = np.clip(local + rng.normal(0, 0.05, size=3), 0, 1)
        contrast = rng.uniform(0.25, 0.4)
        if name == "03_dotted":
            period = rng.uniform(2.5, 4.0)
            pattern = np.cos(2 * np.pi * x / period) * np.cos(2 * np.pi * y / period)
        else:
            theta, period = rng.uniform(0, np.pi), rng.uniform(2.5, 4.0)
            pattern = np.sign(np.sin(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / period))
        return np.clip(base + contrast * pattern[..., None], 0, 1)
    hue_colour = _random_colour(rng)
    shade = 1 + rng.uniform(-0.3, 0.3) * ((x - box[0]) / max(box[2] - box[0], 1) - 0.5)
    grain = _pink_noise(rng, size, 1.0)[..., None] * rng.uniform(0.0, 0.25)
    return np.clip(hue_colour * shade[..., None] + grain - 0.1, 0, 1)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)
    k = (np.array([5, 3, 1]) + hue * 6) % 6
    return val - val * sat * np.clip(np.minimum(k, 4 - k), 0, 1)


def _finish(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """A light box blur (sometimes), sensor noise, then ``uint8``."""
    if rng.random() < 0.5:
        padded = np.pad(canvas, ((1, 1), (1, 1), (0, 0)), mode="edge")
        blurred = sum(padded[dy:dy + canvas.shape[0], dx:dx + canvas.shape[1]]
                      for dy in range(3) for dx in range(3)) / 9
        canvas = 0.5 * canvas + 0.5 * blurred
    canvas = canvas + rng.normal(0, rng.uniform(0.005, 0.03), size=canvas.shape)
    return np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """``python -m ccrop_scenes.second_look OUT [--images N] [--size S] [--seed S]``: write an image folder."""
    from ccrop_scenes.export import folder_command

    return folder_command(generate_second_look, "ccrop_scenes.second_look", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())

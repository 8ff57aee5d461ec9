"""A third image "look", photograph-like: to check that box-stage defaults are not tuned to either of the others.

The generator draws flat-coloured shapes with sharp edges; the second look (``second_look``)
draws textured, structured backgrounds. These scenes are closer to a photograph of things on
a table, and differ from both in what the box stage could latch on to:

* backgrounds are smooth: a low-frequency colour field, sometimes split into two surfaces by a
  soft tilted edge (a table against a wall, the edge being *no* object), sometimes with a fine
  paper grain;
* objects are ellipses, convex polygons, rounded bars and crescents with **soft edges** (a
  ramp of 1-5 px), shaded across their extent, often with a soft cast shadow beside them,
  and of **low contrast**: each object's colour is the background's under it plus a step of
  moderate size in a random direction (sometimes mostly lightness, sometimes mostly hue);
* a wide size range (``object_area``, default 1-35 % of the image, log-uniform: many small,
  a few large ones), elongated shapes (aspect up to 3:1), 1-5 objects per image, partial
  overlaps allowed (up to ``_MAX_OVERLAP`` of the smaller box);
* after compositing: an illumination field (a gradient and a vignette, 0.55-1.2x), one image in
  four in grayscale, signal-dependent sensor noise, and a real JPEG round trip at quality 20-70
  (blocking and ringing).

:func:`generate_third_look` returns the generator's :class:`Scenes`, so
:func:`write_image_folder` stores it with the same COCO-style ``annotations.json``. The class
(shape family) is shared by the objects of an image. Boxes are the tight boxes of each object's
*visible* pixels (alpha >= 0.5 and not covered by a later object), normalised ``x0, y0, x1, y1``;
an object covered so much that it keeps fewer than 4 visible pixels is removed from the ground
truth.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ccrop_scenes.generator import Scenes
from ccrop_scenes.second_look import _generate, _overlap, _pink_noise, _random_colour, _validate

__all__ = ["THIRD_LOOK_CLASSES", "generate_third_look"]

THIRD_LOOK_CLASSES: tuple[str, ...] = ("00_ellipse", "01_polygon", "02_bar", "03_crescent")
_MAX_OVERLAP = 0.3  # intersection / smaller layout box between two objects of one image
_MIN_VISIBLE = 4  # pixels an object must keep visible to be a ground-truth object
_GRAYSCALE = 0.25  # share of images in grayscale


def generate_third_look(
    num_images: int,
    *,
    image_size: int = 64,
    objects_per_image: tuple[int, int] = (1, 5),
    object_area: tuple[float, float] = (0.01, 0.35),
    seed: int = 0,
) -> Scenes:
    """Generate ``num_images`` seeded scenes of the third look (see the module docstring).

    Args:
        num_images: images ``N >= 1``.
        image_size: side ``H = W >= 16`` in pixels.
        objects_per_image: inclusive ``(min, max)`` objects per image, ``1 <= min <= max <= 8``.
        object_area: inclusive ``(min, max)`` area of each object's layout box as a fraction of
            the image, ``0 < min <= max <= 0.5``, drawn log-uniformly.
        seed: non-negative seed; the same arguments give the same images.

    Returns:
        :class:`Scenes` with ``uint8`` images ``(N, H, W, 3)``, balanced labels, boxes and
        instance masks.

    Raises:
        ValueError: for an argument outside its range.
    """
    _validate(num_images, image_size, objects_per_image, object_area, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    return _generate(_scene, THIRD_LOOK_CLASSES, rng, num_images, image_size, objects_per_image, object_area)


def _scene(rng: np.random.Generator, size: int, label: int, count: int, area: tuple[float, float]):
    gray = rng.random() < _GRAYSCALE
    canvas = _background(rng, size)
    layout = _layout(rng, size, count, area)
    owner = np.zeros((size, size), dtype=np.int64)  # 1 + index of the object on top, 0: background
    y, x = np.mgrid[0:size, 0:size] + 0.5
    for index, box in enumerate(layout):
        alpha = _shape_alpha(rng, x, y, label, box)
        if rng.random() < 0.5:  # a soft cast shadow, offset away from the light
            dx, dy = rng.uniform(-0.12, 0.12, size=2) * size
            shadow = _shift(alpha, int(round(dx)), int(round(dy)))
            canvas = canvas * (1 - rng.uniform(0.15, 0.35) * shadow[..., None])
        fill = _fill(rng, x, y, box, canvas, gray)
        canvas = canvas * (1 - alpha[..., None]) + fill * alpha[..., None]
        owner[alpha >= 0.5] = index + 1
    canvas = _finish(rng, canvas, gray)
    mask = np.zeros((size, size), dtype=np.uint8)
    boxes = []
    for index in range(len(layout)):
        rows, cols = np.nonzero(owner == index + 1)
        if len(rows) < _MIN_VISIBLE:
            continue
        boxes.append([cols.min() / size, rows.min() / size, (cols.max() + 1) / size, (rows.max() + 1) / size])
        mask[owner == index + 1] = len(boxes)
    if not boxes:  # every object hidden or too thin: keep the largest as the image's object
        index = int(np.argmax(np.bincount(owner.ravel(), minlength=len(layout) + 1)[1:]))
        rows, cols = np.nonzero(owner == index + 1)
        if len(rows):
            boxes.append([cols.min() / size, rows.min() / size, (cols.max() + 1) / size, (rows.max() + 1) / size])
            mask[owner == index + 1] = 1
    return canvas, mask, np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _layout(rng: np.random.Generator, size: int, count: int, area: tuple[float, float]) -> list[np.ndarray]:
    """Up to ``count`` layout boxes (pixels), log-uniform areas, aspect up to 3:1, limited overlap."""
    placed: list[np.ndarray] = []
    for _ in range(count * 30):
        if len(placed) == count:
            break
        side = np.sqrt(np.exp(rng.uniform(np.log(area[0]), np.log(area[1])))) * size
        aspect = np.exp(rng.uniform(-1.1, 1.1))
        w, h = max(side * np.sqrt(aspect), 3.0), max(side / np.sqrt(aspect), 3.0)
        if w >= size * 0.95 or h >= size * 0.95:
            continue
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        box = np.array([x0, y0, x0 + w, y0 + h])
        if all(_overlap(box, other) <= _MAX_OVERLAP for other in placed):
            placed.append(box)
    return placed


# -- background -----------------------------------------------------------------------------------
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(0.15, 0.85, size=3)
    field = _pink_noise(rng, size, rng.uniform(2.5, 3.5))[..., None] - 0.5  # very smooth
    tint = rng.normal(0, 1, size=3)
    canvas = base + field * (rng.uniform(0.05, 0.25) + 0.08 * tint)
    if rng.random() < 0.35:  # two surfaces (table and wall) meeting at a soft tilted edge
        y, x = np.mgrid[0:size, 0:size] + 0.5
        theta = rng.uniform(-0.5, 0.5) + (np.pi / 2 if rng.random() < 0.3 else 0.0)
        offset = rng.uniform(0.3, 0.7) * size
        signed = (y - size / 2) * np.cos(theta) - (x - size / 2) * np.sin(theta) + size / 2 - offset
        side = 1 / (1 + np.exp(-signed / rng.uniform(0.5, 2.0)))
        other = np.clip(base + rng.normal(0, 0.15, size=3), 0.05, 0.95)
        canvas = canvas * (1 - side[..., None]) + (other + field * 0.1) * side[..., None]
    if rng.random() < 0.3:  # a fine paper / fabric grain
        canvas = canvas + (_pink_noise(rng, size, 0.5)[..., None] - 0.5) * rng.uniform(0.03, 0.1)
    return np.clip(canvas, 0, 1)


# -- objects --------------------------------------------------------------------------------------
def _frame(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, box: np.ndarray):
    """Coordinates in units of the box's half-sides around its centre, rotated a little, and the
    half-sides' geometric mean (pixels per unit)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    turn = rng.uniform(-0.35, 0.35)
    dx, dy = x - cx, y - cy
    u = (dx * np.cos(turn) + dy * np.sin(turn)) / hw
    v = (-dx * np.sin(turn) + dy * np.cos(turn)) / hh
    return u, v, float(np.sqrt(hw * hh))


def _shape_alpha(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, label: int, box: np.ndarray) -> np.ndarray:
    """A soft alpha ``(H, W)``: ``sigmoid(-signed distance / softness)``, the distance in pixels."""
    u, v, scale = _frame(rng, x, y, box)
    name = THIRD_LOOK_CLASSES[label]
    if name == "00_ellipse":
        distance = (np.sqrt(u**2 + v**2) - 1) * scale
    elif name == "01_polygon":  # a convex polygon: the largest of its edges' half-plane distances
        corners = int(rng.integers(3, 8))
        # Edge normals roughly evenly spread (jittered), so the polygon stays convex and closed.
        mids = np.linspace(0, 2 * np.pi, corners, endpoint=False) + rng.uniform(0, 2 * np.pi)
        mids = mids + rng.uniform(-0.2, 0.2, size=corners) * (2 * np.pi / corners)
        reach = np.cos(np.pi / corners)
        distance = np.max([u * np.cos(a) + v * np.sin(a) - reach for a in mids], axis=0) * scale
    elif name == "02_bar":  # a rounded rectangle (superellipse)
        power = rng.uniform(4, 8)
        distance = ((np.abs(u) ** power + np.abs(v) ** power) ** (1 / power) - 1) * scale
    else:  # a crescent: a disc minus an offset disc
        outer = np.sqrt(u**2 + v**2) - 1
        angle = rng.uniform(0, 2 * np.pi)
        shift = rng.uniform(0.4, 0.7)
        inner = np.sqrt((u - shift * np.cos(angle)) ** 2 + (v - shift * np.sin(angle)) ** 2) - rng.uniform(0.7, 0.9)
        distance = np.maximum(outer, -inner) * scale
    softness = rng.uniform(0.3, 1.2)
    return 1 / (1 + np.exp(np.clip(distance / softness, -30, 30)))


def _fill(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, box: np.ndarray, canvas: np.ndarray, gray: bool
) -> np.ndarray:
    """The object's colour ``(H, W, 3)``: the background under it plus a moderate step, shaded.

    The step is mostly in lightness, or (not in a grayscale image, where it would vanish) mostly
    in hue with a smaller lightness step.
    """
    size = canvas.shape[0]
    x0, y0 = int(box[0]), int(box[1])
    x1, y1 = min(int(np.ceil(box[2])), size), min(int(np.ceil(box[3])), size)
    local = canvas[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    if gray or rng.random() < 0.5:  # mostly a lightness step
        step = rng.choice([-1, 1]) * rng.uniform(0.1, 0.3) * np.ones(3) + rng.normal(0, 0.03, size=3)
    else:  # mostly a hue step, with a smaller lightness step
        colour = _random_colour(rng)
        step = (colour - colour.mean()) * rng.uniform(0.3, 0.8) + rng.choice([-1, 1]) * rng.uniform(0.05, 0.15)
    colour = np.clip(local + step, 0.02, 0.98)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    radius = max(box[2] - box[0], box[3] - box[1]) / 2
    light = rng.uniform(0, 2 * np.pi)
    ramp = ((x - cx) * np.cos(light) + (y - cy) * np.sin(light)) / max(radius, 1.0)
    shade = 1 + rng.uniform(0.05, 0.3) * np.clip(ramp, -1, 1)
    fill = colour * shade[..., None]
    if rng.random() < 0.4:  # a faint surface texture
        fill = fill + (_pink_noise(rng, size, 1.0)[..., None] - 0.5) * rng.uniform(0.03, 0.12)
    return np.clip(fill, 0, 1)


def _shift(alpha: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``alpha`` moved by ``(dx, dy)`` pixels (zeros shifted in), blurred a little: a soft shadow."""
    out = np.zeros_like(alpha)
    h, w = alpha.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = alpha[max(-dy, 0):h - max(dy, 0),
                                                                      max(-dx, 0):w - max(dx, 0)]
    padded = np.pad(out, 1, mode="edge")
    return sum(padded[a:a + h, b:b + w] for a in range(3) for b in range(3)) / 9


def _finish(rng: np.random.Generator, canvas: np.ndarray, gray: bool) -> np.ndarray:
    """Illumination, grayscale (sometimes), sensor noise, a JPEG round trip -> ``uint8``."""
    size = canvas.shape[0]
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    direction = rng.uniform(0, 2 * np.pi)
    gradient = (x * np.cos(direction) + y * np.sin(direction)) * rng.uniform(0.0, 0.6)
    vignette = -(x**2 + y**2) * rng.uniform(0.0, 1.2)
    canvas = canvas * np.clip(rng.uniform(0.8, 1.1) + gradient + vignette, 0.55, 1.2)[..., None]
    if gray:
        canvas = np.repeat((canvas @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=2)
    gain = rng.uniform(0.0005, 0.004)  # shot noise (grows with the signal) plus read noise
    canvas = canvas + rng.normal(size=canvas.shape) * np.sqrt(gain * np.clip(canvas, 0, 1) + 1e-5)
    image = Image.fromarray(np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(20, 71)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def main(argv: list[str] | None = None) -> int:
    """``python -m ccrop_scenes.third_look OUT [--images N] [--size S] [--seed S]``: write an image folder."""
    from ccrop_scenes.export import folder_command

    return folder_command(generate_third_look, "ccrop_scenes.third_look", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())

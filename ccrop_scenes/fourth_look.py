"""A fourth image "look", clip-art on textured clutter: a held-out check of the box-stage defaults.

Nothing is tuned on these images: they exist to check a final choice once, as a user's folder
would. They differ from the other three looks (flat shapes on colour noise, textures on 1/f
noise / gratings / mosaics, soft photograph-like objects) and from each other in what a box
stage could latch on to:

* **images of a user's folder**: every image has its own width and height (72-128 px, mostly
  not square); one in five is stored grayscale (``L``), one in five as ``RGBA`` PNG (opaque),
  and a third of the others as JPEG (quality 55-95). The folder is flat (``DIR/<image>``).
* **backgrounds with their own high-contrast structure**: floor tiles or bricks with grout,
  wooden planks with grain and seams, a woven plaid, a sky with clouds over grass, paper
  covered in pen scribbles, or terrazzo chips. None of it is an object.
* **objects drawn like clip-art** (1-6 per image, layout box 1-30 % of the image,
  log-uniform), of five kinds: outlined cartoon shapes (heart, house, fish, flower, arrow,
  leaf), patches that differ only by **texture** (dots, hatching, checks, speckle around the
  background's own mean colour; at least 3 % of the image, so a few periods show), objects
  **with holes** (rings, frames, discs with holes: the background shows through), **thin
  elongated** objects (sticks, snakes, lollipops; strokes at least 2.5 % of the shorter side)
  and animal **silhouettes** with thin legs and tail. Colours are often chosen near the
  background's lightness (a hue step, not a brightness step) except in grayscale images.
* **occlusion**: objects overlap (up to 35 % of the smaller layout box), run off the image
  edge, and a few thin foreground strands (grass blades, strings) may cross them.

Ground truth is each object's *visible* extent: the tight box of the pixels it owns in the
final picture (coverage >= 0.5 on a 3x supersampled drawing, not covered by a later object
or strand). An object left with fewer than 10 visible pixels or under a third of its drawn
pixels is dropped from the ground truth (a person would not count it).

``python -m ccrop_scenes.fourth_look DIR --images N --seed S`` writes ``DIR/<index>.<ext>``
and a COCO-style ``DIR/annotations.json`` (``images``: ``id``, ``file_name``, ``width``,
``height``; ``annotations``: ``image_id``, ``category_id``, ``bbox`` = ``[x, y, w, h]`` in
pixels, ``area``), readable by :func:`~ccrop_scenes.export.load_annotations` and
``ccrop demo --data DIR``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ccrop_scenes.export import (
    ANNOTATIONS_FILE,
    add_out_argument,
    add_overwrite_argument,
    add_seed_argument,
    check_output_folder,
    count_option,
)
from ccrop_scenes.generator import _as_int, _as_pair
from ccrop_scenes.second_look import _check_shared

__all__ = ["FOURTH_LOOK_KINDS", "Picture", "generate_fourth_look", "write_fourth_look"]

FOURTH_LOOK_KINDS: tuple[str, ...] = ("clipart", "textured", "holed", "thin", "silhouette")
_MAX_SIDE = 128  # the command's largest width or height (generate_fourth_look's default sides)
_SS = 3  # supersampling factor of the coverage drawings
_MAX_OVERLAP = 0.35  # intersection / smaller layout box between two objects
_MIN_VISIBLE = 10  # pixels
_MIN_VISIBLE_SHARE = 1 / 3  # of the object's drawn pixels inside the image
_MIN_STROKE = 0.025  # thinnest stick or snake, in image sides (1.6 px after resizing to 64 px)
_MIN_TEXTURED = 0.03  # smallest texture-only patch, as a share of the image (a few periods across)
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass
class Picture:
    """One image of the fourth look.

    Attributes:
        image: the picture in its stored mode (``RGB``, ``L`` or ``RGBA``), ``width x height``.
        boxes: ``int64`` ``(k, 4)`` pixel boxes ``[x0, y0, x1, y1]`` (``x1``, ``y1`` exclusive).
        categories: ``int64`` ``(k,)`` indices into :data:`FOURTH_LOOK_KINDS`.
        mask: ``uint8`` ``(height, width)``: ``j + 1`` on the visible pixels of ``boxes[j]``.
        extension: ``"png"`` or ``"jpg"``: how the image is stored.
        encoded: the stored file's bytes (``image`` is their decoding).
    """

    image: Image.Image
    boxes: np.ndarray
    categories: np.ndarray
    mask: np.ndarray
    extension: str
    encoded: bytes


def generate_fourth_look(
    num_images: int,
    *,
    sides: tuple[int, int] = (72, _MAX_SIDE),
    objects_per_image: tuple[int, int] = (1, 6),
    object_area: tuple[float, float] = (0.01, 0.30),
    seed: int = 0,
) -> list[Picture]:
    """Generate ``num_images`` seeded pictures of the fourth look (see the module docstring).

    Args:
        num_images: pictures ``N >= 1``.
        sides: inclusive ``(min, max)`` of each picture's width and height, drawn independently,
            ``16 <= min <= max``.
        objects_per_image: inclusive ``(min, max)`` objects drawn per picture, ``1 <= min <= max <= 8``.
        object_area: inclusive ``(min, max)`` area of each object's layout box as a fraction of
            the picture, ``0 < min <= max <= 0.5``, log-uniform.
        seed: non-negative seed; the same arguments give the same pictures.

    Raises:
        ValueError: for an argument outside its range.
    """
    _check_shared(num_images, objects_per_image, object_area, seed)
    low, high = (_as_int(f"sides[{i}]", v) for i, v in enumerate(_as_pair("sides", sides)))
    if not 16 <= low <= high:
        raise ValueError(f"sides must satisfy 16 <= min <= max; got {sides!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 4]))
    pictures = []
    for _ in range(num_images):
        width, height = (int(v) for v in rng.integers(sides[0], sides[1] + 1, size=2))
        if rng.random() < 0.2:
            height = width
        count = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
        pictures.append(_picture(rng, width, height, count, object_area))
    return pictures


def write_fourth_look(pictures: list[Picture], root: str | Path) -> Path:
    """Write ``pictures`` as a flat folder ``root/<index>.<ext>`` with a COCO-style ``annotations.json``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index, picture in enumerate(pictures):
        name = f"{index:05d}.{picture.extension}"
        (root / name).write_bytes(picture.encoded)
        images.append({"id": index, "file_name": name, "width": picture.image.width, "height": picture.image.height})
        areas = np.bincount(picture.mask.ravel(), minlength=len(picture.boxes) + 1)
        for slot, (box, category) in enumerate(zip(picture.boxes.tolist(), picture.categories.tolist())):
            annotations.append({
                "id": len(annotations), "image_id": index, "category_id": category,
                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "area": int(areas[slot + 1]), "iscrowd": 0,
            })
    categories = [{"id": c, "name": name} for c, name in enumerate(FOURTH_LOOK_KINDS)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / ANNOTATIONS_FILE).write_text(json.dumps(coco, indent=1))
    return root


# -- one picture ----------------------------------------------------------------------------------
def _picture(rng: np.random.Generator, width: int, height: int, count: int, area: tuple[float, float]) -> Picture:
    mode = rng.choice(["RGB", "L", "RGBA"], p=[0.6, 0.2, 0.2])
    gray = mode == "L"
    canvas = _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))](rng, width, height)
    owner = np.zeros((height, width), dtype=np.int64)  # 1 + index of the object on top; 0: background
    drawn, kinds = [], []
    for box in _layout(rng, width, height, count, area):
        kind = int(rng.integers(len(FOURTH_LOOK_KINDS)))
        alpha, fill = _OBJECTS[kind](rng, width, height, box, canvas, gray)
        canvas = canvas * (1 - alpha[..., None]) + fill * alpha[..., None]
        owner[alpha >= 0.5] = len(drawn) + 1
        drawn.append(int((alpha >= 0.5).sum()))
        kinds.append(kind)
    if rng.random() < 0.35:  # thin foreground strands that cross objects (not objects themselves)
        strands = _strands(rng, width, height)
        colour = _contrasting(rng, canvas.reshape(-1, 3).mean(axis=0), gray)
        canvas = canvas * (1 - strands[..., None]) + colour * strands[..., None]
        owner[strands >= 0.5] = 0
    mask = np.zeros((height, width), dtype=np.uint8)
    boxes, categories = [], []
    for index, (pixels, kind) in enumerate(zip(drawn, kinds)):
        rows, cols = np.nonzero(owner == index + 1)
        if len(rows) < max(_MIN_VISIBLE, _MIN_VISIBLE_SHARE * pixels):
            continue
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        categories.append(kind)
        mask[owner == index + 1] = len(boxes)
    if not boxes:  # everything hidden or too thin: draw the picture again
        return _picture(rng, width, height, count, area)
    image, extension, encoded = _finish(rng, canvas, mode)
    return Picture(image, np.asarray(boxes, dtype=np.int64), np.asarray(categories, dtype=np.int64), mask, extension,
                   encoded)


def _layout(rng: np.random.Generator, width: int, height: int, count: int, area: tuple[float, float]
            ) -> list[np.ndarray]:
    """Up to ``count`` layout boxes (pixels, may run up to a quarter of their side off the edge)."""
    placed: list[np.ndarray] = []
    for _ in range(count * 30):
        if len(placed) == count:
            break
        side = np.sqrt(np.exp(rng.uniform(np.log(area[0]), np.log(area[1]))) * width * height)
        aspect = np.exp(rng.uniform(-0.7, 0.7))
        w, h = max(side * np.sqrt(aspect), 6.0), max(side / np.sqrt(aspect), 6.0)
        if w >= width * 0.9 or h >= height * 0.9:
            continue
        off = 0.25 if rng.random() < 0.3 else 0.0
        x0 = rng.uniform(-off * w, width - w + off * w)
        y0 = rng.uniform(-off * h, height - h + off * h)
        box = np.array([x0, y0, x0 + w, y0 + h])
        if all(_overlap(box, other) <= _MAX_OVERLAP for other in placed):
            placed.append(box)
    return placed


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


# -- drawing helpers ------------------------------------------------------------------------------
def _coverage(width: int, height: int, ops: list[tuple]) -> np.ndarray:
    """Coverage ``(height, width)`` in ``[0, 1]`` of drawing ``ops`` (pixel coordinates) in order.

    Ops: ``("poly", points, value)``, ``("line", points, line_width, value)``, ``("dilate", px)``;
    value 1 draws, 0 cuts a hole.
    """
    layer = Image.new("L", (width * _SS, height * _SS), 0)
    draw = ImageDraw.Draw(layer)
    for op in ops:
        if op[0] == "poly":
            draw.polygon([(x * _SS, y * _SS) for x, y in op[1]], fill=255 * op[2])
        elif op[0] == "line":
            points = [(x * _SS, y * _SS) for x, y in op[1]]
            line_width = max(int(round(op[2] * _SS)), 1)
            draw.line(points, fill=255 * op[3], width=line_width, joint="curve")
            radius = line_width / 2  # round caps
            for x, y in (points[0], points[-1]):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255 * op[3])
        else:
            layer = layer.filter(ImageFilter.MaxFilter(2 * int(round(op[1] * _SS)) + 1))
            draw = ImageDraw.Draw(layer)
    return np.asarray(layer.resize((width, height), Image.BOX), dtype=np.float64) / 255


def _ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _placer(rng: np.random.Generator, box: np.ndarray, turn: float = 0.35):
    """Unit square ``[-1, 1]^2`` -> pixels inside ``box``, turned a little, sometimes mirrored."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    angle = rng.uniform(-turn, turn)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    c, s = np.cos(angle), np.sin(angle)

    def place(points) -> list[tuple[float, float]]:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2) * [flip * hw, hh]
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in p]

    return place, float(np.sqrt(hw * hh))


def _hsv(rng: np.random.Generator, saturation=(0.35, 1.0), value=(0.3, 1.0)) -> np.ndarray:
    hue, sat, val = rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value)
    k = (np.array([5, 3, 1]) + hue * 6) % 6
    return val - val * sat * np.clip(np.minimum(k, 4 - k), 0, 1)


def _contrasting(rng: np.random.Generator, reference: np.ndarray, gray: bool) -> np.ndarray:
    """A colour a person tells apart from ``reference``: in colour images often at the same
    lightness (a hue step), in grayscale images a lightness step of at least 0.2."""
    ref_luma = float(reference @ _LUMA)
    for _ in range(50):
        colour = _hsv(rng)
        if not gray and rng.random() < 0.5:  # about the reference's lightness
            colour = np.clip(colour + ref_luma + rng.uniform(-0.06, 0.06) - colour @ _LUMA, 0, 1)
        luma_step = abs(float(colour @ _LUMA) - ref_luma)
        if (gray and luma_step >= 0.2) or (not gray and np.linalg.norm(colour - reference) >= 0.3):
            return colour
    return np.full(3, 0.05 if ref_luma > 0.5 else 0.95)


def _local_mean(canvas: np.ndarray, box: np.ndarray) -> np.ndarray:
    height, width = canvas.shape[:2]
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(np.ceil(box[2])), width), min(int(np.ceil(box[3])), height)
    return canvas[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].reshape(-1, 3).mean(axis=0)


# -- backgrounds ----------------------------------------------------------------------------------
def _grid(width: int, height: int):
    return np.mgrid[0:height, 0:width].astype(np.float64) + 0.5


def _tiles(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Floor tiles or bricks: shaded cells separated by grout lines."""
    y, x = _grid(width, height)
    tw, th = rng.uniform(7, 20), rng.uniform(7, 20)
    if rng.random() < 0.5:  # bricks: every other row shifted by half a tile
        tw = th * rng.uniform(1.8, 2.6)
    y, x = y + rng.uniform(0, th), x + rng.uniform(0, tw)
    row = np.floor(y / th)
    shift = (row % 2) * tw / 2 if tw > 1.7 * th else 0.0
    col = np.floor((x + shift) / tw)
    base = _hsv(rng, (0.0, 0.6), (0.35, 0.9))
    cell = ((row * 7919 + col * 104729) % 997).astype(np.int64)
    shades = rng.normal(0, rng.uniform(0.02, 0.08), size=(997, 3))
    canvas = base + shades[cell]
    grout = rng.uniform(0.8, 2.2)
    fx = (x + shift) % tw
    fy = y % th
    lines = (np.minimum(fx, tw - fx) < grout / 2) | (np.minimum(fy, th - fy) < grout / 2)
    canvas[lines] = _hsv(rng, (0.0, 0.2), (0.1, 0.95))
    return np.clip(canvas, 0, 1)


def _planks(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Wooden planks: bands with ring grain and dark seams."""
    y, x = _grid(width, height)
    if rng.random() < 0.5:
        x, y = y, x
    plank = rng.uniform(10, 28)
    index = np.floor(y / plank)
    centre_x = rng.uniform(-200, 200, size=64)[index.astype(np.int64) % 64]
    centre_y = rng.uniform(-60, -20, size=64)[index.astype(np.int64) % 64]
    distance = np.sqrt(((x - centre_x) * 0.25) ** 2 + (y - index * plank - centre_y) ** 2)
    grain = 0.5 + 0.5 * np.sin(distance / rng.uniform(0.8, 2.0) + 2 * np.sin(x / rng.uniform(9, 25)))
    light, dark = _hsv(rng, (0.3, 0.7), (0.55, 0.95)), _hsv(rng, (0.4, 0.9), (0.2, 0.5))
    canvas = dark + (light - dark) * grain[..., None] ** 1.5
    canvas = canvas * rng.uniform(0.85, 1.1, size=64)[index.astype(np.int64) % 64][..., None]
    canvas[(y % plank) < 1.0] *= 0.35
    return np.clip(canvas, 0, 1)


def _plaid(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A woven plaid: coloured stripes across and along, with a twill texture."""
    y, x = _grid(width, height)
    colours = np.stack([_hsv(rng, (0.2, 0.9), (0.25, 0.9)) for _ in range(4)])
    period = rng.uniform(14, 36)
    bounds = np.sort(rng.uniform(0, 1, size=3))
    stripe_x = np.searchsorted(bounds, (x % period) / period)
    stripe_y = np.searchsorted(bounds, ((y + rng.uniform(0, period)) % period) / period)
    canvas = 0.5 * colours[stripe_x] + 0.5 * colours[stripe_y]
    twill = (((x + y) // 1) % 4 < 2).astype(np.float64) - 0.5
    return np.clip(canvas * (1 + rng.uniform(0.05, 0.2) * twill[..., None]), 0, 1)


def _landscape(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A gradient sky with clouds over grass: a horizon, white clouds and many grass blades."""
    y, x = _grid(width, height)
    horizon = rng.uniform(0.35, 0.7) * height + rng.uniform(-0.1, 0.1) * (x - width / 2)
    top, low = _hsv(rng, (0.3, 0.8), (0.5, 1.0)), _hsv(rng, (0.0, 0.4), (0.7, 1.0))
    t = np.clip(y / np.maximum(horizon, 1), 0, 1)[..., None]
    canvas = top * (1 - t) + low * t
    clouds = []
    for _ in range(int(rng.integers(0, 4))):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, 0.35 * height), rng.uniform(4, 12)
        clouds += [("poly", _ellipse(cx + dx * r, cy + rng.uniform(-0.3, 0.3) * r, r * rng.uniform(0.6, 1.0),
                                     r * 0.6), 1)
                   for dx in (-1, 0, 1)]
    if clouds:
        canvas = canvas + (1 - canvas) * 0.85 * _coverage(width, height, clouds)[..., None]
    ground = _hsv(rng, (0.3, 0.9), (0.3, 0.7))
    below = y >= horizon
    canvas[below] = ground + rng.normal(0, 0.04, size=(int(below.sum()), 3))
    blades = []
    for _ in range(int(width * rng.uniform(0.8, 2.0))):
        bx, by = rng.uniform(0, width), rng.uniform(horizon.min(), height + 4)
        blades.append(("line", [(bx, by), (bx + rng.uniform(-3, 3), by - rng.uniform(3, 8))], 0.8, 1))
    cover = _coverage(width, height, blades) * below
    shade = np.clip(ground * rng.uniform(0.5, 1.5), 0, 1)
    return np.clip(canvas * (1 - cover[..., None]) + shade * cover[..., None], 0, 1)


def _scribbles(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Paper covered in pen scribbles: many thin straight and wavy lines of a few inks."""
    paper = _hsv(rng, (0.0, 0.25), (0.75, 1.0))
    canvas = np.broadcast_to(paper, (height, width, 3)).copy()
    inks = [_hsv(rng, (0.3, 1.0), (0.1, 0.7)) for _ in range(3)]
    for ink in inks:
        lines = []
        for _ in range(int(rng.integers(4, 14))):
            start = rng.uniform([0, 0], [width, height])
            steps = rng.normal(0, 1, size=(int(rng.integers(2, 7)), 2)) * rng.uniform(4, 18)
            lines.append(("line", [tuple(p) for p in start + np.cumsum(np.vstack([[0, 0], steps]), axis=0)],
                          rng.uniform(0.6, 1.4), 1))
        cover = _coverage(width, height, lines)[..., None]
        canvas = canvas * (1 - cover) + ink * cover
    return canvas


def _terrazzo(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Terrazzo: a flat ground strewn with small angular chips of three colours."""
    canvas = np.broadcast_to(_hsv(rng, (0.0, 0.4), (0.3, 0.95)), (height, width, 3)).copy()
    for _ in range(3):
        chip_colour = _hsv(rng, (0.0, 0.9), (0.1, 1.0))
        chips = []
        for _ in range(int(width * height / rng.uniform(60, 200))):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.8, 2.2)
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 6))))
            chips.append(("poly", np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1), 1))
        cover = _coverage(width, height, chips)[..., None]
        canvas = canvas * (1 - cover) + chip_colour * cover
    return canvas


_BACKGROUNDS = (_tiles, _planks, _plaid, _landscape, _scribbles, _terrazzo)


# -- objects: each returns (coverage (H, W), fill colour (H, W, 3)) ------------------------------
def _flat(colour: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.broadcast_to(colour, (height, width, 3)).copy()


def _clipart(rng, width, height, box, canvas, gray):
    """An outlined cartoon shape: heart, house, fish, flower, arrow or leaf."""
    place, scale = _placer(rng, box)
    shape = int(rng.integers(6))
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    extra: list[tuple] = []
    if shape == 0:  # heart
        hx, hy = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        parts = [np.stack([hx / 17, (hy + 2.5) / 14.5], axis=1)]
    elif shape == 1:  # house with a door cut out
        parts = [np.array([[-0.8, 1], [-0.8, -0.1], [-1, -0.1], [0, -1], [1, -0.1], [0.8, -0.1], [0.8, 1]])]
        extra = [("poly", place([[-0.2, 1], [-0.2, 0.4], [0.2, 0.4], [0.2, 1]]), 0)]
    elif shape == 2:  # fish: body and tail
        parts = [_ellipse(-0.2, 0, 0.8, 0.6), np.array([[0.45, 0], [1, -0.7], [1, 0.7]])]
    elif shape == 3:  # flower: petals around a centre
        petals = int(rng.integers(5, 8))
        parts = [_ellipse(0.55 * np.cos(a), 0.55 * np.sin(a), 0.45, 0.45, 24)
                 for a in np.linspace(0, 2 * np.pi, petals, endpoint=False)] + [_ellipse(0, 0, 0.45, 0.45)]
    elif shape == 4:  # arrow
        parts = [np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.8], [1, 0], [0.2, 0.8], [0.2, 0.3], [-1, 0.3]])]
    else:  # leaf: a lens with a stem
        parts = [np.concatenate([np.stack([np.linspace(-0.8, 1, 20), -0.7 * np.sin(np.linspace(0, np.pi, 20))], 1),
                                 np.stack([np.linspace(1, -0.8, 20), 0.7 * np.sin(np.linspace(0, np.pi, 20))], 1)])]
        extra = [("line", place([[-1, 0.15], [-0.7, 0]]), max(scale * 0.12, 1.0), 1)]
    body = [("poly", place(p), 1) for p in parts] + extra
    inner = _coverage(width, height, body)
    outline_px = rng.uniform(0.7, 1.8) if rng.random() < 0.8 else 0.0
    outer = _coverage(width, height, body + [("dilate", outline_px)]) if outline_px else inner
    local = _local_mean(canvas, box)
    fill = _contrasting(rng, local, gray)
    ink = np.full(3, rng.uniform(0.0, 0.15)) if rng.random() < 0.7 else _contrasting(rng, fill, gray)
    colour = _flat(fill, width, height)
    if shape == 3:  # the flower's centre in another colour
        heart = _coverage(width, height, [("poly", place(_ellipse(0, 0, 0.3, 0.3)), 1)])
        colour = colour * (1 - heart[..., None]) + _contrasting(rng, fill, gray) * heart[..., None]
    colour = colour * inner[..., None] + ink * (1 - inner[..., None])
    return outer, colour


def _texture(rng: np.random.Generator, width: int, height: int, period: float) -> np.ndarray:
    """A zero-mean texture in ``[-1, 1]``: dots, hatching, checks or speckle."""
    y, x = _grid(width, height)
    kind = int(rng.integers(4))
    angle = rng.uniform(0, np.pi)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    if kind == 0:
        pattern = (np.hypot((u % period) - period / 2, (v % period) - period / 2) < period * 0.3) * 2.0 - 1
    elif kind == 1:
        pattern = ((u % period) < period * 0.45) * 2.0 - 1
    elif kind == 2:
        pattern = ((np.floor(u / period) + np.floor(v / period)) % 2) * 2.0 - 1
    else:
        pattern = np.sign(rng.random((height, width)) - 0.5)
    return pattern - pattern.mean()


def _textured(rng, width, height, box, canvas, gray):
    """A patch told apart by texture: a rounded polygon whose mean colour is the background's."""
    grow = np.sqrt(max(_MIN_TEXTURED * width * height / ((box[2] - box[0]) * (box[3] - box[1])), 1.0))
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * grow
    box = np.concatenate([centre - half, centre + half])
    place, scale = _placer(rng, box, turn=np.pi)
    if rng.random() < 0.5:
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(5, 9))))
        radius = rng.uniform(0.75, 1.0, size=len(angles))
        outline = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    else:
        outline = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.8
    alpha = _coverage(width, height, [("poly", place(outline), 1), ("dilate", 0.15 * scale)])
    local = _local_mean(canvas, box)
    period = rng.uniform(3.0, 5.0)
    pattern = _texture(rng, width, height, period)[..., None]
    if gray or rng.random() < 0.5:
        contrast = rng.uniform(0.25, 0.4)
        colour = local + contrast * pattern
    else:  # two inks around the local colour
        a, b = local + (_hsv(rng) - 0.5) * 0.5, local
        colour = (a + b) / 2 + (a - b) / 2 * pattern + rng.uniform(0.1, 0.2) * pattern
    return alpha, np.clip(colour, 0, 1)


def _holed(rng, width, height, box, canvas, gray):
    """A ring, a frame or a disc with holes: the background shows through."""
    place, _ = _placer(rng, box)
    shape = int(rng.integers(3))
    if shape == 0:
        hole = rng.uniform(0.45, 0.75)
        ops = [("poly", place(_ellipse(0, 0, 1, 1)), 1), ("poly", place(_ellipse(0, 0, hole, hole)), 0)]
    elif shape == 1:
        rim = rng.uniform(0.2, 0.4)
        inner = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (1 - rim)
        ops = [("poly", place([[-1, -1], [1, -1], [1, 1], [-1, 1]]), 1), ("poly", place(inner), 0)]
    else:
        ops = [("poly", place(_ellipse(0, 0, 1, 1)), 1)]
        for _ in range(int(rng.integers(2, 5))):
            r = rng.uniform(0.15, 0.3)
            c = rng.uniform(-0.55, 0.55, size=2)
            ops.append(("poly", place(_ellipse(c[0], c[1], r, r, 24)), 0))
    alpha = _coverage(width, height, ops)
    colour = _contrasting(rng, _local_mean(canvas, box), gray)
    y, x = _grid(width, height)
    shade = 1 + rng.uniform(-0.25, 0.25) * ((x - box[0]) / max(box[2] - box[0], 1) - 0.5)
    return alpha, np.clip(colour * shade[..., None], 0, 1)


def _thin(rng, width, height, box, canvas, gray):
    """A stick, a snake or a lollipop along the layout box's diagonal."""
    place, scale = _placer(rng, box, turn=0.0)
    thickness = max(rng.uniform(0.12, 0.25) * scale, _MIN_STROKE * min(width, height))
    shape = int(rng.integers(3))
    if shape == 1:  # snake: a wave along the diagonal
        s = np.linspace(-1, 1, 24)
        wave = 0.25 * np.sin(s * np.pi * rng.uniform(1.5, 3))
        points = np.stack([s - wave / 2, s + wave / 2], axis=1) * 0.9
    else:
        points = np.array([[-0.92, -0.92], [0.92, 0.92]])
    if rng.random() < 0.5:
        points = points * [1, -1]
    ops = [("line", place(points), thickness, 1)]
    if shape == 2:  # lollipop: a disc at one end
        end = points[-1]
        r = 0.35
        ops.append(("poly", place(_ellipse(end[0] * (1 - r), end[1] * (1 - r), r, r)), 1))
    alpha = _coverage(width, height, ops)
    return alpha, _flat(_contrasting(rng, _local_mean(canvas, box), gray), width, height)


def _silhouette(rng, width, height, box, canvas, gray):
    """An animal silhouette: a body, a head, thin legs and a tail, in one colour."""
    place, scale = _placer(rng, box, turn=0.2)
    leg = max(0.06 * scale, _MIN_STROKE / 2 * min(width, height))
    ops = [("poly", place(_ellipse(-0.1, -0.1, 0.65, 0.38)), 1),
           ("poly", place(_ellipse(0.62, -0.45, 0.3, 0.28)), 1),
           ("poly", place([[0.45, -0.65], [0.55, -1.0], [0.68, -0.68]]), 1)]
    for lx in (-0.55, -0.3, 0.15, 0.35):
        ops.append(("line", place([[lx, 0.1], [lx + rng.uniform(-0.12, 0.12), 1.0]]), leg * 2, 1))
    ops.append(("line", place([[-0.7, -0.2], [-0.9, -0.5], [-1.0, -0.9]]), leg * 1.5, 1))
    alpha = _coverage(width, height, ops)
    return alpha, _flat(_contrasting(rng, _local_mean(canvas, box), gray), width, height)


_OBJECTS = (_clipart, _textured, _holed, _thin, _silhouette)


def _strands(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Coverage of 1-3 thin strings or tall blades across the picture."""
    lines = []
    for _ in range(int(rng.integers(1, 4))):
        start, end = rng.uniform([0, 0], [width, height]), rng.uniform([0, 0], [width, height])
        middle = (start + end) / 2 + rng.normal(0, 8, size=2)
        lines.append(("line", [tuple(start), tuple(middle), tuple(end)], rng.uniform(0.8, 1.6), 1))
    return _coverage(width, height, lines)


def _finish(rng: np.random.Generator, canvas: np.ndarray, mode: str) -> tuple[Image.Image, str, bytes]:
    """A little noise, then the stored mode and format: ``(decoded image, extension, file bytes)``."""
    canvas = canvas + rng.normal(0, rng.uniform(0.0, 0.02), size=canvas.shape)
    image = Image.fromarray(np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8))
    if mode == "L":
        image = image.convert("L")
    elif mode == "RGBA":
        image.putalpha(255)
    jpeg = mode != "RGBA" and rng.random() < 0.35
    buffer = io.BytesIO()
    if jpeg:
        image.save(buffer, format="JPEG", quality=int(rng.integers(55, 96)))
    else:
        image.save(buffer, format="PNG")
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded, "jpg" if jpeg else "png", buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """``python -m ccrop_scenes.fourth_look OUT [--images N] [--seed S] [--overwrite]``: write the flat image folder."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ccrop_scenes.fourth_look", description=__doc__.splitlines()[0])
    add_out_argument(parser, "output folder (flat images with annotations.json)")
    parser.add_argument("--images", type=count_option, default=400, help="scenes to write (default 400)")
    add_seed_argument(parser)
    add_overwrite_argument(parser)
    args = parser.parse_args(argv)
    root = Path(args.out)
    check_output_folder(parser, args.out, args.overwrite)
    from ccrop_scenes.export import available_memory  # looked up at each call (tests set a small one)

    # Every picture is held until the folder is written: its decoded image (up to 4 bytes a pixel), its mask and
    # its file's bytes, about 65 KiB each measured (mean side 100 px), at most 8 bytes a pixel of the largest side.
    need, available = args.images * _MAX_SIDE**2 * 8, available_memory()
    if available is not None and need > available:  # else the list grows until the system kills the process
        parser.error(f"{args.images} images of up to {_MAX_SIDE} px need {need / 2**30:.1f} GiB of memory while they "
                     f"are generated, more than the {available / 2**30:.1f} GiB available here; use fewer --images")
    try:
        write_fourth_look(generate_fourth_look(args.images, seed=args.seed), root)
    except (ValueError, OSError) as error:  # a bad count or seed, a folder that cannot be written: one usage line
        parser.error(str(error))
    except MemoryError as error:
        parser.error(f"{args.images} images of up to {_MAX_SIDE} px do not fit in memory ({error}); use fewer --images")
    print(f"wrote {args.images} images to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

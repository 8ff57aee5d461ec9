"""A fifth image look, kept out of the packages: a check of the box-stage defaults that nothing was chosen on.

Written in session 11, after every default of the box stage had been fixed, by someone who had not looked at a
heatmap of it; run once per seed to check, never to choose. Unlike the four looks of ``ccrop_scenes``:

* **backgrounds**: a plaid of two square waves, a wavy wood grain, or a soft linear colour gradient, with pixel
  noise (sd 10) and a light blur (0-0.8 px);
* **objects** (1-4 per image, not overlapping): filled five-pointed stars, crosses and arrows, rotated at random,
  and outlined rings (the background shows through), radius 7-18 % of the shorter side, flat colours drawn
  uniformly (so some are close to the background);
* **a user's folder**: every image has its own size (100-180 px each side, mostly not square), JPEG at quality 85,
  one class folder per kind of the first object (``DIR/<k>_<kind>/<index>.jpg``).

Boxes are each shape's drawn extent (a ring's circle), clipped to the image.

``python scripts/fifth_look.py DIR --images 600 --seed S`` writes the folder and a COCO-style
``DIR/annotations.json`` (``images``: ``id``, ``file_name``, ``width``, ``height``; ``annotations``: ``image_id``,
``category_id``, ``bbox`` = ``[x, y, w, h]`` in pixels), read by ``ccrop demo --data DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("star", "cross", "ring", "arrow")
_CROSS = [(-1 / 3, -1), (1 / 3, -1), (1 / 3, -1 / 3), (1, -1 / 3), (1, 1 / 3), (1 / 3, 1 / 3), (1 / 3, 1),
          (-1 / 3, 1), (-1 / 3, 1 / 3), (-1, 1 / 3), (-1, -1 / 3), (-1 / 3, -1 / 3)]
_ARROW = [(-1, -0.3), (0.2, -0.3), (0.2, -0.8), (1, 0), (0.2, 0.8), (0.2, 0.3), (-1, 0.3)]
_STAR = [(math.cos(i * math.pi / 5) * (1 if i % 2 == 0 else 0.45), math.sin(i * math.pi / 5) * (1 if i % 2 == 0
         else 0.45)) for i in range(10)]


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A plaid, a wood grain or a gradient, ``(height, width)`` RGB, with pixel noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    colour = rng.uniform(60, 200, 3)
    kind = rng.integers(3)
    if kind == 0:
        stripes = 0.5 * (np.sin(x / rng.uniform(6, 20)) > 0) + 0.5 * (np.sin(y / rng.uniform(6, 20)) > 0)
        pixels = colour * (0.7 + 0.3 * stripes[..., None])
    elif kind == 1:
        grain = np.sin(rng.uniform(0.05, 0.2) * (x + 8 * np.sin(y / rng.uniform(8, 30))))
        pixels = colour * (0.75 + 0.25 * grain[..., None])
    else:
        slope = x / width * rng.uniform(-1, 1) + y / height * rng.uniform(-1, 1)
        pixels = colour + 50 * slope[..., None]
    pixels = pixels + rng.normal(0, 10, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def shape_points(kind: str, cx: float, cy: float, radius: float, turn: float) -> list[tuple[float, float]]:
    """The polygon of a star, cross or arrow of ``radius`` pixels around ``(cx, cy)``, turned by ``turn`` radians."""
    unit = {"star": _STAR, "cross": _CROSS, "arrow": _ARROW}[kind]
    cos, sin = math.cos(turn), math.sin(turn)
    return [(cx + radius * (px * cos - py * sin), cy + radius * (px * sin + py * cos)) for px, py in unit]


def scene(rng: np.random.Generator) -> tuple[Image.Image, int, list[list[int]]]:
    """One image, its label (the kind of its first object) and its boxes ``[x, y, w, h]`` in pixels."""
    width, height = (int(v) for v in rng.integers(100, 181, 2))
    image = background(rng, width, height)
    draw = ImageDraw.Draw(image)
    label = int(rng.integers(len(KINDS)))
    boxes, placed = [], []
    for index in range(int(rng.integers(1, 5))):
        kind = KINDS[label] if index == 0 else KINDS[int(rng.integers(len(KINDS)))]
        for _ in range(30):  # a place that overlaps no earlier object
            radius = rng.uniform(0.07, 0.18) * min(width, height)
            cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
            if all(math.hypot(cx - px, cy - py) > radius + pr for px, py, pr in placed):
                break
        else:
            continue
        placed.append((cx, cy, radius))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if kind == "ring":
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=colour,
                         width=max(2, int(radius / 3)))
            xs, ys = [cx - radius, cx + radius], [cy - radius, cy + radius]
        else:
            points = shape_points(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi))
            draw.polygon(points, fill=colour)
            xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, y0, x1, y1 = max(0, min(xs)), max(0, min(ys)), min(width, max(xs)), min(height, max(ys))
        boxes.append([round(x0), round(y0), round(x1 - x0), round(y1 - y0)])
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8))), label, boxes


def write(root: Path, images: int, seed: int) -> None:
    """Write ``images`` scenes of ``seed`` and their ``annotations.json`` to ``root`` (which must be empty)."""
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"fifth_look: {root} is not empty; name a new folder")
    rng = np.random.default_rng(seed)
    coco = {"images": [], "annotations": [], "categories": [{"id": i, "name": k} for i, k in enumerate(KINDS)]}
    for index in range(images):
        image, label, boxes = scene(rng)
        name = f"{label}_{KINDS[label]}/{index:05d}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / name, quality=85)
        coco["images"].append({"id": index, "file_name": name, "width": image.width, "height": image.height})
        coco["annotations"] += [{"id": len(coco["annotations"]) + i, "image_id": index, "category_id": label,
                                 "bbox": box, "area": box[2] * box[3], "iscrowd": 0} for i, box in enumerate(boxes)]
    (root / "annotations.json").write_text(json.dumps(coco))


def main(argv: list[str] | None = None) -> int:
    """The command line; bad values are one usage line (exit status 2) before anything is written."""
    from ccrop_scenes.export import count_option, out_option, seed_option  # the looks' own option types

    parser = argparse.ArgumentParser(prog="scripts/fifth_look.py", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=out_option, help="a new (or empty) folder; created if missing")
    parser.add_argument("--images", type=count_option, default=600, help="images to write (default 600)")
    parser.add_argument("--seed", type=seed_option, default=0, help="random seed, an integer >= 0 (default 0)")
    args = parser.parse_args(argv)
    if args.root.exists() and not args.root.is_dir():
        parser.error(f"ROOT {args.root} is a file, not a folder; name a new folder")
    write(args.root, args.images, args.seed)
    print(f"wrote {args.images} images to {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Synthetic object-in-clutter image datasets with ground-truth boxes.

Framework-neutral (numpy and Pillow only): :func:`generate_scenes` draws a
seeded, labelled dataset with tight per-instance boxes, and
:func:`write_image_folder` stores it as a class-per-folder image tree with a
COCO-style ``annotations.json`` that :func:`load_annotations` and
:func:`load_labels` read back.
"""

from ccrop_scenes.export import (
    ANNOTATIONS_FILE,
    load_annotations,
    load_labels,
    write_image_folder,
)
from ccrop_scenes.generator import CLASS_NAMES, Scenes, generate_scenes

__all__ = [
    "ANNOTATIONS_FILE",
    "CLASS_NAMES",
    "Scenes",
    "generate_scenes",
    "load_annotations",
    "load_labels",
    "write_image_folder",
]

"""``python -m ccrop_scenes OUT [--images N] [--size S] [--seed S] [--overwrite]``: the demo's scenes as an
image folder.

The scenes of ``ccrop demo`` (its default ``multi-small`` setting): 2-4 small objects of one class, 3-8 % of the image
each, on cluttered backgrounds, written as ``OUT/<class>/<index>.png`` with a COCO-style ``OUT/annotations.json``
(:func:`ccrop_scenes.write_image_folder`): a labelled folder to try ``ccrop demo --data OUT``, ``ccrop viz OUT`` or
``ccrop bench localize --data OUT`` on. The other looks have commands of their own (``python -m
ccrop_scenes.second_look``, ``third_look``, ``fourth_look``).
"""

from __future__ import annotations

from functools import partial

from ccrop_scenes.export import folder_command
from ccrop_scenes.generator import generate_scenes

MULTI_SMALL = dict(objects_per_image=(2, 4), object_area=(0.03, 0.08))
"""``ccrop demo``'s default scenes (``ccrop_cli.experiment.scene_settings``' ``multi-small``)."""


def main(argv: list[str] | None = None) -> int:
    """Write the demo's scenes as an image folder; bad values are one usage line (exit status 2)."""
    return folder_command(partial(generate_scenes, **MULTI_SMALL), "ccrop_scenes",
                          "the demo's scenes (2-4 small objects of one class) as an image folder with annotations.json",
                          argv)


if __name__ == "__main__":
    raise SystemExit(main())

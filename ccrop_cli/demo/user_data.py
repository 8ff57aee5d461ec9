"""``ccrop demo --data DIR``: the user's image folder and its optional ``annotations.json``, in one place to import.

Each part lives in a module of its own:

- :mod:`ccrop_cli.demo.listing`: the images of ``DIR/<class>/<image>`` or ``DIR/<image>`` as both frameworks list
  them (:func:`list_images`, :func:`ignored_pictures`), and the layouts they would read otherwise;
- :mod:`ccrop_cli.demo.image_checks`: what the two frameworks' loaders would read differently (:func:`check_images`)
  and names MMPretrain's list cannot hold (:func:`check_listable`);
- :mod:`ccrop_cli.demo.upright`: the EXIF orientation of phone photos, taken upright as viewers show them;
- :mod:`ccrop_cli.demo.annotations`: ``DIR/annotations.json`` (COCO boxes, :func:`load_user_annotations`).
"""

from __future__ import annotations

from ccrop_cli.demo.annotations import ANNOTATIONS, load_user_annotations
from ccrop_cli.demo.image_checks import EIGHT_BIT_MODES, check_images, check_listable
from ccrop_cli.demo.listing import OTHER_PICTURE_EXTENSIONS, VIDEO_EXTENSIONS, ignored_pictures, list_images
from ccrop_cli.demo.upright import TURNING, exif_orientation, upright_size

__all__ = [
    "ANNOTATIONS", "EIGHT_BIT_MODES", "OTHER_PICTURE_EXTENSIONS", "TURNING", "VIDEO_EXTENSIONS", "check_images",
    "check_listable", "exif_orientation", "ignored_pictures", "list_images", "load_user_annotations", "upright_size",
]

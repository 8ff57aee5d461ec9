"""Deprecated alias of :mod:`ccrop_scenes` (the scene generator, ``demo`` extra); warns once,
and ``import ccrop_plugins`` never loads it."""

import warnings

from ccrop_scenes import ANNOTATIONS_FILE, CLASS_NAMES, Scenes, generate_scenes  # noqa: F401  (the old names)
from ccrop_scenes import load_annotations, load_labels, write_image_folder  # noqa: F401

warnings.warn("ccrop_plugins.scenes moved to ccrop_scenes (installed with the 'demo' extra); import it from there",
              DeprecationWarning, stacklevel=2)

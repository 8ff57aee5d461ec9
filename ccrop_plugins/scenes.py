"""Deprecated alias of :mod:`ccrop_scenes` (the scene generator, ``demo`` extra); warns once,
and ``import ccrop_plugins`` never loads it."""

import warnings

from ccrop_scenes import (  # noqa: F401  the public names of the old module
    ANNOTATIONS_FILE,
    CLASS_NAMES,
    Scenes,
    generate_scenes,
    load_annotations,
    load_labels,
    write_image_folder,
)

warnings.warn(
    "ccrop_plugins.scenes moved to ccrop_scenes (installed with the 'demo' extra); import it from there",
    DeprecationWarning,
    stacklevel=2,
)

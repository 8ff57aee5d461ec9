"""Deprecated alias of :mod:`ccrop_scenes`, the synthetic scene generator (``demo`` extra).

The generator is a program, not part of the method, so it moved out of the core. Importing
``ccrop_plugins`` never imports this module; ``import ccrop_plugins.scenes`` still works (with a
``DeprecationWarning``) for code written against the old path.
"""

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

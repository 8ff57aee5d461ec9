"""Synthetic object-in-clutter image datasets with ground-truth boxes.

Framework-neutral (numpy + Pillow only). See :func:`generate_scenes` and
:func:`write_image_folder`.
"""

from ccrop_plugins.scenes.generator import CLASS_NAMES, Scenes, generate_scenes

__all__ = ["CLASS_NAMES", "Scenes", "generate_scenes"]

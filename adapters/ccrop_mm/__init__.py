"""ccrop_mm: ContrastiveCrop for MMPretrain 1.x and MMSelfSup 1.x, turned on from a config.

A config enables it with three edits::

    custom_imports = dict(imports=['ccrop_mm'], allow_failed_imports=False)
    # in the view pipeline, instead of RandomResizedCrop:
    dict(type='ContrastiveCrop', scale=224, crop_ratio_range=(0.2, 1.0), alpha=0.6)
    custom_hooks = [dict(type='ContrastiveCropHook', warmup_epochs=20, interval=20)]

Importing this package registers the transforms and the hook in mmengine's root registries
(visible from the ``mmpretrain`` and ``mmselfsup`` scopes) and, when mmselfsup 1.0.0 is
installed, inserts the empty ``mmselfsup.engine.runner`` module its registries need
(open-mmlab/mmselfsup#745). See docs/mmpretrain.md.
"""

from .mmselfsup_runner_fix import apply_mmselfsup_runner_fix

apply_mmselfsup_runner_fix()

from .hook import ContrastiveCropHook  # noqa: E402
from .transforms import (  # noqa: E402
    ChooseContrastiveBox,
    PretrainContrastiveCrop,
    SelfSupContrastiveCrop,
    build_contrastive_crop,
)

__all__ = [
    "ChooseContrastiveBox",
    "ContrastiveCropHook",
    "PretrainContrastiveCrop",
    "SelfSupContrastiveCrop",
    "apply_mmselfsup_runner_fix",
    "build_contrastive_crop",
]

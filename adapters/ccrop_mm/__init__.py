"""ccrop_mm: ContrastiveCrop for MMPretrain 1.x and MMSelfSup 1.x, turned on from a config.

A config enables it with three edits::

    custom_imports = dict(imports=['ccrop_mm'], allow_failed_imports=False)
    # in the view pipeline, instead of RandomResizedCrop:
    dict(type='ContrastiveCrop', scale=224, crop_ratio_range=(0.2, 1.0), alpha=0.6)
    custom_hooks = [dict(type='ContrastiveCropHook', warmup_epochs=20, interval=20)]

Importing this package registers the transforms and the hook in mmengine's root registries
(visible from the ``mmpretrain`` and ``mmselfsup`` scopes) and, when mmselfsup 1.0.0 is
installed, inserts the empty ``mmselfsup.engine.runner`` module its registries need
(open-mmlab/mmselfsup#745). The hook lets the runner resume mmengine checkpoints under
torch >= 2.6's ``weights_only`` default; ``allow_mmengine_checkpoints()`` does the same for
other loads. A framework outside the tested versions (``ccrop_mm.versions.SUPPORTED``) stops
the import with one line naming the supported range. See docs/mmpretrain.md.
"""

from .versions import check_versions

check_versions()  # one clear line, before anything imports a framework outside the tested range

from .mmselfsup_runner_fix import apply_mmselfsup_runner_fix  # noqa: E402

apply_mmselfsup_runner_fix()

from .checkpoint_globals import allow_mmengine_checkpoints, mmengine_checkpoint_globals  # noqa: E402
from .hook import ContrastiveCropHook  # noqa: E402
from .transforms import (  # noqa: E402
    BaseContrastiveCrop,
    ChooseContrastiveBox,
    PretrainContrastiveCrop,
    SelfSupContrastiveCrop,
    build_contrastive_crop,
)

__all__ = [
    "BaseContrastiveCrop",
    "ChooseContrastiveBox",
    "ContrastiveCropHook",
    "PretrainContrastiveCrop",
    "SelfSupContrastiveCrop",
    "allow_mmengine_checkpoints",
    "apply_mmselfsup_runner_fix",
    "build_contrastive_crop",
    "check_versions",
    "mmengine_checkpoint_globals",
]

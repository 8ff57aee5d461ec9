"""Third-party messages the ``ccrop`` programs hide: known, harmless here, and about nothing a user of ``ccrop`` can do.

Installed by the programs only (:func:`ccrop_cli.main.main`, the demo's mmengine Runner), never by the core
(``ccrop_plugins``) or the adapters (``ccrop_mm``, ``ccrop_lightly``): their users still see what their frameworks say.
Any other warning still shows.
"""

from __future__ import annotations

import logging
import re
import warnings

KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # mmcv.cnn.bricks.transformer, on import (mmpretrain imports it): mmcv-lite, the pinned build, has no compiled ops
    (r"Fail to import ``MultiScaleDeformableAttention`` from ``mmcv\.ops\.multi_scale_deform_attn``", UserWarning),
    # mmcv.image.photometric.adjust_color with backend="pillow" (mmpretrain's ColorJitter), in each DataLoader worker
    (r"Only use 'alpha' for pillow backend\.", UserWarning),
)
"""``(message regex, category)`` of the Python warnings hidden (``warnings.filterwarnings``)."""

KNOWN_LOG_RECORDS = re.compile(
    r'"FileClient" will be deprecated in future\.|"HardDiskBackend" is the alias of "LocalBackend" and the former will '
    r"be deprecated in future\."
)
"""mmengine's deprecation notes of its own ``FileClient`` (its ``CheckpointHook`` makes one): log records of the
Runner's logger (``print_log(level=WARNING)``), not Python warnings."""


def hide_known_warnings() -> None:
    """Ignore :data:`KNOWN_WARNINGS` in this process (DataLoader workers forked later inherit the filters)."""
    for message, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


class KnownLogRecords(logging.Filter):
    """A logger filter that drops :data:`KNOWN_LOG_RECORDS` (``runner.logger.addFilter(KnownLogRecords())``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return KNOWN_LOG_RECORDS.match(record.getMessage()) is None

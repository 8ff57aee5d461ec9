"""The entry point ``ccrop_extras = "ccrop_extras.plugin"`` of the ``ccrop_plugins`` group (pyproject.toml)."""

from __future__ import annotations

from ccrop_plugins import hookimpl

from .ddt import DatasetPCA
from .ncut import NormalizedCut


@hookimpl
def ccrop_register_heatmaps(register) -> None:
    register("ddt", DatasetPCA)
    register("ncut", NormalizedCut)

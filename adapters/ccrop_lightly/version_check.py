"""Refuse, with one clear line, a Lightly outside the range this adapter is tested with."""

from __future__ import annotations

import re
from importlib import metadata

SUPPORTED_LIGHTLY = ">=1.5.23,<1.7"
"""The Lightly releases the adapter is tested with: ``tests/lightly`` passes on 1.6.0 (the exact set of
``requirements/constraints.txt``) and on 1.5.23, the first release whose ``LightlyDataset`` imports
beside torchvision >= 0.26 (1.5.14 is the first with every module the adapter imports, but its
``lightly.data`` fails on torchvision 0.29). Keep in step with the ``lightly`` extra in ``pyproject.toml``
(a test does)."""

_LOWEST, _BELOW = (1, 5, 23), (1, 7, 0)


def installed_lightly_version() -> str | None:
    """The installed distribution's version string, or ``None`` when Lightly is not installed."""
    try:
        return metadata.version("lightly")
    except metadata.PackageNotFoundError:
        return None


def check_lightly_version(version: str | None = None) -> None:
    """Raise ``ImportError`` naming the supported range when ``version`` (default: installed) is outside it."""
    found = installed_lightly_version() if version is None else version
    if found is None:
        raise ImportError(
            f"ccrop_lightly needs lightly{SUPPORTED_LIGHTLY}, which is not installed: "
            f"pip install 'ccrop-plugins[lightly]' (or 'lightly{SUPPORTED_LIGHTLY}')"
        )
    release = _release(found)
    if release is None or not _LOWEST <= release < _BELOW:
        raise ImportError(
            f"ccrop_lightly supports lightly{SUPPORTED_LIGHTLY}; found lightly {found}: "
            f"pip install 'lightly{SUPPORTED_LIGHTLY}'"
        )


def _release(version: str) -> tuple[int, int, int] | None:
    """``'1.6.0'`` -> ``(1, 6, 0)``; a pre-release of ``1.7.0`` counts as ``1.7.0`` (outside ``<1.7``)."""
    match = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)

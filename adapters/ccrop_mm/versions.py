"""The framework versions ccrop_mm is tested with; anything else stops the import with one line.

The ranges are those of the ``mmpretrain`` and ``mmselfsup`` extras in ``pyproject.toml``
(a test keeps the two equal). A framework that is not installed is not checked: MMPretrain
and MMSelfSup are alternatives; mmengine is required by both.
"""

from __future__ import annotations

from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

SUPPORTED = {
    "mmengine": ">=0.10.0,<0.11",
    "mmpretrain": ">=1.0.0,<1.3",
    "mmselfsup": ">=1.0.0,<1.1",
}
"""Distribution name -> the version range ccrop_mm supports (PEP 440 specifiers)."""


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or ``None`` if it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> None:
    """Raise ``ImportError`` naming the first installed framework outside :data:`SUPPORTED`."""
    for distribution, allowed in SUPPORTED.items():
        found = installed_version(distribution)
        if found is None:
            continue
        try:
            inside = SpecifierSet(allowed).contains(Version(found), prereleases=True)
        except InvalidVersion:
            inside = False
        if not inside:
            raise ImportError(
                f"ccrop_mm supports {distribution}{allowed}, found {distribution} {found}; install a "
                f"supported version (pip install '{distribution}{allowed}') or a ccrop-plugins release made for it"
            )

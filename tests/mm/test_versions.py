"""A framework outside the tested range stops ``import ccrop_mm`` with one line naming the range."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import ccrop_mm
from ccrop_mm import versions

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pretend(monkeypatch, **found):
    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda name: found.get(name, real(name)))


@pytest.mark.parametrize(
    "distribution, found",
    [
        ("mmengine", "0.9.1"),
        ("mmengine", "0.11.0"),
        ("mmpretrain", "1.3.0"),
        ("mmselfsup", "2.0.0rc0"),
        ("mmengine", "x"),
    ],
)
def test_a_framework_outside_the_range_stops_the_import_with_one_line(monkeypatch, distribution, found):
    _pretend(monkeypatch, **{distribution: found})
    allowed = re.escape(versions.SUPPORTED[distribution])
    with pytest.raises(ImportError, match=rf"^ccrop_mm supports {distribution}{allowed}, "
                                          rf"found {distribution} {re.escape(found)};"):
        importlib.reload(ccrop_mm)  # the package's import runs the check before anything else
    with pytest.raises(ImportError) as error:
        versions.check_versions()
    assert "\n" not in str(error.value)


def test_the_installed_set_and_a_missing_alternative_pass(monkeypatch):
    versions.check_versions()
    found = {"mmengine": "0.10.7", "mmpretrain": "1.2.0", "mmselfsup": None}  # an mmpretrain-only environment
    monkeypatch.setattr(versions, "installed_version", found.get)
    versions.check_versions()


def test_ranges_are_those_of_the_extras_in_pyproject():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    declared: dict[str, set[str]] = {}
    for extra in ("mmpretrain", "mmselfsup"):
        for line in extras[extra]:
            requirement = Requirement(line)
            if requirement.name in versions.SUPPORTED:
                declared.setdefault(requirement.name, set()).add(str(requirement.specifier))
    assert set(declared) == set(versions.SUPPORTED)
    for name, specifiers in declared.items():
        assert {SpecifierSet(s) for s in specifiers} == {SpecifierSet(versions.SUPPORTED[name])}, name

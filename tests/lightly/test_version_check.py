"""A Lightly outside the supported range fails at import with one line naming the range."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ccrop_lightly import version_check
from ccrop_lightly.version_check import SUPPORTED_LIGHTLY, check_lightly_version


@pytest.mark.parametrize("version", ["1.5.23", "1.5.26", "1.6.0", "1.6.10.post1"])
def test_supported_versions_pass(version):
    check_lightly_version(version)


@pytest.mark.parametrize("version", ["1.4.2", "1.5.14", "1.5.22", "1.7.0", "1.7.0rc1", "2.0.0", "nightly"])
def test_versions_outside_the_range_are_refused_in_one_line(version):
    with pytest.raises(ImportError) as error:
        check_lightly_version(version)
    message = str(error.value)
    assert message == (
        f"ccrop_lightly supports lightly{SUPPORTED_LIGHTLY}; found lightly {version}: "
        f"pip install 'lightly{SUPPORTED_LIGHTLY}'"
    )
    assert "\n" not in message


def test_the_installed_version_is_looked_up(monkeypatch):
    monkeypatch.setattr(version_check.metadata, "version", lambda name: {"lightly": "1.7.1"}[name])
    with pytest.raises(ImportError, match=r"found lightly 1\.7\.1"):
        check_lightly_version()

    def missing(name):
        raise version_check.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_check.metadata, "version", missing)
    with pytest.raises(ImportError, match=r"needs lightly>=1\.5\.23,<1\.7, which is not installed"):
        check_lightly_version()


def test_import_fails_with_that_line_before_lightly_is_imported():
    # The version lookup is patched in a fresh interpreter; nothing is installed.
    code = (
        "import importlib.metadata as m, sys\n"
        "real = m.version\n"
        "m.version = lambda name: '1.4.0' if name == 'lightly' else real(name)\n"
        "try:\n"
        "    import ccrop_lightly\n"
        "except ImportError as error:\n"
        "    print('ERROR', error)\n"
        "    print('lightly imported:', 'lightly' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.splitlines() == [
        f"ERROR ccrop_lightly supports lightly{SUPPORTED_LIGHTLY}; found lightly 1.4.0: "
        f"pip install 'lightly{SUPPORTED_LIGHTLY}'",
        "lightly imported: False",
    ]


def test_the_range_is_the_lightly_extra_in_pyproject():
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["lightly"]
    assert f"lightly{SUPPORTED_LIGHTLY}" in extra
    constraints = (pyproject.parent / "requirements" / "constraints.txt").read_text().split()
    (pinned,) = [line.split("==")[1] for line in constraints if line.startswith("lightly==")]
    check_lightly_version(pinned)  # the exact set the README's set-up installs lies inside the range

"""A command whose extra is not installed ends as one line naming the extra (docs/install.md), not a traceback;
a missing module that no extra installs is a bug and keeps its traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ccrop_cli import main as main_module
from ccrop_cli.main import main


@pytest.mark.parametrize("command, hidden, extra", [
    ("viz", "matplotlib", "demo"),
    ("study", "sklearn", "demo"),
])
def test_a_command_without_its_extra_is_one_line(command, hidden, extra):
    """In a fresh interpreter (the command modules import anew), with ``hidden`` failing to import."""
    program = (f"import sys; sys.modules[{hidden!r}] = None; from ccrop_cli.main import main; "
               f"sys.exit(main([{command!r}, '--help']))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"ccrop {command}: error: needs {hidden}, which is not installed: pip install 'ccrop-plugins[{extra}]'\n"
    )


def test_a_framework_imported_on_use_is_one_line(monkeypatch, capsys):
    def run(args):
        import mmengine.runner  # noqa: F401

    monkeypatch.setitem(sys.modules, "mmengine", None)
    monkeypatch.setattr("ccrop_cli.plugins_command.run", run)
    assert main(["plugins"]) == 2
    assert "ccrop plugins: error: needs mmengine, which is not installed: pip install 'ccrop-plugins[mmpretrain]'" \
        in capsys.readouterr().err


def test_a_module_no_extra_installs_keeps_its_traceback(monkeypatch):
    def run(args):
        import no_such_module_of_ccrop  # noqa: F401

    monkeypatch.setattr("ccrop_cli.plugins_command.run", run)
    with pytest.raises(ModuleNotFoundError, match="no_such_module_of_ccrop"):
        main(["plugins"])
    assert main_module.EXTRAS["lightly"] == "lightly"

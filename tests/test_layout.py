"""The package layout: every module imports, no import cycle, the core stays framework- and program-free.

Two checks, both fast:

- a fresh interpreter imports ``ccrop_plugins`` (and lists the framework or program modules
  that came with it), then every module of the tree: the core, the scene generator, the
  programs and both adapters;
- a static check of the ``import`` statements (``ast``), also those inside functions, so a cycle
  hidden behind a lazy import is found too: the module graph has no cycle, and no core module
  (``ccrop_plugins``) nor the extras plugin (``ccrop_extras``) imports a framework, an adapter or a program.

And no line of the Python files (packages, adapters, configs, scripts, tests) is longer than 120 characters.
"""

from __future__ import annotations

import ast
import atexit
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# (import root, package) pairs: ``adapters/`` is a source root of its own.
PACKAGES = {
    "ccrop_plugins": REPO,
    "ccrop_extras": REPO,
    "ccrop_scenes": REPO,
    "ccrop_cli": REPO,
    "ccrop_lightly": REPO / "adapters",
    "ccrop_mm": REPO / "adapters",
}
FRAMEWORKS = {"lightly", "pytorch_lightning", "lightning", "mmengine", "mmpretrain", "mmselfsup", "mmcv", "mmcls"}
NOT_FOR_THE_CORE = FRAMEWORKS | {"ccrop_cli", "ccrop_scenes", "ccrop_lightly", "ccrop_mm", "ccrop_extras"}
# The core modules allowed to name a package outside the core, neither loaded by ``import ccrop_plugins``
# (checked below): the deprecated alias of the scene generator's old path, and the old path of the
# extra heatmap rules (a lazy module ``__getattr__``).
DEPRECATED_ALIASES = {"ccrop_plugins.scenes": {"ccrop_scenes"}, "ccrop_plugins.heatmap_rules": {"ccrop_extras"}}


def module_files(packages: dict[str, Path] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages``."""
    modules = {}
    for package, root in packages.items():
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """Absolute dotted names that ``module``'s import statements name (any depth, not TYPE_CHECKING).

    ``from pkg import name`` gives ``pkg.name`` (a module or an attribute of ``pkg``).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for child in block.body
        for node in ast.walk(child)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.update(f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names)
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of the tree it imports (``from pkg import name`` counts as ``pkg``
    unless ``pkg.name`` is a module)."""
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            if name in modules:
                targets.add(name)
            elif name.rpartition(".")[0] in modules:
                targets.add(name.rpartition(".")[0])
        targets.discard(module)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def core_violations(modules: dict[str, Path]) -> list[str]:
    """``core module -> forbidden import`` for every import of a framework, adapter or program by the core or by the
    extras plugin (which imports the core only)."""
    problems = []
    for module, path in modules.items():
        package = module.split(".")[0]
        if package not in ("ccrop_plugins", "ccrop_extras"):
            continue
        allowed = DEPRECATED_ALIASES.get(module, set()) | {package}
        for name in sorted(imported_names(module, path)):
            top = name.split(".")[0]
            if top in NOT_FOR_THE_CORE and top not in allowed:
                problems.append(f"{module} -> {name}")
    return problems


# -- the tree ------------------------------------------------------------------------------------
def _start_fresh_imports() -> subprocess.Popen:
    """Start one fresh interpreter that imports ``ccrop_plugins`` (noting the top-level modules it
    loads), then every module of the tree; it prints ``{'core_loads': [...], 'failed': {name: traceback}}``."""
    modules = sorted(module_files())
    script = (
        "import importlib, json, sys, traceback, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import ccrop_plugins\n"
        "core_loads = sorted({name.split('.')[0] for name in sys.modules})\n"
        "failed = {}\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException:\n"
        "        failed[name] = traceback.format_exc(limit=3)\n"
        "print(json.dumps({'core_loads': core_loads, 'failed': failed}))\n"
    )
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)


# Started when pytest collects this file, so its imports (about 10 s of CPU: torch, both frameworks,
# matplotlib) run on the second core while the rest of the suite runs; the fixture collects the answer.
_FRESH_IMPORTS = _start_fresh_imports()
atexit.register(_FRESH_IMPORTS.kill)  # a run that deselects or interrupts these tests leaves no process behind


@pytest.fixture(scope="module")
def fresh_imports() -> dict:
    """The fresh interpreter's answer: the top-level modules ``import ccrop_plugins`` loads, and
    the modules of the tree that failed to import (name -> traceback)."""
    stdout, stderr = _FRESH_IMPORTS.communicate(timeout=300)
    assert _FRESH_IMPORTS.returncode == 0, stderr[-2000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_every_module_imports_in_a_fresh_interpreter(fresh_imports):
    failed = fresh_imports["failed"]
    assert failed == {}, "\n".join(f"{name}:\n{error}" for name, error in failed.items())


def test_importing_the_core_loads_no_framework_and_no_program(fresh_imports):
    loaded = set(fresh_imports["core_loads"])
    assert "ccrop_plugins" in loaded and "torch" in loaded
    assert sorted(loaded & NOT_FOR_THE_CORE) == []


def test_the_tree_has_no_import_cycle():
    graph = import_graph(module_files())
    assert "ccrop_cli.demo.command" in graph and "ccrop_scenes.generator" in graph  # the walk saw the tree
    assert "ccrop_extras" in graph["ccrop_plugins.heatmap_rules"]  # and the lazy imports
    assert cycles(graph) == []


def test_the_core_imports_no_framework_adapter_or_program():
    assert core_violations(module_files()) == []


# -- the checks themselves can fail --------------------------------------------------------------
@pytest.fixture
def bad_tree(tmp_path: Path) -> dict[str, Path]:
    files = {
        "ccrop_plugins/__init__.py": "from .crop import crop\n",
        "ccrop_plugins/crop.py": "def crop():\n    from . import heatmaps  # lazy, still a cycle\n",
        "ccrop_plugins/heatmaps.py": "from ccrop_plugins.crop import crop\nimport mmengine.config\n",
        "ccrop_plugins/scenes.py": "from ccrop_scenes import generate\n",
        "ccrop_plugins/plot.py": (
            "import typing\nif typing.TYPE_CHECKING:\n    import ccrop_cli\nfrom ccrop_scenes import x\n"
        ),
        "ccrop_cli/__init__.py": "",
        "ccrop_cli/demo.py": "from ccrop_cli import demo_mm\n",
        "ccrop_cli/demo_mm.py": "from .demo import Config\n",
        "ccrop_scenes/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return module_files({"ccrop_plugins": tmp_path, "ccrop_cli": tmp_path, "ccrop_scenes": tmp_path})


def test_the_checks_find_cycles_and_forbidden_imports(bad_tree):
    assert sorted(cycles(import_graph(bad_tree))) == [
        ["ccrop_cli.demo", "ccrop_cli.demo_mm"],
        ["ccrop_plugins.crop", "ccrop_plugins.heatmaps"],
    ]
    # The TYPE_CHECKING import is not one; the alias may name the scene package, nothing else may.
    assert core_violations(bad_tree) == [
        "ccrop_plugins.heatmaps -> mmengine.config",
        "ccrop_plugins.plot -> ccrop_scenes.x",
    ]


# -- line length ---------------------------------------------------------------------------------
MAX_LINE = 120
# The folders of Python code: the packages, the adapters, the configs, the scripts and the tests.
CODE_FOLDERS = ("ccrop_plugins", "ccrop_extras", "ccrop_scenes", "ccrop_cli", "adapters", "configs", "scripts", "tests")


def python_files(root: Path = REPO) -> list[Path]:
    """The ``.py`` files of ``CODE_FOLDERS`` that git tracks (every one there when git or the repository is absent,
    e.g. in an unpacked source archive)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", *CODE_FOLDERS], cwd=root, capture_output=True,
                                text=True, check=True, timeout=60).stdout.split("\0")
    except (OSError, subprocess.SubprocessError):
        listed = []
    paths = [root / name for name in listed if name.endswith(".py") and (root / name).is_file()]
    if not paths:
        paths = [path for folder in CODE_FOLDERS for path in (root / folder).rglob("*.py")]
    return sorted(paths)


def long_lines(paths: list[Path], root: Path = REPO, limit: int = MAX_LINE) -> list[str]:
    """``path:line (N chars)`` for every line of ``paths`` longer than ``limit`` characters."""
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            width = len(line.rstrip("\r"))
            if width > limit:
                found.append(f"{path.relative_to(root).as_posix()}:{number} ({width} chars)")
    return found


def test_no_line_is_longer_than_120_characters():
    files = python_files()
    assert REPO / "tests" / "test_layout.py" in files and REPO / "ccrop_plugins" / "__init__.py" in files
    too_long = long_lines(files)
    assert not too_long, f"{len(too_long)} line(s) over {MAX_LINE} characters; wrap them:\n" + "\n".join(too_long)


def test_the_line_check_names_each_long_line(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.py").write_text("x = 1\n" + "y = '" + "a" * 116 + "'\n" + "z = '" + "b" * 114 + "'\r\n")
    (tmp_path / "configs" / "notes.txt").write_text("c" * 200)  # not Python
    files = python_files(tmp_path)  # not a git repository: the folders' files
    assert files == [tmp_path / "configs" / "a.py"]
    assert long_lines(files, tmp_path) == ["configs/a.py:2 (122 chars)"]  # line 3: 120 and its "\r"


# -- function length in the programs (issue 10: none longer than about 60 lines) ----------------------
MAX_PROGRAM_FUNCTION = 60


def long_functions(paths: list[Path], root: Path = REPO, limit: int = MAX_PROGRAM_FUNCTION) -> list[str]:
    """``path:line name (N lines)`` for every function of ``paths`` longer than ``limit`` lines, its docstring,
    decorators excluded, included."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root).as_posix()}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_of_the_programs_is_longer_than_60_lines():
    files = [path for path in python_files() if path.relative_to(REPO).parts[0] == "ccrop_cli"]
    assert REPO / "ccrop_cli" / "main.py" in files
    too_long = long_functions(files)
    assert not too_long, f"{len(too_long)} function(s) of ccrop_cli over {MAX_PROGRAM_FUNCTION} lines; split them:\n" \
        + "\n".join(too_long)


def test_the_function_check_names_each_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    (tmp_path / "a.py").write_text(f"def fits():\n{body}\n\ndef too_long():\n{body}    return x0\n")
    assert long_functions([tmp_path / "a.py"], tmp_path) == ["a.py:63 too_long (61 lines)"]  # fits: 60 lines

"""``ccrop``: one entry point; each subcommand lives in its own module, imported only when run.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int | None``. A
:class:`~ccrop_cli.errors.UserError` it raises is printed as one line,
``ccrop <command>: error: <message>``, with exit status 2 (argparse's status for bad options);
any other exception is a bug and keeps its traceback. Known, harmless warnings of the frameworks are hidden
(:mod:`ccrop_cli.framework_warnings`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from ccrop_cli.errors import UserError
from ccrop_cli.framework_warnings import hide_known_warnings

COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": ("ccrop_cli.plugins_command", "list heatmap methods, localizers and samplers with their providers"),
    "demo": ("ccrop_cli.demo.command",
             "generate scenes, pre-train SimCLR with ContrastiveCrop, write pictures and a report"),
    "viz": ("ccrop_cli.output.viz", "draw box sets and sampled view pairs for an image folder and a box store"),
    "study": ("ccrop_cli.study.command", "pre-train with each crop strategy over seeds; linear probe and kNN accuracy"),
    "bench speed": ("ccrop_cli.bench.speed", "crop and localizer speed vs torchvision and the reference rule"),
    "bench pairs": ("ccrop_cli.bench.pairs", "pair quality of each crop strategy against ground-truth boxes"),
    "bench lightly": ("ccrop_cli.bench.lightly", "Lightly collate and refresh throughput vs lightly's own"),
    "bench localize": ("ccrop_cli.bench.localize",
                       "box recall of every heatmap rule x stage x threshold on scenes with ground truth"),
    "bench mm": ("ccrop_cli.bench.mm", "MMPretrain pipeline and refresh throughput vs RandomResizedCrop"),
}
# What an extra installs that a command imports: without it, one line naming the extra instead of a traceback.
EXTRAS = {"matplotlib": "demo", "sklearn": "demo", "lightly": "lightly", "pytorch_lightning": "lightly",
          "mmengine": "mmpretrain", "mmcv": "mmpretrain", "mmpretrain": "mmpretrain", "mmselfsup": "mmselfsup"}


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    """``needs X, which is not installed: pip install 'ccrop-plugins[extra]'`` for a module of an extra, else None."""
    top = (error.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    return f"needs {top}, which is not installed: pip install 'ccrop-plugins[{EXTRAS[top]}]'"


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` adds an option's default, ``(default: X)``, unless its help already names one or it has none
    (``None``, a flag's ``False``, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if (not action.option_strings or "default" in (action.help or "").lower() or default is None
                or default is False or default is argparse.SUPPRESS or default in ([], ())):
            return action.help
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{action.help} (default: {shown.replace('%', '%%')})"  # help is %-formatted: a literal % doubled


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: ccrop COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "Run 'ccrop COMMAND --help' for the options of one command; 'ccrop --version' for the version."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name, status = _command_name(argv)
    if name is None:
        return status
    module_name, help_text = COMMANDS[name]
    hide_known_warnings()  # before the command imports a framework (mmcv warns on import)
    try:  # the import takes seconds (torch, a framework): Ctrl-C then is an interrupt as during the run
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        return _interrupted(f"ccrop {name}")
    except ModuleNotFoundError as error:  # 'ccrop viz' without the demo extra: say which, not a traceback
        if _missing_extra(error) is None:
            raise
        print(f"ccrop {name}: error: {_missing_extra(error)}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"ccrop {name}", description=help_text, formatter_class=DefaultsHelpFormatter)
    module.add_arguments(parser)
    return _run(module, parser, parser.parse_args(argv[len(name.split()) :]))


def _command_name(argv: list[str]) -> tuple[str | None, int]:
    """The command ``argv`` names (one word, or a group's two), with status 0; or ``None`` and the exit status once
    the usage, the version, a group's commands or an error are printed."""
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return None, 0
    if argv[0] in ("-V", "--version"):  # was "unknown command '--version'"
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"ccrop {version('ccrop-plugins')} (ccrop-plugins; Python {sys.version.split()[0]})")
        except PackageNotFoundError:  # run from a source tree that is not installed
            print("ccrop (ccrop-plugins, not installed: no version recorded)")
        return None, 0
    name = " ".join(argv[:2]) if " ".join(argv[:2]) in COMMANDS else argv[0]
    group = [command.split()[1] for command in COMMANDS if command.startswith(f"{name} ")]
    if group and len(argv) > 1 and argv[1] in ("-h", "--help"):  # 'ccrop bench --help': its commands
        print("\n".join(line for line in _usage().splitlines() if line.startswith(f"  {name} ")))
        return None, 0
    if group and len(argv) == 1:
        print(f"ccrop {name}: error: name one of: {', '.join(group)} (e.g. 'ccrop {name} {group[0]} --help')",
              file=sys.stderr)
        return None, 2
    if name not in COMMANDS:  # 'bench foo' names the group's command; 'demoo --quick' only the command
        unknown = " ".join(argv[:2]) if any(command.startswith(f"{argv[0]} ") for command in COMMANDS) else argv[0]
        print(f"ccrop: unknown command {unknown!r}; available: {', '.join(COMMANDS)}", file=sys.stderr)
        return None, 2
    return name, 0


def _run(module: ModuleType, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``module.run(args)``'s exit status; the errors a user can act on as one line on stderr and status 2 (an
    interrupt: 130; a reader that has gone: 1)."""
    try:
        status = int(module.run(args) or 0)
        sys.stdout.flush()  # a reader that has gone shows here, not as "Exception ignored" at exit
        return status
    except UserError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:  # a framework imported on use ('ccrop demo --framework mmpretrain')
        if _missing_extra(error) is None:
            raise
        print(f"{parser.prog}: error: {_missing_extra(error)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as error:  # sizes beyond this machine: numpy's or torch's text names them
        memory = ("can't allocate memory", "out of memory")  # torch's CPU allocator, CUDA
        if isinstance(error, RuntimeError) and not any(text in str(error) for text in memory):
            raise
        print(f"{parser.prog}: error: not enough memory for these sizes ({str(error).strip() or 'MemoryError'}); use "
              "smaller image sizes, fewer images or a smaller batch", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # what was saved stays (a study resumes, the demo reuses its scenes)
        return _interrupted(parser.prog)
    except BrokenPipeError:  # 'ccrop plugins | head': the reader has gone; no traceback, and none at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _interrupted(prog: str) -> int:
    """Ctrl-C: one line, and the shell's status for SIGINT (130)."""
    print(f"\n{prog}: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())

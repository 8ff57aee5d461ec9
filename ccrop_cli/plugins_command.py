"""``ccrop plugins``: every heatmap method, localizer and sampler, with the distribution providing it."""

from __future__ import annotations

import argparse

from ccrop_plugins import list_plugins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=["heatmap", "localizer", "sampler"], help="only this kind")


def run(args: argparse.Namespace) -> int:
    # Broken plugins (kind "plugin": could not be loaded) are listed whatever --kind says.
    entries = [e for e in list_plugins(include_broken=True) if args.kind in (None, e.kind) or e.kind == "plugin"]
    rows = [("KIND", "NAME", "PROVIDER")] + [(e.kind, e.name, e.provider) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row, entry in zip(rows, [None, *entries]):
        broken = f"  BROKEN: {entry.error}" if entry is not None and entry.broken else ""
        print(("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + broken).rstrip())
    return 0

"""``ccrop plugins``: every heatmap method, localizer and sampler, with the distribution providing it."""

from __future__ import annotations

import argparse

from ccrop_plugins import list_plugins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=["heatmap", "localizer", "sampler"], help="only this kind")


def run(args: argparse.Namespace) -> int:
    entries = [e for e in list_plugins() if args.kind in (None, e.kind)]
    rows = [("KIND", "NAME", "PROVIDER")] + [(e.kind, e.name, e.provider) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0

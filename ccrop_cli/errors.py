"""The one error type that ``ccrop`` reports as a user error instead of a bug, and how its messages name files.

A command raises :class:`UserError` for input it was given and cannot use: a bad option
value, a missing or malformed file, a folder it cannot write. ``ccrop_cli.main`` prints it as
one line, ``ccrop <command>: error: <message>``, and exits with status 2 (as argparse does for
bad options). Every other exception is a bug and keeps its traceback.

``UserError`` is a ``ValueError``, so library callers that catch ``ValueError`` still do.
"""

from __future__ import annotations

from typing import Sequence


class UserError(ValueError):
    """Bad input to a ``ccrop`` command; the message names the value and what is allowed."""


def some_names(names: Sequence[str], shown: int = 3) -> str:
    """The first ``shown`` of ``names``, comma-separated, ending in ``, ...`` when there are more: how a message
    names the files (images, links, entries) it is about without listing a whole folder."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")

"""argparse types for counts, so that ``--rounds 0`` is a one-line usage error, not a traceback, for paths
(:func:`user_path`), and the checks of an output file or folder written at the end of a long command."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path


def positive_int(text: str) -> int:
    """An integer >= 1 (a number of rounds, images, workers...)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (a seed, a count that may be zero)."""
    return _int_at_least(text, 0, "an integer >= 0")


def max_workers() -> int:
    """The most DataLoader workers a command starts: 4 per CPU core, at least 8 (the study's gpu preset)."""
    return max(8, 4 * (os.cpu_count() or 1))


def workers(text: str) -> int:
    """DataLoader workers, 0 (the main process) to :func:`max_workers`: ``--num-workers 1000`` started a thousand
    processes (torch only warned that they 'may make the DataLoader slow or freeze') on a machine of a few cores."""
    return _int_at_least(text, 0, f"an integer from 0 (load in the main process) to {max_workers()} (4 per CPU core "
                                  f"of this machine, at least 8; more only compete for the cores)", high=max_workers())


def threads(text: str) -> int:
    """torch threads of a benchmark, 1 to the CPU cores (``os.cpu_count()``): ``--threads 2000`` started 4,000
    threads (two pools) on 2 cores, timing their contention instead of the code."""
    cores = os.cpu_count() or 1
    return _int_at_least(text, 1, f"an integer from 1 to {cores} (the CPU cores of this machine; more threads only "
                                  f"contend for them)", high=cores)


MAX_EPOCHS = 10_000
"""The most epochs ``ccrop demo`` / ``ccrop study`` take (``--epochs 99999999999999999999`` ran for ever, silently)."""



def epochs(text: str) -> int:
    """A number of epochs, 1 to :data:`MAX_EPOCHS` (``ccrop bench localize --epochs``)."""
    return _int_at_least(text, 1, f"an integer from 1 to {MAX_EPOCHS}", high=MAX_EPOCHS)


MAX_SEEDS = 100
"""The most seeds ``ccrop study --seeds`` takes (20 times the default 5): ``--seeds 1000000`` was accepted, a run of
about a year at 45 s a seed."""

MAX_CROPS = 10_000
"""The most crops per side and round ``ccrop bench speed --crops`` takes (about 1.5 GB of 224 px views a side; the
default is 300): ``--crops 999999999`` filled the memory, silently."""

MAX_PAIRS_PER_IMAGE = 1000
"""The most view pairs per image ``ccrop bench pairs --pairs-per-image`` takes (the default is 8):
``--pairs-per-image 100000000`` ran for ever, silently."""


def crops(text: str) -> int:
    """Crops per side and round, 1 to :data:`MAX_CROPS`."""
    return _int_at_least(text, 1, f"an integer from 1 to {MAX_CROPS}", high=MAX_CROPS)


MAX_SIDE = 1024
"""The largest image side the commands take: their generated scenes and views at their batch sizes (a typo such as
``--crop-size 100000`` exhausted the memory, or the kernel killed the process)."""


def side(text: str) -> int:
    """An image side in pixels, 1 to :data:`MAX_SIDE`."""
    return _int_at_least(text, 1, f"a side in pixels from 1 to {MAX_SIDE}", high=MAX_SIDE)


MIN_SIDE = 16
"""The smallest view or image side the commands take: the generated scenes' smallest, and the smallest image
``ccrop demo`` and ``ccrop bench localize`` read (``ccrop_cli.demo.image_checks``); a smaller view holds no object to
learn or find."""


def view_side(text: str) -> int:
    """A view or image side in pixels, :data:`MIN_SIDE` to :data:`MAX_SIDE`: ``ccrop bench lightly --input-size 1``
    and ``ccrop bench mm --crop-size 1`` timed 1-pixel views and printed their ratios without a word."""
    return _int_at_least(text, MIN_SIDE, f"a side in pixels from {MIN_SIDE} to {MAX_SIDE} (under {MIN_SIDE} px, "
                                         f"the smallest image the commands read, a view holds no object)",
                         high=MAX_SIDE)


def seed(text: str) -> int:
    """A random seed: an integer in [0, 2**63) (torch.Generator.manual_seed overflows beyond)."""
    return _int_at_least(text, 0, "an integer in [0, 2**63)", high=2**63 - 1)


def numpy_seed(text: str) -> int:
    """A random seed that also seeds NumPy's global generator (``np.random.seed``, as mmengine does): an integer in
    [0, 2**31). NumPy takes at most 2**32 - 1, and mmengine seeds each DataLoader worker with the seed plus the
    worker's index, so a seed near 2**32 failed in a worker; 2**31 leaves room for them."""
    return _int_at_least(text, 0, "an integer in [0, 2**31) (it also seeds NumPy, which takes at most 2**32 - 1)",
                         high=2**31 - 1)


def threshold(text: str) -> float | str:
    """A localizer threshold option: a number (its range is checked with the command's other options) or the name of a
    per-image rule, ``otsu`` or ``mean``."""
    if text in ("otsu", "mean"):
        return text
    try:
        return float(text)
    except ValueError:  # argparse would say "invalid threshold value"
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), otsu or mean; got {text!r}") from None


def _int_at_least(text: str, low: int, what: str, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
    if value < low or high is not None and value > high:
        raise argparse.ArgumentTypeError(f"expected {what}; got {value}")
    return value


def user_path(text: str) -> Path:
    """A file or folder option, with ``~`` for the home folder: the shell expands ``--out ~/x`` but leaves
    ``--out=~/x`` (and a quoted ``"~/x"``) as it is, which made a folder named ``~`` in the current folder. An empty
    path is refused: ``Path("")`` is the current folder, where a script's ``--out "$OUT"`` with OUT unset wrote."""
    if not text:
        raise argparse.ArgumentTypeError("empty path (an unset variable in \"$DIR\"?); give a file or folder, e.g. "
                                         ". for the current folder")
    return Path(os.path.expanduser(text))


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """An output file the command writes at its end: refuse a folder or an unwritable place before any work.

    Raises:
        UserError: naming the option and the path.
    """
    from ccrop_cli.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name")
    try:
        existing = next((parent for parent in path.parents if parent.exists()), None)
        if existing is not None and not existing.is_dir():  # mkdir's 'File exists' read as if the folder were there
            raise UserError(f"{option} {path}: {existing} is a file, not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise UserError(f"{option} {path}: cannot write there: {error.strerror or error}") from None
    return path


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """An output folder: created now, and refused (a one-line :class:`UserError` naming the option) when it cannot
    hold files, before any work."""
    from ccrop_cli.errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():  # mkdir's reason, 'File exists', read as if the folder were fine
        raise UserError(f"{option} {path} is not a writable folder: it is a file; give a folder (created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UserError(f"{option} {path} is not a writable folder: {error.strerror or error}") from None
    return path


def check_outside(path: str | os.PathLike, option: str, folder: str | os.PathLike, folder_text: str, why: str) -> None:
    """Refuse (a one-line :class:`UserError`, before anything is written) an output ``path`` that lies inside the
    input ``folder`` (``folder_text`` names it, e.g. ``--data d1``; ``why`` says what would go wrong): the command's
    files would land among the user's images, or replace one of their files."""
    from ccrop_cli.errors import UserError

    if Path(path).resolve().is_relative_to(Path(folder).resolve()):
        raise UserError(f"{option} {path} lies inside {folder_text}: {why}")


def check_alpha(alpha: float) -> None:
    """``--alpha`` of the crop centre's ``Beta(alpha, alpha)``: a one-line :class:`UserError` unless finite and > 0."""
    from ccrop_cli.errors import UserError

    if not (math.isfinite(alpha) and alpha > 0):
        raise UserError(f"--alpha must be a finite number > 0 (Beta(alpha, alpha) of the crop centre; the paper uses "
                        f"0.1 to 1.0); got {alpha}")

"""Small CPU work on one thread: torch's, OpenCV's (why: docs/configuration.md, "Choices we made")."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator

import torch


def one_cpu_thread(device: torch.device) -> ContextManager[None]:
    """Run the block on one torch thread when ``device`` is the CPU; torch's thread count is restored after."""
    return nullcontext() if device.type != "cpu" else one_thread(torch.get_num_threads, torch.set_num_threads)


@contextmanager
def one_thread(get_threads: Callable[[], int], set_threads: Callable[[int], Any]) -> Iterator[None]:
    """Run the block with a library's thread count (read by ``get_threads``, set by ``set_threads``) at 1; the count is
    restored after, also after an error."""
    threads = get_threads()
    if threads == 1:
        yield
        return
    set_threads(1)
    try:
        yield
    finally:
        set_threads(threads)

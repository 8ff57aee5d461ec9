"""Small CPU tensor work on one thread (why: docs/configuration.md, "Choices we made")."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the block on one torch thread when ``device`` is the CPU; torch's thread count is restored after."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

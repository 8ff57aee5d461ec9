"""Run a model in eval mode for a pass and give every submodule its own train/eval flag back."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, TypeVar

from torch import nn

T = TypeVar("T")


@contextmanager
def eval_mode(module: T) -> Iterator[T]:
    """Put ``module`` in eval mode inside the block; restore every submodule's own flag after (a frozen
    BatchNorm stays in eval), also when the block raises. A non-module passes through. Yields ``module``."""
    if not isinstance(module, nn.Module):
        yield module
        return
    modes = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for submodule, training in modes:
            submodule.training = training

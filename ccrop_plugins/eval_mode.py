"""Run a model in eval mode for a pass and give every submodule its own train/eval flag back."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, TypeVar

from torch import nn

T = TypeVar("T")


@contextmanager
def eval_mode(module: T) -> Iterator[T]:
    """Put ``module`` in eval mode inside the block; restore every submodule's flag after.

    ``module.train(flag)`` afterwards would set *all* submodules to ``flag``, undoing a
    frozen (eval) submodule such as a frozen BatchNorm; this restores each one as it was,
    also when the block raises. Anything that is not an ``nn.Module`` (a plain function)
    passes through unchanged. Yields ``module``.
    """
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

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
    try:
        module.eval()
    except NotImplementedError as error:  # torch.export's module: "Calling eval() is not supported yet."
        raise TypeError(f"cannot put {type(module).__name__} in eval mode ({error}; a torch.export program's "
                        "module?); pass the eager nn.Module it was made from (the same parameters)") from None
    try:
        yield module
    finally:
        for submodule, training in modes:
            submodule.training = training

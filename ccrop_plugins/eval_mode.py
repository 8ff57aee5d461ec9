"""Run a model in eval mode for a pass and give every submodule its own train/eval flag back."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, TypeVar

from torch import nn

T = TypeVar("T")


def module_of(function: object) -> nn.Module | None:
    """The module behind a feature function: ``function`` itself, or the module of a bound method
    (``model.forward_features``); ``None`` for anything else (a plain function or lambda: the caller's own)."""
    owner = function if isinstance(function, nn.Module) else getattr(function, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


@contextmanager
def eval_mode(module: T) -> Iterator[T]:
    """Put ``module`` (or the module of a bound method, :func:`module_of`) in eval mode inside the block; restore
    every submodule's own flag after (a frozen BatchNorm stays in eval), also when the block raises. Anything else
    passes through. Yields ``module``."""
    owner = module_of(module)
    if owner is None:
        yield module
        return
    modes = [(submodule, submodule.training) for submodule in owner.modules()]
    try:
        owner.eval()
    except NotImplementedError as error:  # torch.export's module: "Calling eval() is not supported yet."
        raise TypeError(f"cannot put {type(owner).__name__} in eval mode ({error}; a torch.export program's "
                        "module?); pass the eager nn.Module it was made from (the same parameters)") from None
    try:
        yield module
    finally:
        for submodule, training in modes:
            submodule.training = training

"""Feature maps of named backbone stages from one forward pass that stops after the deepest."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torch.optim.swa_utils import AveragedModel


class _StagesReached(Exception):
    """Raised from a forward hook once every requested stage has run, to end the forward early."""


class StageFeatures(nn.Module):
    """``model`` (shared, not copied) up to its deepest requested stage; forward returns ``{stage: (B, C, h, w)}``
    (a tuple or list output: its last item) in the order of ``stages``, dotted submodule names (the ``module.`` of a
    DDP model and the ``_orig_mod.`` of a ``torch.compile``d one may be left out). ``stop_early``: end the forward
    after the deepest stage (docs/configuration.md).

    A bad model, stage name (unknown: valid ones listed) or stage output is a ``TypeError`` / ``ValueError`` naming
    it; a stage the forward did not run, a ``RuntimeError``.
    """

    def __init__(self, model: nn.Module, stages: str | Sequence[str], stop_early: bool = True) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"stage_features needs an nn.Module; got {type(model).__name__}")
        if isinstance(stages, (bytes, bytearray)) or not isinstance(stages, (str, Iterable)):
            raise TypeError(f"stages must be a stage name or a list of them; got {type(stages).__name__}")
        stages = [stages] if isinstance(stages, str) else list(stages)
        if not stages:
            raise ValueError("stage_features needs at least one stage name; got none")
        if len(set(stages)) != len(stages):
            raise ValueError(f"stage names must be unique; got {stages}")
        if isinstance(model, torch.jit.ScriptModule):  # register_forward_hook is not supported; a trace inlines calls
            raise TypeError(f"stage_features cannot catch the stages of a TorchScript module ({type(model).__name__}, "
                            "from torch.jit.script or torch.jit.trace); pass the eager nn.Module it was made from "
                            "(the same parameters)")
        if not isinstance(stop_early, (bool, np.bool_)):  # 'no' was taken as True; numpy's bools are bools
            raise TypeError(f"stop_early must be True or False; got {stop_early!r} ({type(stop_early).__name__})")
        self.model, self.stages, self.stop_early = model, tuple(stages), bool(stop_early)
        self._paths = {stage: _resolve(model, stage) for stage in self.stages}
        paths = list(self._paths.values())
        if twin := next((path for path in paths if paths.count(path) > 1), None):  # 'layer2' and 'module.layer2'
            named = [stage for stage, path in self._paths.items() if path == twin]
            raise ValueError(f"stages {named} name one module ({twin!r}): it would count twice in the fused heatmap; "
                             "give it once")

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        modules = dict(self.model.named_modules())
        caught: dict[str, Tensor] = {}

        def catcher(stage: str):
            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                if stage in caught:  # a module called twice: its first output is the stage's
                    return
                maps = self.feature_map(output, stage)
                if self.stop_early and len(caught) + 1 == len(self.stages):
                    caught[stage] = maps
                    raise _StagesReached
                # The forward goes on: a later in-place step (ReLU(inplace=True), out += identity) would change them.
                caught[stage] = maps.clone()
            return hook

        handles = [modules[self._paths[stage]].register_forward_hook(catcher(stage)) for stage in self.stages]
        try:
            unwrapped_model(self.model)(images)  # a DDP forward's buffer broadcast would wait for every rank
        except _StagesReached:
            pass
        finally:
            for handle in handles:
                handle.remove()
        missing = [stage for stage in self.stages if stage not in caught]
        if missing:
            raise RuntimeError(f"stages {missing} were not run by the forward of {type(self.model).__name__}; "
                               "name modules that the forward calls")
        return {stage: caught[stage] for stage in self.stages}

    def feature_map(self, output: Any, stage: str) -> Tensor:
        """The maps ``(B, C, h, w)`` of ``stage``'s ``output`` (a tuple or list: its last item), else a ``ValueError``;
        a subclass may lay other outputs out as maps (the MM adapter: a ViT's patch tokens)."""
        item = ""
        if isinstance(output, (tuple, list)) and output:
            output, item = output[-1], f" as the last item of its {type(output).__name__} of {len(output)}"
        if not isinstance(output, Tensor) or output.ndim != 4:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(f"stage {stage!r} must output feature maps (B, C, h, w); got {shape}{item}")
        return output

    def extra_repr(self) -> str:
        return f"stages={list(self.stages)}, stop_early={self.stop_early}"


def stage_features(model: nn.Module, stages: str | Sequence[str], stop_early: bool = True) -> StageFeatures:
    """:class:`StageFeatures`: ``stage_features(model, ["layer2", "layer4"])(images)`` gives ``{"layer2": (B, C2, h2,
    w2), "layer4": (B, C4, h4, w4)}``; an unknown stage name is a ``ValueError`` listing valid ones."""
    return StageFeatures(model, stages, stop_early=stop_early)


def unwrapped_model(model: Any) -> Any:
    """``model`` without the wrappers whose forward calls their ``module`` (``DistributedDataParallel``,
    ``DataParallel``, an ``AveragedModel`` / EMA copy); anything else as it is. The refresh runs the module itself:
    the same parameters, no wrapper collective per batch (a DDP forward broadcasts buffers to every rank)."""
    while isinstance(model, (DistributedDataParallel, DataParallel, AveragedModel)):
        model = model.module
    return model


_WRAPPERS = ("", "module.", "_orig_mod.", "_orig_mod.module.", "module._orig_mod.")
"""The paths a stage may lie under: a DDP model's ``module.``, a ``torch.compile``d model's ``_orig_mod.``."""


def _resolve(model: nn.Module, stage: str) -> str:
    """The module path of ``stage`` in ``model`` (a wrapper's prefix of :data:`_WRAPPERS` added where needed)."""
    if not isinstance(stage, str) or not stage:
        raise ValueError(f"a stage name must be a non-empty dotted module name; got {stage!r}")
    names = [name for name, _ in model.named_modules() if name]
    for path in (prefix + stage for prefix in _WRAPPERS):
        if path in names:
            return path
    unwrapped = [next(name[len(p):] for p in reversed(_WRAPPERS) if name.startswith(p)) for name in names]
    top = [name for name in dict.fromkeys(unwrapped) if name and "." not in name and f"{name}." not in _WRAPPERS]
    shown = ", ".join(top[:12]) + (", ..." if len(top) > 12 else "")
    raise ValueError(f"unknown stage {stage!r} of {type(model).__name__}; valid names are dotted submodule "
                     f"names such as: {shown or '(the model has no submodules)'}")

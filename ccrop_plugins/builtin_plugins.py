"""The built-in heatmap methods, localizers and samplers, registered like any third-party plugin (the extra rules
``ddt`` and ``ncut``: the ``ccrop_extras`` plugin)."""

from __future__ import annotations

from .heatmap_rules import channel_norm, channel_sum, distinctiveness
from .hookspecs import Register, hookimpl
from .localizers import BBoxLocalizer, ComponentsLocalizer
from .samplers import BetaSampler, GaussianSampler, UniformSampler


@hookimpl(trylast=True)
def ccrop_register_heatmaps(register: Register) -> None:
    register("channel_sum", channel_sum)
    register("channel_norm", channel_norm)
    register("distinctiveness", distinctiveness)


@hookimpl(trylast=True)
def ccrop_register_localizers(register: Register) -> None:
    register("bbox", BBoxLocalizer)
    register("components", ComponentsLocalizer)


@hookimpl(trylast=True)
def ccrop_register_samplers(register: Register) -> None:
    register("beta", BetaSampler)
    register("uniform", UniformSampler)
    register("gaussian", GaussianSampler)

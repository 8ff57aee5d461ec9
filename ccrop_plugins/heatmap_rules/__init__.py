"""Built-in heatmap rules, one map per image from its features ``(N, C, h, w)`` -> ``(N, h, w)``, larger = "more
object": :func:`channel_sum` (the paper), :func:`channel_norm`, :func:`distinctiveness` (docs/plugins.md)."""

from .basic import channel_norm, channel_sum, distinctiveness

__all__ = ["channel_norm", "channel_sum", "distinctiveness"]


def __getattr__(name: str) -> type:
    """The old path of ``DatasetPCA`` and ``NormalizedCut``, now in the ``ccrop_extras`` plugin; loaded on use only."""
    if name in ("DatasetPCA", "NormalizedCut"):
        import ccrop_extras
        return getattr(ccrop_extras, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The checks of ``ContrastiveCropHook``'s options, run when the config builds the hook: a bad value is named, with
what is allowed, before training starts rather than at the first refresh after the warm-up."""

from __future__ import annotations

import inspect
from numbers import Integral
from typing import Any, Sequence

from ccrop_plugins import HeatmapPipeline, RefreshSchedule, build_localizer, height_width


def refuse_unknown(hook_class: type, unknown: dict[str, Any]) -> None:
    """A misspelt config key: name the accepted ones (Python's own error does not)."""
    if unknown:
        accepted = [name for name in inspect.signature(hook_class.__init__).parameters
                    if name not in ("self", "unknown")]
        raise TypeError(f"ContrastiveCropHook got unknown arguments {sorted(unknown)}; "
                        f"it takes {', '.join(accepted)}")


def checked_schedule(warmup_epochs: Any, warmup_iters: Any, interval: Any) -> tuple[RefreshSchedule, str]:
    """The schedule and the name its warm-up was given by (``warmup_epochs``, the default, or ``warmup_iters``)."""
    if warmup_epochs is not None and warmup_iters is not None:
        raise ValueError(f"ContrastiveCropHook: give warmup_epochs or warmup_iters, not both; got "
                         f"warmup_epochs={warmup_epochs!r}, warmup_iters={warmup_iters!r}")
    warmup_name = "warmup_iters" if warmup_iters is not None else "warmup_epochs"
    warmup = warmup_iters if warmup_iters is not None else 100 if warmup_epochs is None else warmup_epochs
    try:
        return RefreshSchedule(warmup, interval), warmup_name
    except ValueError as error:
        raise ValueError(f"ContrastiveCropHook({warmup_name}={warmup!r}, interval={interval!r}): {error}") from None


def checked_max_boxes(localizer: str, max_boxes: Any) -> int:
    """The boxes kept per image: ``max_boxes``, or 1 for the single-box ``bbox`` rule."""
    if _count(max_boxes) is None or not 1 <= max_boxes <= 127:
        raise ValueError(f"ContrastiveCropHook: max_boxes must be an int in [1, 127]; got {max_boxes!r}")
    return 1 if localizer == "bbox" else int(max_boxes)


def _count(value: Any) -> int | None:
    """``value`` as an int if it is an integer of any kind (numpy's too), not a bool; else ``None``."""
    return int(value) if isinstance(value, Integral) and not isinstance(value, bool) else None


def checked_rules(localizer: str, threshold: Any, max_boxes: int, localizer_options: Any, heatmap: str,
                  heatmap_options: Any, image_size: int | Sequence[int] | None) -> tuple[Any, tuple | None]:
    """The localizer, built now (the heatmap rule and its options are checked too), and the refresh's image size."""
    for name, value in (("localizer_options", localizer_options), ("heatmap_options", heatmap_options)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"ContrastiveCropHook: {name} must be a dict of the rule's options (e.g. "
                            f"dict(core_level=0.3)) or None; got {value!r}")
    given = (localizer_options or {}).get("max_boxes", max_boxes)
    if localizer != "bbox" and given != max_boxes:  # the store keeps max_boxes: the rest would be cut, silently
        raise ValueError(f"ContrastiveCropHook: max_boxes={max_boxes!r} and localizer_options max_boxes={given!r} "
                         "disagree; give max_boxes once, as the hook's own argument (it sizes the box store)")
    try:
        built = build_localizer(localizer, max_boxes=max_boxes, threshold=threshold, options=localizer_options)
        HeatmapPipeline(heatmap, heatmap_options)  # the rule and its options, checked now, not after the warm-up
        return built, None if image_size is None else height_width(image_size, "image_size")
    except (ValueError, TypeError) as error:
        raise type(error)(f"ContrastiveCropHook: {error}") from None


def checked_loader_sizes(batch_size: Any, num_workers: Any) -> tuple[int | None, int | None]:
    """The refresh loader's ``batch_size`` and ``num_workers`` as ints (numpy integers too), or ``None``."""
    checked = []
    for name, value in (("batch_size", batch_size), ("num_workers", num_workers)):
        if value is not None and (_count(value) is None or value < (name == "batch_size")):
            raise ValueError(
                f"ContrastiveCropHook: {name} must be a {'positive' if name == 'batch_size' else 'non-negative'} "
                f"int or None; got {value!r}"
            )
        checked.append(None if value is None else int(value))
    return checked[0], checked[1]


def check_switches(**switches: Any) -> None:
    """The hook's on/off options, named when not ``True`` / ``False``."""
    for name, value in switches.items():
        if value not in (True, False):  # bool('no') is True: a text value would switch it on
            raise TypeError(f"ContrastiveCropHook: {name} must be True or False; got {value!r}")

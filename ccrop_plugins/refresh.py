"""The refresh pass both adapters call: images -> features -> heatmaps -> box sets -> store."""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Sized

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from .box_sets import BoxSets, best_first
from .box_store import BoxStore
from .eval_mode import eval_mode, module_of
from .features import unwrapped_model
from .heatmaps import HeatmapMethod, HeatmapPipeline, as_stages, features_to_localize
from .kept_pipelines import pipeline_for
from .plugins import build_localizer, callable_name
from .rank_exchange import (Share, all_reduce_totals, check_batch_counts, check_same_rows, check_shares_agree, gather,
                            layout, sharded)
from .sizes import height_width
from .threads import one_cpu_thread

FeatureFn = Callable[[Tensor], Any]
"""Images ``(B, C, H, W)`` -> feature maps ``(B, C', h, w)``, a tuple/list whose last item is, or a
dict ``{stage: (B, C_s, h_s, w_s)}``."""


@dataclass(frozen=True)
class RefreshStats:
    """What one refresh pass did, summed over all ranks: ``images`` localized (duplicates of padded distributed samplers
    included), ``seconds`` of wall time on this rank and ``images_per_second``, the ``mean_boxes`` per image, the
    ``mean_box_area`` (a fraction of the image), the ``fallback_fraction`` of images where nothing was found
    (whole-image box) and the store's ``version`` after the pass."""

    images: int
    seconds: float
    images_per_second: float
    mean_boxes: float
    mean_box_area: float
    fallback_fraction: float
    version: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def refresh_boxes(feature_fn: FeatureFn, batches: Iterable[Sequence[Tensor]], store: BoxStore,
                  localizer: str | Callable[[Tensor], BoxSets] = "components",
                  heatmap: str | HeatmapMethod | HeatmapPipeline = "channel_sum", *,
                  threshold: float | str | None = None, localizer_options: dict[str, Any] | None = None,
                  heatmap_options: dict[str, Any] | None = None, heatmap_size: Sequence[int] | None = None,
                  device: torch.device | str | None = None, progress: bool = True) -> RefreshStats:
    """Localize objects in every image of ``batches`` and write the box sets to ``store``; returns the pass's
    :class:`RefreshStats`. ``batches`` yields ``(images (B, C, H, W), indices (B,), ...)``, un-augmented (under
    ``torch.distributed``: each rank's shard; every rank ends with the same store and version); ``feature_fn``
    (:data:`FeatureFn`, a module in eval mode) -> ``heatmap`` rule -> ``localizer`` (``heatmaps (N, H, W) -> BoxSets``).

    A bad argument or batch is a ``TypeError`` / ``ValueError`` naming it (an index outside the store: ``IndexError``);
    an error leaves the store unchanged (under ``torch.distributed``: raised on every rank, the others' a
    ``RuntimeError`` naming it). Warns of 1x1 feature maps, of a pass where every image fell back to the whole-image
    box and of one that covered fewer distinct images than the store holds (every rank alike). Arguments, warnings
    and the distributed pass: docs/configuration.md, "refresh_boxes".
    """
    if not isinstance(store, BoxStore):
        raise TypeError(f"store must be a ccrop_plugins.BoxStore; got {type(store).__name__}")
    if not callable(feature_fn):
        raise TypeError(f"feature_fn must be callable (images -> features); got {type(feature_fn).__name__}")
    if not (isinstance(localizer, str) or callable(localizer)):
        raise TypeError("localizer must be a registered name or a callable heatmaps (N, H, W) -> BoxSets; "
                        f"got {type(localizer).__name__}")
    if progress not in (True, False):  # bool('no') is True: 'no' would show the bar
        raise TypeError(f"progress must be True or False; got {progress!r}")
    if not isinstance(batches, Iterable):
        raise TypeError("batches must be an iterable of (images (B, C, H, W), indices (B,), ...), e.g. a DataLoader; "
                        f"got {type(batches).__name__}")
    heatmap_size = None if heatmap_size is None else height_width(heatmap_size, "heatmap_size")
    for what, options in (("localizer_options", localizer_options), ("heatmap_options", heatmap_options)):
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"{what} must be a dict of options; got {type(options).__name__}")
    feature_fn = unwrapped_model(feature_fn)  # a DDP module's forward would broadcast its buffers per batch
    module = module_of(feature_fn)  # the module behind it (a bound method's too), None for a plain function
    distributed = dist.is_available() and dist.is_initialized()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if world_size > 1 and sharded(module):  # before any forward: a rank's extra one would abort the group
        check_batch_counts(batches, world_size)
    refresh, error = None, None
    try:  # under torch.distributed an error (also a plugin or a device one node lacks) is carried to the gather
        name = repr(localizer) if isinstance(localizer, str) else callable_name(localizer)
        localizer = build_localizer(localizer, max_boxes=store.max_boxes, threshold=threshold,
                                    options=localizer_options)
        device = _default_device(module) if device is None else checked_device(device)
        pipeline = pipeline_for(store, heatmap, heatmap_options)
        rule = pipeline.method
        rule = f"heatmap rule {rule!r}" if isinstance(rule, str) else f"heatmap rule {callable_name(rule)}"
        refresh = _Pass(feature_fn, store, localizer, name, pipeline, rule, heatmap_size, device, _module_dtype(module))
        started = time.perf_counter()
        # Given no iterable: tqdm.auto's bar calls iter() on one (a DataLoader's second iterator: its workers again)
        bar = tqdm(total=len(batches) if isinstance(batches, Sized) else None, desc="ccrop refresh", unit="batch",
                   disable=not progress or rank != 0, leave=False)
        with eval_mode(feature_fn), torch.no_grad(), bar:
            for batch in batches:  # not through the bar, which would hold each batch while the next one is made
                refresh.localize(batch)
                del batch  # freed before the next batch is made, so the next forward can reuse its memory
                bar.update()
    except BaseException as raised:  # KeyboardInterrupt too: the other ranks must not wait in the gather for ever
        if world_size == 1:
            raise
        error = raised
    if refresh is None:  # this rank failed before its pass began: the others learn it at the gather
        gather(world_size, error)
    box_sets, missing, version = refresh.write(world_size, error)
    seconds, count = time.perf_counter() - started, len(box_sets)
    rate = count / seconds if seconds > 0 else float("inf")
    stats = RefreshStats(images=count, seconds=seconds, images_per_second=rate,
                         mean_boxes=float(box_sets.counts.float().mean()),
                         mean_box_area=float(box_sets.areas().sum() / box_sets.counts.sum()),
                         fallback_fraction=float(box_sets.fallback.float().mean()), version=version)
    _warn_degenerate(refresh, stats, missing)
    return stats


@dataclass
class _Pass:
    """One refresh pass: :meth:`localize` batch by batch, then :meth:`write` every rank's box sets."""

    feature_fn: FeatureFn
    store: BoxStore
    localizer: Callable[[Tensor], BoxSets]
    localizer_name: str
    pipeline: HeatmapPipeline
    rule_name: str  # 'heatmap rule ...', for the note on its errors
    heatmap_size: Sequence[int] | None
    device: torch.device | str
    input_dtype: torch.dtype | None  # a module's float images are cast to it (None: a plain function's, as given)
    indices: list[Tensor] = field(default_factory=list)
    sets: list[BoxSets] = field(default_factory=list)
    totals: dict[Any, dict[str, Tensor]] = field(default_factory=dict)
    grids: set[tuple[Any, int, int]] = field(default_factory=set)
    image_size: tuple[int, ...] = ()
    non_finite: int = 0  # images of this rank whose features hold NaN or inf
    seen: int = 0  # images of this rank

    def localize(self, batch: Sequence[Tensor]) -> None:
        """One batch: images -> features -> heatmaps -> box sets, kept with the batch's indices."""
        if not isinstance(batch, (tuple, list)) or len(batch) < 2 or not isinstance(batch[0], Tensor):
            got = [type(item).__name__ for item in batch] if isinstance(batch, (tuple, list)) else type(batch).__name__
            raise ValueError(f"each batch must be (images (B, C, H, W), indices (B,), ...); got {got}")
        images = batch[0]  # its dataset indices are checked against the store before any work is done
        indices = self.store.checked_indices(batch[1], "the second item of each batch must be integer dataset indices",
                                             "the second item of each batch must be the image's dataset index")
        _check_distinct(indices)
        if images.ndim != 4 or images.shape[1] > 4 and images.shape[-1] in (1, 2, 3, 4):  # else the model's error
            last = " (channels last? pass images.permute(0, 3, 1, 2))" if images.ndim == 4 else ""
            raise ValueError(f"the images of each batch must be (B, C, H, W); got {tuple(images.shape)}{last}")
        if len(indices) != len(images):
            raise ValueError(f"a batch holds {len(images)} images but {len(indices)} indices (one dataset index each)")
        self.image_size = tuple(images.shape[-2:])
        try:
            # Float images in the module's dtype, as Lightning's precision plugins feed a bf16-true / 64-true model.
            dtype = self.input_dtype if images.is_floating_point() else None
            output = self.feature_fn(images.to(self.device, dtype, non_blocking=True))
        except Exception as error:  # e.g. torch's "Input type (unsigned char) and bias type (float) should be the same"
            error.add_note(_images_note(images, self.device, dtype))
            raise
        features = features_to_localize(output)
        try:
            stages = as_stages(features)
            _check_channels_first(stages, self.image_size)
        except (TypeError, ValueError) as error:  # (maps, logits): the logits were checked
            if features is not output:
                error.add_note(f"the feature function returned a {type(output).__name__} of {len(output)} items; "
                               "the refresh localizes with its last item")
            raise
        self.grids.update((stage, *values.shape[-2:]) for stage, values in stages.items())
        # One float32 sum per image and stage (no overflow from half precision): NaN and inf in a map stay in its sum.
        sums = [values.sum(dim=(1, 2, 3), dtype=torch.float32) for values in stages.values()]
        self.non_finite += int((~torch.isfinite(torch.stack(sums))).any(dim=0).sum())
        self.seen += len(images)
        with _named(self.rule_name):
            fitted = self.pipeline.fit(features)
        for stage, statistics in fitted.items():  # none unless it fits; on torch's threads
            target = self.totals.setdefault(stage, {})
            if target and layout(target) != layout(statistics):  # a sum would broadcast or drop a batch
                raise ValueError(f"the fit statistics of heatmap rule {self.pipeline.method!r} changed between "
                                 f"batches: {layout(target)}, then {layout(statistics)} (name: shape, dtype); "
                                 "every batch must give the same names and shapes")
            for key, value in statistics.items():
                target[key] = target[key] + value if key in target else value.clone()
        with one_cpu_thread(next(iter(stages.values())).device):
            size = self.heatmap_size if self.heatmap_size is not None else images.shape[-2:]
            with _named(self.rule_name):
                maps = self.pipeline(features, size=size).cpu()
            try:
                box_sets = self.localizer(maps)
            except Exception as error:  # e.g. BoxSets' "box 0 of sample 2 ...", whose sample is the batch's row
                error.add_note(f"raised by localizer {self.localizer_name} on the batch of dataset indices "
                               f"{indices[:8].tolist()}{' ...' if len(indices) > 8 else ''} (row i: sample i)")
                raise
        if not isinstance(box_sets, BoxSets):
            raise TypeError(f"localizer {self.localizer_name} returned {type(box_sets).__name__}; expected BoxSets "
                            "(ccrop_plugins.BoxSets, e.g. BoxSets.from_lists(boxes))")
        if len(box_sets) != len(images):
            raise ValueError(f"localizer {self.localizer_name} returned {len(box_sets)} box sets for {len(images)} "
                             "heatmaps; expected one per image")
        self.sets.append(box_sets)
        self.indices.append(indices)

    def _share(self) -> Share:
        """What this rank sends the others at the end of the pass (:class:`Share`)."""
        indices, box_sets = _concatenate(self.indices, self.sets, self.store.max_boxes)
        return Share(indices, box_sets, {stage: layout(statistics) for stage, statistics in self.totals.items()},
                      (self.store.num_samples, self.store.max_boxes), self.store.version,
                      self.rule_name + (" (with dataset statistics)" if self.pipeline.fits else ""),
                      sorted(self.grids, key=str), self.image_size, self.non_finite, self.seen)

    def write(self, world_size: int, error: BaseException | None = None) -> tuple[BoxSets, Tensor, int]:
        """Every rank's box sets and summed statistics, checked, to the rule (``finalize``), then to the store (a
        raising ``finalize`` leaves it unchanged). Returns the box sets, the store indices no rank covered and the new
        version: one more than the highest of the ranks' versions (ranks sharing one store's memory count one pass)."""
        if world_size > 1:
            gathered = gather(world_size, error, self._share)
            check_shares_agree(gathered)
            indices, box_sets = _concatenate([g.indices for g in gathered], [g.box_sets for g in gathered],
                                             self.store.max_boxes)
            totals = all_reduce_totals(self.totals, [g.layout for g in gathered])
            version = max(g.version for g in gathered) + 1
            # Every rank's grids, with the image size of the first rank that has a 1x1 one: the same warning on every
            # rank, also on one without images.
            self.grids.update(grid for g in gathered for grid in g.grids)
            self.image_size = next((g.image_size for g in gathered if any(h * w == 1 for _, h, w in g.grids)),
                                   self.image_size)
            self.non_finite, self.seen = sum(g.non_finite for g in gathered), sum(g.seen for g in gathered)
        else:
            (indices, box_sets), totals = _concatenate(self.indices, self.sets, self.store.max_boxes), self.totals
            version = self.store.version + 1
        if len(indices) == 0:
            raise ValueError("refresh_boxes got no images: the batches were empty (an empty dataset, or a loader "
                             "with drop_last=True and fewer images than one batch); the store is unchanged")
        _check_distinct(indices, world_size - 1)
        covered = torch.zeros(self.store.num_samples, dtype=torch.bool)  # once per pass, all ranks' indices
        covered[indices] = True
        missing = (~covered).nonzero().flatten()
        if world_size > 1 and len(missing):
            check_same_rows(self.store, missing, world_size)
        try:  # nothing to give a rule without statistics
            self.pipeline.finalize(totals)
        except Exception as raised:
            raised.add_note(f"refresh_boxes: the heatmap rule's finalize raised; the box store is unchanged "
                            f"(version {self.store.version})")
            raise
        # Set, not incremented: ranks sharing the store's memory write the same rows and the same version.
        self.store.update(indices, box_sets, new_version=False)
        self.store._set_version(version)
        return box_sets, missing, version


def _images_note(images: Tensor, device: torch.device | str, dtype: torch.dtype | None) -> str:
    """What the feature function was given (``dtype``: the one float images were cast to), for an error raised inside
    it; the float-images hint only where the images' dtype may be the cause: not floating point."""
    moved = f"moved to {device}" + (f", cast to the module's {dtype}" if dtype not in (None, images.dtype) else "")
    return (f"refresh_boxes: raised by the feature function on a batch of images of shape {tuple(images.shape)}, "
            f"dtype {images.dtype}, on {images.device} ({moved})" + ("" if images.is_floating_point() else "; the "
            "refresh loader must yield float images (B, C, H, W) as the model takes them, e.g. ToTensor() or ToImage() "
            "+ ToDtype(torch.float32, scale=True), not uint8 or int64 ones"))


@contextmanager
def _named(what: str) -> Iterator[None]:
    """Add a note naming ``what`` (a plugin's rule) to an error raised in the block."""
    try:
        yield
    except Exception as error:
        if not any(what in text for text in (str(error), *getattr(error, "__notes__", ()))):
            error.add_note(f"raised by {what}")
        raise


def _check_channels_first(stages: Mapping[Any, Tensor], image_size: tuple[int, ...]) -> None:
    """Refuse maps laid out ``(B, h, w, C)`` (a Swin stage's, a timm ViT's NHWC output), which read as ``(B, C, h, w)``
    give a ``w x C`` grid: their second and third sides fit the images' shape, the last two do not (within 4x)."""
    height, width = image_size

    def fits(h: int, w: int) -> bool:
        return abs(math.log((h / w) / (height / width))) <= math.log(4)

    for stage, values in stages.items():
        _, channels, h, w = values.shape
        if not fits(h, w) and fits(channels, h):
            where = "features" if stage is None else f"features of stage {stage!r}"
            raise ValueError(f"{where} {tuple(values.shape)} look channels-last (B, h, w, C): a {channels} x {h} grid "
                             f"fits the {height} x {width} images, a {h} x {w} one does not; return them as (B, C, h, "
                             "w), e.g. features.permute(0, 3, 1, 2)")


def _module_dtype(module: nn.Module | None) -> torch.dtype | None:
    """The dtype of the first floating point parameter of the feature function's ``module``; ``None`` without one."""
    parameters = module.parameters() if module is not None else ()
    return next((parameter.dtype for parameter in parameters if parameter.is_floating_point()), None)


def checked_device(device: torch.device | str | int) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine, or a ``ValueError`` naming it (``'gpu'``, or
    ``'cuda'`` / ``'mps'`` without one, fail only at the first batch otherwise: check where the device is
    configured)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1', 'mps'): "
                         f"{error}") from None
    count = torch.cuda.device_count()  # 0 without a usable GPU
    if parsed.type == "cuda" and (parsed.index or 0) >= count:
        where = f"this machine has {count} CUDA device(s)"
        where = f"no CUDA device is available here ({where})" if count == 0 else where
        raise ValueError(f"device {device!r}: {where}; use device='cpu' or leave device out (the feature function's "
                         "own device)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():  # e.g. a Mac's config run on Linux
        raise ValueError(f"device {device!r}: no MPS device (Apple's GPU) is available here; use device='cpu' or "
                         "leave device out (the feature function's own device)")
    return parsed


def _default_device(module: nn.Module | None) -> torch.device:
    """The parameters' device of the feature function's ``module``, else the CPU."""
    parameters = module.parameters() if module is not None else ()
    return next((parameter.device for parameter in parameters), torch.device("cpu"))


def _check_distinct(indices: Tensor, padding: int = 0) -> None:
    """Refuse class labels passed as indices: at most half as many distinct values as images (from 4 images), not
    counting the ``padding`` repeats of a padded ``DistributedSampler`` (at most ``world_size - 1`` in a pass)."""
    if len(indices) < 4:
        return
    distinct = int(indices.unique().numel())
    if distinct * 2 <= len(indices) - padding:
        raise ValueError(f"refresh_boxes got {len(indices)} images but only {distinct} distinct indices "
                         f"(e.g. {indices[:8].tolist()}): the second item of each batch must be the image's dataset "
                         "index, not its class label; make the dataset return (image, index)")


def _warn_degenerate(refresh: _Pass, stats: RefreshStats, missing: Tensor) -> None:
    tiny = sorted({str(stage) for stage, h, w in refresh.grids if h * w == 1})
    if tiny:
        where = ", ".join("feature maps" if s == "None" else f"maps of stage {s!r}" for s in tiny)
        fused = {str(stage) for stage, h, w in refresh.grids if h * w > 1} - set(tiny)  # stages that locate
        what = (f": they add nothing to the fused heatmap, whose boxes come from stage(s) {sorted(fused)}; leave them "
                "out" if fused else ", so every box is the whole image; take an earlier stage (ccrop_plugins."
                "stage_features)")
        warnings.warn(f"refresh_boxes: the {where} are 1x1 for {refresh.image_size} images{what}, larger images, or a "
                      "backbone with less downsampling", UserWarning, stacklevel=3)
    if stats.fallback_fraction >= 1.0:
        warnings.warn(f"refresh_boxes: all {stats.images} images fell back to the whole-image box "
                      f"(fallback fraction {stats.fallback_fraction:.2f}): no heatmap had contrast or a cell above "
                      "the threshold; check the stage, the heatmap rule and the threshold, and that the features are "
                      "finite (NaN or inf: a diverged model?)", UserWarning, stacklevel=3)
    if len(missing):
        total = refresh.store.num_samples
        shown = ", ".join(map(str, missing[:5].tolist())) + (", ..." if len(missing) > 5 else "")
        warnings.warn(f"refresh_boxes: this pass localized {total - len(missing)} of the store's {total} images "
                      f"(distinct indices, all ranks together); the other {len(missing)} (indices {shown}) keep the "
                      "boxes they had, none before a first pass (the whole-image box: a RandomResizedCrop crop for "
                      "the whole run if every pass skips them). Likely causes: a loader with drop_last=True, a Subset, "
                      "or a sampler that skips images; refresh with an un-shuffled loader over the whole dataset with "
                      "drop_last=False (under torch.distributed: RefreshSampler, one shard per rank)",
                      UserWarning, stacklevel=3)
    if refresh.non_finite:
        warnings.warn(f"refresh_boxes: the features of {refresh.non_finite} of the {refresh.seen} images this pass "
                      "localized hold NaN or inf (a diverged model? check the loss and the learning rate); their "
                      "heatmaps carry no location, so their boxes are the whole image (a RandomResizedCrop crop) "
                      "until a refresh on finite features", UserWarning, stacklevel=3)


def _concatenate(indices: Sequence[Tensor], sets: Sequence[BoxSets], max_boxes: int) -> tuple[Tensor, BoxSets]:
    """Join per-batch box sets, padded (or cut) to a common ``K <= max_boxes``."""
    if not sets:
        return torch.zeros(0, dtype=torch.int64), BoxSets.from_lists([])
    k = min(max(s.max_boxes for s in sets), max_boxes)
    sets = [BoxSets(*best_first(s.boxes, s.scores, s.counts), s.counts, s.fallback) if s.max_boxes > k else s
            for s in sets]  # the cut keeps the first k: make them the best (a localizer need not sort them)

    def joined(name: str) -> Tensor:  # (N, K, ...) cut or zero-padded to (N, k, ...)
        parts = [getattr(s, name)[:, :k] for s in sets]
        return torch.cat([torch.cat([p, p.new_zeros(len(p), k - p.shape[1], *p.shape[2:])], dim=1) for p in parts])

    counts, fallback = torch.cat([s.counts.clamp(max=k) for s in sets]), torch.cat([s.fallback for s in sets])
    return torch.cat(list(indices)), BoxSets(joined("boxes"), joined("scores"), counts, fallback)

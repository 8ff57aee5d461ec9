"""What the ranks of a distributed refresh pass exchange and check: each rank's :class:`Share` of the pass, the
gather that carries one rank's error to every rank, the fitted statistics summed over the ranks, and the checks that
the ranks agree (their stores, their heatmap rule, the rows a pass leaves out, a sharded model's batch counts).
:func:`~ccrop_plugins.refresh_boxes` calls them; each but :func:`layout` is collective or reads what a collective
gathered, so every rank calls it alike."""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping, NamedTuple, Sized

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .box_sets import BoxSets
from .box_store import BoxStore


class Share(NamedTuple):
    """One rank's part of a distributed pass, all-gathered: its ``indices`` (M,) and ``box_sets``, the ``layout`` of
    its fitted statistics (a rank without images sums zeros), its store's ``(num_samples, max_boxes)`` and
    ``version``, its heatmap ``rule`` (every rank must run the same), its feature grids ``(stage, h, w)``, its
    ``image_size`` and its counts of images with non-finite features and of images (every rank warns alike)."""

    indices: Tensor
    box_sets: BoxSets
    layout: dict
    store_size: tuple[int, int]
    version: int
    rule: str
    grids: list[tuple[Any, int, int]]
    image_size: tuple[int, ...]
    non_finite: int
    seen: int


def check_shares_agree(shares: list[Share]) -> None:
    """Refuse, on every rank, ranks whose stores differ in length or ``max_boxes`` (they would end with different
    stores) or whose heatmap rules differ (a fitted rule's sums would be read as those of a rank without images)."""
    if len({share.store_size for share in shares}) > 1:
        shown = "; ".join(f"rank {rank}: {share.store_size[0]} images, max_boxes {share.store_size[1]}"
                          for rank, share in enumerate(shares))
        raise ValueError(f"refresh_boxes: the ranks' box stores differ ({shown}); every rank must refresh a store of "
                         "the same dataset length and max_boxes (one dataset, sharded by rank); the stores are "
                         "unchanged")
    if len({share.rule for share in shares}) > 1:
        shown = "; ".join(f"rank {rank}: {share.rule}" for rank, share in enumerate(shares))
        raise ValueError(f"refresh_boxes: the ranks' heatmap rules differ ({shown}); every rank must refresh with the "
                         "same rule; the stores are unchanged")


def gather(world_size: int, error: BaseException | None, part: Callable[[], tuple] | None = None) -> list[tuple]:
    """Every rank's ``part()`` (its share of the pass). This rank's ``error`` (or ``part``'s) travels in its place, as
    text: then every rank raises, that rank its own error, the others a ``RuntimeError`` naming it and the error,
    instead of waiting in the gather for ever."""
    mine: Any = None
    if error is None:
        try:
            mine = part()
        except Exception as raised:
            error = raised
    gathered: list[Any] = [None] * world_size
    try:
        dist.all_gather_object(gathered, _as_text(error) if error is not None else mine)
    except Exception as failed:  # a peer died, or timed out: this rank's own error, if any, is the one to read
        if error is None:
            failed.add_note(f"refresh_boxes: the gather of the pass's box sets failed on rank {dist.get_rank()} of "
                            f"{world_size}: every rank must call refresh_boxes (it is collective); a rank that skipped "
                            "the pass (e.g. 'if rank == 0'), or died, leaves the others waiting here until the process "
                            "group's timeout")
            raise
        raise error
    if error is not None:
        error.add_note(f"refresh_boxes: raised on rank {dist.get_rank()} of {world_size}; every rank stops the pass, "
                       "the box store unchanged")
        raise error
    failed = [f"on rank {rank} of {world_size}: {g}" for rank, g in enumerate(gathered) if isinstance(g, str)]
    if failed:
        raise RuntimeError(f"refresh_boxes failed {'; '.join(failed)}; every rank stops the pass, the box store "
                           "unchanged")
    return gathered


def _as_text(error: BaseException) -> str:
    """``error`` as the other ranks read it: type, message and notes (joined with '; ')."""
    notes = getattr(error, "__notes__", None) or []
    return "; ".join([f"{type(error).__name__}: {error}" if str(error) else type(error).__name__, *map(str, notes)])


def check_same_rows(store: BoxStore, rows: Tensor, world_size: int) -> None:
    """Refuse, on every rank, stores whose ``rows`` (the images no rank localized in this pass, the same on every rank)
    hold different boxes: they would stay different after the pass. Collective: one ``all_gather_object``."""
    digest = hashlib.sha1()
    for values in (store.boxes[rows], store.scores[rows], store.counts[rows]):
        digest.update(values.numpy().tobytes())
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, (digest.hexdigest(), store.version))
    if len({rank_digest for rank_digest, _ in gathered}) > 1:
        shown = ", ".join(map(str, rows[:5].tolist())) + (", ..." if len(rows) > 5 else "")
        raise ValueError(f"refresh_boxes: the ranks' box stores hold different boxes for the {len(rows)} images this "
                         f"pass does not localize (indices {shown}; store versions {[v for _, v in gathered]}, rank 0, "
                         "1, ...): they would stay different after it (one rank restored boxes the others did not?); "
                         "give every rank the same boxes (load_state_dict on every rank) or refresh over the whole "
                         "dataset; the stores are unchanged")


def sharded(module: nn.Module | None) -> bool:
    """Whether the feature function's ``module`` holds FSDP-sharded modules (``FullyShardedDataParallel``,
    ``fully_shard``'s ``FSDPModule``), whose every forward gathers parameters from all ranks."""
    modules = module.modules() if module is not None else ()
    return any(c.__name__ in ("FullyShardedDataParallel", "FSDPModule") for m in modules for c in type(m).__mro__)


def check_batch_counts(batches: Any, world_size: int) -> None:
    """Refuse, on every rank, loaders whose batch counts differ between the ranks (a sharded model's ranks must run
    as many forwards: else gloo aborts with 'Received data size doesn't match', NCCL hangs)."""
    counts: list[Any] = [None] * world_size
    dist.all_gather_object(counts, len(batches) if isinstance(batches, Sized) else None)
    if len(set(counts)) > 1:
        raise ValueError(f"refresh_boxes: the model holds FSDP-sharded modules, whose every forward gathers parameters "
                         f"from all ranks, but the ranks' loaders hold {counts} batches (rank 0, 1, ...); every rank "
                         "must run as many forwards: make the dataset length a multiple of world_size x batch_size, "
                         "or refresh with an unsharded copy of the model")


def layout(statistics: Mapping[str, Tensor]) -> dict[str, tuple]:
    """``{name: (shape, dtype)}`` of fit statistics: what must agree between batches and ranks."""
    return {key: (tuple(value.shape), value.dtype) for key, value in sorted(statistics.items())}


def all_reduce_totals(totals: dict[Any, dict[str, Tensor]], layouts: list[dict]) -> dict[Any, dict[str, Tensor]]:
    """Sum fitted statistics over ranks, one ``all_reduce`` per tensor in the same order on every rank; a rank that
    fitted nothing (no images) adds zeros of the others' layout. Ranks whose layouts differ: ``ValueError`` on all."""
    fitted = [layout for layout in layouts if layout]
    if not fitted:
        return totals
    if any(layout != fitted[0] for layout in fitted):  # one all_reduce per tensor would mismatch: a hang or abort
        raise ValueError(f"the fit statistics of the heatmap rule differ between ranks: {layouts} "
                         "({stage: {name: (shape, dtype)}} per rank); every rank's fit must give the same names and "
                         "shapes")
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    out = {stage: {key: totals[stage][key].to(device) if stage in totals else torch.zeros(shape, dtype=dtype,
                                                                                           device=device)
                   for key, (shape, dtype) in fitted[0][stage].items()} for stage in sorted(fitted[0], key=str)}
    for value in (value for summed in out.values() for value in summed.values()):
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return out

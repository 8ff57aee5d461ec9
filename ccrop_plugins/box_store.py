"""The box sets of a whole dataset, in shared memory, readable from every DataLoader worker."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from .box_sets import BoxSets, best_first, validate_box_sets
from .sizes import as_tensor, checked_int, integer

STATE_KEYS = ("num_samples", "max_boxes", "version", "boxes", "scores", "counts")
MAX_BOXES = 127  # counts are int8
# Unsigned dtypes torch cannot compare (numpy's uint16 / uint32 / uint64 indices): read as Python ints.
_WIDE_UNSIGNED = frozenset(getattr(torch, f"uint{bits}") for bits in (16, 32, 64) if hasattr(torch, f"uint{bits}"))


class BoxStore:
    """Box sets for ``num_samples`` dataset indices, at most ``max_boxes`` each, in shared memory.

    DataLoader workers read it by handle and see an :meth:`update` from their next batch (docs/configuration.md).
    Tensors: ``boxes`` float32 ``(N, K, 4)`` (normalised ``x0, y0, x1, y1``), ``scores`` float32 ``(N, K)``,
    ``counts`` int8 ``(N,)``. ``ValueError`` for a size that is not an integer ``>= 1`` (``max_boxes <= 127``).
    """

    def __init__(self, num_samples: int, max_boxes: int = 4) -> None:
        self.num_samples = checked_int(num_samples, "num_samples (the dataset length)", 1)
        self.max_boxes = checked_int(max_boxes, "max_boxes", 1, MAX_BOXES)
        try:
            self.boxes = torch.zeros(self.num_samples, self.max_boxes, 4).share_memory_()
            self.scores = torch.zeros(self.num_samples, self.max_boxes).share_memory_()
            self.counts = torch.zeros(self.num_samples, dtype=torch.int8).share_memory_()
            self._version = torch.zeros(1, dtype=torch.int64).share_memory_()
        except RuntimeError as error:  # a small /dev/shm (Docker's default is 64 MiB): torch's message names no size
            # float32 boxes (N, K, 4) and scores (N, K), int8 counts (N,), an int64 version
            needed = (self.num_samples * (self.max_boxes * 5 * 4 + 1) + 8) / 2**20
            raise RuntimeError(f"{self!r} needs {needed:.1f} MiB of shared memory{_shm_free()}, which torch could not "
                               f"allocate ({error}); give the machine or container more (docker run --shm-size=1g), or "
                               "use a smaller max_boxes") from error

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("num_samples", "max_boxes") and name in self.__dict__:  # the tensors would keep their shapes
            raise AttributeError(f"BoxStore.{name} is fixed when the store is made ({getattr(self, name)}); make a new "
                                 "BoxStore (load_state_dict of this one's state_dict() keeps its best max_boxes)")
        super().__setattr__(name, value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy (``copy.deepcopy``, ``pickle``, ``torch.load``) is a store of its own in shared memory, so DataLoader
        workers forked after it see its updates (a spawned worker's store, passed by handle, is the same memory)."""
        self.__dict__.update(state)
        for tensor in (self.boxes, self.scores, self.counts, self._version):
            tensor.share_memory_()

    @property
    def version(self) -> int:
        """How many refreshes have landed (0: warm-up)."""
        return int(self._version[0])

    def __len__(self) -> int:
        return self.num_samples

    def _check_index(self, index: int, hint: str = "size the store to the dataset") -> int:
        """``index`` (an integer of any kind) as an int; ``IndexError`` naming it, the store size and ``hint``,
        ``TypeError`` for a float or bool (never truncated to another sample)."""
        number = integer(index)
        if number is None:
            raise TypeError(f"sample index must be an integer; got {index!r} ({type(index).__name__})")
        if not 0 <= number < self.num_samples:
            raise IndexError(f"sample index {number} is outside the box store of {self.num_samples} samples "
                             f"(allowed: 0 to {self.num_samples - 1}); {hint}")
        return number

    def checked_indices(self, indices: Any, must: str = "sample indices must be integers",
                        hint: str = "size the store to the dataset") -> Tensor:
        """Sample ``indices`` (M,) of any integer kind as int64 on the CPU; ``TypeError(f"{must}; got ...")`` for
        floats, bools or text (never truncated), ``IndexError`` naming the first outside the store and ``hint``."""
        try:
            values = as_tensor(indices).reshape(-1).cpu()
        except (TypeError, ValueError, RuntimeError):  # text, None, ragged lists
            raise TypeError(f"{must}; got {indices!r}") from None
        if values.numel() and (values.dtype == torch.bool or values.is_floating_point() or values.is_complex()):
            raise TypeError(f"{must}; got {values.dtype} values such as {values[:4].tolist()}")
        if values.dtype in _WIDE_UNSIGNED:  # as int64 (a value past it is past the store too)
            numbers = values.tolist()
            if (past := next((number for number in numbers if number >= self.num_samples), None)) is not None:
                self._check_index(past, hint)
            values = torch.tensor(numbers, dtype=torch.int64)
        outside = values[(values < 0) | (values >= self.num_samples)]
        if len(outside):
            self._check_index(int(outside[0]), hint)
        return values.long()

    def get(self, index: int) -> tuple[Tensor, Tensor] | None:
        """``(boxes (k, 4), scores (k,))`` of sample ``index`` in the localizer's order, or ``None`` before it has
        any."""
        index = self._check_index(index)
        count = int(self.counts[index])
        return (self.boxes[index, :count].clone(), self.scores[index, :count].clone()) if count else None

    def update(self, indices: Tensor | list[int], box_sets: BoxSets, *, new_version: bool = True) -> None:
        """Write the box sets of dataset ``indices`` (M,) (their best ``max_boxes`` boxes) and, by default,
        count one refresh; ``IndexError`` / ``TypeError`` / ``ValueError`` for bad indices, boxes or scores."""
        if not isinstance(box_sets, BoxSets):
            raise TypeError(f"box_sets must be a ccrop_plugins.BoxSets; got {type(box_sets).__name__}")
        if new_version not in (True, False):  # bool('no') is True: 'no' would count a refresh
            raise TypeError(f"new_version must be True or False; got {new_version!r}")
        indices = self.checked_indices(indices)
        if len(indices) != len(box_sets):
            raise ValueError(f"got {len(indices)} indices for {len(box_sets)} box sets")
        boxes, scores, counts = self._padded(box_sets.boxes, box_sets.scores, box_sets.counts, indices)
        # Boxes before counts, padding rows repeating the first box: a concurrent reader always gets valid boxes.
        self.boxes[indices], self.scores[indices], self.counts[indices] = boxes, scores, counts
        if new_version:
            self._version += 1

    def _set_version(self, version: int) -> None:
        """Make the store's version ``version`` (an integer ``>= 0``; ``ValueError`` naming it otherwise): the refresh
        pass sets the version all ranks agreed on, which ranks sharing this store's memory may each set alike."""
        self._version.fill_(checked_int(version, "box store version", 0))

    def _padded(self, boxes: Tensor, scores: Tensor, counts: Tensor, samples: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``boxes`` (M, K, 4), ``scores`` (M, K), ``counts`` (M,) validated (``ValueError`` naming the sample in
        ``samples`` (M,)) as the store's rows: the best ``max_boxes``, padding repeating the first box, score 0."""
        if boxes.shape[1] == 0:  # (0, 0, 4): box sets of no image and no slot; one padding slot to cut
            boxes, scores = boxes.new_zeros(len(boxes), 1, 4), scores.new_zeros(len(scores), 1)
        keep = min(boxes.shape[1], self.max_boxes)
        given, boxes, scores, counts = boxes, boxes.float().cpu(), scores.float().cpu(), counts.long().cpu()  # GPU too
        validate_box_sets(boxes, counts, samples, scores, given)
        if boxes.shape[1] > keep:  # the cut keeps the best (a stable sort); uncut rows keep their order, as given
            boxes, scores = best_first(boxes, scores, counts)
        boxes, scores, counts = boxes[:, :keep], scores[:, :keep], counts.clamp(max=keep)
        valid = torch.arange(keep) < counts[:, None]
        first = torch.where((counts > 0)[:, None], boxes[:, 0], torch.zeros(()))
        padded_boxes = first[:, None].repeat(1, self.max_boxes, 1)
        padded_boxes[:, :keep] = torch.where(valid[..., None], boxes, first[:, None])
        padded_scores = torch.zeros(len(counts), self.max_boxes)
        padded_scores[:, :keep] = torch.where(valid, scores, 0.0)  # NaN padding of a saved state too
        return padded_boxes, padded_scores, counts.to(torch.int8)

    def state_dict(self) -> dict[str, Any]:
        """A checkpointable copy: ``boxes``, ``scores``, ``counts``, ``version`` and the sizes."""
        return {"num_samples": self.num_samples, "max_boxes": self.max_boxes, "version": self.version,
                "boxes": self.boxes.clone(), "scores": self.scores.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` in place (workers see it), keeping the best ``max_boxes``; all or nothing: a
        bad state raises (``KeyError``, ``TypeError`` or ``ValueError`` naming the problem), the store unchanged."""
        if not isinstance(state, Mapping):
            raise TypeError(f"box store state must be a dict (from state_dict()); got {type(state).__name__}")
        missing = set(STATE_KEYS) - set(state)
        if missing:
            raise KeyError(f"box store state lacks {sorted(missing)}")
        if integer(state["num_samples"]) is None:  # '4' or 4.0 is no count of another dataset: name the type
            raise ValueError(f"box store state holds {state['num_samples']!r} samples but this store has "
                             f"{self.num_samples}: num_samples must be an integer >= 1 (the dataset length); got "
                             f"{type(state['num_samples']).__name__}")
        if integer(state["num_samples"]) != self.num_samples:
            raise ValueError(f"box store state holds {state['num_samples']!r} samples but this store has "
                             f"{self.num_samples}; was the checkpoint made on another dataset?")
        k = checked_int(state["max_boxes"], "box store state: max_boxes", 1, MAX_BOXES)
        version = checked_int(state["version"], "box store state: version", 0)
        n = self.num_samples
        boxes, scores, counts = (_state_tensor(state, key, shape, floating=key != "counts")
                                 for key, shape in (("boxes", (n, k, 4)), ("scores", (n, k)), ("counts", (n,))))
        outside = (counts < 0) | (counts > k)
        if outside.any():
            i = int(outside.nonzero()[0])
            raise ValueError(f"box store state: count of sample {i} must lie in [0, {k}]; got {int(counts[i])}")
        boxes, scores, counts = self._padded(boxes, scores, counts, torch.arange(n))
        # Validated: from here on nothing can fail. Counts last, as in update().
        self.counts.zero_()
        self.boxes.copy_(boxes)
        self.scores.copy_(scores)
        self.counts.copy_(counts)
        self._version.fill_(version)

    def summary(self) -> dict[str, float]:
        """Mean boxes per filled sample, mean box area (fraction of the image) and the fill fraction."""
        filled = self.counts > 0
        if not filled.any():
            return {"filled_fraction": 0.0, "mean_boxes": 0.0, "mean_box_area": 0.0}
        counts = self.counts[filled].long()
        areas = (self.boxes[filled, :, 2:] - self.boxes[filled, :, :2]).prod(-1)
        areas = areas[torch.arange(self.max_boxes) < counts[:, None]]
        return {"filled_fraction": float(filled.float().mean()), "mean_boxes": float(counts.float().mean()),
                "mean_box_area": float(areas.mean())}

    def __repr__(self) -> str:
        version = f", version={self.version}" if hasattr(self, "_version") else ""  # not yet when allocation failed
        return f"BoxStore(num_samples={self.num_samples}, max_boxes={self.max_boxes}{version})"


def _shm_free() -> str:
    """`` (/dev/shm has N MiB free)`` where that folder exists, else ``""`` (error messages only)."""
    try:
        stats = os.statvfs("/dev/shm")
    except (OSError, AttributeError):  # no /dev/shm (macOS, Windows)
        return ""
    return f" (/dev/shm has {stats.f_bavail * stats.f_frsize / 2**20:.1f} MiB free)"


def _state_tensor(state: dict[str, Any], key: str, shape: tuple[int, ...], *, floating: bool) -> Tensor:
    """``state[key]`` as a tensor of ``shape`` and a float (``floating``) or integer dtype, or an error naming it."""
    try:
        tensor = as_tensor(state[key])
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"box store state: {key} must be a tensor; got {type(state[key]).__name__}") from None
    try:  # a checkpoint loaded onto a GPU (mmengine's resume maps it to the current device): the store's rows are CPU
        tensor = tensor.cpu()
    except (NotImplementedError, RuntimeError):  # the meta device: no values to restore
        raise TypeError(f"box store state: {key} holds no values (a tensor on device {tensor.device}); "
                        "load the checkpoint with its data, e.g. torch.load(path, map_location='cpu')") from None
    if tensor.is_floating_point() != floating or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"box store state: {key} must have {'a floating point' if floating else 'an integer'} dtype; "
                        f"got {tensor.dtype}")
    if tuple(tensor.shape) != shape:
        raise ValueError(f"box store state: {key} must have shape {shape}; got {tuple(tensor.shape)} "
                         "(truncated or from another store?)")
    return tensor


def images_digest(paths: Sequence[str]) -> str:
    """A digest of the image files a store's rows belong to, ``paths`` in dataset index order, each cut at the
    files' common folder (a moved folder keeps its digest). The adapters save it beside a store's state: a resumed
    run whose digest differs holds other images under the same indices (renamed, added or removed files)."""
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Iterable):
        raise TypeError(f"images_digest takes a list of image paths in dataset index order; got {paths!r}")
    try:
        paths = [os.fsdecode(path) for path in paths]  # pathlib paths digest as their text
    except TypeError as error:
        raise TypeError(f"images_digest: every path must be a str or os.PathLike; {error}") from None
    prefix = os.path.commonprefix([min(paths), max(paths)]) if paths else ""
    cut = max(prefix.rfind("/"), prefix.rfind(os.sep)) + 1
    return hashlib.sha1("\n".join(path[cut:] for path in paths).encode()).hexdigest()


def other_images(state: Any, num_samples: int, saved_digest: str | None = None, digest: str | None = None
                 ) -> str | None:
    """What a saved :meth:`BoxStore.state_dict` ``state`` was made on when it is not this dataset of ``num_samples``
    images: another count, or (its :func:`images_digest` ``digest`` against the saved ``saved_digest``) other files or
    another order; ``None`` when it fits or cannot tell (a malformed state is left to ``load_state_dict``)."""
    saved = integer(state.get("num_samples")) if isinstance(state, Mapping) else None
    if saved is not None and saved != num_samples:
        return f"a dataset of {saved} images, and this one has {num_samples} (images added or removed?)"
    if None not in (saved_digest, digest) and saved_digest != digest:
        return f"another list of images (the same count, {num_samples}, but other files or another order)"
    return None

"""The box store in checkpoints: what is saved, what a resume restores, and the refresh it lacks.

A saved state holds ``store`` (the store's ``state_dict``: boxes, scores, counts, version),
``last_refresh_epoch`` (after which 0-based epoch the store's latest refresh ran; ``None``: unknown) and
``images`` (the digest of the image files, :func:`image_list_digest`; ``None`` without file names). States
of the store alone (the callback's version 1) still load. Boxes made on another list of images (another
count, or other files) are ignored with a warning and made afresh.
"""

from __future__ import annotations

import logging
import operator
import warnings
from typing import Any, Callable, Iterable

import numpy as np
from torch.utils.data import ConcatDataset, Subset

from ccrop_plugins import (BoxStore, RefreshSchedule, RefreshStats, check_same_on_every_rank, images_digest,
                           other_images)

from .indexed_dataset import IndexedDataset, names_in_order
from .refresh_loader import RefreshImages
from .schedule import checked_epoch

logger = logging.getLogger("ccrop_lightly")


class RefresherCheckpoint:
    """:class:`~ccrop_lightly.BoxRefresher`'s checkpoint half: ``state_dict``, ``load_state_dict`` and the
    catch-up refresh on resume. It uses the refresher's ``store``, ``schedule``, ``loader``, ``refresh()`` and
    ``agree_schedule()``."""

    store: BoxStore
    schedule: RefreshSchedule
    loader: Iterable[Any]
    refresh: Callable[[], RefreshStats]
    agree_schedule: Callable[[], None]
    last_refresh_epoch: int | None
    _images_digest: str | None | bool

    def catch_up(self, start_epoch: int) -> RefreshStats | None:
        """On resume, before epoch ``start_epoch`` (0-based) runs: refresh now if the schedule had a refresh due
        before it that the store lacks (a checkpoint without boxes, or a run that ended before a refresh that this
        longer one has passed); return its stats, or ``None``. A store restored by :meth:`load_state_dict` knows
        its last refresh; one of unknown age counts as lagging only when empty; one restored with a refresh after
        ``start_epoch`` or later (a state of a later point, or another run) is of unknown age too, and refreshed (if
        one was due) with a warning. Collective under ``torch.distributed``, as :meth:`maybe_refresh`."""
        start = checked_epoch(start_epoch, "start_epoch (the 0-based epoch about to start)")
        self.agree_schedule()
        # A rank that did not load the state (rank 0 only, a missing file) would refresh alone: refused on every rank.
        check_same_on_every_rank((self.store.version, self.last_refresh_epoch), "catch_up: the restored boxes (store "
                                 "version, last_refresh_epoch: load the checkpoint's state on every rank, not rank 0 "
                                 "only)")
        last = self.last_refresh_epoch
        if last is not None and last >= start:  # a refresh after an epoch not yet run: the store's age is unknown
            warnings.warn(f"catch_up(start_epoch={start}): the restored last_refresh_epoch={last} is at or past the "
                          "epoch about to start (a state saved later in the run, or by another run?); the store's age "
                          "is unknown: it is refreshed now if the schedule had a refresh due before this epoch",
                          UserWarning, stacklevel=2)
            self.last_refresh_epoch, last = None, -1
        if last is None:
            last = -1 if self.store.version == 0 else start - 1
        due = self.schedule.latest_refresh(start)  # epochs done at the latest refresh before epoch start
        if due is None or due <= last + 1:
            return None
        logger.info(
            "resumed at epoch %d, but the store (version %d) lacks the refresh due after epoch %d (a checkpoint "
            "without boxes, one saved within that epoch before its end, or a run that ended before it); refreshing "
            "now", start, self.store.version, due - 1,
        )
        stats = self.refresh()
        self.last_refresh_epoch = start - 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The store's state (boxes, scores, counts, version), the epoch of its latest refresh and the digest of the
        loader's image files (:func:`image_list_digest`; ``None`` without file names), for a checkpoint."""
        return {"store": self.store.state_dict(), "last_refresh_epoch": self.last_refresh_epoch,
                "images": self._digest()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` in place; running workers see it. Then :meth:`catch_up` before the first
        resumed epoch. A state of another number of images (a grown dataset), or of the same number of other files
        (another folder, renamed files), is ignored with a warning naming it; ``catch_up`` then makes the boxes
        afresh. A store's own ``state_dict()`` loads too (of unknown age: filled boxes are trusted by ``catch_up``; its
        image files unchecked)."""
        if not isinstance(state, dict):  # checkpoint.get("ccrop") of a checkpoint saved without it
            raise TypeError(f"BoxRefresher.load_state_dict needs the dict of refresher.state_dict(); got "
                            f"{type(state).__name__} (a checkpoint saved without it? skip the load and call "
                            "catch_up(start_epoch))")
        if "store" not in state and {"boxes", "counts"} <= set(state):  # store.state_dict(), as simclr_ccrop.py saved
            state = {"store": state, "last_refresh_epoch": None, "images": None}  # of unknown age, files unchecked
        if "store" not in state:
            raise KeyError(f"refresher state lacks 'store'; got keys {sorted(state)} (save refresher.state_dict())")
        last = checked_last_refresh(state.get("last_refresh_epoch"), "BoxRefresher")
        if restore_store(self.store, state["store"], state.get("images"), self._digest, "BoxRefresher",
                         "catch_up(start_epoch) makes them afresh if a refresh was due before it"):
            self.last_refresh_epoch = last

    def _digest(self) -> str | None:
        if self._images_digest is False:
            self._images_digest = image_list_digest(getattr(self.loader, "dataset", None))
        return self._images_digest


def checked_last_refresh(value: Any, owner: str) -> int | None:
    """A saved state's ``last_refresh_epoch`` as ``None`` (unknown) or a plain int >= -1 (numpy ints too); a
    ``TypeError`` (text, a float, a bool) or ``ValueError`` (below -1) naming the key, the value and ``owner``."""
    if value is None:
        return None
    number = None
    if not isinstance(value, (bool, np.bool_)):
        try:
            number = operator.index(value)
        except TypeError:
            pass
    if number is None or number < -1:
        raise (TypeError if number is None else ValueError)(
            f"{owner}: the state's last_refresh_epoch must be None (unknown) or an integer >= -1 (the 0-based epoch "
            f"after which the store's latest refresh ran; -1: none yet); got {value!r} ({type(value).__name__}): "
            "not a state saved by state_dict()?"
        )
    return number


def restore_store(store: BoxStore, state: dict[str, Any], saved_digest: str | None,
                  digest: Callable[[], str | None], owner: str, remade: str) -> bool:
    """Load a saved store ``state`` into ``store``, unless it was made on other images (another count, or the same
    count of other files: :func:`ccrop_plugins.other_images` against ``digest()``, read only when the checkpoint has a
    digest): then warn, naming ``owner`` and how the boxes are ``remade``, and return ``False``. A saved set larger
    than ``store.max_boxes`` keeps its best boxes, with an ``INFO`` line."""
    other = other_images(state, len(store), saved_digest, None if saved_digest is None else digest())
    if other is not None:
        warnings.warn(f"{owner}: the checkpoint's boxes were made on {other}; ignored, they would crop other images' "
                      f"objects: {remade}", UserWarning, stacklevel=3)
        return False
    store.load_state_dict(state)
    if int(state["max_boxes"]) > store.max_boxes:
        logger.info("%s: the checkpoint's box sets hold up to %d boxes per image; this store keeps %d: the best of "
                    "each set until the next refresh", owner, int(state["max_boxes"]), store.max_boxes)
    return True


def image_list_digest(dataset: Any) -> str | None:
    """:func:`ccrop_plugins.images_digest` of the dataset's image files in index order (``LightlyDataset``'s
    ``get_filenames()``, or the ``samples`` of a torchvision ``ImageFolder``, also inside :class:`IndexedDataset`, a
    refresh loader's ``RefreshImages``, a ``Subset`` (its indices' files, in its order) or a ``ConcatDataset`` (its
    parts' files, one after another)); ``None`` for datasets without file names (``CIFAR10``)."""
    paths = _image_paths(dataset)
    return None if paths is None else images_digest(paths)


def same_image_list(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` read the same dataset object in the same order (one, or both, wrapped in
    :class:`IndexedDataset` or ``RefreshImages``), so that their :func:`image_list_digest` is the same without listing
    the files twice (1.28M files: about 7 s each)."""
    return _unwrapped(a) is _unwrapped(b)


def _unwrapped(dataset: Any) -> Any:
    """``dataset`` without the wrappers that keep its index order (:class:`IndexedDataset`, ``RefreshImages``)."""
    while isinstance(dataset, (IndexedDataset, RefreshImages)):
        dataset = dataset.dataset
    return dataset


def _image_paths(dataset: Any) -> list[str] | None:
    """The image files of ``dataset`` in index order (see :func:`image_list_digest`); ``None`` without file names."""
    inner = _unwrapped(dataset)
    if hasattr(inner, "get_filenames"):
        return [str(name) for name in inner.get_filenames()]
    if isinstance(getattr(inner, "samples", None), list):
        return [str(sample[0]) for sample in inner.samples]
    return names_in_order(inner, _image_paths) if isinstance(inner, (Subset, ConcatDataset)) else None

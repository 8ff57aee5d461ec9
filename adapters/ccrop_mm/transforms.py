"""The ContrastiveCrop pipeline steps for MMPretrain 1.x and MMSelfSup 1.x.

``dict(type='ContrastiveCrop', ...)`` replaces ``RandomResizedCrop`` in a view pipeline and
takes the arguments of the ``RandomResizedCrop`` of the config's default scope:

- ``default_scope='mmselfsup'``: ``size, scale, ratio, max_attempts, interpolation, backend``;
- any other scope (``mmpretrain``): ``scale, crop_ratio_range, aspect_ratio_range,
  max_attempts, interpolation, backend``;

plus ``alpha``, ``sampler`` (and its options) and ``scale_reference``. Both flavours are
registered in mmengine's root ``TRANSFORMS`` registry, so they resolve from either scope;
``PretrainContrastiveCrop`` and ``SelfSupContrastiveCrop`` name one flavour explicitly.

``dict(type='ChooseContrastiveBox')``, placed *before* ``MultiView``, draws the *index* of one
box of the sample's set; ``MultiView`` copies the results into every view, and every view
crops around the box of that index (the core's ``make_params(..., box_index=)``, as the
Lightly adapter does). A box has one form from the store to the crop: the store's
``(k, 4)`` tensor of normalised ``x0, y0, x1, y1``; crop parameters are pixels
``top, left, height, width``.
"""

from __future__ import annotations

import inspect
import operator
import warnings
import weakref
from numbers import Integral
from typing import Any, Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS, DefaultScope
from torch.utils.data import get_worker_info

from ccrop_plugins import BoxStore, ContrastiveCrop, choose_box, height_width

BOX_INDEX_KEY = "ccrop_box_index"
"""Results key written by :class:`ChooseContrastiveBox`: the chosen box's index, ``-1`` before boxes exist."""

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
BACKENDS = ("cv2", "pillow")
PILLOW_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")  # mmcv's pillow backend has no 'area'
# What ``mmcv.imresize`` resizes (cv2: OpenCV's resize with every interpolation; pillow: 8-bit only).
IMAGE_DTYPES = {"cv2": ("uint8", "uint16", "int16", "float32", "float64"), "pillow": ("uint8",)}
CROPPED_KEY = "ccrop_cropped"
"""Results key a ContrastiveCrop sets on its view: a second one on the same view would cut the crop again."""

# Arguments of the core crop and of either flavour: given to the wrong flavour they are a
# mistake, not a sampler option (``size`` under mmpretrain, ``antialias`` anywhere).
_CROP_ARGUMENTS = frozenset(
    {"size", "scale", "ratio", "crop_ratio_range", "aspect_ratio_range", "antialias", "interpolation",
     "backend", "max_attempts", "alpha", "sampler", "scale_reference"}
)


def as_index(value: Any) -> int | None:
    """``value`` as an int if it is an integer of any kind (numpy, a 0-d tensor), else ``None`` (bool, float,
    text)."""
    try:
        return None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        return None


class StoreUser:
    """A pipeline step that reads the shared :class:`~ccrop_plugins.BoxStore`.

    ``ContrastiveCropHook`` calls :meth:`attach_store` in the main process before the
    DataLoader workers start; the store's tensors live in shared memory, so workers see
    every later refresh.
    """

    store: BoxStore | None = None
    store_rows: range | None = None  # see attach_store
    # Set by the hook for a step of a val/test pipeline ('val_dataloader'): the run's log said so once.
    evaluation_loader: str | None = None
    _warned_no_store = False  # once per process (each DataLoader worker is one)
    # The ContrastiveCropHooks of this process that have not attached their store yet. They are built with the Runner,
    # before an iteration loop starts (forks) its DataLoader workers; the hook stops those workers and starts new ones
    # with the store, so a missing store in such a worker is no missing hook. (Spawned workers do not inherit it.)
    awaiting_hooks: weakref.WeakSet = weakref.WeakSet()

    def attach_store(self, store: BoxStore | None, rows: range | None = None) -> None:
        """Read boxes from ``store`` from now on (``None`` detaches: warm-up crops).

        ``rows``: the store rows of this step's dataset when the store holds several (the parts of a
        ``ConcatDataset``): ``sample_idx`` ``i`` reads row ``rows[i]``, ``i`` from 0 to ``len(rows) - 1``. ``None``:
        the whole store, ``sample_idx`` ``i`` reading row ``i``.
        """
        self.store, self.store_rows = store, rows

    def _box_set(self, results: dict) -> Any:
        """The sample's ``(boxes (k, 4), scores (k,))`` from the store, or ``None`` (warm-up)."""
        if self.store is None:
            if self.evaluation_loader is None:  # a val/test step: the hook has logged it (boxes are for training)
                self._warn_no_store()
            return None
        index = results.get("sample_idx")
        if index is None:
            raise ValueError(
                f"{type(self).__name__} needs results['sample_idx'] (the dataset index of the sample); "
                "mmengine's BaseDataset.get_data_info adds it; a custom dataset must keep it"
            )
        rows = self.store_rows
        if rows is not None:
            return self._part_box_set(index, rows)
        try:
            return self.store.get(index)
        except IndexError:  # the store's own hint, to size it, is the hook's job: the cause is sample_idx
            last = self.store.num_samples - 1
            raise IndexError(
                f"{type(self).__name__}: results['sample_idx'] is {index!r}, outside the box store of the train "
                f"dataset's {last + 1} samples (allowed: 0 to {last}); sample_idx must be the sample's dataset index, "
                "as mmengine's BaseDataset.get_data_info sets it (keep image ids under another key)"
            ) from None

    def _part_box_set(self, index: Any, rows: range) -> Any:
        """:meth:`_box_set` of sample ``index`` of a dataset whose samples are store ``rows``."""
        number = as_index(index)
        if number is None:
            return self.store.get(index)  # the store's TypeError names the value
        if not 0 <= number < len(rows):
            raise IndexError(
                f"{type(self).__name__}: results['sample_idx'] is {index!r}, outside the {len(rows)} samples of its "
                f"dataset (rows {rows.start} to {rows.stop - 1} of the train box store, one part of a ConcatDataset; "
                f"allowed: 0 to {len(rows) - 1}); sample_idx must be the sample's index in its own dataset, as "
                "mmengine's BaseDataset.get_data_info sets it (keep image ids under another key)"
            )
        return self.store.get(rows[number])

    def _warn_no_store(self) -> None:
        if StoreUser._warned_no_store or StoreUser.awaiting_hooks and get_worker_info() is not None:
            return
        StoreUser._warned_no_store = True
        message = (
            f"{type(self).__name__} has no box store: no ContrastiveCropHook is attached to this pipeline, "
            "so every crop is a plain RandomResizedCrop crop for the whole run; add "
            "dict(type='ContrastiveCropHook', ...) to custom_hooks (boxes are made for train_dataloader only: in a "
            "val/test pipeline use a deterministic crop such as CenterCrop)"
        )
        warnings.warn(message, UserWarning, stacklevel=3)


class BaseContrastiveCrop(StoreUser, BaseTransform):
    """Crop a view around a box of the sample's set (ContrastiveCrop, Peng et al., CVPR 2022).

    The crop's size follows RandomResizedCrop (area, aspect ratio, 10 tries, centred fallback);
    its position is drawn inside the chosen box by the core's :class:`ccrop_plugins.ContrastiveCrop`,
    and the patch is resized with ``mmcv.imresize``. Before the first refresh (no boxes) it is
    RandomResizedCrop. The two flavours below differ only in argument names.

    Required Keys:

    - img: ``(H, W, C)`` or ``(H, W)`` array.
    - sample_idx: the dataset index of the sample (added by mmengine's ``BaseDataset``);
      read once the hook has attached the box store.
    - ccrop_box_index (optional): the box index chosen by :class:`ChooseContrastiveBox`, so
      every view of the sample crops around the same box.

    Modified Keys:

    - img: the ``(h, w[, C])`` crop, of the configured output size.
    - img_shape: mmpretrain flavour ``img.shape``, mmselfsup flavour ``(h, w)`` (as each
      framework's ``RandomResizedCrop``).

    Added Keys: none.
    """

    _size_name = _area_name = _aspect_name = ""  # this flavour's names of the core's size, scale, ratio

    def __init__(
        self,
        size: int | Sequence[int],
        area_range: Sequence[float],
        aspect_range: Sequence[float],
        max_attempts: int,
        interpolation: str,
        backend: str,
        alpha: float | None,
        sampler: str,
        scale_reference: str,
        sampler_options: dict[str, Any],
    ) -> None:
        misplaced = sorted(set(sampler_options) & _CROP_ARGUMENTS)
        if misplaced:
            raise TypeError(f"{self._name()} got unexpected arguments {misplaced}; {self.accepted_arguments()}")
        if max_attempts != 10:
            raise ValueError(
                f"{self._name()}: max_attempts must be 10 (RandomResizedCrop's tries); got {max_attempts!r}"
            )
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"{self._name()}: unknown interpolation {interpolation!r}; available: {', '.join(INTERPOLATIONS)}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"{self._name()}: unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        if backend == "pillow" and interpolation not in PILLOW_INTERPOLATIONS:
            raise ValueError(f"{self._name()}: interpolation {interpolation!r} is not one of backend 'pillow' "
                             f"({', '.join(PILLOW_INTERPOLATIONS)}); use backend='cv2' for it")
        try:
            self.crop = ContrastiveCrop(
                height_width(size, self._size_name), scale=area_range, ratio=aspect_range, sampler=sampler,
                alpha=alpha, scale_reference=scale_reference, **sampler_options,
            )
        except TypeError as error:
            if not sampler_options:
                raise type(error)(f"{self._name()}: {error}{self._core_names(str(error))}") from None
            raise TypeError(
                f"{self._name()} passed the arguments it does not know, {sorted(sampler_options)}, to sampler "
                f"{sampler!r}, which refused them ({error}); {self.accepted_arguments()}"
            ) from None
        except ValueError as error:
            raise ValueError(f"{self._name()}: {error}{self._core_names(str(error))}") from None
        self.size = self.crop.size  # (height, width)
        self.interpolation = interpolation
        self.backend = backend
        self._image_types = tuple(np.dtype(name).type for name in IMAGE_DTYPES[backend])  # per image: no .name

    @classmethod
    def accepted_arguments(cls) -> str:
        """The sentence that lists this flavour's arguments (for errors)."""
        names = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "sampler_options")]
        return f"{cls.__name__} takes {', '.join(names)} and the options of its sampler (e.g. sigma of 'gaussian')"

    def _name(self) -> str:
        return f"ContrastiveCrop ({type(self).__name__})"

    def _core_names(self, message: str) -> str:
        """Which of this flavour's arguments a core error's ``scale``/``ratio`` range is, if they are named otherwise
        (not for other errors: under mmpretrain ``scale`` is the output size, which the core calls ``size``)."""
        if self._area_name == "scale" or not message.startswith(
            ("scale must be an increasing", "scale must be at most 1", "ratio must be an increasing")
        ):
            return ""
        return f" (in the core's words: {self._area_name} is its scale, {self._aspect_name} its ratio)"

    def transform(self, results: dict) -> dict:
        img = results.get("img")
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or 0 in img.shape[:2] or (
            img.dtype.type not in self._image_types or img.shape[2:] > (4,) and self._channels_refused(img)
        ):
            self._bad_image(img, results)
        if results.get(CROPPED_KEY):
            raise ValueError(f"{self._name()} got an image a ContrastiveCrop has already cut: one view pipeline (or "
                             "the train pipeline above MultiView) holds two; the second would place its crop with "
                             "boxes of the whole image inside the first's crop. Keep one ContrastiveCrop per view")
        if self.backend == "pillow" and img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]  # PIL has no (H, W, 1) image; cv2 returns such a view (h, w) as well
        found, index = self._box_set(results), results.get(BOX_INDEX_KEY)
        if index is not None and (not isinstance(index, Integral) or isinstance(index, bool)):
            raise TypeError(f"{self._name()}: results[{BOX_INDEX_KEY!r}] must be the int ChooseContrastiveBox writes "
                            f"(-1: no boxes yet); got {index!r} ({type(index).__name__})")
        if found is None or index is not None and index < 0:
            params = self.crop.make_params(img.shape[:2])  # warm-up: RandomResizedCrop
        else:
            boxes, scores = found
            if index is not None:  # a refresh may have landed since the choice: stay inside the set
                index = min(index, len(boxes) - 1)
            params = self.crop.make_params(img.shape[:2], boxes, scores=scores, box_index=index)
        top, left = params["top"], params["left"]
        patch = img[top : top + params["height"], left : left + params["width"]]
        if self.backend == "pillow":  # PIL's fromarray copies a strided slice ~10x slower than numpy
            patch = np.ascontiguousarray(patch)
        results["img"] = mmcv.imresize(
            patch, (self.size[1], self.size[0]), interpolation=self.interpolation, backend=self.backend
        )
        results["img_shape"] = self._img_shape(results["img"])
        results[CROPPED_KEY] = True
        return results

    def _img_shape(self, img: np.ndarray) -> tuple[int, ...]:
        return img.shape[:2]

    def _channels_refused(self, img: np.ndarray) -> str:
        """Why an ``(H, W, C)`` image of more than 4 channels cannot be cut, or ``''``: it looks like ``(C, H, W)``,
        or this resize takes no such image (pillow; OpenCV's 'area' up to 4 channels, any resize up to 512)."""
        channels = img.shape[2]
        if img.shape[0] in (1, 3, 4):  # (C, H, W) by mistake: cut along height and width, silently
            return (f"it looks like (C, H, W) (else: {img.shape[0]} pixels high, {channels} channels): "
                    "pass img.transpose(1, 2, 0)")
        if self.backend == "pillow":
            return "backend 'pillow' resizes uint8 of up to 4 channels (use backend='cv2')"
        if self.interpolation == "area" or channels > 512:
            most = 4 if self.interpolation == "area" else 512
            return (f"OpenCV's resize with interpolation {self.interpolation!r} takes up to {most} channels"
                    + (" (use interpolation='bilinear')" if most == 4 else ""))
        return ""

    def _bad_image(self, img: Any, results: dict) -> None:
        """Raise naming what ``results['img']`` is (missing, a PIL image, a tensor, an array of another rank)."""
        if "img" not in results:
            got = f"no 'img' key (keys: {', '.join(sorted(map(str, results)))}); " + (
                "PackInputs came before it: put ContrastiveCrop before PackInputs" if "inputs" in results else
                "put LoadImageFromFile before it")
        elif isinstance(img, np.ndarray) and img.ndim == 3 and 0 not in img.shape[:2] and img.shape[2] > 4 and (
                img.dtype.type in self._image_types or img.shape[0] in (1, 3, 4)):
            got = f"{img.dtype} {img.shape}; {self._channels_refused(img)}"
        elif isinstance(img, np.ndarray) and img.ndim in (2, 3) and 0 not in img.shape[:2]:
            cv2_takes = img.dtype.name in IMAGE_DTYPES["cv2"]
            got = (f"{img.dtype} {img.shape}; backend {self.backend!r} resizes "
                   f"{', '.join(IMAGE_DTYPES[self.backend])}{' of up to 4 channels' * (self.backend == 'pillow')} "
                   + ("(use backend='cv2')" if cv2_takes else "(convert it, e.g. img.astype(np.float32))"))
        elif isinstance(img, np.ndarray):
            got = f"an array of shape {img.shape}{' (an empty image)' if img.size == 0 else ''}"
        elif isinstance(img, list):  # MultiView's views: the crop is one step too late
            got = ("a list (MultiView's views?): put ContrastiveCrop inside MultiView's view pipeline, in place of "
                   "RandomResizedCrop")
        else:
            got = f"{type(img).__module__}.{type(img).__name__}; a step before it changed the image's type"
        raise TypeError(f"{self._name()} needs results['img'] as a numpy array (H, W) or (H, W, C), as "
                        f"LoadImageFromFile makes it; got {got}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, area={self.crop.scale}, aspect={self.crop.ratio}, "
            f"sampler={self.crop.sampler!r}, scale_reference={self.crop.scale_reference!r}, "
            f"interpolation={self.interpolation!r}, backend={self.backend!r}, store={self.store!r})"
        )


@TRANSFORMS.register_module()
class PretrainContrastiveCrop(BaseContrastiveCrop):
    """ContrastiveCrop with mmpretrain's ``RandomResizedCrop`` arguments (keys: see :class:`BaseContrastiveCrop`).

    Args:
        scale: output size, an int or ``(height, width)``.
        crop_ratio_range: range of the crop's area as a fraction of the image (or of the
            chosen box with ``scale_reference='box'``). The paper uses ``(0.2, 1.0)``.
        aspect_ratio_range: range of the aspect ratio ``width / height``.
        max_attempts: must be 10 (RandomResizedCrop's tries, then the centred fallback).
        interpolation: one of ``nearest, bilinear, bicubic, area, lanczos``.
        backend: ``cv2`` or ``pillow`` (``mmcv.imresize``).
        alpha: ``Beta(alpha, alpha)`` of the ``beta`` sampler (paper: 0.1 CIFAR, 0.6 ImageNet, the default); given
            to a plugin sampler that takes an ``alpha``; ``None``: the sampler's own default.
        sampler: a registered centre sampler (``beta``, ``uniform``, ``gaussian``, ...).
        scale_reference: ``image`` (the paper) or ``box``.
        **sampler_options: other options of the sampler (``sigma`` of ``gaussian``).
    """

    _size_name, _area_name, _aspect_name = "scale", "crop_ratio_range", "aspect_ratio_range"

    def __init__(
        self,
        scale: int | Sequence[int],
        crop_ratio_range: Sequence[float] = (0.08, 1.0),
        aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
        max_attempts: int = 10,
        interpolation: str = "bilinear",
        backend: str = "cv2",
        alpha: float | None = None,
        sampler: str = "beta",
        scale_reference: str = "image",
        **sampler_options: Any,
    ) -> None:
        super().__init__(scale, crop_ratio_range, aspect_ratio_range, max_attempts, interpolation, backend,
                         alpha, sampler, scale_reference, sampler_options)

    def _img_shape(self, img: np.ndarray) -> tuple[int, ...]:
        return img.shape  # as mmpretrain's RandomResizedCrop


@TRANSFORMS.register_module()
class SelfSupContrastiveCrop(BaseContrastiveCrop):
    """ContrastiveCrop with mmselfsup's ``RandomResizedCrop`` arguments (keys: see :class:`BaseContrastiveCrop`).

    Args:
        size: output size, an int or ``(height, width)``.
        scale: range of the crop's area as a fraction of the image (or of the chosen box
            with ``scale_reference='box'``). The paper uses ``(0.2, 1.0)``.
        ratio: range of the aspect ratio ``width / height``.
        max_attempts, interpolation, backend, alpha, sampler, scale_reference,
        **sampler_options: as :class:`PretrainContrastiveCrop`.
    """

    _size_name, _area_name, _aspect_name = "size", "scale", "ratio"

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        max_attempts: int = 10,
        interpolation: str = "bilinear",
        backend: str = "cv2",
        alpha: float | None = None,
        sampler: str = "beta",
        scale_reference: str = "image",
        **sampler_options: Any,
    ) -> None:
        super().__init__(size, scale, ratio, max_attempts, interpolation, backend,
                         alpha, sampler, scale_reference, sampler_options)


@TRANSFORMS.register_module(name="ContrastiveCrop")
def build_contrastive_crop(**kwargs: Any) -> BaseContrastiveCrop:
    """Build the flavour of ContrastiveCrop whose arguments match the current default scope.

    Arguments of the other flavour (``size`` under mmpretrain), of the core crop
    (``antialias``) or unknown to the sampler raise a ``TypeError`` that lists the accepted ones.
    """
    scope = DefaultScope.get_current_instance()
    name = scope.scope_name if scope is not None else None
    flavour = SelfSupContrastiveCrop if name == "mmselfsup" else PretrainContrastiveCrop
    try:
        inspect.signature(flavour).bind(**kwargs)
    except TypeError as error:
        raise TypeError(
            f"ContrastiveCrop under default scope {name!r}: {error}; {flavour.accepted_arguments()}"
        ) from None
    try:
        return flavour(**kwargs)
    except TypeError as error:
        raise TypeError(f"under default scope {name!r}, {error}") from None


@TRANSFORMS.register_module()
class ChooseContrastiveBox(StoreUser, BaseTransform):
    """Choose one box of the sample's set for every view of the pair; put it before ``MultiView``.

    The box is drawn with probability proportional to its score (:func:`ccrop_plugins.choose_box`).
    ``MultiView`` deep-copies the results into each view, so every ContrastiveCrop of this
    sample crops around the box of that index. Without this step each view chooses its own
    box, which for multi-object box sets can put the two views on different objects.

    Required Keys:

    - sample_idx: the dataset index of the sample (read once the hook has attached the store).

    Added Keys:

    - ccrop_box_index: ``int``, the chosen box's index in the sample's set, or ``-1`` before
      the first refresh (then every view crops as RandomResizedCrop).
    """

    def __init__(self, **arguments: Any) -> None:
        if arguments:  # e.g. max_boxes: Python's "takes no arguments" does not say whose option it is
            raise TypeError(f"ChooseContrastiveBox takes no arguments; got {sorted(arguments)} (the boxes are made "
                            "by ContrastiveCropHook: give max_boxes, localizer, ... to it in custom_hooks; the crop's "
                            "options to ContrastiveCrop)")
        super().__init__()

    def transform(self, results: dict) -> dict:
        found = self._box_set(results)
        results[BOX_INDEX_KEY] = -1 if found is None else choose_box(*found)
        return results

    def __repr__(self) -> str:
        return f"ChooseContrastiveBox(store={self.store!r})"

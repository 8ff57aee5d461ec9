"""The ContrastiveCrop pipeline steps for MMPretrain 1.x and MMSelfSup 1.x.

``dict(type='ContrastiveCrop', ...)`` replaces ``RandomResizedCrop`` in a view pipeline and
takes the arguments of the ``RandomResizedCrop`` of the config's default scope:

- ``default_scope='mmselfsup'``: ``size, scale, ratio, max_attempts, interpolation, backend``;
- any other scope (``mmpretrain``): ``scale, crop_ratio_range, aspect_ratio_range,
  max_attempts, interpolation, backend``;

plus ``alpha``, ``sampler`` (and its options) and ``scale_reference``. Both flavours are
registered in mmengine's root ``TRANSFORMS`` registry, so they resolve from either scope;
``PretrainContrastiveCrop`` and ``SelfSupContrastiveCrop`` name one flavour explicitly.

``dict(type='ChooseContrastiveBox')``, placed *before* ``MultiView``, picks one box of the
sample's set; ``MultiView`` copies the results into every view, so both views of a pair crop
around the same object.

Input of a crop: ``results['img']`` ``(H, W, C)`` uint8 array, ``results['sample_idx']``.
Output: ``results['img']`` ``(h, w, C)`` of the configured size and ``results['img_shape']``.
Crop parameters are pixels ``top, left, height, width``; boxes are normalised
``x0, y0, x1, y1`` in ``[0, 1]``.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS, DefaultScope

from ccrop_plugins import BoxStore
from ccrop_plugins import ContrastiveCrop as CoreContrastiveCrop
from ccrop_plugins import choose_box

CHOSEN_BOX_KEY = "ccrop_box"
"""Results key written by :class:`ChooseContrastiveBox`: ``(4,)`` float32 box, or ``None`` in warm-up."""

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
BACKENDS = ("cv2", "pillow")


class StoreUser:
    """A pipeline step that reads the shared :class:`~ccrop_plugins.BoxStore`.

    ``ContrastiveCropHook`` calls :meth:`attach_store` in the main process before the
    DataLoader workers start; the store's tensors live in shared memory, so workers see
    every later refresh.
    """

    store: BoxStore | None = None

    def attach_store(self, store: BoxStore) -> None:
        """Read boxes from ``store`` from now on (``None`` detaches: warm-up crops)."""
        self.store = store

    def _sample_index(self, results: dict) -> int:
        index = results.get("sample_idx")
        if index is None:
            raise ValueError(
                f"{type(self).__name__} needs results['sample_idx'] (the dataset index of the sample); "
                "mmengine's BaseDataset.get_data_info adds it; a custom dataset must keep it"
            )
        return int(index)


class _ContrastiveCropTransform(StoreUser, BaseTransform):
    """Framework-neutral body of both flavours: draw with the core, crop, resize with mmcv."""

    def __init__(
        self,
        size: int | Sequence[int],
        area_range: Sequence[float],
        aspect_range: Sequence[float],
        max_attempts: int,
        interpolation: str,
        backend: str,
        alpha: float,
        sampler: str,
        scale_reference: str,
        sampler_options: dict[str, Any],
        names: tuple[str, str, str],
    ) -> None:
        size_name, area_name, aspect_name = names
        if max_attempts != 10:
            raise ValueError(f"ContrastiveCrop: max_attempts must be 10 (RandomResizedCrop's tries); got {max_attempts}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"ContrastiveCrop: unknown interpolation {interpolation!r}; available: {', '.join(INTERPOLATIONS)}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"ContrastiveCrop: unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        if not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"ContrastiveCrop: alpha must be a number > 0 (Beta(alpha, alpha); paper: 0.1 to 1.0); got {alpha!r}")
        try:
            self.crop = CoreContrastiveCrop(
                _height_width(size, size_name),
                scale=area_range,
                ratio=aspect_range,
                sampler=sampler,
                alpha=alpha,
                scale_reference=scale_reference,
                **sampler_options,
            )
        except (ValueError, TypeError) as error:
            message = str(error)
            for core_name, name in (("scale", area_name), ("ratio", aspect_name), ("size", size_name)):
                message = message.replace(f"{core_name} must", f"{name} must")
            raise type(error)(f"ContrastiveCrop: {message}") from None
        self.size = self.crop.size  # (height, width)
        self.interpolation = interpolation
        self.backend = backend

    def transform(self, results: dict) -> dict:
        img = results["img"]
        boxes, scores = self._box_set(results)
        params = self.crop.make_params(img.shape[:2], boxes, scores=scores)
        top, left, height, width = params["top"], params["left"], params["height"], params["width"]
        patch = img[top : top + height, left : left + width]
        results["img"] = mmcv.imresize(
            patch, (self.size[1], self.size[0]), interpolation=self.interpolation, backend=self.backend
        )
        results["img_shape"] = self._img_shape(results["img"])
        return results

    def _box_set(self, results: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The boxes to crop around: the pair's chosen box, else the sample's set, else none."""
        if CHOSEN_BOX_KEY in results:
            box = results[CHOSEN_BOX_KEY]
            return (None, None) if box is None else (torch.as_tensor(box, dtype=torch.float32)[None], None)
        if self.store is None:
            return None, None
        found = self.store.get(self._sample_index(results))
        return (None, None) if found is None else found

    def _img_shape(self, img: np.ndarray) -> tuple[int, ...]:
        return img.shape[:2]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, area={self.crop.scale}, aspect={self.crop.ratio}, "
            f"sampler={self.crop.sampler!r}, scale_reference={self.crop.scale_reference!r}, "
            f"interpolation={self.interpolation!r}, backend={self.backend!r}, store={self.store!r})"
        )


@TRANSFORMS.register_module()
class PretrainContrastiveCrop(_ContrastiveCropTransform):
    """ContrastiveCrop with mmpretrain's ``RandomResizedCrop`` arguments.

    Args:
        scale: output size, an int or ``(height, width)``.
        crop_ratio_range: range of the crop's area as a fraction of the image (or of the
            chosen box with ``scale_reference='box'``). The paper uses ``(0.2, 1.0)``.
        aspect_ratio_range: range of the aspect ratio ``width / height``.
        max_attempts: must be 10 (RandomResizedCrop's tries, then the centred fallback).
        interpolation: one of ``nearest, bilinear, bicubic, area, lanczos``.
        backend: ``cv2`` or ``pillow`` (``mmcv.imresize``).
        alpha: ``Beta(alpha, alpha)`` of the ``beta`` sampler (paper: 0.1 CIFAR, 0.6 ImageNet).
        sampler: a registered centre sampler (``beta``, ``uniform``, ``gaussian``, ...).
        scale_reference: ``image`` (the paper) or ``box``.
        **sampler_options: other options of the sampler (``sigma`` of ``gaussian``).
    """

    def __init__(
        self,
        scale: int | Sequence[int],
        crop_ratio_range: Sequence[float] = (0.08, 1.0),
        aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
        max_attempts: int = 10,
        interpolation: str = "bilinear",
        backend: str = "cv2",
        alpha: float = 0.6,
        sampler: str = "beta",
        scale_reference: str = "image",
        **sampler_options: Any,
    ) -> None:
        super().__init__(
            scale, crop_ratio_range, aspect_ratio_range, max_attempts, interpolation, backend,
            alpha, sampler, scale_reference, sampler_options,
            names=("scale", "crop_ratio_range", "aspect_ratio_range"),
        )

    def _img_shape(self, img: np.ndarray) -> tuple[int, ...]:
        return img.shape  # as mmpretrain's RandomResizedCrop


@TRANSFORMS.register_module()
class SelfSupContrastiveCrop(_ContrastiveCropTransform):
    """ContrastiveCrop with mmselfsup's ``RandomResizedCrop`` arguments.

    Args:
        size: output size, an int or ``(height, width)``.
        scale: range of the crop's area as a fraction of the image (or of the chosen box
            with ``scale_reference='box'``). The paper uses ``(0.2, 1.0)``.
        ratio: range of the aspect ratio ``width / height``.
        max_attempts, interpolation, backend, alpha, sampler, scale_reference,
        **sampler_options: as :class:`PretrainContrastiveCrop`.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        max_attempts: int = 10,
        interpolation: str = "bilinear",
        backend: str = "cv2",
        alpha: float = 0.6,
        sampler: str = "beta",
        scale_reference: str = "image",
        **sampler_options: Any,
    ) -> None:
        super().__init__(
            size, scale, ratio, max_attempts, interpolation, backend,
            alpha, sampler, scale_reference, sampler_options,
            names=("size", "scale", "ratio"),
        )


def _flavour_for_scope() -> tuple[str | None, type[_ContrastiveCropTransform]]:
    scope = DefaultScope.get_current_instance()
    name = scope.scope_name if scope is not None else None
    return name, SelfSupContrastiveCrop if name == "mmselfsup" else PretrainContrastiveCrop


@TRANSFORMS.register_module(name="ContrastiveCrop")
def build_contrastive_crop(**kwargs: Any) -> _ContrastiveCropTransform:
    """Build the flavour of ContrastiveCrop whose arguments match the current default scope."""
    scope, flavour = _flavour_for_scope()
    signature = inspect.signature(flavour)
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        accepted = [p for p in signature.parameters if p != "sampler_options"]
        raise TypeError(
            f"ContrastiveCrop under default scope {scope!r} takes the arguments of that framework's "
            f"RandomResizedCrop: {', '.join(accepted)} (and sampler options); {error}"
        ) from None
    return flavour(**kwargs)


@TRANSFORMS.register_module()
class ChooseContrastiveBox(StoreUser, BaseTransform):
    """Pick one box of the sample's set for every view of the pair; put it before ``MultiView``.

    Writes ``results['ccrop_box']``: the chosen ``(4,)`` normalised ``x0, y0, x1, y1`` box
    (drawn with probability proportional to its score), or ``None`` before the first refresh.
    ``MultiView`` deep-copies the results into each view, so every ContrastiveCrop of this
    sample crops around that box. Without this step each view chooses its own box, which
    for multi-object box sets can put the two views on different objects.
    """

    def transform(self, results: dict) -> dict:
        found = None if self.store is None else self.store.get(self._sample_index(results))
        if found is None:
            results[CHOSEN_BOX_KEY] = None
        else:
            boxes, scores = found
            results[CHOSEN_BOX_KEY] = boxes[choose_box(boxes, scores)].numpy()
        return results

    def __repr__(self) -> str:
        return f"ChooseContrastiveBox(store={self.store!r})"


def _height_width(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    values = tuple(size)
    if len(values) != 2:
        raise ValueError(f"ContrastiveCrop: {name} must be an int or (height, width); got {size!r}")
    return int(values[0]), int(values[1])

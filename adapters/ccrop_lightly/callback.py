"""PyTorch Lightning: refresh the boxes at epoch ends, log the refresh, keep the boxes in checkpoints."""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence, Sized

import pytorch_lightning as pl
import torch.distributed as dist

from ccrop_plugins import BoxStore, height_width
from ccrop_plugins import RefreshSchedule as StepSchedule

from .checkpoint_boxes import checked_last_refresh, image_list_digest, restore_store
from .refresh_loader import FROM_TRANSFORM, make_refresh_loader
from .refresh_options import check_loader_settings, check_refresh_options, check_store_and_dataset
from .refresher import BoxRefresher
from .schedule import RefreshSchedule
from .train_start import module_feature_fn, training_collate, training_workers

__all__ = ["STATE_VERSION", "BoxRefreshCallback", "image_list_digest"]

STATE_VERSION = 2  # 2 adds last_refresh_epoch and images; version 1 states (the store alone) still load


class BoxRefreshCallback(pl.Callback):
    """ContrastiveCrop's box refresh for ``Trainer.fit``.

    - At the end of every training epoch it asks the schedule (:class:`RefreshSchedule`,
      with ``max_epochs`` taken from the trainer) and, when due, localizes every image of
      ``dataset`` with the module's backbone and writes the boxes to ``store``, which the
      training DataLoader's :class:`~ccrop_lightly.CCropCollate` reads (persistent workers
      included).
    - The refresh sees the images as the training views do: its resolution and normalisation
      are taken from ``transform``, or else from the training DataLoader's
      :class:`~ccrop_lightly.CCropCollate` (found when training starts), so a custom
      ``normalize=`` of the transform reaches the refresh without being repeated here.
    - It logs the refresh statistics through ``pl_module.log_dict`` as ``ccrop/images``,
      ``ccrop/images_per_second``, ``ccrop/mean_boxes``, ``ccrop/mean_box_area``,
      ``ccrop/fallback_fraction``, ``ccrop/version`` (the logger's epoch-level metrics).
    - Its ``state_dict`` (the store: boxes, scores, counts, version) goes into every
      Lightning checkpoint; resuming (``trainer.fit(..., ckpt_path=...)``) restores it into
      ``store`` before the first batch, so the resumed run crops from the same boxes. A resumed
      run whose store lags the schedule (a checkpoint saved without this callback, or one whose run
      ended before a refresh that the resumed, longer run has already passed) refreshes when training
      starts, with an ``INFO`` line, instead of cropping from no or stale boxes until the next refresh.
      Boxes saved for another list of image files (another count: images added or removed; or the same
      count, a file renamed, added and removed) are ignored with a warning and made afresh: each would
      crop another image.
    - Under the ``ddp`` strategy (tested on two gloo ranks) each rank localizes its shard (a
      loader sharded by the core's ``RefreshSampler``, built when training starts), the core's
      ``refresh_boxes`` all-gathers, and every rank ends with the same store, equal to a
      one-process refresh with rank 0's weights and buffers. ``ddp_spawn`` pickles the callback into
      each rank: its defaults survive that (tested: a fit after a pickle round trip with its store), a
      ``ddp_spawn`` run itself is not.
    - Several training DataLoaders (a dict, a ``CombinedLoader``), each with a ``CCropCollate`` of its own
      store: one callback per store, each with its own ``name`` (the key of its state in checkpoints); each
      refreshes the loader whose ``CCropCollate`` reads its store.
    - A fit that starts at epoch 0 without a checkpoint while ``store`` already holds boxes (this callback
      and store reused for a new experiment) warns when training starts: its warm-up epochs would crop around
      those boxes, not plain RandomResizedCrop.

    Args:
        store: the box store of the training collate function.
        dataset: the training images *without* augmentation, in store index order (the
            ``LightlyDataset`` or ``IndexedDataset`` the training loader wraps).
        input_size: resolution of the refresh pass; default the training views' size.
        warmup_epochs: epochs of plain RandomResizedCrop before the first refresh.
        interval: epochs between refreshes.
        backbone: name of the ``LightningModule`` attribute holding the backbone (turned
            into a feature-map extractor by :func:`~ccrop_lightly.feature_extractor`), or a
            function ``pl_module -> feature_fn`` (use a name under ``ddp_spawn``: a name pickles).
        layer: optional submodule name of the backbone whose output is the feature map.
        stages: stage name(s) of the backbone to localize with (``"layer3"``, or
            ``["layer3", "layer4"]`` fused), see :func:`~ccrop_lightly.feature_extractor`.
        threshold, localizer, heatmap, heatmap_options, localizer_options: as in
            :class:`~ccrop_lightly.BoxRefresher`.
        batch_size: of the refresh loader.
        num_workers: worker processes of the refresh loader; ``None`` (default): the training DataLoader's own
            ``num_workers`` (the one whose ``CCropCollate`` reads ``store``), so the refresh decodes its images
            in as many processes as training does (``0``: in each rank's main process, about 10x the forward's
            time at ImageNet scale); without a training DataLoader, :func:`~ccrop_lightly.make_refresh_loader`'s
            default.
        transform: the training transform (``CCropSimCLRTransform(...)``); default: the one in
            the training DataLoader's ``CCropCollate``.
        normalize: only to state the views' normalisation when neither ``transform`` nor a
            ``CCropCollate`` gives it (``None`` for none; default lightly's ImageNet statistics);
            it must agree with the transform's when there is one.
        progress: show a progress bar during a refresh (rank 0).
        name: ``None`` (default): the callback's checkpoint state is saved under Lightning's default key, the class
            name (``"BoxRefreshCallback"``), as before this option existed. Name each callback when a Trainer has
            several (one per store): Lightning refuses two stateful callbacks with the same key. Keep the name to
            resume their checkpoints.
    """

    def __init__(
        self,
        store: BoxStore,
        dataset: Sized,
        *,
        input_size: int | Sequence[int] | None = None,
        warmup_epochs: int,
        interval: int,
        backbone: str | Callable[[pl.LightningModule], Any] = "backbone",
        layer: str | None = None,
        stages: str | Sequence[str] | None = None,
        threshold: float | str | None = None,
        localizer: str | Callable = "components",
        heatmap: str | Callable = "channel_sum",
        heatmap_options: dict[str, Any] | None = None,
        localizer_options: dict[str, Any] | None = None,
        batch_size: int = 256,
        num_workers: int | None = None,
        transform: Any = None,
        normalize: dict[str, list[float]] | None | object = FROM_TRANSFORM,
        progress: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if name is not None and not (isinstance(name, str) and name):
            raise TypeError(f"BoxRefreshCallback: name must be a non-empty string (the key of this callback's state "
                            f"in checkpoints, one per callback) or None; got {name!r}")
        check_store_and_dataset(store, dataset)
        if not (isinstance(backbone, str) or callable(backbone)):
            raise TypeError(f"backbone must be an attribute name or a function of the module; got {backbone!r}")
        if layer is not None and stages is not None:
            raise ValueError(f"give layer or stages, not both; got layer={layer!r}, stages={stages!r}")
        RefreshSchedule(warmup_epochs, interval)  # validate now, not at the first epoch end
        check_refresh_options(threshold, localizer, heatmap, heatmap_options, localizer_options, store)
        batch_size, num_workers = check_loader_settings(batch_size, num_workers, progress, transform, normalize,
                                                        input_size)
        self.store = store
        self.dataset = dataset
        self.input_size = None if input_size is None else height_width(input_size, "input_size")
        self.warmup_epochs = warmup_epochs
        self.interval = interval
        self.backbone = backbone
        self.layer = layer
        self.stages = stages
        self.transform = transform
        self.refresh_options = dict(
            threshold=threshold, localizer=localizer, heatmap=heatmap, heatmap_options=heatmap_options,
            localizer_options=localizer_options
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.normalize = normalize
        self.progress = progress
        self.name = name
        self.refresher: BoxRefresher | None = None
        # A restored state's last_refresh_epoch, until on_train_start hands it to the refresher (which keeps it).
        self._restored_last_refresh: int | None = None
        # image_list_digest(dataset), read at most once per fit (listing 1.28M files takes ~7 s); False: not yet read
        self._images_digest: str | None | bool = False
        self._loaded_since_fit = False  # a state loaded since the last on_train_start (ckpt_path=, Tuner.lr_find)
        self._stage: str | None = None  # the Trainer's entry point running now (setup's stage); None: a direct call

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.refresh_options.items() if v is not None)
        return (f"BoxRefreshCallback({self.store!r}, warmup_epochs={self.warmup_epochs}, interval={self.interval}, "
                f"{options}, stages={self.stages!r}, num_workers={self.num_workers!r}"
                + ("" if self.name is None else f", name={self.name!r}") + ")")

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint's ``callbacks``: Lightning's default, the class's qualified
        name, without a ``name`` (so checkpoints saved before ``name`` existed still resume); with one, Lightning's
        form for a key of its own, ``BoxRefreshCallback{'name': 'a'}``."""
        return super().state_key if self.name is None else self._generate_state_key(name=self.name)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before a resume's load_state_dict: the dataset's files are listed afresh (once) for each fit, as they may
        # have changed since the last one; the train start check and every checkpoint of the fit share that digest.
        self._stage = stage
        if stage == "fit":
            self._images_digest = False
            _check_one_callback_per_store(trainer, self)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Built here: the process group exists (the loader gets its shard) and so does the
        # training DataLoader, whose CCropCollate tells the views' size and normalisation.
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
        _warn_if_steps_end_before_a_refresh(trainer, pl_module, self.warmup_epochs, self.interval, max_epochs)
        train_loader, collate = training_collate(trainer, self.dataset, self.store, self._digest)
        last_refresh = self._last_refresh_before(trainer.current_epoch)  # read before self.refresher is replaced
        transform = self.transform if self.transform is not None else collate
        if transform is None and self.input_size is None:
            raise ValueError(
                "BoxRefreshCallback cannot tell the refresh resolution: the training DataLoader's collate_fn is not a "
                "CCropCollate, so no view would read the refreshed boxes; build the dataset without a transform and "
                "give the DataLoader collate_fn=CCropCollate(<a CCrop transform>, store, dataset=dataset), whose "
                "views' size and normalisation the refresh then takes. Only for a collate_fn of your own that calls "
                "a CCropCollate the callback does not find, pass transform=<that CCrop transform> or input_size=..."
            )
        loader = make_refresh_loader(
            self.dataset,
            self.input_size,
            transform=transform,
            batch_size=self.batch_size,
            num_workers=self.num_workers if self.num_workers is not None else training_workers(trainer, train_loader),
            normalize=self.normalize,
            distributed=trainer.world_size > 1 and dist.is_available() and dist.is_initialized(),
        )
        self.refresher = BoxRefresher(
            self.store,
            module_feature_fn(pl_module, self.backbone, self.layer, self.stages),
            loader,
            warmup_epochs=self.warmup_epochs,
            interval=self.interval,
            max_epochs=max_epochs,
            progress=self.progress,
            **self.refresh_options,
        )
        self.refresher.last_refresh_epoch = last_refresh
        _warn_if_a_new_run_starts_on_earlier_boxes(trainer, self.store, self._loaded_since_fit)  # once set up, no error
        self._loaded_since_fit = False
        if self.refresher.catch_up(trainer.current_epoch) is not None:
            # Lightning made the epoch's DataLoader iterator before on_train_start, and its workers (and the fetcher's
            # one batch ahead) have cropped the first batches from the old store: make it again, as setup_data does.
            fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
            if fetcher is not None:
                iter(fetcher)

    def _last_refresh_before(self, start_epoch: int) -> int | None:
        """After which epoch the store's latest refresh ran, for the fit starting at ``start_epoch``.

        A state loaded since the last fit (``ckpt_path=``) tells it. Else a previous fit's refresher does: calling
        ``trainer.fit`` again on the same Trainer continues a finished run (``fit_loop.max_epochs`` raised), and
        its first fit made no refresh after its last epoch, which the longer schedule has due: ``catch_up`` runs
        it, as on a resume. A previous refresh at or after ``start_epoch`` is of another run (this callback
        reused by a new Trainer, starting over): unknown, as before any fit."""
        if self.refresher is None or self._loaded_since_fit:
            return self._restored_last_refresh
        previous = self.refresher.last_refresh_epoch
        return previous if previous is not None and previous < start_epoch else None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.refresher is None:
            raise RuntimeError(
                "BoxRefreshCallback.on_train_start did not run; add the callback to the Trainer before fit"
            )
        if 0 < trainer.max_steps <= trainer.global_step:  # max_steps ends the run here: no batch would use new boxes
            return
        stats = self.refresher.maybe_refresh(trainer.current_epoch)
        if stats is None:
            return
        # Every rank holds the same, already gathered statistics: the sync averages equal values (without it Lightning
        # asks for sync_dist=True once per metric, about code that is not the user's).
        pl_module.log_dict(
            {f"ccrop/{name}": float(value) for name, value in stats.as_dict().items() if name != "seconds"},
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )

    def state_dict(self) -> dict[str, Any]:
        last = self._restored_last_refresh if self.refresher is None else self.refresher.last_refresh_epoch
        return {"state_version": STATE_VERSION, "store": self.store.state_dict(), "last_refresh_epoch": last,
                "images": self._digest()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._stage not in (None, "fit"):  # trainer.validate/test/predict(ckpt_path=...): the boxes are training's
            return
        if "store" not in state_dict:
            raise KeyError(f"BoxRefreshCallback state lacks 'store'; got keys {sorted(state_dict)}")
        last = checked_last_refresh(state_dict.get("last_refresh_epoch"), "BoxRefreshCallback")
        if not restore_store(self.store, state_dict["store"], state_dict.get("images"), self._digest,
                             "BoxRefreshCallback",
                             "the boxes are made afresh (when training starts, if a refresh was due before it)"):
            return
        self._restored_last_refresh = last
        self._loaded_since_fit = True
        if self.refresher is not None:
            self.refresher.last_refresh_epoch = self._restored_last_refresh

    def _digest(self) -> str | None:
        if self._images_digest is False:
            self._images_digest = image_list_digest(self.dataset)
        return self._images_digest


def _check_one_callback_per_store(trainer: pl.Trainer, callback: BoxRefreshCallback) -> None:
    """Refuse another ``BoxRefreshCallback`` of the Trainer on ``callback``'s store: each would refresh it on its own
    schedule and options, the views cropped from whichever ran last."""
    others = [other for other in trainer.callbacks if isinstance(other, BoxRefreshCallback) and other.store is
              callback.store]
    if len(others) > 1:
        raise ValueError(f"{len(others)} BoxRefreshCallbacks ({', '.join(repr(other.name) for other in others)}) share "
                         "one BoxStore: each would refresh it on its own schedule and options, the views cropped from "
                         "whichever ran last; keep one callback per store (one store, collate and callback per set "
                         "of boxes)")


def _warn_if_a_new_run_starts_on_earlier_boxes(trainer: pl.Trainer, store: BoxStore, loaded: bool) -> None:
    """Warn when a fit starts a new run (epoch 0, step 0, no checkpoint given or state ``loaded`` for it) on a store
    that already holds boxes (``version > 0``: this callback and store reused for another experiment): its warm-up
    epochs would crop around those boxes, made by another model, instead of plain RandomResizedCrop, as the
    schedule's first refresh is not due yet and the refresher trusts a filled store."""
    if trainer.current_epoch != 0 or trainer.global_step != 0 or loaded or trainer.ckpt_path is not None:
        return
    if store.version == 0:
        return
    warnings.warn(
        f"BoxRefreshCallback: this fit starts a new run at epoch 0, but its box store already holds boxes (version "
        f"{store.version}) made before it (an earlier fit with this store and callback?), and no checkpoint "
        "restored them for this fit: the warm-up epochs crop around those boxes, not plain RandomResizedCrop, until "
        "this run's first refresh. For a warm-up give this fit a new BoxStore (with its own CCropCollate and "
        f"callback), or empty this one first: store.load_state_dict(BoxStore({len(store)}, "
        f"max_boxes={store.max_boxes}).state_dict()); to continue the earlier run, resume its checkpoint "
        "(ckpt_path=...)",
        UserWarning,
        stacklevel=3,
    )


def _warn_if_steps_end_before_a_refresh(trainer: pl.Trainer, pl_module: pl.LightningModule, warmup_epochs: int,
                                        interval: int, max_epochs: int | None) -> None:
    """Warn when ``max_steps`` ends the run before the schedule's first refresh (the ``max_epochs`` case warns when
    the refresher is built). The epochs are counted as Lightning's automatic optimization steps: one optimizer step
    per ``accumulate_grad_batches`` batches and at an epoch's last batch; a module that steps its optimizers itself
    (manual optimization) is not counted."""
    batches, steps = trainer.num_training_batches, trainer.max_steps
    if steps <= 0 or not 0 < batches < math.inf or not pl_module.automatic_optimization:
        return
    epochs = math.ceil(steps / math.ceil(batches / trainer.accumulate_grad_batches))  # the partial last one counts
    schedule = StepSchedule(warmup_epochs, interval, epochs)
    if schedule.never_refreshes() and (max_epochs is None or epochs < max_epochs):
        warnings.warn(
            f"ContrastiveCrop never refreshes its boxes in this run: with warmup_epochs={warmup_epochs}, "
            f"interval={interval} the first refresh would run after epoch {schedule.first_refresh} (0-based), but "
            f"max_steps={steps} ({batches} batches per epoch) ends the run in epoch {epochs - 1} (no refresh runs "
            "after the run's last step); every view will be a plain RandomResizedCrop (or, on a store holding a "
            "resumed run's boxes, cut around those, never refreshed). Lower warmup_epochs or "
            "interval, or train longer.",
            UserWarning,
            stacklevel=3,
        )

"""BoxRefresher: the schedule, boxes landing on the right sample, modes restored, early errors."""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lightly.data import LightlyDataset

from ccrop_lightly import BoxRefresher, IndexedDataset, feature_extractor, make_refresh_loader
from ccrop_plugins import BoxStore

QUADRANT_CENTRES = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]  # (x, y) of quadrant i


def _red_quadrant_dataset(n: int) -> IndexedDataset:
    """Image ``i`` is black with a red quadrant ``i % 4`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)."""
    items = []
    for i in range(n):
        image = np.zeros((32, 32, 3), dtype=np.uint8)
        row, col = divmod(i % 4, 2)
        image[row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16, 0] = 255
        items.append((Image.fromarray(image), 0))
    return IndexedDataset(items)


def _redness() -> nn.Sequential:
    """A fixed 'backbone' whose 4 x 4 feature map is the redness of each 4 x 4 cell (plus a BatchNorm)."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -0.5, -0.5]).reshape(1, 3, 1, 1))
    return nn.Sequential(conv, nn.BatchNorm2d(1), nn.AvgPool2d(4))


def _refresher(store: BoxStore, n: int, **options) -> BoxRefresher:
    loader = make_refresh_loader(_red_quadrant_dataset(n), 16, batch_size=3, normalize=None)
    return BoxRefresher(store, _redness(), loader, **{"warmup_epochs": 2, "interval": 2, "max_epochs": 7, **options})


def test_refreshes_on_schedule_and_each_sample_gets_its_own_box():
    store = BoxStore(8)
    refresher = _refresher(store, 8)
    done = [epoch for epoch in range(7) if refresher.maybe_refresh(epoch) is not None]
    assert done == [1, 3, 5] and store.version == 3
    assert refresher.last_stats.images == 8 and refresher.last_stats.fallback_fraction == 0.0
    for index in range(8):
        boxes, _ = store.get(index)
        assert len(boxes) == 1
        centre_x, centre_y = float(boxes[0, 0] + boxes[0, 2]) / 2, float(boxes[0, 1] + boxes[0, 3]) / 2
        distances = [abs(centre_x - x) + abs(centre_y - y) for x, y in QUADRANT_CENTRES]
        assert int(np.argmin(distances)) == index % 4, (index, boxes)


def test_paper_bbox_localizer_and_threshold_are_passed_on():
    store = BoxStore(4, max_boxes=2)
    stats = _refresher(store, 4, localizer="bbox", threshold=0.5).refresh()
    assert stats.mean_boxes == 1.0
    boxes, _ = store.get(3)
    assert torch.allclose(boxes, torch.tensor([[0.5, 0.5, 1.0, 1.0]]))  # k = 0.5 cuts the bilinear fringe


def test_every_submodule_keeps_its_train_or_eval_mode():
    refresher = _refresher(BoxStore(4), 4)
    model = refresher.feature_fn
    model.train()
    model[1].eval()  # e.g. a frozen BatchNorm
    refresher.refresh()
    assert [m.training for m in model] == [True, False, True] and model.training


def test_state_dict_round_trip():
    store = BoxStore(4)
    refresher = _refresher(store, 4)
    refresher.refresh()
    other = _refresher(BoxStore(4), 4)
    other.load_state_dict(refresher.state_dict())
    assert other.store.version == 1 and torch.equal(other.store.boxes, store.boxes)
    with pytest.raises(KeyError, match="lacks 'store'"):
        other.load_state_dict({})


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError,
                       match=r"refresh loader covers 8 samples but the box store holds 6; create it as BoxStore\(8\)"):
        _refresher(BoxStore(6), 8)
    with pytest.raises(ValueError, match=r"covers 8 samples but the box store holds 10; create it as BoxStore\(8\)"):
        _refresher(BoxStore(10), 8)  # was accepted: two entries never refreshed
    with pytest.raises(ValueError, match="unknown localizer 'blobs'; available: bbox, components"):
        _refresher(BoxStore(4), 4, localizer="blobs")
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\) or be one of mean, otsu; got 1.5"):
        _refresher(BoxStore(4), 4, threshold=1.5)
    with pytest.raises(ValueError, match="interval must be an integer >= 1"):
        _refresher(BoxStore(4), 4, interval=0)
    with pytest.raises(TypeError, match="store must be a ccrop_plugins.BoxStore"):
        BoxRefresher(None, _redness(), [], warmup_epochs=1, interval=1)
    with pytest.raises(TypeError, match="BoxRefresher: progress must be True or False; got 'no'"):
        _refresher(BoxStore(4), 4, progress="no")  # was: a progress bar (bool('no') is True)
    with pytest.raises(ValueError, match="make_refresh_loader: batch_size of the refresh loader must be an integer "
                                         ">= 1; got 0"):
        make_refresh_loader(_red_quadrant_dataset(4), 16, batch_size=0)


def test_a_one_by_one_feature_map_warns_at_construction():
    # issue 12: lightly's example ResNet-18 at 32 px has a 1 x 1 layer4 map: every box the whole image.
    import torchvision

    resnet = torchvision.models.resnet18(weights=None)
    backbone = nn.Sequential(*list(resnet.children())[:-1])
    loader = make_refresh_loader(_red_quadrant_dataset(4), 32, batch_size=4, normalize=None)
    with pytest.warns(UserWarning, match=r"the feature map is 1 x 1 for 32 x 32 px images: it carries no location"):
        BoxRefresher(BoxStore(4), feature_extractor(backbone), loader, warmup_epochs=1, interval=1)
    assert backbone.training  # the probe restored train mode
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # layer3's 2 x 2 map is fine
        BoxRefresher(BoxStore(4), backbone, loader, warmup_epochs=1, interval=1, stages="layer3")
    with pytest.warns(UserWarning, match=r"stage\(s\) 'layer4' is 1 x 1"):
        BoxRefresher(BoxStore(4), backbone, loader, warmup_epochs=1, interval=1, stages=["layer3", "layer4"])


@pytest.mark.parametrize("given", ["lightly's backbone", "torchvision's resnet"])
def test_a_backbone_that_pools_away_the_location_is_localized_at_its_last_stage(given):
    # docs/lightly.md's plain loop: BoxRefresher(store, model.backbone, ...) without stages is "the paper's setting",
    # but lightly's nn.Sequential(*list(resnet.children())[:-1]) ends in AdaptiveAvgPool2d: it was localized on the
    # pooled 1 x 1 output (a warning, then fallback 1.00: every crop RandomResizedCrop's). Now its layer4 maps, as the
    # callback takes its backbone; a module that keeps its maps stays as given (_redness' AvgPool2d(4) cells).
    import torchvision

    resnet = torchvision.models.resnet18(weights=None)
    backbone = nn.Sequential(*list(resnet.children())[:-1]) if given == "lightly's backbone" else resnet
    loader = make_refresh_loader(_red_quadrant_dataset(4), 64, batch_size=4, normalize=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "1 x 1" warning
        refresher = BoxRefresher(BoxStore(4), backbone, loader, warmup_epochs=1, interval=1)
    with torch.no_grad():
        assert tuple(refresher.feature_fn(torch.zeros(1, 3, 64, 64)).shape) == (1, 512, 2, 2)
    assert all(a is b for a, b in zip(refresher.feature_fn.parameters(), resnet.parameters()))  # shared, no copy
    assert isinstance(_refresher(BoxStore(8), 8).feature_fn[-1], nn.AvgPool2d)


def test_each_refresh_logs_its_fallback_share_and_all_fallback_warns(caplog):
    store = BoxStore(4)
    refresher = _refresher(store, 4)
    with caplog.at_level(logging.INFO, logger="ccrop_lightly"):
        stats = refresher.refresh()
    assert stats.fallback_fraction == 0.0
    (line,) = [r.getMessage() for r in caplog.records if r.name == "ccrop_lightly"]
    assert "ccrop refresh v1: 4 images" in line and "fallback 0.00" in line

    blind = nn.Sequential(nn.Conv2d(3, 1, 1), nn.AdaptiveAvgPool2d(2))  # a constant-free but flat map
    with torch.no_grad():
        blind[0].weight.zero_()
        blind[0].bias.fill_(1.0)  # every cell equal: nothing stands out
    loader = make_refresh_loader(_red_quadrant_dataset(4), 16, batch_size=4, normalize=None)
    refresher = BoxRefresher(BoxStore(4), blind, loader, warmup_epochs=1, interval=1)
    with pytest.warns(UserWarning) as record, caplog.at_level(logging.INFO, logger="ccrop_lightly"):
        assert refresher.refresh().fallback_fraction == 1.0
    # One warning (the core's), not one from each layer; the log line gives the share.
    assert [str(r.message)[:40] for r in record] == ["refresh_boxes: all 4 images fell back to"]
    assert "fallback 1.00" in caplog.records[-1].getMessage()


def test_maybe_refresh_past_max_epochs_warns_once():
    refresher = _refresher(BoxStore(4), 4, max_epochs=3)
    with pytest.warns(UserWarning, match=r"maybe_refresh\(epoch=3\) but the schedule's max_epochs is 3") as record:
        for epoch in range(6):
            refresher.maybe_refresh(epoch)
    assert len([r for r in record if "maybe_refresh" in str(r.message)]) == 1


def test_a_schedule_that_never_refreshes_warns_at_construction():
    with pytest.warns(UserWarning, match="warmup_epochs=100, interval=100 the first refresh would run after epoch 99"):
        _refresher(BoxStore(4), 4, warmup_epochs=100, interval=100, max_epochs=10)


def test_stages_need_a_module():
    with pytest.raises(TypeError, match="with stages, feature_fn must be the backbone"):
        _refresher(BoxStore(4), 4).__class__(BoxStore(4), lambda x: x, [], warmup_epochs=1, interval=1, stages="x")


def test_heatmap_rule_and_its_options_reach_the_refresh_and_fail_early(extras_plugin):
    store = BoxStore(8)
    refresher = _refresher(store, 8, heatmap="ddt", heatmap_options={"sign": "image"})
    assert refresher.refresh().images == 8 and store.version == 1
    with pytest.raises(ValueError, match="unknown sign rule 'x' of heatmap 'ddt'"):
        _refresher(BoxStore(4), 4, heatmap="ddt", heatmap_options={"sign": "x"})
    with pytest.raises(TypeError, match="heatmap 'channel_sum' .* takes no options; got \\['bogus'\\]"):
        _refresher(BoxStore(4), 4, heatmap_options={"bogus": 1})


@pytest.mark.parametrize("threshold", ["otsu", "mean"])
def test_an_adaptive_threshold_is_passed_on_by_name(threshold):
    store = BoxStore(8)
    refresher = _refresher(store, 8, threshold=threshold)
    assert refresher.threshold == threshold
    assert refresher.refresh().fallback_fraction == 0.0 and store.version == 1
    for index in range(8):  # each image's box is still on its red quadrant
        boxes, _ = store.get(index)
        centre_x, centre_y = float(boxes[0, 0] + boxes[0, 2]) / 2, float(boxes[0, 1] + boxes[0, 3]) / 2
        assert int(np.argmin([abs(centre_x - x) + abs(centre_y - y) for x, y in QUADRANT_CENTRES])) == index % 4
    with pytest.raises(ValueError, match="threshold"):
        _refresher(BoxStore(4), 4, threshold="median")


def test_the_training_loader_or_a_dataset_as_refresh_loader_fail_at_construction():
    # Both failed at the first refresh, after the whole warm-up: "each batch must be (images, indices, ...)".
    from torch.utils.data import DataLoader

    from ccrop_lightly import CCropCollate, CCropSimCLRTransform

    dataset = _red_quadrant_dataset(4)
    store = BoxStore(4)
    training = DataLoader(dataset, batch_size=2, collate_fn=CCropCollate(CCropSimCLRTransform(input_size=16), store))
    with pytest.raises(TypeError, match=r"the training loader \(its collate_fn is CCropCollate.*make_refresh_loader"):
        BoxRefresher(store, _redness(), training, warmup_epochs=1, interval=1)
    with pytest.raises(TypeError, match=r"got the dataset IndexedDataset.*make_refresh_loader"):
        BoxRefresher(store, _redness(), dataset, warmup_epochs=1, interval=1)


@pytest.mark.parametrize("epoch", ["1", None, 1.0, -1])
def test_maybe_refresh_names_an_epoch_that_is_not_an_int(epoch):
    # '1' / None were "'>=' not supported between instances of 'str' and 'int'"; 1.0 / -1 named the schedule's "step"
    refresher = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=3)
    with pytest.raises(ValueError, match=r"epoch \(the 0-based epoch that just ended\) must be an integer >= 0; got "):
        refresher.maybe_refresh(epoch)
    assert refresher.store.version == 0
    assert refresher.maybe_refresh(torch.tensor(0)) is not None  # a one-element integer tensor is an epoch


def test_a_device_that_does_not_exist_here_fails_at_construction():
    # device='gpu' or 'cuda' on a machine without CUDA were accepted and failed at the first refresh, after the warm-up
    with pytest.raises(ValueError, match=r"device 'gpu' is not a torch device \(e.g. 'cpu', 'cuda'"):
        _refresher(BoxStore(4), 4, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda': no CUDA device is available here"):
            _refresher(BoxStore(4), 4, device="cuda")
    refresher = _refresher(BoxStore(4), 4, device="cpu", warmup_epochs=1, interval=1)
    assert refresher.maybe_refresh(0).images == 4


def test_catch_up_refreshes_a_resumed_store_that_lags_the_schedule(caplog):
    """A plain loop resumed from a checkpoint without boxes, or a finished run resumed for more epochs (its last
    epoch skipped the refresh due there): catch_up(start_epoch) refreshes before the first resumed epoch, with an
    INFO line; a state that holds the schedule's boxes is left alone."""
    store = BoxStore(4)
    first = _refresher(store, 4, warmup_epochs=1, interval=1, max_epochs=2)
    assert [first.maybe_refresh(epoch) is not None for epoch in range(2)] == [True, False]  # never after the last
    state = first.state_dict()
    assert state["last_refresh_epoch"] == 0

    longer = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=3)
    longer.load_state_dict(state)
    with caplog.at_level(logging.INFO, logger="ccrop_lightly"):
        stats = longer.catch_up(2)
    assert stats is not None and longer.store.version == 2 and longer.catch_up(2) is None
    assert "resumed at epoch 2, but the store (version 1) lacks the refresh due after epoch 1" in caplog.text

    same = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=2)
    same.load_state_dict(state)
    assert same.catch_up(2) is None and same.store.version == 1

    no_boxes = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=3)  # e.g. a model-only checkpoint
    assert no_boxes.catch_up(2) is not None and no_boxes.store.version == 1
    assert _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1).catch_up(0) is None  # a fresh run
    with pytest.raises(ValueError, match="epoch"):
        no_boxes.catch_up(-1)


@pytest.mark.parametrize("last, error", [("x", TypeError), (1.5, TypeError), (np.True_, TypeError), (-2, ValueError)])
def test_a_state_whose_last_refresh_epoch_is_no_epoch_is_refused_at_load(last, error):
    """'x' was accepted and failed in catch_up with "can only concatenate str (not "int") to str"; 1.5 silently
    skipped the refresh due. The store is left as it was."""
    first = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=4)
    first.maybe_refresh(0)
    resumed = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=4)
    with pytest.raises(error, match=r"BoxRefresher: the state's last_refresh_epoch must be None \(unknown\) or an "
                                    r"integer >= -1 \(the 0-based epoch after which the store's latest refresh ran; "
                                    rf"-1: none yet\); got {re.escape(repr(last))} "):
        resumed.load_state_dict({**first.state_dict(), "last_refresh_epoch": last})
    assert resumed.store.version == 0 and resumed.last_refresh_epoch is None
    resumed.load_state_dict({**first.state_dict(), "last_refresh_epoch": np.int64(0)})
    assert type(resumed.last_refresh_epoch) is int and resumed.catch_up(2) is not None  # due after epoch 1


def test_a_last_refresh_epoch_past_the_resume_epoch_is_unknown_and_catch_up_refreshes():
    """last_refresh_epoch=99 (a state of a later point, or of another run) resumed at epoch 2 skipped the refresh due
    after epoch 1, silently: now catch_up warns and refreshes."""
    first = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=4)
    first.maybe_refresh(0)
    resumed = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=4)
    resumed.load_state_dict({**first.state_dict(), "last_refresh_epoch": 99})
    with pytest.warns(UserWarning, match=r"catch_up\(start_epoch=2\): the restored last_refresh_epoch=99 is at or "
                                         r"past the epoch about to start"):
        assert resumed.catch_up(2) is not None
    assert resumed.store.version == 2 and resumed.last_refresh_epoch == 1 and resumed.catch_up(2) is None
    with pytest.raises(ValueError, match=r"start_epoch \(the 0-based epoch about to start\) must be an integer >= 0; "
                                         r"got -1"):
        resumed.catch_up(-1)  # was named "the 0-based epoch that just ended"


def test_a_state_of_another_dataset_size_is_ignored_with_a_warning_and_catch_up_remakes_the_boxes():
    """A plain loop resumed onto a grown (or shrunk) dataset: load_state_dict stopped with the store's ValueError;
    now it warns naming both sizes, keeps the new store as it is, and catch_up refreshes when one was due. The
    store itself still refuses another size."""
    first = _refresher(BoxStore(4), 4, warmup_epochs=1, interval=1, max_epochs=3)
    first.maybe_refresh(0)
    state = first.state_dict()
    for size in (6, 3):
        grown = _refresher(BoxStore(size), size, warmup_epochs=1, interval=1, max_epochs=3)
        with pytest.warns(UserWarning, match=rf"boxes were made on a dataset of 4 images, and this one has {size} "
                                             r"\(images added or removed\?\); ignored"):
            grown.load_state_dict(state)
        assert grown.store.version == 0 and grown.last_refresh_epoch is None
        assert grown.catch_up(1) is not None and bool((grown.store.counts > 0).all())
    with pytest.raises(ValueError, match="holds 4 samples but this store has 6"):
        BoxStore(6).load_state_dict(state["store"])


def _quadrant_folder(root, names: str) -> LightlyDataset:
    """A folder of ``len(names)`` red-quadrant images named ``<letter>.png`` (as :func:`_red_quadrant_dataset`)."""
    root.mkdir()
    for i, name in enumerate(names):
        image = np.zeros((32, 32, 3), dtype=np.uint8)
        row, col = divmod(i % 4, 2)
        image[row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16, 0] = 255
        Image.fromarray(image).save(root / f"{name}.png")
    return LightlyDataset(str(root))


def test_a_state_of_other_files_of_the_same_count_is_ignored_and_a_moved_folder_is_not(tmp_path):
    """A plain loop resumed onto another folder of as many images: the boxes went onto other images, silently (the
    refresher's state had no digest of the files). Now it warns and catch_up remakes them; the same files in a moved
    folder keep their boxes."""

    def refresher(dataset: LightlyDataset) -> BoxRefresher:
        loader = make_refresh_loader(dataset, 16, batch_size=4, normalize=None)
        return BoxRefresher(BoxStore(4), _redness(), loader, warmup_epochs=1, interval=1, max_epochs=3)

    first = refresher(_quadrant_folder(tmp_path / "a", "abcd"))
    first.maybe_refresh(0)
    state = first.state_dict()
    assert isinstance(state["images"], str)
    moved = refresher(_quadrant_folder(tmp_path / "moved", "abcd"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved.load_state_dict(state)
    assert moved.store.version == 1 and moved.last_refresh_epoch == 0
    other = refresher(_quadrant_folder(tmp_path / "other", "efgh"))
    with pytest.warns(UserWarning, match=r"boxes were made on another list of images \(the same count, 4, but other "
                                         r"files or another order\); ignored"):
        other.load_state_dict(state)
    assert other.store.version == 0 and other.last_refresh_epoch is None
    assert other.catch_up(1) is not None and bool((other.store.counts > 0).all())


def test_a_callable_localizer_gets_no_threshold_and_refuses_localizer_options():
    """A configured localizer (get_localizer('bbox', threshold=0.5)) has its own threshold: the refresher no longer
    hands the core its default threshold with it (the core refuses that combination), and localizer_options,
    which would go nowhere, are refused when the refresher is made (were ignored, silently)."""
    from ccrop_plugins import get_localizer

    store = BoxStore(4, max_boxes=2)
    stats = _refresher(store, 4, localizer=get_localizer("bbox", threshold=0.5)).refresh()
    assert stats.mean_boxes == 1.0 and torch.allclose(store.get(3)[0], torch.tensor([[0.5, 0.5, 1.0, 1.0]]))
    with pytest.raises(TypeError, match=r"localizer_options \['min_area'\] are for a named localizer"):
        _refresher(BoxStore(4), 4, localizer=get_localizer("bbox"), localizer_options={"min_area": 0.1})


@pytest.mark.parametrize("wrap", ["ImageFolder", "IndexedDataset", "LightlyDataset", "Subset"])
def test_a_refresh_loader_over_a_labelled_dataset_is_refused_when_made(quadrant_folder, wrap):
    # DataLoader(ImageFolder(root, transform=ToTensor())) as the refresh loader: its batches are (images, targets), and
    # the targets were taken as dataset indices, at the first refresh (after the warm-up): refused there by the core
    # from 8 images on (few distinct indices), silently wrong below (4 images of one class: all boxes to image 0).
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    to_tensor = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])
    folder = ImageFolder(str(quadrant_folder), transform=to_tensor)
    dataset = {"ImageFolder": folder, "IndexedDataset": IndexedDataset(folder), "Subset": Subset(folder, range(16)),
               "LightlyDataset": LightlyDataset(str(quadrant_folder), transform=to_tensor)}[wrap]
    name = "a Subset of ImageFolder" if wrap == "Subset" else wrap
    with pytest.raises(TypeError, match=rf"the refresh loader reads {name}, whose items are \(image, target, \.\.\.\): "
                                        r"the second item of each batch would be the class label, not the image's "
                                        r"dataset index.*pass make_refresh_loader\(dataset, transform=transform\)"):
        BoxRefresher(BoxStore(16), _redness(), DataLoader(dataset, batch_size=8), warmup_epochs=1, interval=1)


@pytest.mark.parametrize("one_shot", [lambda b: (x for x in b), iter, lambda b: map(tuple, b)],
                         ids=["generator", "iter", "map"])
def test_a_one_shot_loader_is_refused_when_the_refresher_is_made(one_shot):
    # the first refresh read it, the second found it empty: "refresh_boxes got no images ... drop_last=True"
    batches = [(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.arange(2))]
    with pytest.raises(TypeError, match=r"loader must be read afresh at every refresh \(a DataLoader or a list of "
                                        r"batches\); got a one-shot iterator \(\w+\), empty after the first refresh: "
                                        r"pass make_refresh_loader"):
        BoxRefresher(BoxStore(2), nn.Conv2d(3, 4, 3, padding=1), one_shot(batches), warmup_epochs=1, interval=1)
    refresher = BoxRefresher(BoxStore(2), nn.Conv2d(3, 4, 3, padding=1), batches, warmup_epochs=0, interval=1)
    assert refresher.refresh() is not None and refresher.refresh() is not None  # a list: read again

"""Bad input a stranger adapting Lightly's examples gives the adapter: a clear error when it is made, not a crash in
a DataLoader worker or a silent wrong crop (docs/failure_modes.md, Lightly adapter)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset, Subset

from ccrop_lightly import BoxStore, CCropCollate, CCropSimCLRTransform, IndexedDataset, RefreshImages
from ccrop_lightly import make_refresh_loader


class Plain(Dataset):
    """``(image, 0)`` items of 32 px, as torchvision's datasets give them."""

    def __init__(self, size: int, offset: int = 0) -> None:
        self.size, self.offset = size, offset

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        return Image.new("RGB", (32, 32), (self.offset + index, 0, 0)), 0


@pytest.mark.parametrize("wrapper", ["ConcatDataset", "Subset"])
def test_an_indexed_dataset_inside_a_concat_or_subset_is_refused(wrapper):
    # ConcatDataset([IndexedDataset(a), IndexedDataset(b)]) keys b's images 0, 1, ... as a's: silently a's boxes.
    parts = [IndexedDataset(Plain(4)), IndexedDataset(Plain(4, 100))]
    dataset = ConcatDataset(parts) if wrapper == "ConcatDataset" else Subset(parts[0], [1, 2])
    transform = CCropSimCLRTransform(input_size=32)
    store = BoxStore(len(dataset))
    with pytest.raises(ValueError, match=rf"a {wrapper} of IndexedDataset.*IndexedDataset\({wrapper}\(\.\.\.\)\)"):
        CCropCollate(transform, store, dataset=dataset)
    with pytest.raises(ValueError, match=rf"the refresh loader: the dataset is a {wrapper} of IndexedDataset"):
        make_refresh_loader(dataset, transform=transform)
    from ccrop_lightly import BoxRefreshCallback

    with pytest.raises(ValueError, match=rf"BoxRefreshCallback: the dataset is a {wrapper} of IndexedDataset"):
        BoxRefreshCallback(store, dataset, warmup_epochs=1, interval=1)
    # the right order: one index over the whole
    outer = IndexedDataset(ConcatDataset([Plain(4), Plain(4, 100)]))
    assert [outer[i][2] for i in range(8)] == list(range(8))
    CCropCollate(transform, BoxStore(8), dataset=outer)
    assert len(make_refresh_loader(outer, transform=transform).dataset) == 8


def test_the_refresh_refuses_an_item_index_that_is_not_its_position():
    class Ids(Plain):  # a dataset's own ids (COCO's image_id) as the third item
        def __getitem__(self, index):
            return (*super().__getitem__(index), index + 10)

    with pytest.raises(ValueError, match="item 1 of Ids carries index 11: CCropCollate keys the box store"):
        RefreshImages(Ids(4), 32)[1]


@pytest.mark.parametrize("returns", ["embedding", "tuple"])
def test_a_feature_fn_without_maps_is_refused_when_the_refresher_is_made(returns):
    # Before: accepted; the first refresh, after the whole warm-up, failed with the core's
    # "features must have shape (N, C, h, w); got (2, 8)".
    import torch
    from torch import nn

    from ccrop_lightly import BoxRefresher

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)

        def forward(self, images):
            maps = self.conv(images)
            return maps.mean((2, 3)) if returns == "embedding" else (maps, maps.mean((2, 3)))

    dataset = IndexedDataset(Plain(4))
    loader = make_refresh_loader(dataset, transform=CCropSimCLRTransform(input_size=32))
    what = "its output" if returns == "embedding" else "the last item of its tuple"
    with pytest.raises(ValueError, match=rf"gives no feature map for a \(1, 3, 32, 32\) image: {what}.*\(1, 8\)"):
        BoxRefresher(BoxStore(4), Backbone(), loader, warmup_epochs=1, interval=1, max_epochs=3)
    model = Backbone()
    refresher = BoxRefresher(BoxStore(4), (lambda x: model(x)[0]) if returns == "tuple" else model.conv, loader,
                             warmup_epochs=1, interval=1, max_epochs=3)
    assert refresher.maybe_refresh(0) is not None and torch.is_tensor(refresher.store.get(0)[0])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(normalize={"mean": [0.5, 0.5], "std": [0.2, 0.2]}), r"'std' of 3 numbers .*got mean=\[0.5, 0.5\]"),
        (dict(normalize={"mean": [0.5] * 3, "std": [0.2, 0.0, 0.2]}), r"each std > 0"),
        (dict(normalize={"mean": [0.5] * 3, "std": [float("nan")] * 3}), r"each std > 0"),
        (dict(sigmas=1, gaussian_blur=1.0), r"sigmas must be the blur's \(low, high\) sigma range.*got 1"),
        (dict(sigmas=(-1, 2)), r"sigmas must be .* 0 <= low <= high"),
        (dict(sigmas=(2, 0.1)), r"got \(2, 0.1\)"),
    ],
)
def test_view_options_of_wrong_shape_or_range_are_named_when_the_transform_is_made(options, message):
    # Before: accepted; torchvision's "std evaluated to zero" / a channel mismatch / "'int' object is not
    # subscriptable" in the DataLoader worker, or a negative / reversed sigma range used silently.
    with pytest.raises(ValueError, match=message):
        CCropSimCLRTransform(input_size=32, **options)
    if "normalize" in options:
        with pytest.raises(ValueError, match=message):
            make_refresh_loader(IndexedDataset(Plain(4)), 32, normalize=options["normalize"])


def test_numpy_and_channels_last_images_are_named_with_the_fix_in_the_worker_and_the_direct_call():
    # Before: "expected a PIL image or a tensor (C, H, W); got ndarray" (no way out named); an (H, W, C) tensor's
    # error named no permute; a (2, H, W) tensor given to the transform directly: Normalize's size mismatch.
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    class Arrays(Plain):
        def __getitem__(self, index):
            return np.zeros((32, 32, 3), np.uint8), 0

    transform = CCropSimCLRTransform(input_size=32)
    dataset = IndexedDataset(Arrays(4))
    loader = DataLoader(dataset, batch_size=2, num_workers=1,
                        collate_fn=CCropCollate(transform, BoxStore(4), dataset=dataset))
    with pytest.raises(TypeError, match=r"numpy array of shape \(32, 32, 3\) \(uint8\): return PIL.Image.fromarray"):
        next(iter(loader))
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\): pass image.permute\(2, 0, 1\)"):
        CCropCollate(transform, BoxStore(4))([(torch.zeros(32, 32, 3, dtype=torch.uint8), 0, 0)])
    with pytest.raises(ValueError, match=r"tensor of shape \(2, 32, 32\); allowed: \(H, W\), \(1, H, W\)"):
        transform(torch.rand(2, 32, 32))


def test_a_dataset_that_changes_size_during_training_stops_the_refresh():
    # Before: the refresh localized the first 4 images silently (the sampler keeps its length) and the collate
    # failed at index 4 with "size the store to the dataset", which it was.
    from torch import nn

    from ccrop_lightly import BoxRefresher

    images = Plain(4)
    loader = make_refresh_loader(IndexedDataset(images), transform=CCropSimCLRTransform(input_size=32))
    refresher = BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=1, interval=1,
                             max_epochs=3)
    images.size = 5
    with pytest.raises(ValueError, match="dataset now has 5 images, the box store 4: the dataset changed size"):
        refresher.maybe_refresh(0)


def test_loading_a_missing_refresher_state_names_it():
    # Before: "argument of type 'NoneType' is not iterable" (checkpoint.get("ccrop") of a checkpoint without it).
    from torch import nn

    from ccrop_lightly import BoxRefresher

    loader = make_refresh_loader(IndexedDataset(Plain(4)), transform=CCropSimCLRTransform(input_size=32))
    refresher = BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=1, interval=1)
    with pytest.raises(TypeError, match=r"needs the dict of refresher.state_dict\(\); got NoneType .*catch_up"):
        refresher.load_state_dict(None)


def test_a_localizer_max_boxes_other_than_the_stores_is_refused():
    # Before: 8 boxes per image made, the store of 2 kept its first 2 of each set, silently.
    from torch import nn

    from ccrop_lightly import BoxRefresher, BoxRefreshCallback

    dataset = IndexedDataset(Plain(4))
    loader = make_refresh_loader(dataset, transform=CCropSimCLRTransform(input_size=32))
    message = r"localizer_options max_boxes=8 and the box store's max_boxes=2 disagree"
    with pytest.raises(ValueError, match=message):
        BoxRefresher(BoxStore(4, max_boxes=2), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=1, interval=1,
                     localizer_options={"max_boxes": 8})
    with pytest.raises(ValueError, match=message):
        BoxRefreshCallback(BoxStore(4, max_boxes=2), dataset, warmup_epochs=1, interval=1,
                           localizer_options={"max_boxes": 8})
    BoxRefresher(BoxStore(4, max_boxes=2), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=1, interval=1,
                 localizer_options={"max_boxes": 2})



def test_a_threshold_given_twice_must_agree():
    # Before: Python's "get_localizer() got multiple values for keyword argument 'threshold'" when made, for any
    # localizer_options threshold (the refresher's own default 0.1 counted as given). Its default is now None (the
    # localizer's own), so a threshold given once, in localizer_options, is taken.
    from torch import nn

    from ccrop_lightly import BoxRefresher, BoxRefreshCallback

    dataset = IndexedDataset(Plain(4))
    loader = make_refresh_loader(dataset, transform=CCropSimCLRTransform(input_size=32))
    message = r"threshold=0.3 and localizer_options threshold=0\.5 disagree; give the threshold once"
    with pytest.raises(ValueError, match=message):
        BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=1, interval=1,
                     localizer_options={"threshold": 0.5}, threshold=0.3)
    with pytest.raises(ValueError, match=message):
        BoxRefreshCallback(BoxStore(4), dataset, warmup_epochs=1, interval=1, localizer_options={"threshold": 0.5},
                           threshold=0.3)
    BoxRefreshCallback(BoxStore(4), dataset, warmup_epochs=1, interval=1, localizer_options={"threshold": 0.5})
    for threshold, options in (("otsu", {"threshold": "otsu"}), (None, {"threshold": "otsu"})):
        refresher = BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=0, interval=1,
                                 threshold=threshold, localizer_options=options)
        refresher.refresh()
        assert refresher.store.version == 1


def test_a_plugin_localizer_without_threshold_or_max_boxes_refreshes(registered_sized_box):
    # Before: "localizer 'sized_box' ... does not accept options ['threshold']; accepted: size" when made (the
    # refresher passed its default threshold 0.1 to any named localizer, and the core the store's max_boxes).
    from torch import nn

    from ccrop_lightly import BoxRefresher, BoxRefreshCallback

    dataset = IndexedDataset(Plain(4))
    loader = make_refresh_loader(dataset, transform=CCropSimCLRTransform(input_size=32))
    with registered_sized_box():
        refresher = BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=0, interval=1,
                                 localizer="sized_box", localizer_options={"size": 0.4})
        refresher.refresh()
        assert torch.allclose(refresher.store.boxes[:, 0], torch.tensor([0.3, 0.3, 0.7, 0.7]).expand(4, 4))
        BoxRefreshCallback(BoxStore(4), dataset, warmup_epochs=1, interval=1, localizer="sized_box")
        with pytest.raises(TypeError, match=r"does not accept options \['threshold'\]; accepted: size"):
            BoxRefresher(BoxStore(4), nn.Conv2d(3, 4, 3, stride=2), loader, warmup_epochs=0, interval=1,
                         localizer="sized_box", threshold=0.2)  # asked for, so not dropped


def test_a_subset_or_concat_of_lightly_datasets_is_keyed_by_its_own_positions(tmp_path):
    # Before: "batch item 0 is keyed by filename '4.png', but this collate function knows no filenames; pass
    # ... filenames=dataset.get_filenames()", whose list (of the whole folder) then failed the store size check.
    import numpy as np
    import torch
    from lightly.data import LightlyDataset
    from torch.utils.data import DataLoader

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for i in range(5):
            Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / folder / f"{i}.png")
    whole = LightlyDataset(str(tmp_path / "a"))
    subset = Subset(whole, [4, 1, 3])
    transform = CCropSimCLRTransform(input_size=32)
    collate = CCropCollate(transform, BoxStore(3), dataset=subset)
    assert [collate.index_of(name) for name in ("4.png", "1.png", "3.png")] == [0, 1, 2]
    refresh = make_refresh_loader(subset, transform=transform).dataset
    assert torch.equal(refresh[0][0], RefreshImages(whole, 32)[4][0])  # the refresh's position 0 is 4.png too
    views, _, keys = next(iter(DataLoader(subset, batch_size=3, shuffle=True, collate_fn=collate)))
    assert sorted(keys) == ["1.png", "3.png", "4.png"] and views[0].shape == (3, 3, 32, 32)
    twice = ConcatDataset([whole, LightlyDataset(str(tmp_path / "b"))])
    with pytest.raises(ValueError, match=r"appears twice .*wrap it: IndexedDataset\(ConcatDataset"):
        CCropCollate(transform, BoxStore(10), dataset=twice)


@pytest.mark.parametrize("degrees", [-5, "a", (1, 2, 3)])
def test_a_bad_rotation_range_is_named_as_rr_degrees(degrees):
    # Before: torchvision's "If degrees is a single number, it must be positive." (no rr_degrees named).
    with pytest.raises(ValueError, match=r"rr_degrees must be None \(90-degree turns\), a number >= 0"):
        CCropSimCLRTransform(input_size=32, rr_prob=0.5, rr_degrees=degrees)
    CCropSimCLRTransform(input_size=32, rr_prob=0.5, rr_degrees=(-10, 10))


def test_a_lightly_transform_or_a_single_view_given_to_the_collate_names_what_to_pass():
    # Before: "transform must be a CCropMultiViewTransform (...); got SimCLRTransform" (Lightly's example's transform).
    from lightly.transforms import MoCoV2Transform, SimCLRTransform

    from ccrop_lightly import CCropSimCLRViewTransform

    for lightly_transform, ours in ((SimCLRTransform(input_size=32), "CCropSimCLRTransform"),
                                    (MoCoV2Transform(input_size=32), "CCropMoCoV2Transform")):
        with pytest.raises(TypeError, match=rf"cannot crop around boxes; use ccrop_lightly's {ours}, which takes"):
            CCropCollate(lightly_transform, BoxStore(2))
    with pytest.raises(TypeError, match=r"a single view; pass CCropMultiViewTransform\(\[view, view\]\)"):
        CCropCollate(CCropSimCLRViewTransform(input_size=32), BoxStore(2))


def test_lightlys_byol_simsiam_dino_and_swav_transforms_are_named_with_the_way_to_convert_them():
    # Before: "transform must be a CCropMultiViewTransform (...); got BYOLTransform", no way forward; a lightly view
    # transform given to CCropViewTransform was told to remove a RandomResizedCrop it builds in.
    from lightly.transforms import BYOLTransform, BYOLView1Transform, DINOTransform, SimSiamTransform, SwaVTransform

    from ccrop_lightly import CCropViewTransform
    from ccrop_plugins import ContrastiveCrop

    with pytest.raises(TypeError, match=r"SimSiamTransform cannot crop around boxes; use ccrop_lightly's "
                                        r"CCropMoCoV2Transform, which takes the same arguments"):
        CCropCollate(SimSiamTransform(input_size=32), BoxStore(2))
    for transform in (BYOLTransform(), DINOTransform(), SwaVTransform()):
        with pytest.raises(TypeError, match=rf"{type(transform).__name__} cannot crop around boxes; build its views as "
                                            r"CCropViewTransform\(ContrastiveCrop\(size, scale=...\), T.Compose"):
            CCropCollate(transform, BoxStore(2))
    with pytest.raises(ValueError, match=r"lightly's BYOLView1Transform builds its crop in: give its other steps as a "
                                         r"torchvision Compose"):
        CCropViewTransform(ContrastiveCrop(32), BYOLView1Transform(input_size=32))


def test_an_unlabelled_dataset_of_bare_images_trains_and_a_dict_item_is_named():
    # Before: "item 0 of Bare is Image; IndexedDataset expects (image, target) pairs" for a dataset of bare images
    # (RefreshImages took them already); a dict item named no keys.
    from torch.utils.data import DataLoader

    class Bare(Plain):
        def __getitem__(self, index):
            return super().__getitem__(index)[0]

    dataset = IndexedDataset(Bare(4))
    assert dataset[2][1:] == (0, 2)
    collate = CCropCollate(CCropSimCLRTransform(input_size=32), BoxStore(4), dataset=dataset)
    views, targets, keys = next(iter(DataLoader(dataset, batch_size=4, shuffle=True, drop_last=True,
                                                collate_fn=collate)))
    assert views[0].shape == (4, 3, 32, 32) and targets.tolist() == [0] * 4 and sorted(keys) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"item 0 of list is a dict with keys \['image', 'label'\]; .*return \(image"):
        IndexedDataset([{"image": Image.new("RGB", (32, 32)), "label": 1}])[0]


@pytest.mark.parametrize("degrees", [(10, 5), float("nan"), float("inf"), (0, float("nan"))])
def test_an_inverted_or_non_finite_rotation_range_is_refused_when_made(degrees):
    # was built, then torch's "uniform_ expects to return a [from, to) range" in every DataLoader worker
    with pytest.raises(ValueError, match=r"rr_degrees must be None \(90-degree turns\), a number >= 0 \(-x to x\) or a "
                                         r"\(low, high\) pair, finite, with low <= high; got"):
        CCropSimCLRTransform(input_size=16, rr_prob=1.0, rr_degrees=degrees)
    CCropSimCLRTransform(input_size=16, rr_prob=1.0, rr_degrees=(5, 5))  # one angle: a valid range


def test_the_refresher_the_callback_and_the_refresh_images_print_their_settings():
    # Each printed as <ccrop_lightly.refresher.BoxRefresher object at 0x...>: nothing of its schedule or store.
    from torch import nn

    from ccrop_lightly import BoxRefreshCallback, BoxRefresher

    store = BoxStore(8)
    images = [(Image.new("RGB", (16, 16)), index) for index in range(8)]
    refresher = BoxRefresher(store, nn.Conv2d(3, 4, 3), [], warmup_epochs=1, interval=2, max_epochs=5)
    assert repr(refresher) == ("BoxRefresher(BoxStore(num_samples=8, max_boxes=4, version=0), RefreshSchedule("
                               "warmup_epochs=1, interval=2, max_epochs=5), localizer='components', threshold=None, "
                               "heatmap='channel_sum', last_refresh_epoch=None)")
    callback = BoxRefreshCallback(store, images, warmup_epochs=1, interval=2, input_size=16)
    assert repr(callback) == ("BoxRefreshCallback(BoxStore(num_samples=8, max_boxes=4, version=0), warmup_epochs=1, "
                              "interval=2, localizer='components', heatmap='channel_sum', stages=None, "
                              "num_workers=None)")
    assert repr(make_refresh_loader(images, 16).dataset) == "RefreshImages(list of 8, size=(16, 16))"

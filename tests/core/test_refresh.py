"""refresh_boxes: images -> features -> heatmaps -> box sets -> store, on one rank and on two (gloo)."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ccrop_plugins import BoxSets, BoxStore, get_localizer, refresh_boxes
from ccrop_plugins.kept_pipelines import _PIPELINES

sys.path.insert(0, str(Path(__file__).parent))  # distributed_refresh: the ranks' entry point
import distributed_refresh  # noqa: E402


@pytest.fixture(scope="module")
def gloo_runs(tmp_path_factory, extras_plugin):
    """One process, then two forked gloo ranks (one start for both runs of distributed_refresh.RUNS)."""
    out = tmp_path_factory.mktemp("gloo")
    for heatmap, count in distributed_refresh.RUNS:
        distributed_refresh.refresh(0, 1, str(out), heatmap, count)
    distributed_refresh.run_ranks(distributed_refresh.run_rank, out)
    return out


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
def test_two_gloo_ranks_end_with_the_same_store_as_one_process(gloo_runs):
    tmp_path = gloo_runs
    single = torch.load(tmp_path / "rank0_of_1_channel_sum.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"rank{r}_of_2_channel_sum.pt", weights_only=True) for r in range(2)]

    # each rank iterated only its shard; the odd dataset size padded rank 1 with a duplicate of index 0
    assert ranks[0]["shard"] == [0, 2, 4, 6, 8, 10] and ranks[1]["shard"] == [1, 3, 5, 7, 9, 0]
    assert single["stats"]["images"] == 11
    assert all(r["stats"]["images"] == 12 for r in ranks)  # summed over ranks, duplicate included

    expected = single["state"]
    assert int((expected["counts"] > 0).sum()) == 11 and int(expected["counts"].max()) >= 2
    for rank in ranks:
        state = rank["state"]
        assert state["version"] == expected["version"] == 1
        assert torch.equal(state["counts"], expected["counts"])
        torch.testing.assert_close(state["boxes"], expected["boxes"])
        torch.testing.assert_close(state["scores"], expected["scores"])
        for key in ("mean_boxes", "fallback_fraction"):
            assert rank["stats"][key] == pytest.approx(ranks[0]["stats"][key])


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
def test_dataset_statistics_of_ddt_are_summed_over_gloo_ranks(gloo_runs):
    """12 images (no padding duplicates): two ranks fit the same mean and component as one process,
    and the second pass, which applies them, gives the same store."""
    tmp_path = gloo_runs
    single = torch.load(tmp_path / "rank0_of_1_ddt.pt", weights_only=True)
    assert single["component"] is not None and single["component"].shape == (8,)
    for rank in range(2):
        saved = torch.load(tmp_path / f"rank{rank}_of_2_ddt.pt", weights_only=True)
        torch.testing.assert_close(saved["mean"], single["mean"], rtol=1e-5, atol=1e-6)  # float32 products
        torch.testing.assert_close(saved["component"], single["component"], rtol=1e-4, atol=1e-5)
        assert saved["state"]["version"] == single["state"]["version"] == 2
        assert torch.equal(saved["state"]["counts"], single["state"]["counts"])
        torch.testing.assert_close(saved["state"]["boxes"], single["state"]["boxes"])


def _tiny_dataset_rank(rank, init_method, out):
    with distributed_refresh.gloo_group(rank, init_method, world_size=8):
        dataset = distributed_refresh.IndexedImages(4)
        sampler = DistributedSampler(dataset, num_replicas=8, rank=rank, shuffle=False)
        store = BoxStore(4)
        try:
            result = refresh_boxes(lambda x: x, DataLoader(dataset, sampler=sampler), store, progress=False).images
        except ValueError as error:
            result = str(error)
        torch.save(result, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
def test_a_padded_distributed_sampler_over_more_ranks_than_twice_the_images_is_no_label_error(tmp_path):
    # 4 images over 8 ranks: DistributedSampler pads to 8, [0, 1, 2, 3, 0, 1, 2, 3]; was 'refresh_boxes got 8 images
    # but only 4 distinct indices ...: not its class label' on every rank (the repeats of the padding were counted)
    distributed_refresh.run_ranks(_tiny_dataset_rank, tmp_path, nprocs=8)
    assert [torch.load(tmp_path / f"rank{r}.pt") for r in range(8)] == [8] * 8


def _blob_images():
    """Four 16x16 images: one square, two squares, a blank one, one square in the corner."""
    images = torch.zeros(4, 1, 16, 16)
    images[0, 0, 4:8, 2:10] = 1.0
    images[1, 0, 0:4, 0:4] = 1.0
    images[1, 0, 10:16, 8:16] = 0.5
    images[3, 0, 12:16, 12:16] = 1.0
    return images


def test_refresh_with_a_plain_function_gives_exact_boxes_and_statistics():
    images = _blob_images()
    batches = [(images[:2], torch.tensor([5, 2])), (images[2:], torch.tensor([0, 7]))]
    store = BoxStore(8, max_boxes=2)
    stats = refresh_boxes(lambda x: x, batches, store, localizer="components", localizer_options={"min_area": 0.0},
                          progress=False)
    assert store.version == stats.version == 1
    torch.testing.assert_close(store.get(5)[0], torch.tensor([[2 / 16, 4 / 16, 10 / 16, 8 / 16]]))
    torch.testing.assert_close(store.get(2)[0], torch.tensor([[8 / 16, 10 / 16, 1.0, 1.0], [0.0, 0.0, 4 / 16, 4 / 16]]))
    assert store.get(0)[0].tolist() == [[0.0, 0.0, 1.0, 1.0]]  # blank image: fallback
    assert store.get(1) is None
    assert stats.images == 4
    assert stats.mean_boxes == pytest.approx(5 / 4)
    assert stats.fallback_fraction == pytest.approx(1 / 4)
    areas = [8 * 4 / 256, 48 / 256, 16 / 256, 1.0, 16 / 256]
    assert stats.mean_box_area == pytest.approx(sum(areas) / 5)
    assert stats.images_per_second > 0
    assert set(stats.as_dict()) == {"images", "seconds", "images_per_second", "mean_boxes", "mean_box_area",
                                    "fallback_fraction", "version"}


def test_bbox_threshold_heatmap_size_tuple_features_and_callable_localizer():
    images = _blob_images()
    store = BoxStore(4, max_boxes=4)
    stats = refresh_boxes(lambda x: (None, x), [(images, torch.arange(4))], store, localizer="bbox", threshold=0.6,
                          heatmap_size=(32, 32), progress=False)
    # threshold 0.6 drops the 0.5 square of image 1; one box per image
    assert store.get(1)[0].shape == (1, 4)
    torch.testing.assert_close(store.get(1)[0], torch.tensor([[0.0, 0.0, 4 / 16, 4 / 16]]), atol=1 / 32, rtol=0)
    assert stats.mean_boxes == 1.0

    seen = []

    def localizer(maps):
        seen.append(tuple(maps.shape))
        return BoxSets.from_lists([torch.tensor([[0.0, 0.0, 0.5, 0.5]])] * len(maps))

    refresh_boxes(lambda x: x, [(images, [0, 1, 2, 3])], store, localizer=localizer, progress=False)
    assert seen == [(4, 16, 16)] and store.version == 2
    assert store.get(3)[0].tolist() == [[0.0, 0.0, 0.5, 0.5]]


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(1)
        self.modes = []

    def forward(self, x):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return self.norm(x)


def test_modules_run_in_eval_mode_without_grad_and_are_restored():
    model = _Recorder().train()
    running_mean = model.norm.running_mean.clone()
    refresh_boxes(model, [(_blob_images(), torch.arange(4))], BoxStore(4), progress=False)
    assert model.modes == [(False, False)]
    assert model.training  # restored
    assert torch.equal(model.norm.running_mean, running_mean)  # eval mode: statistics untouched
    model.eval()
    refresh_boxes(model, [(_blob_images(), torch.arange(4))], BoxStore(4), progress=False)
    assert not model.training


def test_progress_bar_and_early_errors(capsys):
    store = BoxStore(4)
    refresh_boxes(lambda x: x, [(_blob_images(), torch.arange(4))], store, progress=True)
    assert "ccrop refresh" in capsys.readouterr().err

    def never_iterated():
        raise AssertionError("batches must not be touched before the localizer is known")
        yield

    with pytest.raises(ValueError, match="unknown localizer 'component'; available: bbox, components"):
        refresh_boxes(lambda x: x, never_iterated(), store, localizer="component")
    with pytest.raises(IndexError, match="sample index 4 is outside the box store of 4 samples"):
        refresh_boxes(lambda x: x, [(_blob_images(), torch.arange(1, 5))], store, progress=False)
    assert store.version == 1


@pytest.mark.parametrize("progress", [False, True])
def test_each_batch_is_freed_before_the_next_one_is_made(progress):
    """The next forward can reuse a batch's memory (held, it made the forward fault in fresh pages)."""
    import weakref

    held = []

    def tracked(images):
        held.append(weakref.ref(images))
        return images

    def batches():  # keeps no reference itself
        for start in (0, 4, 8):
            assert all(ref() is None for ref in held), "the previous batch is still referenced"
            yield tracked(_blob_images()), torch.arange(start, start + 4)

    stats = refresh_boxes(lambda x: x, batches(), BoxStore(12), progress=progress)
    assert stats.images == 12


class _CountedLoader(DataLoader):
    """A DataLoader that counts its iterators (each one with workers starts them and prefetches anew)."""

    iterators = 0

    def __iter__(self):
        type(self).iterators += 1
        return super().__iter__()


@pytest.mark.parametrize("progress", [False, True])
def test_a_loader_is_iterated_once_per_pass(progress):
    # was: 2 iterators, the bar's (tqdm.auto's constructor calls iter() on its iterable, disabled or not) and the
    # pass's: with num_workers=2, 4 worker processes, 320 reads of 256 images and ~150 MB more shared memory
    dataset = [(image, index) for index, image in enumerate(_blob_images())]
    _CountedLoader.iterators = 0
    stats = refresh_boxes(lambda x: x, _CountedLoader(dataset, batch_size=2), BoxStore(4), progress=progress)
    assert _CountedLoader.iterators == 1 and stats.images == 4


# ----------------------------------------------------------------------------- issue 12: nothing silent
def test_class_labels_instead_of_indices_are_refused_before_the_pass():
    images = torch.rand(16, 1, 16, 16)
    labels = torch.tensor([0, 1, 2, 3] * 4)  # (images, labels) of a torchvision dataset
    store = BoxStore(100)
    with pytest.raises(ValueError, match=r"16 images but only 4 distinct indices .* not its class label"):
        refresh_boxes(lambda x: x, [(images, labels)], store, progress=False)
    with pytest.raises(TypeError, match="integer dataset indices; got torch.float32"):
        refresh_boxes(lambda x: x, [(images, labels.float())], store, progress=False)
    # small batches with few repeats each: caught over the whole pass
    with pytest.raises(ValueError, match=r"24 images but only 3 distinct indices"):
        refresh_boxes(lambda x: x, [(images[:3], torch.tensor([0, 1, 2]))] * 8, store, progress=False)
    with pytest.raises(IndexError, match="sample index 100 is outside the box store of 100 samples"):
        refresh_boxes(lambda x: x, [(images[:2], torch.tensor([5, 100]))], store, progress=False)
    assert store.version == 0


def test_an_empty_loader_is_an_error_not_a_refresh_of_zero_images():
    store = BoxStore(4)
    with pytest.raises(ValueError, match="refresh_boxes got no images: the batches were empty"):
        refresh_boxes(lambda x: x, [], store, progress=False)
    assert store.version == 0


def test_a_localizer_returning_a_tensor_is_named():
    def tensor_localizer(maps):
        return torch.zeros(len(maps), 4)

    with pytest.raises(TypeError, match=r"localizer .*tensor_localizer returned Tensor; expected BoxSets"):
        refresh_boxes(lambda x: x, [(_blob_images(), torch.arange(4))], BoxStore(4), localizer=tensor_localizer,
                      progress=False)


def test_bad_arguments_and_batches_are_named_before_any_work():
    images, store = _blob_images(), BoxStore(4)
    with pytest.raises(TypeError, match="store must be a ccrop_plugins.BoxStore; got dict"):
        refresh_boxes(lambda x: x, [(images, torch.arange(4))], {}, progress=False)
    with pytest.raises(TypeError, match=r"feature_fn must be callable \(images -> features\); got NoneType"):
        refresh_boxes(None, [(images, torch.arange(4))], store, progress=False)
    with pytest.raises(TypeError, match="localizer must be a registered name or a callable .*; got int"):
        refresh_boxes(lambda x: x, [(images, torch.arange(4))], store, 5, progress=False)
    batches = [(images, "Tensor"), ((images,), r"\['Tensor'\]"), (([1, 2], torch.arange(2)), r"\['list', 'Tensor'\]")]
    for batch, got in batches:
        with pytest.raises(ValueError, match=rf"each batch must be \(images \(B, C, H, W\), indices .*; got {got}"):
            refresh_boxes(lambda x: x, [batch], store, progress=False)
    for indices in (["a", "b", "c", "d"], None, [[0, 1], [2]]):  # were torch.as_tensor's "too many dimensions 'str'"
        with pytest.raises(TypeError, match="the second item of each batch must be integer dataset indices; got "):
            refresh_boxes(lambda x: x, [(images, indices)], store, progress=False)
    with pytest.raises(ValueError, match="a batch holds 4 images but 3 indices"):
        refresh_boxes(lambda x: x, [(images, torch.arange(3))], store, progress=False)
    with pytest.raises(ValueError, match=r"localizer .*one_set returned 1 box sets for 4 heatmaps; expected one per"):
        def one_set(maps):
            return BoxSets.from_lists([[]])

        refresh_boxes(lambda x: x, [(images, torch.arange(4))], store, one_set, progress=False)
    with pytest.raises(TypeError, match="features must be a Tensor .* or a dict of them; got list"):
        refresh_boxes(lambda x: [], [(images, torch.arange(4))], store, progress=False)
    for flag in ("no", None, 0.5):  # 'no' showed the bar
        with pytest.raises(TypeError, match=f"progress must be True or False; got {flag!r}"):
            refresh_boxes(lambda x: x, [(images, torch.arange(4))], store, progress=flag)
    for batches in (None, 5):  # were "'NoneType' object is not iterable" from the progress bar
        with pytest.raises(TypeError, match=r"batches must be an iterable of \(images .*, e.g. a DataLoader; got "):
            refresh_boxes(lambda x: x, batches, store, progress=False)
    for size, error in ((0, ValueError), ("ab", TypeError), ((8, 8, 8), ValueError)):  # were checked after a forward
        with pytest.raises(error, match=r"heatmap_size must be a positive int or \(height, width\)"):
            refresh_boxes(lambda x: x, [(images, torch.arange(4))], store, heatmap_size=size, progress=False)
    bad_devices = [("gpu", "is not a torch device"), (f"cuda:{torch.cuda.device_count()}", "CUDA device")]
    bad_devices += [] if torch.cuda.is_available() else [("cuda", r"this machine has 0 CUDA device\(s\)")]
    for device, problem in bad_devices:  # were torch's errors at the first batch, after the loader had started
        with pytest.raises(ValueError, match=rf"device '{device}'.*{problem}"):
            refresh_boxes(lambda x: x, [(images, torch.arange(4))], store, device=device, progress=False)
    for options in ({"threshold": 0.5}, {"localizer_options": {"min_area": 0.1}}):  # were silently ignored
        with pytest.raises(TypeError, match=r"threshold and localizer_options need a localizer given by name; "
                                            r"localizer .*BBoxLocalizer is an object"):
            refresh_boxes(lambda x: x, [(images, torch.arange(4))], store, get_localizer("bbox"), progress=False,
                          **options)
    for what in ("localizer_options", "heatmap_options"):
        with pytest.raises(TypeError, match=f"{what} must be a dict of options; got list"):
            refresh_boxes(lambda x: x, [(images, torch.arange(4))], store, progress=False, **{what: [("a", 1)]})
    assert store.version == 0


def test_images_without_a_channel_axis_or_channels_last_are_named():
    # were the model's own error (conv2d: 'expected input[1, 4, 16, 16] to have 3 channels, but got 4 channels'), or
    # a (3, H, W) batch taken as one image of 3 channels: 'features must have shape (N, C, h, w); got (8, 14, 14)'
    torch.manual_seed(0)
    conv, store = nn.Conv2d(3, 8, 3), BoxStore(4)
    for shape in ((4, 16, 16), (3, 16, 16), (4, 16, 16, 3)):
        last = r" \(channels last\? pass images.permute\(0, 3, 1, 2\)\)" if len(shape) == 4 else ""
        with pytest.raises(ValueError, match=rf"^the images of each batch must be \(B, C, H, W\); got "
                                             rf"\({', '.join(map(str, shape))}\){last}$"):
            refresh_boxes(conv, [(torch.rand(*shape), torch.arange(shape[0]))], store, progress=False)
    assert store.version == 0


def test_a_heatmap_method_returning_4d_maps_is_named():
    def keeps_channels(features):
        return features[:, :1]

    with pytest.raises(ValueError, match=r"heatmap method .*keeps_channels returned \(4, 1, 16, 16\); "
                                         r"expected maps \(N, h, w\)"):
        refresh_boxes(lambda x: x, [(_blob_images(), torch.arange(4))], BoxStore(4), heatmap=keeps_channels,
                      progress=False)


def test_one_by_one_maps_and_an_all_fallback_pass_warn_with_the_numbers():
    pooled = nn.AdaptiveAvgPool2d(1)
    with pytest.warns(UserWarning) as caught:
        stats = refresh_boxes(pooled, [(_blob_images(), torch.arange(4))], BoxStore(4), progress=False)
    messages = [str(w.message) for w in caught]
    assert any("feature maps are 1x1 for (16, 16) images" in m for m in messages)
    assert any("all 4 images fell back to the whole-image box (fallback fraction 1.00)" in m for m in messages)
    assert stats.fallback_fraction == 1.0
    assert len(messages) == 2  # once per pass, not once per batch


def test_dict_features_of_two_stages_and_heatmap_options(extras_plugin):
    images = _blob_images()
    store = BoxStore(4, max_boxes=2)

    def two_stages(x):
        return {"fine": x, "coarse": torch.nn.functional.avg_pool2d(x, 2)}

    refresh_boxes(two_stages, [(images, torch.arange(4))], store, localizer_options={"min_area": 0.0}, progress=False)
    torch.testing.assert_close(store.get(0)[0], torch.tensor([[2 / 16, 4 / 16, 10 / 16, 8 / 16]]))
    with pytest.raises(TypeError,
                       match=r"heatmap 'channel_sum' \(from ccrop-plugins\) takes no options; got \['sign'\]"):
        refresh_boxes(two_stages, [(images, torch.arange(4))], store, heatmap_options={"sign": "image"}, progress=False)
    refresh_boxes(two_stages, [(images, torch.arange(4))], store, heatmap="ddt", heatmap_options={"sign": "image"},
                  progress=False)
    assert store.version == 2


def test_a_pass_on_non_finite_features_names_them_as_a_cause():
    # A diverged model gives NaN features: every box falls back, and the warning named only the stage, rule, threshold.
    store = BoxStore(2)
    batches = [(torch.zeros(2, 3, 8, 8), torch.arange(2))]
    with pytest.warns(UserWarning, match=r"all 2 images fell back .* that the features are finite \(NaN or inf"):
        refresh_boxes(lambda images: torch.full((len(images), 4, 4, 4), float("nan")), batches, store, threshold=0.1)


def test_images_with_non_finite_features_are_counted_in_a_warning():
    # Was counted by the MM adapter alone (a wrapper around its feature function); now the pass counts, for both.
    store = BoxStore(2)
    batches = [(torch.rand(2, 3, 8, 8), torch.arange(2))]

    def features(images):
        maps = torch.rand(len(images), 4, 4, 4)
        maps[1, 0, 0, 0] = float("inf")
        return maps

    with pytest.warns(UserWarning, match=r"refresh_boxes: the features of 1 of the 2 images this pass localized "
                                         r"hold NaN or inf \(a diverged model\?"):
        refresh_boxes(features, batches, store, threshold=0.1)


class ChannelWeights:
    """A heatmap rule class with a tensor option: the features' channels weighted by ``weights`` (C,)."""

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights

    def __call__(self, features):
        return torch.einsum("nchw,c->nhw", features, self.weights)


def test_heatmap_options_that_differ_inside_a_long_tensor_get_their_own_pipeline(registered_heatmap):
    """Two 2000-element weight tensors that differ in the middle print alike ('...'): the store's kept pipelines were
    keyed by that repr, so the second pass reused the rule built with the first weights (the first object's box)."""
    features = torch.zeros(1, 2000, 8, 8)
    features[0, 1000, :3, :3] = 1.0  # channel 1000: an object top-left
    features[0, 999, 5:, 5:] = 1.0  # channel 999: an object bottom-right
    first, second = torch.zeros(2000), torch.zeros(2000)
    first[1000], second[999] = 1.0, 1.0
    assert repr(first) == repr(second)
    store = BoxStore(1, max_boxes=1)
    with registered_heatmap("channel_weights", ChannelWeights):
        for weights, box in ((first, [0.0, 0.0, 3 / 8, 3 / 8]), (second, [5 / 8, 5 / 8, 1.0, 1.0]),
                             (first, [0.0, 0.0, 3 / 8, 3 / 8])):
            refresh_boxes(lambda images: features, [(torch.zeros(1, 3, 8, 8), torch.arange(1))], store,
                          heatmap="channel_weights", heatmap_options={"weights": weights}, localizer="bbox",
                          threshold=0.5, progress=False)
            torch.testing.assert_close(store.get(0)[0], torch.tensor([box]))
        assert len(_PIPELINES[store]) == 2  # the same tensor object again: its pipeline is kept


def test_class_labels_of_a_pass_of_fewer_than_8_images_are_refused():
    # the check began at 8 images: six (image, label) items [0, 1, 0, 1, 0, 1] wrote each other's boxes, silently
    images, store = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0)), BoxStore(6)
    with pytest.raises(ValueError, match=r"6 images but only 2 distinct indices .* not its class label"):
        refresh_boxes(lambda x: x, [(images[:3], torch.tensor([0, 1, 0])), (images[3:], torch.tensor([1, 0, 1]))],
                      store, progress=False)
    with pytest.raises(ValueError, match=r"4 images but only 2 distinct indices"):
        refresh_boxes(lambda x: x, [(images[:4], torch.tensor([0, 1, 0, 1]))], store, progress=False)
    assert store.version == 0
    refresh_boxes(lambda x: x, [(images[:4], torch.tensor([0, 1, 2, 0]))], BoxStore(3), progress=False)  # one repeat


def test_a_channels_last_batch_of_two_channels_is_named():
    # (B, H, W, 2) (grayscale + alpha, channels last) reached the model as 16 channels: conv2d's own error
    with pytest.raises(ValueError, match=r"got \(4, 16, 16, 2\) \(channels last\? pass images.permute\(0, 3, 1, 2\)\)"):
        refresh_boxes(nn.Conv2d(2, 8, 3), [(torch.zeros(4, 16, 16, 2), torch.arange(4))], BoxStore(4), progress=False)


def test_an_mps_device_this_machine_lacks_is_refused_before_the_pass(monkeypatch):
    # was accepted, then torch's "PyTorch is not linked with support for mps devices" at the first batch
    from ccrop_plugins import checked_device
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    match = r"device 'mps': no MPS device \(Apple's GPU\) is available here; use device='cpu' or leave device out"
    with pytest.raises(ValueError, match=match):
        checked_device("mps")
    store = BoxStore(2)
    with pytest.raises(ValueError, match=match):
        refresh_boxes(nn.Conv2d(3, 4, 3), [(torch.zeros(2, 3, 16, 16), torch.arange(2))], store, device="mps",
                      progress=False)
    assert store.version == 0

"""BoxStore: shared-memory box sets that persistent DataLoader workers see updated, checkpoints, errors."""

import io
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ccrop_plugins import BoxSets, BoxStore

sys.path.insert(0, str(Path(__file__).parent))  # store_dataset must be importable by spawned workers
from store_dataset import StoreReadingDataset  # noqa: E402


def _sets(n, k=2, seed=0):
    """``n`` random valid box sets with 1..k boxes each, scores best first."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(n, k, 2, 2, generator=generator).sort(dim=2).values  # (x, y) low/high
    boxes = torch.stack([corners[..., 0, 0], corners[..., 0, 1], corners[..., 1, 0] + 1e-3, corners[..., 1, 1] + 1e-3],
                        dim=-1)
    boxes = boxes.clamp(0, 1)
    scores = torch.rand(n, k, generator=generator).sort(dim=1, descending=True).values
    counts = torch.randint(1, k + 1, (n,), generator=generator)
    return BoxSets(boxes, scores, counts, torch.zeros(n, dtype=torch.bool))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_persistent_workers_see_an_update_made_between_epochs(context):
    store = BoxStore(8, max_boxes=2)
    loader = DataLoader(
        StoreReadingDataset(store),
        batch_size=4,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context=context,
    )
    first = list(loader)
    assert all(int(b["version"].max()) == 0 and int(b["count"].max()) == 0 for b in first)
    assert all(bool(b["shared"].all()) for b in first)
    worker_pids = {int(p) for b in first for p in b["pid"]}
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids

    sets = _sets(8)
    store.update(torch.arange(8), sets)  # in the main process, workers still running
    second = list(loader)
    assert {int(p) for b in second for p in b["pid"]} == worker_pids  # the same (persistent) workers
    for batch in second:
        assert batch["version"].tolist() == [1] * 4
        for index, count, boxes in zip(batch["index"], batch["count"], batch["boxes"]):
            assert int(count) == int(sets.counts[index])
            torch.testing.assert_close(boxes[:count], sets[int(index)][0])


def test_memory_is_at_most_128_bytes_per_sample_and_shared():
    store = BoxStore(1000, max_boxes=4)
    tensors = [store.boxes, store.scores, store.counts]
    per_sample = sum(t.element_size() * t.nelement() for t in tensors) / 1000
    assert per_sample <= 128, per_sample
    assert all(t.is_shared() for t in tensors)


def test_update_get_padding_and_versions():
    store = BoxStore(5, max_boxes=2)
    assert store.version == 0 and store.get(3) is None and len(store) == 5
    three = BoxSets.from_lists(
        [torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.1, 0.1, 0.2, 0.2]]),
         torch.tensor([[0.2, 0.2, 0.4, 0.4]])],
        scores=[torch.tensor([3.0, 2.0, 1.0]), torch.tensor([0.5])],
    )
    store.update([3, 1], three)
    assert store.version == 1
    boxes, scores = store.get(3)
    assert boxes.tolist() == [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]] and scores.tolist() == [3.0, 2.0]
    boxes, scores = store.get(1)
    torch.testing.assert_close(boxes, torch.tensor([[0.2, 0.2, 0.4, 0.4]]))
    # padding repeats the first box with score 0, so a concurrent reader always sees valid boxes
    torch.testing.assert_close(store.boxes[1, 1], store.boxes[1, 0])
    assert float(store.scores[1, 1]) == 0.0
    boxes.zero_()  # get returns copies
    assert store.get(1)[0].sum() > 0
    store.update([0], BoxSets.from_lists([torch.zeros(0, 4)]), new_version=False)
    assert store.version == 1 and store.get(0)[0].tolist() == [[0.0, 0.0, 1.0, 1.0]]
    summary = store.summary()
    assert summary["filled_fraction"] == pytest.approx(3 / 5)
    assert summary["mean_boxes"] == pytest.approx(4 / 3)
    assert summary["mean_box_area"] == pytest.approx((0.25 + 0.25 + 0.04 + 1.0) / 4)


def test_state_dict_round_trip_through_torch_save():
    store = BoxStore(6, max_boxes=3)
    store.update(torch.tensor([0, 2, 5]), _sets(3, k=3))
    store.update(torch.tensor([1]), _sets(1, k=3, seed=1))
    buffer = io.BytesIO()
    torch.save(store.state_dict(), buffer)
    buffer.seek(0)
    restored = BoxStore(6, max_boxes=3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.version == 2
    for index in range(6):
        got, expected = restored.get(index), store.get(index)
        if expected is None:
            assert got is None
        else:
            torch.testing.assert_close(got, expected)
    assert restored.boxes.is_shared()  # restored in place, still shared with workers
    smaller = BoxStore(6, max_boxes=1)
    smaller.load_state_dict(store.state_dict())
    assert smaller.get(0)[0].shape == (1, 4)
    torch.testing.assert_close(smaller.get(0)[0], store.get(0)[0][:1])


def test_state_dict_errors():
    store = BoxStore(4)
    state = store.state_dict()
    with pytest.raises(KeyError, match=r"lacks \['boxes', 'version'\]"):
        store.load_state_dict({k: v for k, v in state.items() if k not in ("boxes", "version")})
    with pytest.raises(ValueError, match="holds 5 samples but this store has 4"):
        store.load_state_dict(BoxStore(5).state_dict())
    bad = BoxStore(4).state_dict()
    bad["counts"][2] = 1
    bad["boxes"][2, 0] = torch.tensor([0.5, 0.5, 0.4, 0.9])
    with pytest.raises(ValueError, match="box 0 of sample 2 is inverted"):
        store.load_state_dict(bad)


def test_index_and_argument_errors():
    store = BoxStore(4, max_boxes=2)
    for index in (4, -1):
        with pytest.raises(IndexError, match=f"sample index {index} is outside the box store of 4 samples"):
            store.get(index)
    with pytest.raises(IndexError, match="sample index 9 is outside"):
        store.update([0, 9], _sets(2))
    with pytest.raises(ValueError, match="got 3 indices for 2 box sets"):
        store.update([0, 1, 2], _sets(2))
    with pytest.raises(ValueError, match=r"num_samples \(the dataset length\) must be an integer >= 1; got 0"):
        BoxStore(0)
    for bad in (0, 1.5, True, 128, "2"):
        with pytest.raises(ValueError, match=rf"max_boxes must be an integer in \[1, 127\]; got {bad!r}"):
            BoxStore(3, max_boxes=bad)
    with pytest.raises(ValueError, match="num_samples .* must be an integer >= 1; got 4.5"):
        BoxStore(4.5)
    assert store.version == 0  # failed updates change nothing
    assert BoxStore(np.int64(3), max_boxes=np.int32(2)).max_boxes == 2


@pytest.mark.parametrize("index", [1.5, 2.0, True, np.float32(1.0), torch.tensor(1.0)])
def test_a_float_or_bool_index_is_refused_not_truncated(index):
    store = BoxStore(4, max_boxes=2)
    store.update([1], _sets(1))
    with pytest.raises(TypeError, match="sample index must be an integer; got"):
        store.get(index)
    with pytest.raises(TypeError, match=r"sample indices must be integers; got torch\.\w+ values such as \["):
        store.update(torch.tensor([index]), _sets(1))
    assert store.version == 1


def test_integer_indices_of_every_kind_are_accepted():
    store = BoxStore(4, max_boxes=2)
    store.update(np.array([3], dtype=np.int16), _sets(1))
    for index in (3, np.int64(3), torch.tensor(3), torch.tensor([3])):
        assert store.get(index) is not None
    store.update([], BoxSets.from_lists([]), new_version=False)  # an empty update is fine


def _filled_store():
    store = BoxStore(4, max_boxes=2)
    store.update([0, 2, 3], _sets(3))
    return store


def _corrupt(change):
    state = _filled_store().state_dict()
    change(state)
    return state


def _set(key, value):
    return lambda state: state.__setitem__(key, value)


def _set_item(key, index, value):
    return lambda state: state[key].__setitem__(index, value)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (_set_item("boxes", (1, 0), torch.tensor([0.5, 0.5, 0.4, 0.9])), None, None),  # count 0: unused, fine
        (_set_item("scores", (1, 0), float("nan")), None, None),  # count 0: unused, fine
        (_set_item("counts", 1, -1), ValueError, r"count of sample 1 must lie in \[0, 2\]; got -1"),
        (_set_item("counts", 1, 3), ValueError, r"count of sample 1 must lie in \[0, 2\]; got 3"),
        (_set_item("boxes", (2, 0), torch.tensor([0.5, 0.5, 0.4, 0.9])), ValueError, "box 0 of sample 2 is inverted"),
        (_set_item("boxes", (3, 0), torch.tensor([0.0, 0.0, 1.5, 1.0])), ValueError,
         r"box 0 of sample 3 lies outside \[0, 1\]"),
        (_set_item("boxes", (0, 0), torch.tensor([0.0, float("nan"), 0.5, 1.0])), ValueError,
         "box 0 of sample 0 is not finite"),
        (_set_item("scores", (0, 0), -1.0), ValueError, "score 0 of sample 0 must be finite and >= 0; got -1.0"),
        (lambda s: s.__setitem__("boxes", s["boxes"][:3]), ValueError,
         r"boxes must have shape \(4, 2, 4\); got \(3, 2, 4\) \(truncated"),
        (lambda s: s.__setitem__("scores", s["scores"][:, :1]), ValueError,
         r"scores must have shape \(4, 2\); got \(4, 1\)"),
        (lambda s: s.__setitem__("counts", s["counts"][:2]), ValueError, r"counts must have shape \(4,\); got \(2,\)"),
        (lambda s: s.__setitem__("counts", s["counts"].float()), TypeError,
         "counts must have an integer dtype; got torch.float32"),
        (lambda s: s.__setitem__("boxes", s["boxes"].long()), TypeError,
         "boxes must have a floating point dtype; got torch.int64"),
        (_set("boxes", "abc"), TypeError, "boxes must be a tensor; got str"),
        (_set("max_boxes", 1.5), ValueError, r"max_boxes must be an integer in \[1, 127\]; got 1.5"),
        (_set("max_boxes", 3), ValueError, r"boxes must have shape \(4, 3, 4\); got \(4, 2, 4\)"),
        (_set("version", -2), ValueError, "version must be an integer >= 0; got -2"),
        (_set("num_samples", 4.0), ValueError, "holds 4.0 samples but this store has 4"),
    ],
)
def test_a_bad_state_is_refused_and_leaves_the_store_unchanged(change, error, message):
    store = _filled_store()
    store.update([1], _sets(1, seed=3), new_version=False)  # the live store differs from the state
    before = {key: value.clone() if isinstance(value, torch.Tensor) else value
              for key, value in store.state_dict().items()}
    state = _corrupt(change)
    if error is None:
        store.load_state_dict(state)
        assert store.get(1) is None and store.get(2) is not None
        assert torch.isfinite(store.boxes).all() and torch.isfinite(store.scores).all()
        return
    with pytest.raises(error, match=message):
        store.load_state_dict(state)
    after = store.state_dict()
    for key, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(after[key], value), key
        else:
            assert after[key] == value, key


def test_pickling_keeps_content_and_version():
    store = BoxStore(3, max_boxes=2)
    store.update([2], _sets(1))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.version == 1 and repr(copy) == "BoxStore(num_samples=3, max_boxes=2, version=1)"
    torch.testing.assert_close(copy.get(2), store.get(2))
    assert copy.get(0) is None


def test_update_and_load_state_dict_name_arguments_of_the_wrong_type():
    store = BoxStore(4, 2)
    with pytest.raises(TypeError, match="box_sets must be a ccrop_plugins.BoxSets; got NoneType"):
        store.update([0], None)
    with pytest.raises(TypeError, match="sample indices must be integers; got 'ab'"):
        store.update("ab", _sets(2))
    for flag in ("no", None, 2):  # 'no' counted a refresh
        with pytest.raises(TypeError, match=f"new_version must be True or False; got {flag!r}"):
            store.update([0, 1], _sets(2), new_version=flag)
    for state in (None, [1]):
        with pytest.raises(TypeError, match=r"box store state must be a dict \(from state_dict\(\)\); got"):
            store.load_state_dict(state)
    assert store.version == 0


def test_images_digest_keeps_a_moved_folder_and_tells_other_files_apart():
    from ccrop_plugins import images_digest

    files = ["/data/a/cats/1.png", "/data/a/dogs/2.png", "/data/a/dogs/3.png"]
    moved = [path.replace("/data/a/", "/mnt/b/") for path in files]
    assert images_digest(moved) == images_digest(files)
    assert images_digest(files[:2] + ["/data/a/dogs/4.png"]) != images_digest(files)  # a renamed file
    assert images_digest(files[::-1]) != images_digest(files)  # another order: other images under each index


def test_images_digest_takes_pathlib_paths_and_names_what_is_not_a_list_of_paths():
    from pathlib import Path

    from ccrop_plugins import images_digest

    files = ["/data/a/cats/1.png", "/data/a/dogs/2.png"]
    assert images_digest([Path(f) for f in files]) == images_digest(files)  # was "'PosixPath' is not subscriptable"
    for one_path in ("/data/a/cats/1.png", Path("/data/a")):  # a str was digested as a list of characters
        with pytest.raises(TypeError, match="images_digest takes a list of image paths in dataset index order; got"):
            images_digest(one_path)
    with pytest.raises(TypeError, match="images_digest takes a list of image paths"):
        images_digest(None)
    with pytest.raises(TypeError, match="images_digest: every path must be a str or os.PathLike; .*int"):
        images_digest(["/data/a/cats/1.png", 3])


def test_other_images_names_another_count_or_another_list_of_files():
    from ccrop_plugins import other_images

    assert other_images({"num_samples": 4}, 6) == "a dataset of 4 images, and this one has 6 (images added or removed?)"
    assert other_images({"num_samples": 4}, 4, "a", "b") == (
        "another list of images (the same count, 4, but other files or another order)")
    assert other_images({"num_samples": 4}, 4, "a", None) is None  # cannot tell
    assert other_images({"num_samples": 4}, 4, "a", "a") is None
    assert other_images({}, 4) is None and other_images("garbage", 4) is None  # left to load_state_dict
    assert other_images({"num_samples": True}, 4) is None


def test_update_and_load_keep_the_best_max_boxes_by_score_not_the_first():
    """A direct caller's unsorted sets with more than max_boxes boxes: the best ones are kept, best first; ties keep
    their order (sorted input is stored as it is), and sets that are not cut are stored as given."""
    boxes = torch.tensor([[[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.5, 0.5], [0.6, 0.6, 0.7, 0.7]],
                          [[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.5, 0.5], [0.6, 0.6, 0.7, 0.7]]])
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7], [1.0, 1.0, 1.0, 1.0]])
    sets = BoxSets(boxes, scores, torch.tensor([4, 3]), torch.zeros(2, dtype=torch.bool))
    store = BoxStore(2, max_boxes=2)
    store.update([0, 1], sets)
    kept, kept_scores = store.get(0)
    assert kept_scores.tolist() == pytest.approx([0.9, 0.7]) and kept.tolist() == boxes[0, [1, 3]].tolist()
    assert store.get(1)[0].tolist() == boxes[1, :2].tolist()  # ties: the first ones, as before
    state = {"num_samples": 2, "max_boxes": 4, "version": 3, "boxes": boxes, "scores": scores,
             "counts": torch.tensor([4, 3])}
    loaded = BoxStore(2, max_boxes=2)
    loaded.load_state_dict(state)
    assert loaded.get(0)[1].tolist() == pytest.approx([0.9, 0.7]) and loaded.get(0)[0].tolist() == kept.tolist()
    bigger = BoxStore(2, max_boxes=4)  # no cut: the order as given (components' cores follow their components)
    bigger.update([0, 1], sets)
    assert bigger.get(0)[1].tolist() == pytest.approx([0.1, 0.9, 0.5, 0.7])


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_unsigned_indices_are_taken_and_checked(dtype):
    # were torch's '"lt_cpu" not implemented for 'UInt32'' (numpy uint indices, e.g. from a dataset's own arrays)
    store = BoxStore(4)
    store.update(np.array([1, 3], dtype=dtype), _sets(2))
    assert [store.get(i) is not None for i in range(4)] == [False, True, False, True]
    assert store.checked_indices(np.array([2], dtype=dtype)).dtype == torch.int64
    big = np.iinfo(dtype).max
    with pytest.raises(IndexError, match=rf"sample index {big} is outside the box store of 4 samples"):
        store.update(np.array([0, big], dtype=dtype), _sets(2))
    assert store.version == 1

"""refresh_boxes names the images' dtype when the feature function cannot take them (uint8 / int64 images for a
float32 model): torch's own error from inside the model named neither the refresh nor its loader. Float images are
cast to a module's dtype (a bf16-true or 64-true model takes the loader's float32 images)."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ccrop_plugins import BoxStore, refresh_boxes

sys.path.insert(0, str(Path(__file__).parent))  # distributed_refresh: run_ranks
import distributed_refresh  # noqa: E402


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, 3, padding=1)  # float32 weights and bias


def _images(dtype: torch.dtype) -> torch.Tensor:
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return (images * 255).to(dtype) if dtype in (torch.uint8, torch.int64) else images.to(dtype)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_an_error_inside_the_model_names_the_images_dtype_and_the_loader(dtype):
    loader = DataLoader(TensorDataset(_images(dtype), torch.arange(4)), batch_size=2)
    with pytest.raises(RuntimeError) as raised:  # torch's own error, its type unchanged
        refresh_boxes(_model(), loader, BoxStore(4), progress=False)
    notes = getattr(raised.value, "__notes__", [])
    assert len(notes) == 1, notes  # was: no note ("Input type (unsigned char) and bias type (float) ...")
    assert f"shape (2, 3, 16, 16), dtype {dtype}, on cpu (moved to cpu)" in notes[0]
    assert "refresh loader must yield float images" in notes[0] and "ToDtype(torch.float32, scale=True)" in notes[0]


def test_float32_images_refresh_as_before():
    store = BoxStore(4)
    stats = refresh_boxes(_model(), [(_images(torch.float32), torch.arange(4))], store, progress=False)
    assert stats.images == 4 and store.version == 1


@pytest.mark.parametrize("model_dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_float_images_are_cast_to_the_models_dtype(model_dtype):
    # Lightning's precision="64-true" / "bf16-true" converts the module, not the callback's refresh loader, whose
    # float32 images raised "Input type (float) and bias type (c10::BFloat16) should be the same" after the warm-up.
    expected = BoxStore(4)
    refresh_boxes(_model().to(model_dtype), [(_images(torch.float32).to(model_dtype), torch.arange(4))], expected,
                  progress=False)
    for images_dtype in (torch.float32, torch.float64, torch.float16):
        store = BoxStore(4)
        images = _images(torch.float32).to(model_dtype).to(images_dtype)  # the same values in another dtype
        assert refresh_boxes(_model().to(model_dtype), [(images, torch.arange(4))], store, progress=False).images == 4
        assert torch.equal(store.boxes, expected.boxes) and torch.equal(store.counts, expected.counts)


def _rank(rank, init_method, out):
    """Rank 1 yields uint8 images: every rank raises, rank 0's RuntimeError carries rank 1's note as text."""
    with distributed_refresh.gloo_group(rank, init_method):
        images = _images(torch.uint8 if rank == 1 else torch.float32)
        try:
            refresh_boxes(_model(), [(images, torch.arange(4) + 4 * rank)], BoxStore(8), progress=False)
            error = None
        except Exception as raised:  # noqa: BLE001 - recorded for the test
            error = [type(raised).__name__, str(raised), getattr(raised, "__notes__", [])]
        torch.save(error, Path(out) / f"rank{rank}.pt")


@pytest.mark.xdist_group("ddp")  # with the other multi-process tests, on one xdist worker
def test_the_other_ranks_read_the_failing_ranks_note(tmp_path):
    distributed_refresh.run_ranks(_rank, tmp_path)
    other, failing = (torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2))
    assert failing[0] == "RuntimeError" and any("dtype torch.uint8" in note for note in failing[2])
    assert other[0] == "RuntimeError" and other[1].startswith("refresh_boxes failed on rank 1 of 2: RuntimeError: ")
    assert "; refresh_boxes: raised by the feature function on a batch of images of shape (4, 3, 16, 16), " \
           "dtype torch.uint8" in other[1]  # was: only torch's message, the note left behind on rank 1

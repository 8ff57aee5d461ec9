"""CCropCollate refuses a bfloat16 tensor image by name (was: lightly's GaussianBlur -> torchvision's to_pil_image,
'TypeError: Got unsupported ScalarType BFloat16', deep in a DataLoader worker)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from ccrop_lightly import CCropCollate, CCropSimCLRTransform, IndexedDataset
from ccrop_plugins import BoxStore


def _loader(dtype: torch.dtype) -> DataLoader:
    torch.manual_seed(0)
    dataset = IndexedDataset([(torch.rand(3, 20, 20).to(dtype), 0)] * 2)
    collate = CCropCollate(CCropSimCLRTransform(input_size=16, gaussian_blur=0.0), BoxStore(len(dataset)),
                           dataset=dataset)
    return DataLoader(dataset, batch_size=2, collate_fn=collate)


def test_a_bfloat16_image_is_refused_naming_its_dtype_and_the_allowed_ones():
    with pytest.raises(ValueError, match=r"the image of sample 0 \(batch position 0\) is a torch.bfloat16 tensor") as e:
        next(iter(_loader(torch.bfloat16)))
    assert "allowed: a PIL image or a tensor of torch.uint8, torch.uint16, torch.float16, torch.float32" in str(e.value)
    assert "image.float()" in str(e.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_other_float_images_make_float32_views(dtype):
    views, targets, keys = next(iter(_loader(dtype)))
    assert [tuple(v.shape) for v in views] == [(2, 3, 16, 16)] * 2 and views[0].dtype == torch.float32
    assert keys == [0, 1] and targets.tolist() == [0, 0]

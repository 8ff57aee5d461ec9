"""Every shipped config loads with Config.fromfile; its model, train pipeline and hooks build (no data, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import HOOKS, MODELS, init_default_scope

from ccrop_mm import ChooseContrastiveBox, ContrastiveCropHook
from ccrop_mm.pipeline_walk import find_instances
from ccrop_mm.transforms import PretrainContrastiveCrop, SelfSupContrastiveCrop

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs/mmpretrain").glob("*.py")) + sorted((REPO / "configs/mmselfsup").glob("*.py"))
_built_models: set[str] = set()


def test_every_framework_has_configs():
    names = {(p.parent.name, p.name.split("_")[0]) for p in CONFIGS}
    assert {
        ("mmpretrain", "simclr"), ("mmpretrain", "mocov2"), ("mmselfsup", "simclr"), ("mmselfsup", "mocov2")
    } <= names
    assert sum("multiobj" in p.name for p in CONFIGS) >= 6


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_loads_and_builds(path):
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    loader = cfg.train_dataloader
    assert dict(loader.collate_fn) == {"type": "default_collate"}  # no inherited `_scope_`
    assert loader.persistent_workers
    pipeline = Compose(loader.dataset.pipeline)
    flavour = SelfSupContrastiveCrop if cfg.default_scope == "mmselfsup" else PretrainContrastiveCrop
    crops = find_instances(pipeline, flavour)
    assert len(crops) == 1  # MultiView runs the same view pipeline object for both views
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert isinstance(hook, ContrastiveCropHook)
    if "multiobj" in path.name:
        assert hook.localizer_name == "components" and find_instances(pipeline, ChooseContrastiveBox)
    paper = {"simclr": (0.1, 100, 500), "mocov2": (0.6, 20, 100)}[path.name.split("_")[0]]
    if "cpu" not in path.name:
        assert (
            crops[0].crop.sampler.alpha, hook.schedule.warmup, hook.schedule.interval, cfg.train_cfg.max_epochs
        ) == (paper[0], paper[1], paper[1], paper[2])
        assert crops[0].crop.scale == (0.2, 1.0) and hook.localizer.threshold == 0.1
    else:  # the small-image configs use the measured setting (docs/benchmarks/localize.md)
        assert hook.heatmap == "distinctiveness" and hook.localizer.threshold == "otsu"
    key = cfg.default_scope + repr(cfg.model)
    if key not in _built_models:  # variants share their parent's model: build each distinct one once
        model = MODELS.build(cfg.model)
        assert hasattr(model, "backbone")
        _built_models.add(key)


class _Images:
    """A stand-in train dataset of 16 samples whose ``sample_idx`` is the index, holding a config's pipeline."""

    def __init__(self, pipeline: Compose) -> None:
        self.pipeline = pipeline

    def __len__(self) -> int:
        return 16

    def get_data_info(self, index: int) -> dict:
        return {"img_path": f"{index}.png", "sample_idx": index}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_pipeline_passes_the_hooks_checks(path):
    # The hook's before_train checks of the train pipeline (placement of the crop, the box choice, the views) accept
    # every shipped pipeline as it is.
    from ccrop_mm.train_parts import read_train_pipeline

    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    hook = HOOKS.build(cfg.custom_hooks[0])
    plan = read_train_pipeline(_Images(Compose(cfg.train_dataloader.dataset.pipeline)), hook.max_boxes > 1)
    assert len(plan.store_users) == 1 + ("multiobj" in path.name) and not plan.plain_views

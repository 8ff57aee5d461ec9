"""Fixtures of the mm tests: generated image folders and the shared set-up module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import ccrop_mm  # noqa: E402,F401  (registers the transforms and the hook)
import mm_setup  # noqa: E402


@pytest.fixture(scope="session")
def coordinate_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mm_setup.coordinate_images(tmp_path_factory.mktemp("coordinate_images"))


@pytest.fixture(scope="session")
def object_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mm_setup.object_images(tmp_path_factory.mktemp("object_images"))


@pytest.fixture
def setup():
    return mm_setup


@pytest.fixture
def train():
    """``train(cfg)``: build a Runner, train it, return it; its DataLoader workers stop at teardown."""
    from mmengine.runner import Runner

    runners = []

    def run(cfg):
        runner = Runner.from_cfg(cfg)
        runners.append(runner)
        runner.train()
        return runner

    yield run
    for runner in runners:
        mm_setup.stop_workers(runner)

"""A Lightly user who stops and resumes a run of the ready plain-loop script, and loads what it saved."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ccrop_lightly import BoxRefresher
from ccrop_plugins import BoxSets, BoxStore

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "lightly"
TINY = ["--generate", "16", "--batch-size", "8", "--warmup-epochs", "1", "--interval", "1", "--workers", "0",
        "--no-cifar-stem", "--input-size", "32", "--stages", "layer3"]


def test_a_stores_own_state_loads_into_the_refresher():
    # simclr_ccrop.py saved store.state_dict(); the refresher refused it: "refresher state lacks 'store'".
    saved = BoxStore(4)
    one = torch.tensor([[[0.1, 0.2, 0.6, 0.7]]]).repeat(4, 1, 1)
    saved.update(torch.arange(4), BoxSets(one, torch.ones(4, 1), torch.ones(4, dtype=torch.long),
                                          torch.zeros(4, dtype=torch.bool)))
    store = BoxStore(4)
    loader = [(torch.zeros(4, 3, 8, 8), torch.arange(4))]
    refresher = BoxRefresher(store, nn.Conv2d(3, 2, 3), loader, warmup_epochs=1, interval=1, max_epochs=3)
    refresher.load_state_dict(saved.state_dict())
    assert store.version == 1 and torch.equal(store.get(3)[0], one[3])
    assert refresher.catch_up(2) is None  # filled boxes of unknown age are trusted


def test_the_plain_loop_script_checkpoints_every_epoch_and_resumes_with_its_boxes(tmp_path, monkeypatch, capsys):
    # The script saved the model and store.state_dict() once, after the whole run, and had no --resume: a stopped
    # run was lost, and the saved boxes carried neither their image list nor their refresh epoch.
    monkeypatch.syspath_prepend(str(CONFIGS))
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module("simclr_ccrop")
    checkpoint = tmp_path / "run" / "ck.pt"
    folder = str(tmp_path / "scenes")
    assert module.main([folder, *TINY, "--epochs", "2", "--checkpoint", str(checkpoint)])["store_version"] == 1
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] == 2 and saved["box_store"]["last_refresh_epoch"] == 0
    assert isinstance(saved["box_store"]["images"], str)  # the files' digest: boxes resumed elsewhere are ignored
    # A longer run: the refresh skipped after the first run's last epoch runs on resume, before epoch 2.
    again = ["--epochs", "3", "--checkpoint", str(checkpoint), "--resume", str(checkpoint)]
    resumed = module.main([folder, *TINY, *again])
    assert resumed["store_version"] == 2 and torch.load(checkpoint, weights_only=True)["epoch"] == 3
    assert "epoch: 02" in capsys.readouterr().out
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(SystemExit):
        module.main([folder, *TINY, "--resume", str(tmp_path / "other.pt")])
    lacks = "not a checkpoint of this script (it lacks optimizer, scheduler, epoch, box_store)"
    assert lacks in capsys.readouterr().err
    torch.save(torch.ones(3), tmp_path / "tensor.pt")  # was: RuntimeError: Tensor.__contains__ only supports Tensor
    with pytest.raises(SystemExit):
        module.main([folder, *TINY, "--resume", str(tmp_path / "tensor.pt")])
    assert "tensor.pt: not a checkpoint of this script (it lacks model, optimizer" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(SystemExit):
        module.main([folder, *TINY, "--resume", str(tmp_path / "notes.txt")])
    assert "notes.txt: not a checkpoint of this script (" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main([folder, *TINY, "--epochs", "3", "--resume", str(checkpoint)])
    assert "its run has done 3 epochs, so --epochs 3 trains none more; raise --epochs" in capsys.readouterr().err
    sys.modules.pop("simclr_ccrop", None)


def test_a_callback_whose_boxes_no_view_reads_warns_when_training_starts(quadrant_folder, tmp_path):
    # lightly's own transform in the dataset and the default collate (the callback added, the collate not changed):
    # the boxes were refreshed and read by no view, so ContrastiveCrop was inactive without a word.
    import pytorch_lightning as pl
    from lightly.data import LightlyDataset
    from lightly.transforms import SimCLRTransform
    from torch.utils.data import DataLoader

    from ccrop_lightly import BoxRefreshCallback

    views = LightlyDataset(str(quadrant_folder), transform=SimCLRTransform(input_size=32, normalize=None))
    plain = LightlyDataset(str(quadrant_folder))
    store = BoxStore(len(plain))
    callback = BoxRefreshCallback(store, plain, input_size=32, warmup_epochs=1, interval=1, batch_size=8,
                                  normalize=None)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, callbacks=[callback], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_train_batches=1, default_root_dir=str(tmp_path))
    with pytest.warns(UserWarning, match=r"collate_fn is not a CCropCollate \(got default_collate\), so no view reads "
                                         r"the boxes it refreshes.*collate_fn=CCropCollate\("):
        trainer.fit(_tiny_simclr(), DataLoader(views, batch_size=4, drop_last=True))


def _tiny_simclr():
    import lightning_simclr  # registered by tests/lightly/conftest.py

    return lightning_simclr.TinySimCLR()


@pytest.mark.parametrize("argv, message", [
    # were tracebacks, MoCo's --stages only after Lightning's set-up (BoxRefreshCallback's on_train_start)
    (["--localizer", "component"], "--localizer: unknown localizer 'component'; available: bbox, components"),
    (["--heatmap", "chanel_sum"], "--heatmap: unknown heatmap 'chanel_sum'; available: channel_norm, channel_sum"),
    (["--stages", "layer5"], "--stages: unknown stage 'layer5' of Sequential; valid names are dotted submodule names "
                             "such as: conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4"),
    (["--stages", "layer4", "layer4"], "--stages: stage names must be unique; got ['layer4', 'layer4']"),
])
def test_bad_refresh_names_of_the_scripts_are_usage_lines(monkeypatch, tmp_path, capsys, argv, message):
    monkeypatch.syspath_prepend(str(CONFIGS))
    options = importlib.import_module("training_options")
    with pytest.raises(SystemExit) as exit_info:
        options.parse(options.build_parser("x", temperature=0.5), [str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_moco_script_names_a_resume_file_that_is_no_checkpoint(monkeypatch, tmp_path, capsys):
    # Was Lightning's traceback after the set-up, torch's weights-only error suggesting weights_only=False.
    monkeypatch.syspath_prepend(str(CONFIGS))
    module = importlib.import_module("moco_v2_ccrop")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        module.main([str(tmp_path / "scenes"), *TINY, "--resume", str(tmp_path / "notes.txt")])
    assert exit_info.value.code == 2
    assert "notes.txt: not a checkpoint (a file torch.save wrote, e.g. by --checkpoint)" in capsys.readouterr().err

"""docs/lightly.md runs: its code blocks, extracted as written, train and refresh (tiny sizes).

Blocks preceded by ``<!-- guide-test: NAME -->`` are the guide's changes to Lightly's example
``NAME`` (``simclr``: ``examples/pytorch/simclr.py``; ``lightning``:
``examples/pytorch_lightning/simclr.py``). Lightly's example is not copied into this project, so
its unchanged lines are stood in for by a skeleton written here (the same model, data and loop
structure); the guide's blocks fill the skeleton's slots, in order (``multiview``, the multi-crop block, runs on
its own over the same dataset). Blocks preceded by
``<!-- guide-diff: NAME -->`` are the guide's diffs against Lightly's files: every line they add
must be a line of the tested blocks, so the diff cannot drift from the code that runs.

With ``CCROP_LIGHTLY_REPO`` set to a checkout of lightly-ai/lightly, the diffs are also applied
to Lightly's own example files and the results run (the check a user following the guide does).

Tiny sizes: CIFAR-10 is replaced by 24 generated 32 px images (no download), and the sizes of
``TINY`` are substituted (each must occur in the guide, so a changed guide fails here).
"""

from __future__ import annotations

import os
import re
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "lightly.md"
BLOCK = re.compile(r"<!-- guide-(test|diff): ([\w-]+) -->\s*\n```(?:python|diff)\n(.*?)\n```", re.S)

TINY = {
    "simclr": {"batch_size=256": "batch_size=8", "num_workers=8": "num_workers=2", "epochs = 10": "epochs = 2",
               "warmup_epochs=4": "warmup_epochs=1", "interval=2": "interval=1"},
    "lightning": {"batch_size=256": "batch_size=8", "num_workers=8": "num_workers=2", "max_epochs=10": "max_epochs=2",
                  "warmup_epochs=4": "warmup_epochs=1", "interval=2": "interval=1"},
    # Another mean than the transforms' default, so that the refresh loader's can only come from the block's views.
    "multiview": {"ContrastiveCrop(224": "ContrastiveCrop(32", "ContrastiveCrop(96": "ContrastiveCrop(16",
                  "mean=[0.485, 0.456, 0.406]": "mean=[0.5, 0.5, 0.5]"},
}
SILENT = ".*(1 x 1|1x1|never refreshes).*"  # a guide followed literally must not trigger these

SIMCLR_SKELETON = '''
import torch
import torchvision
from torch import nn
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
{imports}

class SimCLR(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x):
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

resnet = torchvision.models.resnet18()
{stem}
backbone = nn.Sequential(*list(resnet.children())[:-1])
model = SimCLR(backbone)
device = "cpu"
model.to(device)
{data}
criterion = NTXentLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
{refresher}
{loop}
{inspect}
{stages}
'''
# The example's loop body, which the guide's loop block shows as "..." (unchanged).
LOOP_BODY = '''
    total_loss = 0
    for batch in dataloader:
        x0, x1 = batch[0]
        loss = criterion(model(x0.to(device)), model(x1.to(device)))
        total_loss += loss.detach()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    avg_loss = total_loss / len(dataloader)
    print(f"epoch: {epoch:>02}, loss: {avg_loss:.5f}")
'''
LIGHTNING_SKELETON = '''
import pytorch_lightning as pl
import torch
import torchvision
from torch import nn
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
{imports}

class SimCLR(pl.LightningModule):
    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet18()
{stem}
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = SimCLRProjectionHead(512, 128, 64)
        self.criterion = NTXentLoss()

    def forward(self, x):
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def training_step(self, batch, batch_index):
        (x0, x1) = batch[0]
        return self.criterion(self.forward(x0), self.forward(x1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.06)

model = SimCLR()
{data}
accelerator = "cpu"
{trainer}
'''


class GeneratedCIFAR10(torch.utils.data.Dataset):
    """``torchvision.datasets.CIFAR10``'s signature over 16 generated 32 px scenes (2 batches of 8)."""

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        from ccrop_scenes import generate_scenes

        scenes = generate_scenes(16, image_size=32, num_classes=2, seed=0)
        self.images, self.labels, self.transform = scenes.images, scenes.labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index])
        return (image if self.transform is None else self.transform(image)), int(self.labels[index])


def _blocks(kind: str, name: str) -> list[str]:
    return [code for k, n, code in BLOCK.findall(GUIDE.read_text()) if (k, n) == (kind, name)]


def _tiny(program: str, name: str) -> str:
    for guide_value, test_value in TINY[name].items():
        assert guide_value in program, f"the guide no longer has {guide_value!r}: update TINY"
        program = program.replace(guide_value, test_value)
    return program


def _run(program: str, name: str, monkeypatch, tmp_path) -> dict:
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", GeneratedCIFAR10)
    monkeypatch.chdir(tmp_path)  # Lightning writes its logs to the working directory
    namespace: dict = {"__name__": f"guide_{name}"}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=SILENT)
        exec(compile(_tiny(program, name), f"docs/lightly.md ({name})", "exec"), namespace)  # noqa: S102
    return namespace


def _simclr_program() -> str:
    imports, stem, data, refresher, loop, inspect, stages = _blocks("test", "simclr")
    assert "..." in loop, "the loop block shows the example's unchanged body as '...'"
    loop = re.sub(r"\n\s*\.\.\..*\n", LOOP_BODY, loop, count=1)
    return SIMCLR_SKELETON.format(
        imports=imports, stem=stem, data=data, refresher=refresher, loop=loop, inspect=inspect, stages=stages
    )


def _lightning_program() -> str:
    imports, stem, data, trainer = _blocks("test", "lightning")
    return LIGHTNING_SKELETON.format(imports=imports, stem=textwrap.indent(stem, " " * 8), data=data, trainer=trainer)


def test_the_plain_loop_guide_trains_refreshes_and_reads_the_boxes(monkeypatch, tmp_path, capsys):
    namespace = _run(_simclr_program(), "simclr", monkeypatch, tmp_path)
    store, stats = namespace["store"], namespace["refresher"].last_stats
    out = capsys.readouterr().out
    assert "epoch: 00" in out and "epoch: 01" in out and "boxes v1:" in out  # one refresh, after epoch 0
    assert store.version == 1 and store.summary()["filled_fraction"] == 1.0
    assert namespace["entry"] is not None and namespace["boxes"].shape[1] == 4
    assert namespace["refresher"].feature_fn.stages == ("layer2",) and stats.fallback_fraction < 1.0
    # The stages block: the fused extractor's maps, and the paper's setting stated in full (not run).
    assert "{'layer2': (2, 128, 16, 16), 'layer4': (2, 512, 4, 4)}" in out
    paper = namespace["paper"]
    assert (paper.heatmap, paper.threshold, paper.localizer) == ("channel_sum", 0.1, "bbox")


def test_the_lightning_guide_trains_and_refreshes(monkeypatch, tmp_path):
    namespace = _run(_lightning_program(), "lightning", monkeypatch, tmp_path)
    assert namespace["store"].version == 1 and namespace["trainer"].callback_metrics["ccrop/version"] == 1


def test_the_multi_crop_block_makes_its_views_and_the_refresh_reads_the_global_view():
    """The BYOL / multi-crop block, on the plain loop's dataset and store: 8 views of two sizes, refresh as view 0."""
    from ccrop_lightly import BoxStore, IndexedDataset

    (block,) = _blocks("test", "multiview")
    dataset = IndexedDataset(GeneratedCIFAR10("datasets/cifar10"))
    namespace = {"dataset": dataset, "store": BoxStore(len(dataset))}
    exec(compile(_tiny(block, "multiview"), "docs/lightly.md (multiview)", "exec"), namespace)  # noqa: S102
    views, targets, keys = namespace["collate_fn"]([dataset[index] for index in range(4)])
    assert [tuple(view.shape) for view in views] == [(4, 3, 32, 32)] * 2 + [(4, 3, 16, 16)] * 6
    assert keys == [0, 1, 2, 3] and targets.shape == (4,)
    refresh_images = namespace["refresh_loader"].dataset
    assert refresh_images.size == (32, 32) and refresh_images.normalize["mean"] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("name, program", [("simclr", _simclr_program), ("lightning", _lightning_program)])
def test_every_line_the_diff_adds_is_a_tested_line(name, program):
    (diff,) = _blocks("diff", name)
    tested = {line.strip() for line in program().splitlines()}
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    code = [line for line in added if line and not line.startswith("#")]
    assert code and [line for line in code if line not in tested] == []


EXAMPLES = {"simclr": "examples/pytorch/simclr.py", "lightning": "examples/pytorch_lightning/simclr.py"}


@pytest.mark.skipif(not os.environ.get("CCROP_LIGHTLY_REPO"), reason="CCROP_LIGHTLY_REPO (a lightly checkout) not set")
@pytest.mark.parametrize("name", ["simclr", "lightning"])
def test_the_diff_applied_to_lightlys_own_example_runs(name, monkeypatch, tmp_path):
    original = (Path(os.environ["CCROP_LIGHTLY_REPO"]) / EXAMPLES[name]).read_text()
    (diff,) = _blocks("diff", name)
    program = _apply(original, diff).replace(
        'device = "cuda" if torch.cuda.is_available() else "cpu"', 'device = "cpu"'
    )
    namespace = _run(program, name, monkeypatch, tmp_path)
    assert namespace["store"].version == 1


def _apply(original: str, diff: str) -> str:
    """Apply a unified diff to ``original``; every context and removed line must match."""
    source, out, position = original.splitlines(), [], 0
    lines = diff.splitlines()
    index = 0
    while index < len(lines):
        header = re.match(r"@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", lines[index])
        index += 1
        if header is None:
            continue
        start = int(header.group(1)) - 1 if header.group(2) != "0" else int(header.group(1))
        out += source[position:start]
        position = start
        while index < len(lines) and not lines[index].startswith("@@"):
            line = lines[index]
            marker, text = (line[:1], line[1:]) if line else (" ", "")
            if marker in " -":
                assert source[position] == text, f"line {position + 1} of the example differs: {source[position]!r}"
                position += 1
            if marker in " +":
                out.append(text)
            index += 1
    return "\n".join(out + source[position:]) + "\n"

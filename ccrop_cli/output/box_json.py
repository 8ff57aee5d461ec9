"""Box stores on disk: JSON export/import keyed by file name (or index), and checkpoint loading.

JSON layout written by :func:`export_boxes`::

    {
      "format": "ccrop-boxes",
      "format_version": 1,
      "store_version": 3,            # BoxStore.version: refreshes that had landed
      "num_samples": 1000,
      "max_boxes": 4,
      "keyed_by": "file_name",       # or "index" ("0", "1", ...)
      "samples": {
        "00_disc/00000.png": {"boxes": [[x0, y0, x1, y1], ...], "scores": [s, ...]},
        ...
      }
    }

Boxes are normalised ``x0, y0, x1, y1`` in ``[0, 1]``, best first; a sample without boxes
(warm-up) has empty lists. Dataset index ``i`` is ``keys[i]``: for an image folder use the
file order of :func:`ccrop_cli.output.image_folder.list_image_files` (torchvision ``ImageFolder`` /
``LightlyDataset`` order).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ccrop_plugins import BoxStore

FORMAT = "ccrop-boxes"
FORMAT_VERSION = 1
STATE_KEYS = frozenset({"num_samples", "max_boxes", "version", "boxes", "scores", "counts"})
"""The keys of :meth:`ccrop_plugins.BoxStore.state_dict`, searched for in checkpoints."""


def export_boxes(store: BoxStore, keys: Sequence[str] | None, path: str | Path) -> Path:
    """Write the box sets of ``store`` to a JSON file.

    Args:
        store: the box store.
        keys: per dataset index, its file name (``len(keys) == len(store)``), or ``None`` to
            key samples by their index (``"0"``, ``"1"``, ...).
        path: the JSON file to write (parent folders are created).

    Returns:
        ``path`` as a ``Path``.
    """
    keys = _checked_keys(keys, len(store))
    samples: dict[str, dict[str, list]] = {}
    for index, key in enumerate(keys):
        box_set = store.get(index)
        boxes, scores = box_set if box_set is not None else (torch.zeros(0, 4), torch.zeros(0))
        samples[key] = {
            "boxes": [[round(float(v), 6) for v in box] for box in boxes.tolist()],
            "scores": [round(float(s), 6) for s in scores.tolist()],
        }
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "store_version": store.version,
        "num_samples": len(store),
        "max_boxes": store.max_boxes,
        "keyed_by": "index" if keys is None or _is_index_keys(keys) else "file_name",
        "samples": samples,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    return path


def import_boxes(path: str | Path, keys: Sequence[str] | None = None) -> BoxStore:
    """Read a JSON file written by :func:`export_boxes` into a new :class:`BoxStore`.

    Args:
        path: the JSON file.
        keys: per dataset index, its file name: the store gets ``len(keys)`` samples and
            sample ``i`` the entry ``keys[i]`` (a file without an entry gets no boxes). ``None``
            keeps the file's own indexing (``"0"`` ... ``"N-1"``, ``num_samples`` samples).

    Returns:
        The store, with the file's ``store_version``.

    Raises:
        ValueError: if the file is not a ccrop box file, or it names samples that ``keys``
            does not hold (boxes for another dataset).
    """
    document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ccrop box file (expected 'format': {FORMAT!r})")
    samples: Mapping[str, Any] = document["samples"]
    if keys is None:
        keys = [str(i) for i in range(int(document["num_samples"]))]
    keys = _checked_keys(keys, len(keys))
    position = {key: index for index, key in enumerate(keys)}
    unknown = [key for key in samples if key not in position]
    if unknown:
        raise ValueError(
            f"{path} holds boxes for {len(unknown)} samples not in this dataset, e.g. {unknown[:3]}; "
            f"the dataset has {len(keys)} samples, e.g. {list(keys[:3])}"
        )
    if not keys:
        raise ValueError("keys must name at least one sample")
    filled = [(position[key], entry) for key, entry in samples.items() if entry["boxes"]]
    max_boxes = max([int(document.get("max_boxes", 1)), *(len(entry["boxes"]) for _, entry in filled)])
    # Built as a state dict so that BoxStore.load_state_dict validates the boxes and sets the version.
    state = {
        "num_samples": len(keys),
        "max_boxes": max_boxes,
        "version": int(document.get("store_version", 0)),
        "boxes": torch.zeros(len(keys), max_boxes, 4),
        "scores": torch.zeros(len(keys), max_boxes),
        "counts": torch.zeros(len(keys), dtype=torch.int8),
    }
    for index, entry in filled:
        boxes = torch.tensor(entry["boxes"], dtype=torch.float32).reshape(-1, 4)
        scores = torch.tensor(entry["scores"], dtype=torch.float32).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"sample {keys[index]!r} in {path} has {len(boxes)} boxes but {len(scores)} scores")
        state["boxes"][index, : len(boxes)] = boxes
        state["scores"][index, : len(boxes)] = scores
        state["counts"][index] = len(boxes)
    store = BoxStore(len(keys), max_boxes=max_boxes)
    store.load_state_dict(state)
    return store


def find_store_state(checkpoint: Any) -> dict[str, Any] | None:
    """The first :meth:`BoxStore.state_dict`-shaped dict nested anywhere in ``checkpoint``.

    Searches dicts, lists and tuples depth-first, so it finds the store whatever key the
    Lightning callback or the mm hook saved it under. Returns ``None`` if there is none.
    """
    stack = [checkpoint]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Mapping):
            if STATE_KEYS <= set(item):
                return dict(item)
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
    return None


def load_store_from_checkpoint(path: str | Path) -> BoxStore:
    """A :class:`BoxStore` from a checkpoint of the Lightning callback, the mm hook, or any
    ``torch.save``'d object that holds a ``BoxStore.state_dict()`` somewhere inside.

    The file is read with ``torch.load(weights_only=False)``, because framework checkpoints
    hold more than tensors: only load checkpoints you trust (unpickling can run code).

    Raises:
        ValueError: if no box store state is found.
    """
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=False)
    state = find_store_state(checkpoint)
    if state is None:
        raise ValueError(
            f"no box store found in checkpoint {path}: expected a dict with keys {sorted(STATE_KEYS)} "
            "(BoxStore.state_dict()) somewhere inside it"
        )
    store = BoxStore(int(state["num_samples"]), max_boxes=int(state["max_boxes"]))
    store.load_state_dict(state)
    return store


def _checked_keys(keys: Sequence[str] | None, count: int) -> list[str]:
    if keys is None:
        return [str(i) for i in range(count)]
    keys = [str(k) for k in keys]
    if len(keys) != count:
        raise ValueError(f"got {len(keys)} keys for a store of {count} samples; give one file name per sample")
    if len(set(keys)) != len(keys):
        raise ValueError("keys must be unique file names (one per dataset index)")
    return keys


def _is_index_keys(keys: Sequence[str]) -> bool:
    return list(keys) == [str(i) for i in range(len(keys))]

"""Box stores on disk: JSON export/import keyed by file name (or index), and checkpoint loading.

Errors about the files themselves are :class:`~ccrop_cli.errors.UserError` (a ``ValueError``)
naming the file (and the sample), so ``ccrop viz`` reports them in one line.

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
``LightlyDataset`` order), or for an MMPretrain run :func:`~ccrop_cli.output.image_folder.list_mmpretrain_files`
(``CustomDataset``'s, which leaves out ``.tiff`` / ``.webp`` and hidden files).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch

from ccrop_cli.errors import UserError
from ccrop_plugins import BoxStore, images_digest, validate_boxes

FORMAT = "ccrop-boxes"
FORMAT_VERSION = 1
STATE_KEYS = frozenset({"num_samples", "max_boxes", "version", "boxes", "scores", "counts"})
"""The keys of :meth:`ccrop_plugins.BoxStore.state_dict`, searched for in checkpoints."""
MAX_STORE_BOXES = 127  # BoxStore keeps counts as int8


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
            sample ``i`` the entry ``keys[i]`` (a file without an entry gets no boxes). A file
            keyed by index (``export_boxes(store, None, path)``) is read by index instead and
            must hold ``len(keys)`` samples. ``None`` keeps the file's own indexing (``"0"``
            ... ``"N-1"``, ``num_samples`` samples).

    Returns:
        The store, with the file's ``store_version``.

    Raises:
        UserError: (a ``ValueError``) naming the file if it cannot be read, is not JSON or
            not a ccrop box file, holds a malformed entry or an invalid box (named by its
            sample's key), or names samples that ``keys`` does not hold (boxes for another
            dataset); or a header field (``format_version``, ``keyed_by``, ``num_samples``,
            ``max_boxes``) is of another format or contradicts the file's samples.
    """
    path = Path(path)
    document = _read_box_file(path)
    _check_header(document, path)
    by_index = keys is None or document.get("keyed_by") == "index"
    if by_index:
        count = _integer_field(document, "num_samples", path)
        if keys is not None and len(keys) != count:
            raise UserError(
                f"{path} is keyed by index and holds {count} samples, but the dataset has {len(keys)}; "
                "export the boxes keyed by file name (export_boxes(store, files, path)) or use the dataset they were "
                "made for"
            )
        names = [str(i) for i in range(count)]
    else:
        names = _checked_keys(keys, len(keys))
    if not names:
        raise UserError(f"{path}: the dataset must have at least one sample")
    position = {name: index for index, name in enumerate(names)}
    samples: Mapping[str, Any] = document["samples"]
    unknown = [key for key in samples if key not in position]
    if unknown and keys is None and document.get("keyed_by") not in (None, "index"):
        raise UserError(
            f"{path} is keyed by file name (e.g. {unknown[:3]}); pass keys=<the dataset's file names in index order> "
            "(e.g. ccrop_cli.output.image_folder.list_image_files(folder)) to read it"
        )
    if unknown:
        raise UserError(
            f"{path} holds boxes for {len(unknown)} samples not in this dataset, e.g. {unknown[:3]}; "
            f"the dataset has {len(names)} samples, e.g. {names[:3]}"
        )
    shown = names if keys is None else [str(k) for k in keys]  # file names in messages, where known
    entries = {position[key]: _entry(entry, shown[position[key]], path) for key, entry in samples.items()}
    return _store_from_entries(entries, len(names), document, path)


def _read_box_file(path: Path) -> dict[str, Any]:
    """The JSON document of a ccrop box file, with a ``samples`` mapping."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise UserError(f"cannot read box file {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}); expected a box file written by export_boxes") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UserError(f"{path} is not a ccrop box file (expected 'format': {FORMAT!r})")
    if not isinstance(document.get("samples"), dict):
        raise UserError(
            f"{path} has no 'samples' mapping (sample key -> {{'boxes': [[x0, y0, x1, y1], ...], 'scores': [...]}}); "
            "was it written by export_boxes?"
        )
    return document


def _check_header(document: Mapping[str, Any], path: Path) -> None:
    """The header fields that :func:`export_boxes` writes, where present (a hand-written file may leave them out),
    against what this reader knows and what the file's samples hold: a box file of another format version, or whose
    ``num_samples`` / ``max_boxes`` contradict its samples, was drawn without a word."""
    version = document.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise UserError(f"{path}: 'format_version' is {version!r}; this ccrop reads box files of format_version "
                        f"{FORMAT_VERSION} (written by export_boxes), and does not guess at another's fields")
    keyed_by = document.get("keyed_by", "file_name")
    if keyed_by not in ("file_name", "index"):
        raise UserError(f"{path}: 'keyed_by' is {keyed_by!r}; expected 'file_name' or 'index'")
    samples = document["samples"]
    if "num_samples" in document and _integer_field(document, "num_samples", path) < len(samples):
        raise UserError(f"{path}: 'num_samples' is {document['num_samples']}, but the file holds boxes for "
                        f"{len(samples)} samples: it was not written whole by export_boxes (edited, or joined from "
                        "other files); export the boxes again")
    longest = max([len(entry["boxes"]) for entry in samples.values()
                   if isinstance(entry, Mapping) and isinstance(entry.get("boxes"), list)], default=0)
    if "max_boxes" in document and _integer_field(document, "max_boxes", path) < longest:
        raise UserError(f"{path}: 'max_boxes' is {document['max_boxes']}, but a sample holds {longest} boxes: it was "
                        "not written whole by export_boxes (edited, or joined from other files); export the boxes "
                        "again")


def _integer_field(document: Mapping[str, Any], name: str, path: Path, default: int | None = None) -> int:
    value = document.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{path}: {name!r} must be an integer >= 0; got {value!r}")
    return value


def _entry(entry: Any, name: str, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(boxes (k, 4), scores (k,))`` of one sample's entry, validated; the sample named by ``name``."""
    where = f"sample {name!r} in {path}"
    if (not isinstance(entry, Mapping) or not isinstance(entry.get("boxes"), list)
            or not isinstance(entry.get("scores"), list)):
        raise UserError(f"{where} must be {{'boxes': [[x0, y0, x1, y1], ...], 'scores': [s, ...]}}; "
                        f"got {str(entry)[:80]}")
    if not entry["boxes"]:
        return torch.zeros(0, 4), torch.zeros(0)
    try:
        boxes = torch.tensor(entry["boxes"], dtype=torch.float32)
        validate_boxes(boxes, sample=f"{name!r} in {path}")
    except (TypeError, ValueError, RuntimeError) as error:
        raise UserError(f"{where}: {error}" if str(name) not in str(error) else str(error)) from None
    try:
        scores = torch.tensor(entry["scores"], dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise UserError(f"{where}: 'scores' must be a list of numbers, one per box; "
                        f"got {str(entry['scores'])[:80]}") from None
    if scores.ndim != 1 or len(scores) != len(boxes):
        raise UserError(f"{where} has {len(boxes)} boxes but {scores.numel()} scores")
    bad = [value for value in scores.tolist() if not 0.0 <= value < float("inf")]  # also NaN
    if bad:  # was the store's ValueError "score 0 of sample 0 ...": a traceback in ccrop viz, naming no file
        raise UserError(f"{where}: scores must be finite and >= 0; got {bad[0]}")
    return boxes, scores


def _store_from_entries(
    entries: dict[int, tuple[torch.Tensor, torch.Tensor]], count: int, document: Mapping[str, Any], path: Path
) -> BoxStore:
    """A store of ``count`` samples holding ``entries`` (index -> boxes, scores)."""
    max_boxes = max([_integer_field(document, "max_boxes", path, 1), 1, *(len(boxes) for boxes, _ in entries.values())])
    if max_boxes > MAX_STORE_BOXES:  # was int8's "value cannot be converted to type int8_t without overflow"
        raise UserError(f"{path} has {max_boxes} boxes per sample ('max_boxes' or the longest 'boxes' list); a box "
                        f"store holds at most {MAX_STORE_BOXES} per sample")
    # Built as a state dict so that BoxStore.load_state_dict validates the store and sets the version.
    state = {
        "num_samples": count,
        "max_boxes": max_boxes,
        "version": _integer_field(document, "store_version", path, 0),
        "boxes": torch.zeros(count, max_boxes, 4),
        "scores": torch.zeros(count, max_boxes),
        "counts": torch.zeros(count, dtype=torch.int8),
    }
    for index, (boxes, scores) in entries.items():
        state["boxes"][index, : len(boxes)] = boxes
        state["scores"][index, : len(boxes)] = scores
        state["counts"][index] = len(boxes)
    store = BoxStore(count, max_boxes=max_boxes)
    store.load_state_dict(state)
    return store


def find_store_state(checkpoint: Any) -> dict[str, Any] | None:
    """The first :meth:`BoxStore.state_dict`-shaped dict nested anywhere in ``checkpoint``.

    Searches dicts, lists and tuples depth-first, so it finds the store whatever key the
    Lightning callback or the mm hook saved it under. Returns ``None`` if there is none.
    """
    return _first_nested(checkpoint, lambda item: dict(item) if _is_store_state(item) else None)


def find_images_digest(checkpoint: Any) -> str | None:
    """The ``images`` digest saved beside a box store state (the Lightning callback's ``store``, the mm hook's
    ``box_store``) anywhere in ``checkpoint``, or ``None`` (an older checkpoint, or a store saved alone)."""

    def digest_beside_a_store(item: Mapping) -> str | None:
        beside = any(_is_store_state(item.get(key)) for key in ("store", "box_store"))
        return item["images"] if beside and isinstance(item.get("images"), str) else None

    return _first_nested(checkpoint, digest_beside_a_store)


def _is_store_state(item: Any) -> bool:
    return isinstance(item, Mapping) and STATE_KEYS <= set(item)


def _first_nested(checkpoint: Any, match: Callable[[Mapping], Any]) -> Any:
    """The first non-``None`` ``match(mapping)`` over the dicts nested in ``checkpoint`` (dicts, lists and tuples,
    depth-first, each container once), or ``None``."""
    stack = [checkpoint]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Mapping):
            found = match(item)
            if found is not None:
                return found
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
    return None


MM_CHECKPOINT_KEY = "ccrop"
"""The key of the MM adapter's ``ContrastiveCropHook`` entry in an mmengine checkpoint (``ccrop_mm.checkpoint_boxes``:
``checkpoint['ccrop'] = {'box_store': ..., 'images': ..., ...}``)."""


class CheckpointBoxes(NamedTuple):
    """The box store of a checkpoint, with what was saved beside it."""

    store: BoxStore
    images: str | None  # the ``images`` digest (ccrop_plugins.images_digest of the dataset's files), if saved
    mm_hook: bool  # saved by the MM adapter's ContrastiveCropHook: its index order is MMPretrain's dataset's


def read_checkpoint_boxes(path: str | Path) -> CheckpointBoxes:
    """The box store of a checkpoint (see :func:`load_store_from_checkpoint`), its ``images`` digest and whether the
    mm hook saved it (``checkpoint['ccrop']['box_store']``), unchecked against any folder."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} is not a file")
    checkpoint = _load_weights_only(path)
    entry = checkpoint.get(MM_CHECKPOINT_KEY) if isinstance(checkpoint, Mapping) else None
    mm_hook = isinstance(entry, Mapping) and _is_store_state(entry.get("box_store"))
    state = dict(entry["box_store"]) if mm_hook else find_store_state(checkpoint)
    if state is None:
        raise UserError(
            f"no box store found in checkpoint {path}: expected a dict with keys {sorted(STATE_KEYS)} "
            "(BoxStore.state_dict()) somewhere inside it"
        )
    try:
        store = BoxStore(int(state["num_samples"]), max_boxes=int(state["max_boxes"]))
        store.load_state_dict(state)
    except (TypeError, ValueError) as error:
        raise UserError(f"the box store in checkpoint {path} is invalid: {error}") from None
    if mm_hook:
        digest = entry["images"] if isinstance(entry.get("images"), str) else None
    else:
        digest = find_images_digest(checkpoint)
    return CheckpointBoxes(store, digest, mm_hook)


def load_store_from_checkpoint(path: str | Path, *, files: list[str] | None = None) -> BoxStore:
    """A :class:`BoxStore` from a checkpoint of the Lightning callback, the mm hook, or any
    ``torch.save``'d object that holds a ``BoxStore.state_dict()`` somewhere inside.

    The file is read with ``torch.load(weights_only=True)``: tensors, numbers, strings and
    containers only, so nothing in it can run code. An mmengine checkpoint also holds the
    logging buffers of its ``message_hub``; for a file that names them (and only then), the
    MM adapter's scoped allow-list (:mod:`ccrop_mm.checkpoint_globals`, the one its resume
    path uses) admits those few types. Anything else is refused.

    With ``files`` (the image folder's files in index order), boxes saved for another list of images of the same
    count (the ``images`` digest the adapters save beside the store) are refused: each would be drawn on another
    image. (An mm hook's store is indexed as MMPretrain's dataset lists the folder:
    :func:`ccrop_cli.output.image_folder.mmpretrain_listings`.)

    Raises:
        UserError: (a ``ValueError``) if the file is missing, is not a torch checkpoint, needs
            objects outside the allow-list, holds no valid box store state, or (with ``files``) holds
            boxes of another list of images.
    """
    saved = read_checkpoint_boxes(path)
    if files is not None:
        check_images(path, saved, files)
    return saved.store


def check_images(path: str | Path, saved: CheckpointBoxes, files: list[str]) -> None:
    """Refuse (a :class:`UserError`) the boxes ``saved`` in checkpoint ``path`` for ``files`` (a folder's images in
    index order) when they were made on another list of images of the same count (their ``images`` digest)."""
    if saved.images is not None and len(files) == len(saved.store) and images_digest(files) != saved.images:
        raise UserError(
            f"the boxes in checkpoint {path} were made on another list of images (the same count, {len(files)}, but "
            "other files or another order): each would be drawn on another image; give the folder it was trained on"
        )


def _load_weights_only(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` with mmengine's logging types admitted only for a
    file that names them; a refusal is a :class:`UserError` naming the types."""
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a zip checkpoint: torch.load below says what it is
        needed = None
    allowed = _mmengine_globals(path) if any(name.startswith("mmengine.") for name in needed or ()) else []
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if needed is None:  # neither torch.save's zip nor a pickle it reads: garbage, not "objects" it needs
            lines = [line for line in str(error).splitlines() if line.strip() and "Check the documentation" not in line]
            raise UserError(f"{path} is not a readable torch checkpoint ({lines[-1][:200] if lines else error}); "
                            "expected a file written by torch.save") from None
        refused = [name for name in needed if not name.startswith(("mmengine.", "numpy.", "builtins.getattr"))]
        if refused or not needed:
            what = ", ".join(refused) if refused else str(error).strip().splitlines()[-1][:200]
            raise UserError(
                f"refused to load checkpoint {path}: it needs objects that a box checkpoint does not hold ({what}); "
                "only tensors, numbers, strings, containers and mmengine's logging buffers are loaded, so no code "
                "runs. Save the store alone (torch.save(store.state_dict(), file)) or pass --boxes with "
                "export_boxes' JSON"
            ) from None
        raise UserError(f"refused to load checkpoint {path}: {str(error).strip().splitlines()[-1][:300]}") from None
    except (RuntimeError, EOFError, OSError) as error:  # an empty file: EOFError without a message
        reason = (str(error).strip().splitlines() or [f"{type(error).__name__} (an empty or cut-short file?)"])[0]
        raise UserError(f"{path} is not a readable torch checkpoint: {reason[:200]}") from None


def _mmengine_globals(path: Path) -> list[Any]:
    """The MM adapter's allow-list for mmengine checkpoints (imported only for such a file)."""
    try:
        from ccrop_mm.checkpoint_globals import mmengine_checkpoint_globals
    except ImportError as error:
        raise UserError(
            f"checkpoint {path} is an mmengine checkpoint; reading it needs the MM adapter "
            f"(pip install 'ccrop-plugins[mmpretrain]'): {error}"
        ) from None
    return mmengine_checkpoint_globals()


def _checked_keys(keys: Sequence[str] | None, count: int) -> list[str]:
    if keys is None:
        return [str(i) for i in range(count)]
    if isinstance(keys, (str, bytes)) or not all(isinstance(k, (str, os.PathLike)) for k in keys):
        # one string was read as its characters, ints as file names '1', '2' that import then misread
        raise TypeError(f"keys must be a list of file names (str), one per dataset index, or None; got {keys!r:.80}")
    keys = [os.fspath(k) for k in keys]
    if len(keys) != count:
        raise ValueError(f"got {len(keys)} keys for a store of {count} samples; give one file name per sample")
    if len(set(keys)) != len(keys):
        raise ValueError("keys must be unique file names (one per dataset index)")
    return keys


def _is_index_keys(keys: Sequence[str]) -> bool:
    return list(keys) == [str(i) for i in range(len(keys))]

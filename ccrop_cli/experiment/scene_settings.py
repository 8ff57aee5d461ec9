"""The two scene settings the study (and the demo) generate, and writing them to disk once."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ccrop_scenes import ANNOTATIONS_FILE, generate_scenes, write_image_folder
from ccrop_scenes.export import available_memory


@dataclass(frozen=True)
class SceneSetting:
    """How the images of one setting are generated.

    Attributes:
        name: short key (``single``, ``multi-small``).
        label: a human-readable label for tables and plots.
        objects_per_image: inclusive ``(min, max)`` instances of the image's class.
        object_area: inclusive ``(min, max)`` area of each object, as a fraction of the image.
        mixed_classes: the objects of an image belong to different classes (the image label is
            the largest object's class; ``annotations.json`` gives each object's class).
    """

    name: str
    label: str
    objects_per_image: tuple[int, int]
    object_area: tuple[float, float]
    mixed_classes: bool = False


NUM_CLASSES = 10
"""Classes of every generated split (one folder each): a split needs at least this many images."""

SCENE_SETTINGS: dict[str, SceneSetting] = {
    s.name: s
    for s in (
        SceneSetting("single", "1 object, medium (15-35% of the image)", (1, 1), (0.15, 0.35)),
        SceneSetting("multi-small", "2-4 objects, small (3-8% each)", (2, 4), (0.03, 0.08)),
        SceneSetting("mixed-small", "2-4 objects of different classes, small (3-8% each)", (2, 4), (0.03, 0.08), True),
    )
}


def get_scene_setting(name: str) -> SceneSetting:
    """The setting called ``name``, or a ``ValueError`` listing the available ones."""
    if name not in SCENE_SETTINGS:
        raise ValueError(f"unknown scene setting {name!r}; available: {', '.join(SCENE_SETTINGS)}")
    return SCENE_SETTINGS[name]


def write_split(setting: SceneSetting, root: str | Path, num_images: int, image_size: int, seed: int) -> Path:
    """Generate ``num_images`` scenes of ``setting`` and write them as an image folder at ``root``.

    A folder already written with the same arguments is reused (its ``scenes.json`` records
    them); a folder it wrote with other arguments is replaced, once the new scenes are written (a run refused for
    memory, or stopped, leaves it as it was). The scenes are written into
    ``<root>.partial`` and renamed to ``root`` once complete, so a run stopped while writing
    (Ctrl-C, a full disk) leaves no half-written ``root``: the next run removes the partial
    folder and writes again.

    Raises:
        UserError: for a non-empty ``root`` it did not write (no ``scenes.json``), or one that cannot be
            written (a full disk, a file where a folder goes), naming it.
    """
    from ccrop_cli.errors import UserError

    root = Path(root)
    recipe = {"setting": asdict(setting), "num_images": num_images, "image_size": image_size, "seed": seed}
    recipe_file = root / "scenes.json"
    if (root / ANNOTATIONS_FILE).exists() and recipe_file.exists():
        if json.loads(recipe_file.read_text()) == json.loads(json.dumps(recipe)):
            return root
    stale = recipe_file.exists()  # written by us with other arguments: replaced once the new scenes are written
    if not stale and root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"{root} holds files that ccrop did not write (it has no {recipe_file.name}); remove it or "
                        "choose another output folder")
    _check_memory(num_images, image_size)  # before anything is removed: a refused run leaves the old scenes
    partial = root.with_name(root.name + ".partial")
    if partial.exists():  # a write of ours that was stopped
        shutil.rmtree(partial)
    scenes = generate_scenes(
        num_images,
        image_size=image_size,
        objects_per_image=setting.objects_per_image,
        object_area=setting.object_area,
        seed=seed,
        mixed_classes=setting.mixed_classes,
        num_classes=NUM_CLASSES,
    )
    try:
        write_image_folder(scenes, partial, overwrite=True)
        (partial / recipe_file.name).write_text(json.dumps(recipe, indent=1))
        if stale:
            shutil.rmtree(root)  # stale images must not remain
        elif root.exists():
            root.rmdir()  # empty (checked above)
        partial.rename(root)
    except OSError as error:  # a full disk, a file where a folder goes
        raise UserError(f"cannot write the generated scenes to {root}: {error.strerror or error}") from None
    return root


def _check_memory(num_images: int, image_size: int) -> None:
    """Scenes are generated in memory before they are written (RGB images and their object masks, 4 bytes a pixel):
    a count that cannot fit is refused before the allocation, which the system would otherwise grant lazily and then
    fill until it kills the process (``--images 1000000000``)."""
    from ccrop_cli.errors import UserError

    need, available = num_images * image_size**2 * 4, available_memory()
    if available is not None and need > available:
        raise UserError(f"{num_images} scenes of {image_size} px need {need / 2**30:.1f} GiB of memory while they are "
                        f"generated, more than the {available / 2**30:.1f} GiB available here: use fewer images")

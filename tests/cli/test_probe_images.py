"""``ccrop demo --data`` on folders as NAS boxes, phones and other tools leave them (session 11 probe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccrop_cli.demo.user_data import list_images
from ccrop_cli.errors import UserError


def _image(path: Path, side: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)


@pytest.mark.parametrize("layout", ["classes", "flat"])
def test_synology_thumbnail_folders_are_named_with_the_command_that_removes_them(tmp_path, layout):
    # A folder on a Synology NAS: DIR/<class>/@eaDir/<image>/SYNOPHOTO_THUMB_*.jpg beside every image. Before: the
    # thumbnails were listed (and trained on, by both frameworks) as more images of the class, silently; in a flat
    # folder the demo blamed the user's layout ('holds 2 images at the top ... and sub-folders (@eaDir)').
    data = tmp_path / "nas photos"
    inner = data / "cats" if layout == "classes" else data
    _image(inner / "a.png")
    _image(inner / "@eaDir" / "a.png" / "SYNOPHOTO_THUMB_S.jpg", 8)
    where = "cats/@eaDir" if layout == "classes" else "@eaDir"
    with pytest.raises(UserError, match=rf"1 Synology @eaDir folder\(s\): {where}; a Synology NAS writes thumbnails "
                                        rf".*Delete them: find '.*nas photos' -name @eaDir -type d -prune -exec rm -r"):
        list_images(data)
    (inner / "@eaDir" / "a.png" / "SYNOPHOTO_THUMB_S.jpg").unlink()
    (inner / "@eaDir" / "a.png").rmdir()
    (inner / "@eaDir").rmdir()
    assert list_images(data) == (["cats/a.png"] if layout == "classes" else ["a.png"])


def test_a_link_to_another_folder_of_the_data_is_named_not_listed_again(tmp_path):
    # cats/dogs -> ../dogs (and dogs/cats -> ../cats): the frameworks follow links, so dogs' images were listed again
    # as cats/dogs/... (with both links, 82 names for 2 files, up to the system's link depth), silently; only a link
    # to the folder itself or an ancestor was refused.
    import os

    for name in ("cats/a.png", "dogs/b.png"):
        _image(tmp_path / name)
    os.symlink("../dogs", tmp_path / "cats" / "dogs")
    with pytest.raises(UserError, match=r"cats/dogs links to dogs, a folder of DIR itself; the frameworks follow "
                                        r"links, so its images would be listed twice .*: remove the link"):
        list_images(tmp_path)
    os.symlink("../cats", tmp_path / "dogs" / "cats")
    with pytest.raises(UserError, match=r"links to (cats|dogs), a folder of DIR itself"):
        list_images(tmp_path)
    (tmp_path / "cats" / "dogs").unlink()
    (tmp_path / "dogs" / "cats").unlink()
    elsewhere = tmp_path.parent / f"{tmp_path.name}_elsewhere"
    _image(elsewhere / "c.png")
    os.symlink(elsewhere, tmp_path / "cats" / "more")  # a folder outside DIR: still followed, as documented
    assert list_images(tmp_path) == ["cats/a.png", "cats/more/c.png", "dogs/b.png"]


def test_an_image_name_that_is_a_named_pipe_is_refused_not_waited_on(tmp_path):
    # DIR/c/p.jpg made by mkfifo: check_images' open() (and both frameworks' loaders) waited for a writer for ever.
    import os

    _image(tmp_path / "c" / "a.png")
    os.mkfifo(tmp_path / "c" / "p.jpg")
    with pytest.raises(UserError, match=r"1 image name\(s\) are not regular files \(a named pipe, socket or device\): "
                                        r"c/p.jpg; reading one would wait for ever: remove them"):
        list_images(tmp_path)
    (tmp_path / "c" / "p.jpg").unlink()
    os.symlink("a.png", tmp_path / "c" / "b.png")  # a link to an image is an image
    assert list_images(tmp_path) == ["c/a.png", "c/b.png"]

"""Broken item images give one DataError naming the file and the fix, never a Pillow traceback.

Users bring image folders scraped from the web: a truncated download, an HTML error page saved
as ``.jpg``, a zero-byte file, a path that points nowhere. Each must fail with a short message
that names the file; a multimodal model fitted on such a catalog fails the same way.
"""

from __future__ import annotations

import pytest

Image = pytest.importorskip("PIL.Image")

from genrec.data.multimodal import load_item_folder  # noqa: E402
from genrec.errors import DataError  # noqa: E402
from genrec.models import VBPR  # noqa: E402
from genrec.multimodal.images import PixelEncoder, load_pixels  # noqa: E402


def _folder(tmp_path, content: bytes):
    (tmp_path / "images").mkdir()
    (tmp_path / "interactions.csv").write_text("user,item\nu1,a\nu1,b\nu2,a\n")
    (tmp_path / "items.csv").write_text("item,title,image\na,Hat,a.png\nb,Cap,b.jpg\n")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "images" / "a.png")
    (tmp_path / "images" / "b.jpg").write_bytes(content)
    return tmp_path


@pytest.mark.parametrize(
    "content",
    [b"", b"<html>404 Not Found</html>", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20],
    ids=["empty", "html-page", "truncated-jpeg"],
)
def test_undecodable_image_names_the_file(tmp_path, content):
    folder = _folder(tmp_path, content)
    with pytest.raises(DataError, match=r"b\.jpg") as err:
        load_pixels(folder / "images" / "b.jpg", size=8)
    assert "replace the file" in str(err.value) and len(str(err.value)) < 400
    data = load_item_folder(folder)
    with pytest.raises(DataError, match=r"b\.jpg"):
        VBPR(image_encoder="pixels-4", image_cache="off", epochs=1).fit(data)


def test_missing_image_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        PixelEncoder(4).encode([str(tmp_path / "nowhere.png")])

"""Item images and features in the formats users bring: an item folder, Amazon 2018 / 2023
metadata with a local image folder, and MMRec's feature layout; plus the procedural world."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from genrec.data.amazon import load_amazon_2018, load_amazon_2023  # noqa: E402
from genrec.data.multimodal import attach_images, image_coverage, load_item_folder, load_mmrec  # noqa: E402
from genrec.data.synthetic_multimodal import multimodal_world  # noqa: E402
from genrec.errors import ConfigError, DataError  # noqa: E402


def _png(path, colour="red"):
    Image.new("RGB", (8, 8), colour).save(path)


def _lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _paths(data):
    return dict(zip(data.items.ids, data.catalog["image"]))


def test_item_folder_resolves_file_names_and_item_ids_and_counts_missing(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "interactions.csv").write_text("user,item,rating\nu1,a,5\nu1,b,3\nu2,c,4\n")
    (tmp_path / "items.csv").write_text(
        "item,title,image\na,Red hat,hat.png\nb,Blue cap,\nc,Green scarf,gone.png\n"
    )
    _png(tmp_path / "images" / "hat.png")
    _png(tmp_path / "images" / "b.jpg")  # no image column value: found by item id
    data = load_item_folder(tmp_path)
    paths = _paths(data)
    assert paths["a"].endswith("images/hat.png") and paths["b"].endswith("images/b.jpg")
    assert paths["c"] is None  # named file absent and no c.* file
    assert image_coverage(data.catalog)["with_image"] == 2
    assert data.catalog.title(int(np.flatnonzero(data.items.ids == "a")[0])) == "Red hat"


def test_item_folder_without_items_csv_names_the_layout(tmp_path):
    (tmp_path / "interactions.csv").write_text("user,item\nu,a\n")
    with pytest.raises(DataError, match="items.csv"):
        load_item_folder(tmp_path)


def test_amazon_2018_images_by_url_file_name_or_url_hash(tmp_path):
    url_a = "https://images-na.ssl-images-amazon.com/images/I/51abcXYZ.jpg"
    url_b = "https://images-na.ssl-images-amazon.com/images/I/61other.jpg"
    _lines(
        tmp_path / "reviews.json",
        [
            {"reviewerID": "r1", "asin": "A1", "overall": 5, "unixReviewTime": 1},
            {"reviewerID": "r1", "asin": "B2", "overall": 4, "unixReviewTime": 2},
        ],
    )
    _lines(
        tmp_path / "meta.json",
        [
            {"asin": "A1", "title": "Hat", "imageURLHighRes": [url_a]},
            {"asin": "B2", "title": "Cap", "imageURL": [url_b]},
        ],
    )
    (tmp_path / "img").mkdir()
    _png(tmp_path / "img" / "51abcXYZ.jpg")
    _png(tmp_path / "img" / (hashlib.md5(url_b.encode()).hexdigest() + ".jpg"))
    data = attach_images(
        load_amazon_2018(tmp_path / "reviews.json", tmp_path / "meta.json"), tmp_path / "img"
    )
    paths = _paths(data)
    assert paths["A1"].endswith("51abcXYZ.jpg")
    assert paths["B2"].endswith(hashlib.md5(url_b.encode()).hexdigest() + ".jpg")
    assert data.catalog.text_fields[0] == "title"  # the loader's text fields are kept


def test_amazon_2023_images_by_item_id(tmp_path):
    _lines(
        tmp_path / "reviews.jsonl",
        [
            {"user_id": "u", "parent_asin": "P1", "rating": 5.0, "timestamp": 1000},
            {"user_id": "u", "parent_asin": "P2", "rating": 2.0, "timestamp": 2000},
        ],
    )
    _lines(
        tmp_path / "meta.jsonl",
        [
            {
                "parent_asin": "P1",
                "title": "Lamp",
                "images": [{"large": "https://m.media-amazon.com/images/I/71q.jpg"}],
            }
        ],
    )
    (tmp_path / "img").mkdir()
    _png(tmp_path / "img" / "P1.png")
    data = attach_images(
        load_amazon_2023(tmp_path / "reviews.jsonl", tmp_path / "meta.jsonl"), tmp_path / "img"
    )
    assert _paths(data)["P1"].endswith("P1.png") and _paths(data)["P2"] is None


def test_attach_images_to_a_missing_folder_is_a_data_error(tmp_path):
    (tmp_path / "interactions.csv").write_text("user,item\nu,a\n")
    (tmp_path / "items.csv").write_text("item,title\na,A\n")
    with pytest.raises(DataError, match="images folder .* does not exist"):
        attach_images(load_item_folder(tmp_path), tmp_path / "nope")


def test_mmrec_layout_features_and_split(tmp_path):
    (tmp_path / "baby.inter").write_text(
        "userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t1\t0\n0\t2\t4\t2\t0\n"
        "0\t1\t5\t3\t2\n1\t2\t3\t1\t0\n1\t0\t4\t2\t1\n"
    )
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "image_feat.npy", image)
    np.save(tmp_path / "text_feat.npy", -image[:, :2])
    data, split = load_mmrec(tmp_path)
    rows = data.items.ids.astype(int)
    np.testing.assert_array_equal(data.catalog["image_features"], image[rows])
    np.testing.assert_array_equal(data.catalog["text_features"], -image[rows, :2])
    assert (len(split.train), len(split.valid), len(split.test)) == (3, 1, 1)
    assert image_coverage(data.catalog)["with_image_features"] == 3


def test_mmrec_short_feature_file_names_the_shape(tmp_path):
    (tmp_path / "x.inter").write_text("userID\titemID\trating\ttimestamp\tx_label\n0\t5\t1\t1\t0\n")
    np.save(tmp_path / "image_feat.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(DataError, match=r"\(2, 4\)"):
        load_mmrec(tmp_path)


def test_procedural_world_is_consistent_with_its_ground_truth(tmp_path):
    world = multimodal_world(tmp_path, n_users=24, n_items=48, seed=1)
    traits, data = world.traits, world.data
    for u in range(data.n_users):  # each user's items share one colour and one shape
        items = data.item_idx[data.user_idx == u]
        assert len({traits["colour"][i] for i in items}) == 1
        assert len({traits["shape"][i] for i in items}) == 1
    assert (world.answer >= 0).all() and len(world.split.test) == data.n_users
    texts = list(data.catalog["description"])
    assert not any("grey" in t or "white" in t for t in texts)  # background: visual only
    assert 0 < sum(any(c in t for c in ("red", "green", "blue", "yellow")) for t in texts) < 48
    with pytest.raises(ConfigError, match="n_items >= 48"):
        multimodal_world(tmp_path / "small", n_items=10)

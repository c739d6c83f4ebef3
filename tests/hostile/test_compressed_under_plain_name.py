"""A compressed file under a plain name (``ratings.csv`` that is really gzip) is read as what its
first bytes say, not reported as a text-encoding problem; plain text under a ``.gz`` name is
still reported as not a valid compressed file."""

import bz2
import gzip
import json
import lzma

import pytest

from genrec.data import load_amazon_2023, load_movielens, load_recbole_atomic, load_table
from genrec.errors import DataError

COMPRESS = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}

FILES = {
    "u.data": ("1\t10\t4\t881250949\n2\t20\t5\t881250950\n", load_movielens),
    "ratings.dat": ("1::10::4::881250949\n2::20::5::881250950\n", load_movielens),
    "ratings.csv": (
        "userId,movieId,rating,timestamp\n1,10,4,881250949\n2,20,5,881250950\n",
        load_movielens,
    ),
    "x.inter": ("user_id:token\titem_id:token\n1\t10\n2\t20\n", load_recbole_atomic),
    "log.csv": (
        "user,item\n1,10\n2,20\n",
        lambda folder: load_table(folder / "log.csv", user="user", item="item"),
    ),
    "reviews.jsonl": (
        "".join(
            json.dumps({"user_id": u, "parent_asin": i, "rating": 4, "timestamp": 881250949000})
            + "\n"
            for u, i in (("1", "10"), ("2", "20"))
        ),
        lambda folder: load_amazon_2023(folder / "reviews.jsonl"),
    ),
}


@pytest.mark.parametrize("kind", COMPRESS)
@pytest.mark.parametrize("name", FILES)
def test_compressed_content_under_a_plain_name_is_read(tmp_path, name, kind):
    text, load = FILES[name]
    (tmp_path / name).write_bytes(COMPRESS[kind](text.encode()))
    data = load(tmp_path)
    assert list(data.users.ids) == ["1", "2"] and list(data.items.ids) == ["10", "20"]


def test_plain_text_under_a_gz_name_is_still_reported(tmp_path):
    (tmp_path / "log.csv.gz").write_text("user,item\n1,10\n")
    with pytest.raises(DataError, match=r"log\.csv\.gz: not a valid compressed file.*rename"):
        load_table(tmp_path / "log.csv.gz", user="user", item="item")


def test_gzip_named_csv_is_not_called_an_encoding_problem(tmp_path):
    whole = gzip.compress(b"user,item\n" + b"1,10\n" * 1000)
    (tmp_path / "log.csv").write_bytes(whole[: len(whole) // 2])  # gzip, and truncated
    with pytest.raises(DataError, match=r"log\.csv: not a valid compressed file") as error:
        load_table(tmp_path / "log.csv", user="user", item="item")
    assert "utf-8" not in str(error.value)

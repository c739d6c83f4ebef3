"""A UTF-8 byte-order mark at the start of any text file the loaders read is ignored.

Editors on Windows add one; read as latin-1 it turns into "ï»¿", which used to become part of
the first user id (a phantom user) or of the first item's id (so item 1 lost its title).
Each case writes the same tiny dataset twice, with and without the mark, and expects the same
result.
"""

import gzip
import json
from pathlib import Path

import pytest

from genrec.data import (
    load_amazon_2018,
    load_amazon_2023,
    load_movielens,
    load_recbole_atomic,
    load_table,
)

BOM = b"\xef\xbb\xbf"
FLAGS = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)  # Comedy


def ml_100k(folder: Path) -> dict[str, str]:
    return {
        "u.data": "196\t1\t3\t881250949\n186\t2\t4\t891717742\n",
        "u.item": f"1|Toy Story (1995)|01-Jan-1995||http://x|{FLAGS}\n"
        f"2|GoldenEye (1995)|01-Jan-1995||http://x|{FLAGS}\n",
        "u.user": "196|49|M|writer|55105\n186|39|F|executive|00000\n",
    }


def ml_1m(folder: Path) -> dict[str, str]:
    return {
        "ratings.dat": "196::1::3::978300760\n186::2::4::978302109\n",
        "movies.dat": "1::Toy Story (1995)::Animation|Comedy\n2::GoldenEye (1995)::Action\n",
        "users.dat": "196::M::25::4::55105\n186::F::35::7::00000\n",
    }


def ml_25m(folder: Path) -> dict[str, str]:
    return {
        "ratings.csv": "userId,movieId,rating,timestamp\n196,1,3.0,978300760\n"
        "186,2,4.0,978302109\n",
        "movies.csv": "movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n"
        "2,GoldenEye (1995),Action\n",
    }


def atomic(folder: Path) -> dict[str, str]:
    return {
        "ml.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t1\t3\t881250949\n186\t2\t4\t891717742\n",
        "ml.item": "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
        "1\tToy Story\tComedy\n2\tGoldenEye\tAction\n",
        "ml.user": "user_id:token\tage:token\tgender:token\n196\t49\tM\n186\t39\tF\n",
    }


def csv_table(folder: Path) -> dict[str, str]:
    return {
        "log.csv": "user,item,rating\n196,1,3\n186,2,4\n",
        "items.csv": "item,title\n1,Toy Story\n2,GoldenEye\n",
    }


def amazon_2018(folder: Path) -> dict[str, str]:
    reviews = [
        {"reviewerID": "196", "asin": "1", "overall": 3.0, "unixReviewTime": 881250949},
        {"reviewerID": "186", "asin": "2", "overall": 4.0, "unixReviewTime": 891717742},
    ]
    meta = [{"asin": "1", "title": "Toy Story"}, {"asin": "2", "title": "GoldenEye"}]
    return {
        "reviews.json": "".join(json.dumps(r) + "\n" for r in reviews),
        "meta.json": "".join(json.dumps(m) + "\n" for m in meta),
    }


def amazon_2023(folder: Path) -> dict[str, str]:
    reviews = [
        {"user_id": "196", "parent_asin": "1", "rating": 3.0, "timestamp": 881250949000},
        {"user_id": "186", "parent_asin": "2", "rating": 4.0, "timestamp": 891717742000},
    ]
    meta = [{"parent_asin": "1", "title": "Toy Story"}, {"parent_asin": "2", "title": "GoldenEye"}]
    return {
        "reviews.jsonl": "".join(json.dumps(r) + "\n" for r in reviews),
        "meta.jsonl": "".join(json.dumps(m) + "\n" for m in meta),
    }


FORMATS = {
    "ml-100k": (ml_100k, lambda f: load_movielens(f)),
    "ml-1m": (ml_1m, lambda f: load_movielens(f)),
    "ml-25m": (ml_25m, lambda f: load_movielens(f)),
    "recbole-atomic": (atomic, lambda f: load_recbole_atomic(f)),
    "csv": (
        csv_table,
        lambda f: load_table(
            f / "log.csv", user="user", item="item", rating="rating", items_path=f / "items.csv"
        ),
    ),
    "amazon-2018": (amazon_2018, lambda f: load_amazon_2018(f / "reviews.json", f / "meta.json")),
    "amazon-2023": (amazon_2023, lambda f: load_amazon_2023(f / "reviews.jsonl", f / "meta.jsonl")),
}


def write(folder: Path, files: dict[str, str], *, bom: bool, gzipped: bool = False) -> Path:
    folder.mkdir()
    for name, text in files.items():
        data = (BOM if bom else b"") + text.encode("utf-8")
        (folder / name).write_bytes(gzip.compress(data) if gzipped else data)
    return folder


def summary(data) -> tuple:
    titles = [data.catalog.title(i) for i in range(data.n_items)] if data.catalog else []
    users = data.user_table.row(0) if data.user_table is not None else {}
    return (
        list(data.users.ids),
        list(data.items.ids),
        data.value.tolist(),
        titles,
        {k: str(v) for k, v in users.items()},
    )


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip-content"])
def test_a_byte_order_mark_changes_nothing(tmp_path, fmt, gzipped):
    files_of, load = FORMATS[fmt]
    plain = load(write(tmp_path / "plain", files_of(tmp_path), bom=False))
    marked = load(write(tmp_path / "marked", files_of(tmp_path), bom=True, gzipped=gzipped))
    assert summary(marked) == summary(plain)
    assert marked.users.ids[0] == "196" and marked.items.ids[0] == "1"
    if marked.catalog is not None:
        assert marked.catalog.title(0) == "Toy Story"


def test_a_marked_latin1_file_still_decodes(tmp_path):
    """A mark on a file that is not valid UTF-8 is dropped and the rest read as latin-1."""
    folder = write(tmp_path / "ml", ml_100k(tmp_path), bom=False)
    (folder / "u.item").write_bytes(
        BOM
        + f"1|Caf\u00e9 (1995)|01-Jan-1995||x|{FLAGS}\n2|GoldenEye (1995)|01-Jan-1995||x|"
        f"{FLAGS}\n".encode("latin-1")
    )
    assert load_movielens(folder).catalog.title(0) == "Caf\u00e9"

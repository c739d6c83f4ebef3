"""Loaders for real dataset files: MovieLens, RecBole atomic files, Amazon reviews, any table.

Every loader returns a :class:`~genrec.data.Dataset` built by ``Dataset.from_interactions``:
external ids are strings, vocabularies are in first-seen order, and items or users that never
interact are left out of the vocabularies (their catalog or user rows are dropped). Interactions
keep the order of the file.

Malformed input raises :class:`~genrec.errors.DataError` naming the file, the line (or column)
and the fix: a missing, unreadable or corrupt (e.g. not really gzip) file, a missing or repeated
column name, a wrong number of fields, an empty file, an id, rating or timestamp that is empty,
NaN or not a number, a timestamp outside int64 seconds. Item and user *attributes* are lenient:
an age or year that does not parse becomes NaN. An item (or user) listed twice in an item (or
user) table keeps its first row.

Delimited files are read by pandas' C parser (no Python loop per line); JSON-lines files are
parsed line by line, since that is the format.

Example:
    >>> from pathlib import Path; import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "u.data").write_text("1\\t10\\t4\\t881250949\\n2\\t10\\t5\\t881250950\\n")
    >>> load_movielens(folder, name="tiny")
    Dataset('tiny', users=2, items=1, interactions=2)
"""

from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import io
import json
import lzma
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.dataset import INT64_END, INT64_MIN, Dataset, object_array
from genrec.errors import DataError, require

__all__ = [
    "load_amazon_2018",
    "load_amazon_2023",
    "load_movielens",
    "load_recbole_atomic",
    "load_table",
]


# ``(ids, columns)`` of an item or user table that the files do not have
_NO_TABLE: tuple[None, None] = (None, None)

# ---- MovieLens ---------------------------------------------------------------------------------

ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)

# ML-1M README: occupation codes of users.dat
ML_1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)


# Star ratings (MovieLens, Amazon: 1-5; ML-20M and later: 0.5-5): 4 stars or more means liked.
STARS_LIKED = 4.0


def load_movielens(path, *, name: str | None = None) -> Dataset:
    """Load an unpacked MovieLens folder; the format is detected from the files present.

    * ML-100K: ``u.data`` (user, item, rating, timestamp; tabs), optional ``u.item``,
      ``u.genre``, ``u.user`` (``|``-separated, latin-1).
    * ML-1M / ML-10M: ``ratings.dat``, optional ``movies.dat`` and ``users.dat`` (``::``).
    * ML-20M / 25M / 32M / latest: ``ratings.csv`` and optional ``movies.csv`` (``links.csv``
      and ``tags.csv`` are ignored).
    * A RecBole atomic folder (``*.inter``): see :func:`load_recbole_atomic`.

    Catalog columns: ``title`` (str, the year taken out: "Toy Story (1995)" -> "Toy Story"),
    ``year`` (float, NaN when the title has none), ``genres`` (tuple of str; "(no genres
    listed)" gives ``()``). User columns (100K, 1M): ``age`` (float), ``gender``,
    ``occupation``, ``zip_code``. In ML-1M ``age`` is the code of the age bracket (its lower
    bound, 1 meaning "under 18") and occupation codes are mapped to the names of the ML-1M
    README (4 -> "college/grad student"). ``positive_threshold`` is ``STARS_LIKED`` (4 stars).

    Args:
        path: the folder (e.g. ``ml-100k/``).
        name: dataset label; default the folder's name.

    Raises:
        DataError: not a folder, no known ratings file in it, or a malformed file.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; pass the unpacked MovieLens folder "
                        "(the one holding u.data, ratings.dat or ratings.csv)")
    name = name or folder.name
    if (folder / "u.data").is_file():
        return _movielens_100k(folder, name)
    if (folder / "ratings.dat").is_file():
        return _movielens_dat(folder, name)
    if (folder / "ratings.csv").is_file():
        return _movielens_csv(folder, name)
    if any(folder.glob("*.inter")):
        return load_recbole_atomic(folder, name=name, positive_threshold=STARS_LIKED)
    raise DataError(f"{folder} holds no MovieLens ratings: expected u.data (ML-100K), "
                    "ratings.dat (ML-1M/10M), ratings.csv (ML-20M/25M/latest) or a RecBole "
                    "<name>.inter file; point path at the unpacked dataset folder")


def _movielens_100k(folder: Path, name: str) -> Dataset:
    ratings = _read_delimited(folder / "u.data", sep="\t", encoding="latin-1",
                              names=("user", "item", "rating", "timestamp"),
                              dtype={"user": str, "item": str},
                              fmt="user<TAB>item<TAB>rating<TAB>timestamp")
    items = users = _NO_TABLE
    if (folder / "u.item").is_file():
        genres = _ml_100k_genres(folder / "u.genre")
        table = _read_delimited(folder / "u.item", sep="|", encoding="latin-1",
                                names=("item", "title", "release_date", "video_date", "url",
                                       *genres),
                                dtype={"item": str, "title": str, "release_date": str},
                                fmt=f"id|title|release date|video date|url|"
                                    f"{len(genres)} genre flags")
        flags = table.frame[list(genres)].fillna(0).to_numpy() == 1  # (n_items, n_genres)
        title, year = _title_and_year(table.frame["title"])
        items = (table.ids("item"), {"title": title, "year": year,
                                     "genres": _flag_tuples(flags, genres)})
    if (folder / "u.user").is_file():
        table = _read_delimited(folder / "u.user", sep="|", encoding="latin-1",
                                names=("user", "age", "gender", "occupation", "zip_code"),
                                dtype={"user": str, "gender": str, "occupation": str,
                                       "zip_code": str},
                                fmt="id|age|gender|occupation|zip")
        users = (table.ids("user"), {"age": table.numbers("age", strict=False),
                                     **table.texts("gender", "occupation", "zip_code")})
    return _movielens_dataset(ratings, items, users, name)


def _ml_100k_genres(path: Path) -> tuple[str, ...]:
    """Genre names of the u.item flags in index order; the standard 19 if u.genre is absent."""
    if not path.is_file():
        return ML_100K_GENRES
    table = _read_delimited(path, sep="|", encoding="latin-1", names=("genre", "index"),
                            dtype={"genre": str}, fmt="genre|index")
    index = table.numbers("index", what="genre index").astype(np.int64)
    return tuple(str(g) for g in table.frame["genre"].to_numpy(object)[np.argsort(index)])


def _movielens_dat(folder: Path, name: str) -> Dataset:
    ratings = _read_delimited(folder / "ratings.dat", sep="::", encoding="latin-1",
                              names=("user", "item", "rating", "timestamp"),
                              dtype={"user": str, "item": str},
                              fmt="UserID::MovieID::Rating::Timestamp")
    items = users = _NO_TABLE
    if (folder / "movies.dat").is_file():
        table = _read_delimited(folder / "movies.dat", sep="::", encoding=None,
                                names=("item", "title", "genres"), dtype=str,
                                fmt="MovieID::Title::Genres (genres separated by |)")
        items = (table.ids("item"), _movie_columns(table.frame))
    if (folder / "users.dat").is_file():
        table = _read_delimited(folder / "users.dat", sep="::", encoding="latin-1",
                                names=("user", "gender", "age", "occupation", "zip_code"),
                                dtype={"user": str, "gender": str, "zip_code": str},
                                fmt="UserID::Gender::Age::Occupation::Zip-code")
        code = table.numbers("occupation", strict=False)
        known = np.isfinite(code) & (code >= 0) & (code < len(ML_1M_OCCUPATIONS))
        occupation = np.full(len(code), None, dtype=object)
        occupation[known] = np.asarray(ML_1M_OCCUPATIONS, dtype=object)[code[known].astype(int)]
        users = (table.ids("user"), {"age": table.numbers("age", strict=False),
                                     "occupation": occupation,
                                     **table.texts("gender", "zip_code")})
    return _movielens_dataset(ratings, items, users, name)


def _movielens_csv(folder: Path, name: str) -> Dataset:
    ratings = _read_delimited(folder / "ratings.csv", sep=",", quoted=True,
                              dtype={"userId": str, "movieId": str},
                              fmt="userId,movieId,rating,timestamp with a header line")
    ratings.require_columns("userId", "movieId", "rating", "timestamp",
                            fix="ML-20M/25M ratings.csv starts with "
                                "userId,movieId,rating,timestamp")
    ratings.frame = ratings.frame.rename(columns={"userId": "user", "movieId": "item"})
    items = _NO_TABLE
    if (folder / "movies.csv").is_file():
        table = _read_delimited(folder / "movies.csv", sep=",", quoted=True, dtype=str,
                                fmt="movieId,title,genres with a header line")
        table.require_columns("movieId", "title", "genres",
                              fix="ML-20M/25M movies.csv starts with movieId,title,genres")
        items = (table.ids("movieId"), _movie_columns(table.frame))
    return _movielens_dataset(ratings, items, _NO_TABLE, name)


def _movie_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """title, year and genres of a movies.dat / movies.csv frame (genres separated by |)."""
    title, year = _title_and_year(frame["title"])
    genres = frame["genres"].fillna("").to_numpy(object)
    return {"title": title, "year": year,
            "genres": object_array([tuple(g for g in str(s).split("|")
                                           if g and g != "(no genres listed)")
                                     for s in genres])}


def _movielens_dataset(ratings: "_Parsed", items, users, name: str) -> Dataset:
    """``items`` and ``users`` are ``(ids, columns)`` of a table, ``_NO_TABLE`` when absent."""
    item_ids, item_rows = items
    user_ids, user_rows = users
    return Dataset.from_interactions(
        ratings.ids("user"), ratings.ids("item"), ratings.numbers("rating"),
        ratings.timestamps("timestamp"), item_rows=item_rows, item_row_ids=item_ids,
        user_rows=user_rows, user_row_ids=user_ids, name=name, positive_threshold=STARS_LIKED)


_TITLE_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?\s*)?\)\s*$"


def _title_and_year(titles: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Split "Toy Story (1995)" into ("Toy Story", 1995.0); titles without a year keep NaN."""
    titles = titles.fillna("").astype(str).str.strip()
    parts = titles.str.extract(_TITLE_YEAR)
    title = parts["title"].where(parts["year"].notna(), titles)
    year = pd.to_numeric(parts["year"], errors="coerce").to_numpy(np.float64)
    return title.to_numpy(object), year


def _flag_tuples(flags: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(n,) object array of tuples: the names whose flag is set in each row of (n, g) ``flags``."""
    names = np.asarray(names, dtype=object)
    return object_array([tuple(names[row]) for row in flags])


# ---- RecBole atomic files ---------------------------------------------------------------------

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
_RECBOLE_ITEM_FIELDS = {"movie_title": "title", "title": "title", "release_year": "year",
                        "year": "year", "class": "genres", "genre": "genres",
                        "categories": "genres"}
_NUMERIC_ATTRIBUTES = ("year", "age")  # stored as tokens in RecBole files, numbers here


def load_recbole_atomic(path, *, name: str | None = None,
                       positive_threshold: float | None = None) -> Dataset:
    """Load RecBole atomic files ``<name>.inter`` and optional ``<name>.item``, ``<name>.user``.

    Each file is tab-separated with a header of ``field:type`` (types token, token_seq, float,
    float_seq; sequences are space-separated). Mapped fields: ``user_id``, ``item_id``,
    ``rating`` -> value (1.0 when absent), ``timestamp`` (0 when absent); other ``.inter`` fields
    are ignored. Item ``movie_title``/``title`` -> ``title`` (str), ``release_year``/``year`` ->
    ``year`` (float, NaN when not a number), ``class``/``genre``/``categories`` -> ``genres``
    (tuple). User ``age`` becomes a float. Every other item or user field is kept under its own
    name: token -> str, float -> float, token_seq / float_seq -> tuple.

    Args:
        path: the folder holding the files, or the ``.inter`` file itself.
        name: dataset label; also picks ``<name>.inter`` when the folder holds several.
        positive_threshold: the rating at or above which the user liked the item (see
            :class:`Dataset`); None (implicit feedback) unless you know the rating scale.

    Raises:
        DataError: no (or an ambiguous) ``.inter`` file, a bad header, a malformed line.
    """
    inter_path = _recbole_inter_file(Path(path), name)
    inter = _read_atomic(inter_path)
    inter.require_columns("user_id", "item_id", fix="a RecBole .inter file needs the fields "
                          "user_id:token and item_id:token")
    fields = inter.frame.columns
    item_ids, item_rows = _recbole_rows(inter_path.with_suffix(".item"), "item_id",
                                        _RECBOLE_ITEM_FIELDS)
    user_ids, user_rows = _recbole_rows(inter_path.with_suffix(".user"), "user_id", {})
    return Dataset.from_interactions(
        inter.ids("user_id"), inter.ids("item_id"),
        inter.numbers("rating") if "rating" in fields else None,
        inter.timestamps("timestamp") if "timestamp" in fields else None,
        item_rows=item_rows, item_row_ids=item_ids, user_rows=user_rows, user_row_ids=user_ids,
        name=name or inter_path.stem,
        positive_threshold=positive_threshold if "rating" in fields else None)


def _recbole_inter_file(path: Path, name: str | None) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path} does not exist; pass a folder holding <name>.inter "
                        "(RecBole atomic files) or the .inter file itself")
    if name is not None and (path / f"{name}.inter").is_file():
        return path / f"{name}.inter"
    found = sorted(path.glob("*.inter"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"{path} holds no .inter file; RecBole atomic datasets are "
                        "<name>.inter (+ optional <name>.item, <name>.user)")
    raise DataError(f"{path} holds several .inter files ({', '.join(p.name for p in found)}); "
                    "pass name=<file stem> or the .inter file itself")


def _read_atomic(path: Path) -> "_Parsed":
    """An atomic file with columns renamed to the bare field names and ``.types`` set."""
    header = _first_line(path)
    types = {}
    for column in header.split("\t"):
        field, _, kind = column.rpartition(":")
        if not field or kind not in RECBOLE_TYPES or field in types:
            raise DataError(f"{path}, line 1: bad header field {column!r}; RecBole headers are "
                            f"distinct 'name:type' with type one of {list(RECBOLE_TYPES)}")
        types[field] = kind
    text = {f"{f}:{k}": str for f, k in types.items() if k != "float"}
    table = _read_delimited(path, sep="\t", dtype=text, fmt="tab-separated name:type fields")
    table.frame.columns = list(types)
    table.types = types
    return table


def _recbole_rows(path: Path, key: str, renames: Mapping[str, str]):
    """``(ids, columns)`` of an optional ``.item`` / ``.user`` file; ``_NO_TABLE`` if absent."""
    if not path.is_file():
        return _NO_TABLE
    table = _read_atomic(path)
    table.require_columns(key, fix=f"a RecBole {path.suffix} file needs the field {key}:token")
    columns: dict[str, np.ndarray] = {}
    for field, kind in table.types.items():
        if field == key:
            continue
        target = renames.get(field, field)
        target = field if target in columns else target
        columns[target] = _atomic_column(table, field, kind, target)
    return table.ids(key), columns


def _atomic_column(table: "_Parsed", field: str, kind: str, target: str) -> np.ndarray:
    if target in _NUMERIC_ATTRIBUTES or kind == "float":
        return table.numbers(field, strict=False)
    if target == "title" or kind == "token":
        return table.texts(field)[field]
    values = table.frame[field].fillna("").to_numpy(object)
    if kind == "float_seq":
        return object_array([tuple(pd.to_numeric(v.split(), errors="coerce")) for v in values])
    return object_array([tuple(v.split()) for v in values])


# ---- Amazon reviews ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReviewFormat:
    label: str
    user: str
    item: tuple[str, ...]  # keys tried in order
    rating: str
    time: str
    time_per_second: int  # 1000 when the timestamp is in milliseconds
    text: str
    summary: str


_AMAZON_2018 = _ReviewFormat("Amazon 2014/2018", "reviewerID", ("asin",), "overall",
                             "unixReviewTime", 1, "reviewText", "summary")
_AMAZON_2023 = _ReviewFormat("Amazon 2023", "user_id", ("parent_asin", "asin"), "rating",
                             "timestamp", 1000, "text", "title")


def load_amazon_2018(reviews_path, meta_path=None, *, name: str | None = None) -> Dataset:
    """Load Amazon reviews of the 2014 or 2018 dumps (McAuley et al.), JSON lines, optionally .gz.

    Review lines need ``reviewerID``, ``asin``, ``overall`` and ``unixReviewTime``;
    ``reviewText`` and ``summary`` go to the per-interaction columns
    ``dataset.extras["review_text"]`` and ``["review_summary"]`` ("" when absent). Meta lines (JSON, or the Python-dict literals of the 2014 dumps) give
    catalog columns ``title``, ``description`` (a list is joined with spaces), ``genres`` (tuple
    from ``category`` or ``categories``; lists of lists are flattened, duplicates dropped),
    ``brand``, ``price`` (float; "$1,299.00" -> 1299.0, NaN for ranges or absent) and ``image``
    (first URL of ``imageURLHighRes``, ``imageURL`` or ``imUrl``). Repeated asins keep their
    first meta line.

    Args:
        reviews_path: the reviews file (``.json`` or ``.json.gz``).
        meta_path: the meta file, optional.
        name: dataset label; default the reviews file's name without suffixes.

    Raises:
        DataError: a missing file, an unparseable line, a missing field or rating.
    """
    return _amazon(reviews_path, meta_path, _AMAZON_2018, _meta_2018, ("asin",),
                   ("title", "brand", "genres", "description"), name)


def load_amazon_2023(reviews_path, meta_path=None, *, name: str | None = None) -> Dataset:
    """Load Amazon Reviews 2023 (Hou et al.) JSON lines, optionally .gz.

    Review lines need ``user_id``, ``parent_asin`` (or ``asin``), ``rating`` and ``timestamp``
    (milliseconds; stored as seconds); ``text`` and ``title`` go to ``dataset.extras["review_text"]``
    and ``["review_summary"]``. Meta lines keyed by ``parent_asin`` give catalog columns ``title``,
    ``description`` and ``features`` (lists joined with spaces), ``genres`` (tuple of
    ``categories``), ``store``, ``price`` (float, NaN when absent) and ``image`` (the first
    image's ``large``, else ``hi_res``, else ``thumb`` URL).

    Raises:
        DataError: a missing file, an unparseable line, a missing field or rating.
    """
    return _amazon(reviews_path, meta_path, _AMAZON_2023, _meta_2023, ("parent_asin", "asin"),
                   ("title", "store", "genres", "features", "description"), name)


def _amazon(reviews_path, meta_path, fmt: _ReviewFormat, meta_columns: Callable[[dict], dict],
            meta_key: tuple[str, ...], text_fields: tuple[str, ...], name) -> Dataset:
    reviews_path = Path(reviews_path)
    rows = _read_reviews(reviews_path, fmt)
    item_ids, item_rows = _NO_TABLE
    if meta_path is not None:
        item_ids, item_rows = _read_meta(Path(meta_path), meta_key, meta_columns, fmt.label)
    data = Dataset.from_interactions(
        rows["user"], rows["item"], rows["rating"], rows["time"], item_rows=item_rows,
        item_row_ids=item_ids, text_fields=text_fields, positive_threshold=STARS_LIKED,
        extras={"review_text": object_array(rows["text"]),
                "review_summary": object_array(rows["summary"])},
        name=name or reviews_path.name.split(".")[0])
    return data


def _read_reviews(path: Path, fmt: _ReviewFormat) -> dict[str, list]:
    rows: dict[str, list] = {"user": [], "item": [], "rating": [], "time": [], "text": [],
                             "summary": []}
    for number, record in _json_records(path):
        where = f"{path}, line {number}"
        rows["user"].append(_required(record, (fmt.user,), where, fmt))
        rows["item"].append(_required(record, fmt.item, where, fmt))
        rows["rating"].append(_number(_required(record, (fmt.rating,), where, fmt), where,
                                      fmt.rating))
        time = _number(_required(record, (fmt.time,), where, fmt), where, fmt.time)
        if not INT64_MIN <= time // fmt.time_per_second < INT64_END:
            raise DataError(f"{where}: {fmt.time} {time!r} is outside the int64 range of "
                            "seconds since the epoch; fix or drop the line")
        rows["time"].append(int(time // fmt.time_per_second))
        rows["text"].append(_text(record.get(fmt.text)) or "")
        rows["summary"].append(_text(record.get(fmt.summary)) or "")
    if not rows["user"]:
        raise DataError(f"{path} holds no reviews; expected one {fmt.label} JSON object a line")
    return rows


def _required(record: dict, keys: tuple[str, ...], where: str, fmt: _ReviewFormat):
    for key in keys:
        value = record.get(key)
        if value is not None and value != "":
            return value
    needed = [fmt.user, " or ".join(fmt.item), fmt.rating, fmt.time]
    raise DataError(f"{where}: no {' or '.join(repr(k) for k in keys)} field; {fmt.label} "
                    f"review lines need {', '.join(needed)}")


def _number(value, where: str, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{where}: {field} {value!r} is not a finite number; fix or drop the line")
    return number


def _read_meta(path: Path, keys: tuple[str, ...], columns_of: Callable[[dict], dict],
               label: str) -> tuple[list, dict[str, np.ndarray]]:
    ids: list = []
    rows: list[dict] = []
    for number, record in _json_records(path):
        key = next((record[k] for k in keys if record.get(k) not in (None, "")), None)
        if key is None:
            raise DataError(f"{path}, line {number}: no {' or '.join(map(repr, keys))} field; "
                            f"every {label} meta line needs the item id")
        ids.append(str(key))
        rows.append(columns_of(record))
    if not ids:
        raise DataError(f"{path} holds no item metadata; expected one JSON object a line")
    # a repeated asin keeps its first line: Dataset.from_interactions drops the later rows
    return ids, {column: object_array([r[column] for r in rows]) for column in rows[0]}


def _meta_2018(record: dict) -> dict:
    categories = record.get("category", record.get("categories"))
    return {"title": _text(record.get("title")),
            "description": _text(record.get("description")),
            "genres": _flat_tuple(categories),
            "brand": _text(record.get("brand")),
            "price": _price(record.get("price")),
            "image": _first_url(record.get("imageURLHighRes") or record.get("imageURL")
                                or record.get("imUrl"))}


def _meta_2023(record: dict) -> dict:
    images = record.get("images") or []
    image = None
    if isinstance(images, list) and images and isinstance(images[0], dict):
        image = next((images[0][k] for k in ("large", "hi_res", "thumb") if images[0].get(k)),
                     None)
    return {"title": _text(record.get("title")),
            "description": _text(record.get("description")),
            "features": _text(record.get("features")),
            "genres": _flat_tuple(record.get("categories")),
            "store": _text(record.get("store")),
            "price": _price(record.get("price")),
            "image": image}


def _json_records(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` of a JSON-lines file (gzip detected by its magic bytes).

    Lines that are not JSON are tried as Python literals (``ast.literal_eval``, never eval):
    the 2014 Amazon meta dumps are written that way.
    """
    with _open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = _literal(line, f"{path}, line {number}")
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {number}: expected one object ({{...}}) a line, "
                                f"got {type(record).__name__}")
            yield number, record


def _literal(line: str, where: str):
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DataError(f"{where}: neither JSON nor a Python dict literal: {line[:60]!r}; "
                        "the file must hold one object a line") from None


@contextlib.contextmanager
def _open_text(path: Path) -> Iterator[io.TextIOWrapper]:
    """Lines of a text file, gunzipped when it starts with the gzip magic bytes; an unreadable
    or corrupt file raises :class:`DataError` naming it, also while the lines are read."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    with _reading(path):
        with path.open("rb") as f:
            zipped = f.read(2) == b"\x1f\x8b"
        raw = gzip.open(path, "rb") if zipped else path.open("rb")
        with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as lines:
            yield lines


# what reading a broken, truncated or mislabelled (compressed) file raises
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
                UnicodeDecodeError)


@contextlib.contextmanager
def _reading(path: Path, encoding: str = "utf-8"):
    """Turn the errors of reading ``path`` into a :class:`DataError` naming the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: byte {exc.start} of a chunk is not {encoding} text; re-encode "
                        f"the file as {encoding}") from None
    except _READ_ERRORS as exc:
        if not (isinstance(exc, (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
                                 gzip.BadGzipFile)) or path.suffix.lower() in _COMPRESSED):
            raise DataError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); check that "
                            "it is a complete, readable file, or download it again") from None
        raise DataError(f"{path}: not a valid compressed file ({type(exc).__name__}: {exc}); it "
                        "may be truncated (download it again) or plain text under a .gz/.bz2/"
                        ".xz/.zip name (rename it without that suffix)") from None


def _text(value) -> str | None:
    """A str, a list of str (joined with spaces) or None; empty text gives None."""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v).strip() for v in value if v not in (None, ""))
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _flat_tuple(value) -> tuple[str, ...]:
    """Categories as a flat tuple: str, list of str, or list of lists; first occurrence kept."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    flat = []
    for v in value:
        flat.extend(v if isinstance(v, (list, tuple)) else [v])
    return tuple(dict.fromkeys(str(v).strip() for v in flat if v not in (None, "")))


_PRICE = re.compile(r"^\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)$")


def _price(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _PRICE.match(str(value).strip()) if isinstance(value, str) else None
    return float(match.group(1).replace(",", "")) if match else math.nan


def _first_url(value) -> str | None:
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if v), None)
    return str(value) if value else None


# ---- generic tables ---------------------------------------------------------------------------


def load_table(path, *, user: str, item: str, rating: str | None = None,
               timestamp: str | None = None, sep: str | None = None, items_path=None,
               item_key: str | None = None, item_columns: Mapping[str, str] | None = None,
               name: str | None = None, positive_threshold: float | None = None) -> Dataset:
    """Load interactions from a CSV, TSV or Parquet file with a header, by column names.

    The format follows the suffix (``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq``; a
    compression suffix such as ``.gz`` is looked through); other suffixes need ``sep``.

    Args:
        path: the interactions file.
        user, item: columns holding the user and item ids (read as str).
        rating: column of values; None means implicit feedback (1.0).
        timestamp: column of timestamps: numbers (seconds) or date strings (parsed as UTC);
            None gives zeros.
        sep: field separator, overriding the suffix.
        items_path: an optional item table (same formats) joined on ``item_key``.
        item_key: the id column of the item table; default the same name as ``item``.
        item_columns: catalog column -> item-table column, e.g. ``{"title": "movie_name"}``;
            default every column but the key, under its own name. An item id listed twice in
            the item table keeps its first row.
        name: dataset label; default the file's name without suffixes.
        positive_threshold: the rating at or above which the user liked the item (e.g. 4.0 on
            a 1-5 scale; see :class:`Dataset`); None for implicit feedback. Needs ``rating``.

    Raises:
        DataError: a missing, unreadable or corrupt file, a missing or repeated column name, a
            malformed line, an empty, NaN or non-numeric rating or timestamp, an empty file.
        MissingExtraError: a Parquet file without pyarrow installed.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "log.csv")
        >>> _ = open(f, "w").write("who,what\\nu1,i1\\nu2,i1\\n")
        >>> load_table(f, user="who", item="what").n_users
        2
    """
    if positive_threshold is not None and rating is None:
        raise DataError(f"positive_threshold={positive_threshold!r} needs ratings: pass "
                        "rating=<the rating column>, or leave positive_threshold=None for "
                        "implicit feedback")
    path = Path(path)
    table = _read_table(path, sep=sep, id_columns=(user, item))
    for argument, column in {"user": user, "item": item, "rating": rating,
                             "timestamp": timestamp}.items():
        if column is not None:
            table.require_columns(column, fix=f"pass {argument}=<one of them>")
    item_ids, item_rows = _NO_TABLE
    if items_path is not None:
        item_ids, item_rows = _item_table(Path(items_path), key=item_key or item,
                                          columns=item_columns, sep=sep)
    return Dataset.from_interactions(
        table.ids(user), table.ids(item),
        table.numbers(rating, what=f"rating column {rating!r}") if rating else None,
        table.timestamps(timestamp, what=f"timestamp column {timestamp!r}") if timestamp else None,
        item_rows=item_rows, item_row_ids=item_ids, name=name or path.name.split(".")[0],
        positive_threshold=positive_threshold)


def _item_table(path: Path, *, key: str, columns: Mapping[str, str] | None, sep: str | None):
    table = _read_table(path, sep=sep, id_columns=(key,))
    table.require_columns(key, fix="pass item_key=<the item table's id column>")
    if columns is None:
        columns = {c: c for c in table.frame.columns if c != key}
    table.require_columns(*columns.values(), fix="map item_columns={catalog name: one of them}")
    frame = table.frame
    return table.ids(key), {target: _cells(frame[source]) for target, source in columns.items()}


_COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst")


def _read_table(path: Path, *, sep: str | None, id_columns: Sequence[str] = ()) -> "_Parsed":
    suffixes = [s for s in path.suffixes if s.lower() not in _COMPRESSED]
    suffix = suffixes[-1].lower() if suffixes else ""
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    sep = sep or {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(suffix)
    if sep is None:
        raise DataError(f"cannot tell the separator of {path} from its suffix {suffix!r}; "
                        "pass sep=',' or sep='\\t', or use .csv / .tsv / .parquet")
    return _read_delimited(path, sep=sep, quoted=True, dtype={c: str for c in id_columns},
                           fmt=f"{sep!r}-separated columns with a header line")


def _read_parquet(path: Path) -> "_Parsed":
    require("pyarrow", "parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own exception types
        raise DataError(f"{path}: not a readable Parquet file ({exc}); re-export it") from None
    if frame.empty:
        raise DataError(f"{path} has no rows; it must hold one interaction a row")
    return _Parsed(frame, path, header=0, rows="row")


def _cells(column: pd.Series) -> np.ndarray:
    """A column as table cells: floats (NaN missing) if numeric, else objects (None missing)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(np.float64, na_value=np.nan)
    values = column.to_numpy(object)
    values[column.isna().to_numpy()] = None
    return values


# ---- reading delimited text -------------------------------------------------------------------


class _Parsed:
    """A parsed file and where its rows came from, so that errors can name the line."""

    def __init__(self, frame: pd.DataFrame, path: Path, *, header: int, rows: str = "line",
                 sep: str = "\t", quoted: bool = False, fmt: str = ""):
        self.frame, self.path = frame, path
        self.header = header  # non-blank lines before the first data row
        self.rows = rows  # "line" (text files) or "row" (Parquet)
        self.sep, self.quoted, self.fmt = sep, quoted, fmt  # as written in the file
        self.types: dict[str, str] = {}

    def where(self, row: int) -> str:
        if self.rows == "row":
            return f"{self.path}, row {row + 1}"
        return f"{self.path}, line {_line_number(self.path, self.header + row)[0]}"

    def require_columns(self, *columns: str, fix: str) -> None:
        """Raise naming the first of ``columns`` the file lacks, its columns and ``fix``."""
        for column in columns:
            if column not in self.frame.columns:
                raise DataError(f"{self.path} has no column {column!r}; its columns are "
                                f"{[str(c) for c in self.frame.columns]}; {fix}")

    def bad_cell(self, row: int, column: str, what: str, *, expected: str = "number",
                 fix: str = "fix or remove that line") -> DataError:
        """The error for a bad cell, described from the raw text of its line (error path only):
        a short line, an empty cell, NaN, infinity or text that is not a ``expected``."""
        if self.rows == "row":
            cell = self.frame[column].iloc[row]
            return DataError(f"{self.where(row)}: {what} is {_describe(cell, expected)}; {fix}")
        number, line = _line_number(self.path, self.header + row)
        fields = _split_line(line, self.sep, quoted=self.quoted)
        n_fields = self.frame.shape[1]
        if len(fields) < n_fields:
            return DataError(f"{self.path}, line {number}: {len(fields)} fields separated by "
                             f"{self.sep!r}, expected {n_fields}: {self.fmt}")
        cell = fields[self.frame.columns.get_loc(column)]
        return DataError(f"{self.path}, line {number}: {what} is {_describe(cell, expected)}; "
                         f"{fix}")

    def ids(self, column: str) -> np.ndarray:
        """(n,) external ids as str; an empty id raises naming its line."""
        values = self.frame[column]
        missing = values.isna().to_numpy()
        if missing.any():
            raise self.bad_cell(int(np.argmax(missing)), column, f"the {column!r} id",
                                expected="id", fix="every row needs an id")
        if pd.api.types.is_float_dtype(values) and (values % 1 == 0).all():
            values = values.astype(np.int64)  # Parquet ids stored as floats
        return values.astype(str).to_numpy(object)

    def numbers(self, column: str, *, what: str | None = None, strict: bool = True) -> np.ndarray:
        """(n,) float64; strict: a missing, NaN or non-numeric cell raises naming its line."""
        numbers = pd.to_numeric(self.frame[column], errors="coerce").to_numpy(
            np.float64, na_value=np.nan)
        if strict:
            bad = ~np.isfinite(numbers)
            if bad.any():
                raise self.bad_cell(int(np.argmax(bad)), column, what or column)
        return numbers

    def timestamps(self, column: str, *, what: str | None = None) -> np.ndarray:
        """(n,) int64 seconds from numbers (floored) or date strings (UTC), not a mix."""
        values, what = self.frame[column], what or column
        if not pd.api.types.is_numeric_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            if np.isnan(numbers).any():
                return self._date_seconds(column, numbers, what)
        numbers = self.numbers(column, what=what)
        outside = (numbers < INT64_MIN) | (numbers >= INT64_END)
        if outside.any():
            raise self.bad_cell(int(np.argmax(outside)), column, what, expected="range")
        return np.floor(numbers).astype(np.int64)

    def _date_seconds(self, column: str, numbers: np.ndarray, what: str) -> np.ndarray:
        """Seconds of a column of dates; the first cell that is neither a number nor a date
        raises, and so does a number among dates."""
        dates = pd.to_datetime(self.frame[column], errors="coerce", utc=True, format="mixed")
        not_date = dates.isna().to_numpy()
        bad = not_date & np.isnan(numbers)
        if bad.any():
            raise self.bad_cell(int(np.argmax(bad)), column, what, expected="number nor a date")
        if not_date.any():
            row, first_date = int(np.argmax(not_date)), int(np.argmax(~not_date))
            raise DataError(f"{self.where(row)}: {what} is a number ({numbers[row]:g}) but "
                            f"{self.where(first_date)} holds a date "
                            f"({self.frame[column].iloc[first_date]!r}); use one format, "
                            "seconds since the epoch or dates, for the whole column")
        return ((dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)

    def texts(self, *columns: str) -> dict[str, np.ndarray]:
        """Text columns as object arrays with None for empty cells."""
        return {c: _cells(self.frame[c].astype(str).where(self.frame[c].notna()))
                for c in columns}


def _describe(cell, expected: str) -> str:
    """How a bad cell reads in a message: ``cell`` is the raw text of a line's field (or a
    Parquet value); ``expected`` is "number", "number nor a date", "range" or "id"."""
    if not isinstance(cell, str):  # Parquet
        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
            return "missing (null or NaN)"
        return f"{cell!r}, not a finite number"
    text = cell.strip()
    if not text:
        return "empty"
    if expected == "id":
        return f"{text!r}, which is read as a missing value (like NA, null or nan)"
    if expected == "range":
        return f"{text!r}, outside the int64 range of seconds since the epoch"
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and math.isnan(number):
        return "NaN (not a number)"
    if number is not None and math.isinf(number):
        return f"infinite ({text!r})"
    return f"{text!r}, {'neither' if 'nor' in expected else 'not'} a {expected}"


def _split_line(line: str, sep: str, *, quoted: bool) -> list[str]:
    """The fields of one raw line (error path only)."""
    line = line.rstrip("\r\n")
    if quoted and len(sep) == 1:
        return next(csv.reader([line], delimiter=sep), [])
    return line.split(sep)


def _read_delimited(path: Path, *, sep: str, fmt: str, names: Sequence[str] | None = None,
                    encoding: str | None = "utf-8", quoted: bool = False,
                    dtype=None) -> _Parsed:
    """Read a delimited text file with pandas' C parser.

    ``names`` given: the file has no header and exactly ``len(names)`` fields a line (a short
    line raises). No ``names``: the first line is a header of distinct column names. A
    multi-character ``sep`` (MovieLens ``::``) is turned into a tab first, so the C parser can
    read it. ``encoding=None`` tries UTF-8, then latin-1. ``fmt`` describes the expected format
    for error messages.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {fmt}")
    written_sep = sep
    if isinstance(dtype, Mapping) and names is not None:
        dtype = {names.index(c): t for c, t in dtype.items()}
    with _reading(path, encoding or "utf-8"):
        source, sep, encoding = _source(path, sep, encoding)
        read = dict(sep=sep, encoding=encoding, index_col=False, engine="c",
                    quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
        try:
            frame = pd.read_csv(source, header=None if names else 0, dtype=dtype, **read)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path} is empty; expected {fmt}") from None
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: {_parser_problem(exc)}; expected {fmt}") from None
        if names is None:
            _check_header(path, frame, source, read)
    if names is not None and frame.shape[1] != len(names):
        raise DataError(f"{path}, line 1: {frame.shape[1]} fields separated by {written_sep!r}, "
                        f"expected {len(names)}: {fmt}")
    if names is not None:
        frame.columns = list(names)
    if frame.empty:
        raise DataError(f"{path} has a header but no rows; expected {fmt}")
    parsed = _Parsed(frame, path, header=0 if names else 1, sep=written_sep, quoted=quoted,
                     fmt=fmt)
    if names is not None:
        _check_short_lines(parsed)
    return parsed


def _check_header(path: Path, frame: pd.DataFrame, source, read: dict) -> None:
    """Raise if the header repeats a name (pandas would rename the second 'u' to 'u.1')."""
    columns = {str(c) for c in frame.columns}
    stems = (re.fullmatch(r"(.+)\.\d+", c) for c in columns)
    if not any(stem and stem.group(1) in columns for stem in stems):
        return
    if isinstance(source, io.BytesIO):
        source.seek(0)
    header = pd.read_csv(source, header=None, nrows=1, dtype=str, **read).iloc[0].tolist()
    repeated = sorted({str(c) for c in header if header.count(c) > 1})
    if repeated:
        raise DataError(f"{path}, line 1: the header repeats the column name(s) {repeated}; "
                        "give every column a distinct name")


def _check_short_lines(parsed: _Parsed) -> None:
    """Raise naming the first line with too few fields (pandas fills them with NaN).

    Only lines whose last field is missing are candidates, so a well-formed file costs one
    vectorised ``isna``; the candidates' lines are then read (a loop, on that rare path only).
    """
    frame = parsed.frame
    candidates = np.flatnonzero(frame.iloc[:, -1].isna().to_numpy())
    if candidates.size == 0:
        return
    wanted = set((parsed.header + candidates).tolist())
    with _open_text(parsed.path) as lines:
        data_row = -1
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            data_row += 1
            if data_row in wanted:
                fields = _split_line(line, parsed.sep, quoted=parsed.quoted)
                if len(fields) < frame.shape[1]:
                    raise DataError(f"{parsed.path}, line {number}: {len(fields)} fields "
                                    f"separated by {parsed.sep!r}, expected {frame.shape[1]}: "
                                    f"{parsed.fmt}")
                wanted.discard(data_row)
                if not wanted:
                    return


def _source(path: Path, sep: str, encoding: str | None):
    """What to hand pandas: the path, or the decoded bytes for '::' files / unknown encodings."""
    if len(sep) == 1 and encoding is not None:
        return path, sep, encoding
    data = path.read_bytes()
    if len(sep) > 1:
        data = data.replace(sep.encode(), b"\t")
        sep = "\t"
    if encoding is None:
        try:
            data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "latin-1"
    return io.BytesIO(data), sep, encoding


def _parser_problem(exc: Exception) -> str:
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if match:
        expected, line, seen = match.groups()
        return f"line {line} has {seen} fields, the lines before it {expected}"
    return str(exc).strip().replace("Error tokenizing data. C error: ", "")


def _line_number(path: Path, data_row: int) -> tuple[int, str]:
    """1-based number and text of the ``data_row``-th non-blank line (pandas skips blank lines).

    Runs only when an error is being reported, so a Python loop is fine here.
    """
    with _open_text(path) as lines:
        seen = -1
        for number, line in enumerate(lines, 1):
            if line.strip():
                seen += 1
                if seen == data_row:
                    return number, line
    return data_row + 1, ""


def _first_line(path: Path) -> str:
    with _open_text(path) as lines:
        line = next(lines, "").rstrip("\r\n")
    if not line.strip():
        raise DataError(f"{path} is empty; a RecBole atomic file starts with a header line of "
                        "tab-separated name:type fields")
    return line



"""MovieLens in every release layout: ML-100K, ML-1M/10M, ML-20M/25M/32M/latest.

:func:`load_movielens` detects the layout from the files in the folder and returns a
:class:`~genrec.data.Dataset` built by ``Dataset.from_interactions``: external ids are strings,
vocabularies are in first-seen order, items or users that never interact are left out (their
catalog or user rows are dropped), interactions keep the order of the file. A folder of RecBole
atomic files is handed to :func:`~genrec.data.atomic.load_recbole_atomic`.

Malformed input raises :class:`~genrec.errors.DataError` naming the file, the line and the fix
(see :mod:`~genrec.data.delimited`). Attributes are lenient: an age or year that does not parse
becomes NaN. A UTF-8 byte-order mark and gzip content under the plain name are handled (see
:mod:`~genrec.data.textfiles`).

Example:
    >>> from pathlib import Path; import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "u.data").write_text("1\\t10\\t4\\t881250949\\n2\\t10\\t5\\t881250950\\n")
    >>> load_movielens(folder, name="tiny")
    Dataset('tiny', users=2, items=1, interactions=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.atomic import load_recbole_atomic
from genrec.data.dataset import STARS_LIKED, Dataset, object_array
from genrec.data.delimited import NO_TABLE, Parsed, read_delimited
from genrec.data.scan import ScanSource
from genrec.errors import DataError

__all__ = ["ML_1M_OCCUPATIONS", "ML_100K_GENRES", "load_movielens", "movielens_scan_source"]

ML_100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

# ML-1M README: occupation codes of users.dat
ML_1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)


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
        raise DataError(
            f"{folder} is not a folder; pass the unpacked MovieLens folder "
            "(the one holding u.data, ratings.dat or ratings.csv)"
        )
    name = name or folder.name
    if (folder / "u.data").is_file():
        return _movielens_100k(folder, name)
    if (folder / "ratings.dat").is_file():
        return _movielens_dat(folder, name)
    if (folder / "ratings.csv").is_file():
        return _movielens_csv(folder, name)
    if any(folder.glob("*.inter")):
        return load_recbole_atomic(folder, name=name, positive_threshold=STARS_LIKED)
    raise DataError(
        f"{folder} holds no MovieLens ratings: expected u.data (ML-100K), "
        "ratings.dat (ML-1M/10M), ratings.csv (ML-20M/25M/latest) or a RecBole "
        "<name>.inter file; point path at the unpacked dataset folder"
    )


def _movielens_100k(folder: Path, name: str) -> Dataset:
    ratings = read_delimited(
        folder / "u.data",
        sep="\t",
        encoding="latin-1",
        names=("user", "item", "rating", "timestamp"),
        dtype={"user": str, "item": str},
        fmt="user<TAB>item<TAB>rating<TAB>timestamp",
    )
    items = users = NO_TABLE
    if (folder / "u.item").is_file():
        genres = _ml_100k_genres(folder / "u.genre")
        table = read_delimited(
            folder / "u.item",
            sep="|",
            encoding="latin-1",
            names=("item", "title", "release_date", "video_date", "url", *genres),
            dtype={"item": str, "title": str, "release_date": str},
            fmt=f"id|title|release date|video date|url|{len(genres)} genre flags",
        )
        flags = table.frame[list(genres)].fillna(0).to_numpy() == 1  # (n_items, n_genres)
        title, year = _title_and_year(table.frame["title"])
        items = (
            table.ids("item"),
            {"title": title, "year": year, "genres": _flag_tuples(flags, genres)},
        )
    if (folder / "u.user").is_file():
        table = read_delimited(
            folder / "u.user",
            sep="|",
            encoding="latin-1",
            names=("user", "age", "gender", "occupation", "zip_code"),
            dtype={"user": str, "gender": str, "occupation": str, "zip_code": str},
            fmt="id|age|gender|occupation|zip",
        )
        users = (
            table.ids("user"),
            {
                "age": table.numbers("age", strict=False),
                **table.texts("gender", "occupation", "zip_code"),
            },
        )
    return _movielens_dataset(ratings, items, users, name)


def _ml_100k_genres(path: Path) -> tuple[str, ...]:
    """Genre names of the u.item flags in index order; the standard 19 if u.genre is absent."""
    if not path.is_file():
        return ML_100K_GENRES
    table = read_delimited(
        path,
        sep="|",
        encoding="latin-1",
        names=("genre", "index"),
        dtype={"genre": str},
        fmt="genre|index",
    )
    index = table.numbers("index", what="genre index").astype(np.int64)
    return tuple(str(g) for g in table.frame["genre"].to_numpy(object)[np.argsort(index)])


def _movielens_dat(folder: Path, name: str) -> Dataset:
    ratings = read_delimited(
        folder / "ratings.dat",
        sep="::",
        encoding="latin-1",
        names=("user", "item", "rating", "timestamp"),
        dtype={"user": str, "item": str},
        fmt="UserID::MovieID::Rating::Timestamp",
    )
    return _movielens_dataset(ratings, *_dat_tables(folder), name)


def _dat_tables(folder: Path) -> tuple[tuple, tuple]:
    """``(items, users)`` of movies.dat and users.dat, ``NO_TABLE`` for a missing file."""
    items = users = NO_TABLE
    if (folder / "movies.dat").is_file():
        table = read_delimited(
            folder / "movies.dat",
            sep="::",
            encoding=None,
            names=("item", "title", "genres"),
            dtype=str,
            fmt="MovieID::Title::Genres (genres separated by |)",
        )
        items = (table.ids("item"), _movie_columns(table.frame))
    if (folder / "users.dat").is_file():
        table = read_delimited(
            folder / "users.dat",
            sep="::",
            encoding="latin-1",
            names=("user", "gender", "age", "occupation", "zip_code"),
            dtype={"user": str, "gender": str, "zip_code": str},
            fmt="UserID::Gender::Age::Occupation::Zip-code",
        )
        code = table.numbers("occupation", strict=False)
        known = np.isfinite(code) & (code >= 0) & (code < len(ML_1M_OCCUPATIONS))
        occupation = np.full(len(code), None, dtype=object)
        occupation[known] = np.asarray(ML_1M_OCCUPATIONS, dtype=object)[code[known].astype(int)]
        users = (
            table.ids("user"),
            {
                "age": table.numbers("age", strict=False),
                "occupation": occupation,
                **table.texts("gender", "zip_code"),
            },
        )
    return items, users


def _movielens_csv(folder: Path, name: str) -> Dataset:
    ratings = read_delimited(
        folder / "ratings.csv",
        sep=",",
        quoted=True,
        dtype={"userId": str, "movieId": str},
        fmt="userId,movieId,rating,timestamp with a header line",
    )
    ratings.require_columns(
        "userId",
        "movieId",
        "rating",
        "timestamp",
        fix="ML-20M/25M ratings.csv starts with userId,movieId,rating,timestamp",
    )
    ratings.frame = ratings.frame.rename(columns={"userId": "user", "movieId": "item"})
    return _movielens_dataset(ratings, *_csv_tables(folder), name)


def _csv_tables(folder: Path) -> tuple[tuple, tuple]:
    """``(items, NO_TABLE)``: movies.csv as an item table, ``NO_TABLE`` when missing."""
    items = NO_TABLE
    if (folder / "movies.csv").is_file():
        table = read_delimited(
            folder / "movies.csv",
            sep=",",
            quoted=True,
            dtype=str,
            fmt="movieId,title,genres with a header line",
        )
        table.require_columns(
            "movieId",
            "title",
            "genres",
            fix="ML-20M/25M movies.csv starts with movieId,title,genres",
        )
        items = (table.ids("movieId"), _movie_columns(table.frame))
    return items, NO_TABLE


def movielens_scan_source(folder, *, name: str | None = None) -> ScanSource | None:
    """The ratings of an ML-1M/10M (``ratings.dat``) or ML-20M and later (``ratings.csv``)
    folder as a :class:`~genrec.data.scan.ScanSource`, with the same movie (and user) tables
    as :func:`load_movielens`; None for other layouts (ML-100K, RecBole atomic files).
    ``scan_dataset`` of it equals :func:`load_movielens` of the folder."""
    folder = Path(folder)
    name = name or folder.name
    common = {"rating": "rating", "timestamp": "timestamp", "name": name}
    common["positive_threshold"] = STARS_LIKED
    if (folder / "u.data").is_file():
        return None
    if (folder / "ratings.dat").is_file():
        return ScanSource(
            (folder / "ratings.dat",),
            user="user",
            item="item",
            sep="::",
            header=False,
            names=("user", "item", "rating", "timestamp"),
            tables=partial(_dat_tables, folder),
            **common,
        )
    if (folder / "ratings.csv").is_file():
        return ScanSource(
            (folder / "ratings.csv",),
            user="userId",
            item="movieId",
            sep=",",
            tables=partial(_csv_tables, folder),
            **common,
        )
    return None


def _movie_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """title, year and genres of a movies.dat / movies.csv frame (genres separated by |)."""
    title, year = _title_and_year(frame["title"])
    genres = frame["genres"].fillna("").to_numpy(object)
    return {
        "title": title,
        "year": year,
        "genres": object_array(
            [tuple(g for g in str(s).split("|") if g and g != "(no genres listed)") for s in genres]
        ),
    }


def _movielens_dataset(ratings: Parsed, items, users, name: str) -> Dataset:
    """``items`` and ``users`` are ``(ids, columns)`` of a table, ``NO_TABLE`` when absent."""
    item_ids, item_rows = items
    user_ids, user_rows = users
    return Dataset.from_interactions(
        ratings.ids("user"),
        ratings.ids("item"),
        ratings.numbers("rating"),
        ratings.timestamps("timestamp"),
        item_rows=item_rows,
        item_row_ids=item_ids,
        user_rows=user_rows,
        user_row_ids=user_ids,
        name=name,
        positive_threshold=STARS_LIKED,
    )


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

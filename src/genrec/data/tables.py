"""Interactions from any CSV, TSV or Parquet file with a header, by column names.

:func:`load_table` is the loader for data that has no dedicated format: name the user, item,
rating and timestamp columns, optionally join an item table. Text files go through
:func:`~genrec.data.delimited.read_delimited` (errors name the line); compressed files are
recognised by their first bytes (see :mod:`~genrec.data.textfiles`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from genrec.data.dataset import Dataset
from genrec.data.delimited import NO_TABLE, Parsed, cells, read_delimited
from genrec.data.textfiles import COMPRESSED
from genrec.errors import DataError, require

__all__ = ["load_table"]


def load_table(
    path,
    *,
    user: str,
    item: str,
    rating: str | None = None,
    timestamp: str | None = None,
    sep: str | None = None,
    items_path=None,
    item_key: str | None = None,
    item_columns: Mapping[str, str] | None = None,
    name: str | None = None,
    positive_threshold: float | None = None,
) -> Dataset:
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
        raise DataError(
            f"positive_threshold={positive_threshold!r} needs ratings: pass "
            "rating=<the rating column>, or leave positive_threshold=None for "
            "implicit feedback"
        )
    path = Path(path)
    table = _read_table(path, sep=sep, id_columns=(user, item))
    for argument, column in {
        "user": user,
        "item": item,
        "rating": rating,
        "timestamp": timestamp,
    }.items():
        if column is not None:
            table.require_columns(column, fix=f"pass {argument}=<one of them>")
    item_ids, item_rows = NO_TABLE
    if items_path is not None:
        item_ids, item_rows = _item_table(
            Path(items_path), key=item_key or item, columns=item_columns, sep=sep
        )
    return Dataset.from_interactions(
        table.ids(user),
        table.ids(item),
        table.numbers(rating, what=f"rating column {rating!r}") if rating else None,
        table.timestamps(timestamp, what=f"timestamp column {timestamp!r}") if timestamp else None,
        item_rows=item_rows,
        item_row_ids=item_ids,
        name=name or path.name.split(".")[0],
        positive_threshold=positive_threshold,
    )


def _item_table(path: Path, *, key: str, columns: Mapping[str, str] | None, sep: str | None):
    table = _read_table(path, sep=sep, id_columns=(key,))
    table.require_columns(key, fix="pass item_key=<the item table's id column>")
    if columns is None:
        columns = {c: c for c in table.frame.columns if c != key}
    table.require_columns(*columns.values(), fix="map item_columns={catalog name: one of them}")
    frame = table.frame
    return table.ids(key), {target: cells(frame[source]) for target, source in columns.items()}


def _read_table(path: Path, *, sep: str | None, id_columns: Sequence[str] = ()) -> Parsed:
    suffixes = [s for s in path.suffixes if s.lower() not in COMPRESSED]
    suffix = suffixes[-1].lower() if suffixes else ""
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    sep = sep or {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(suffix)
    if sep is None:
        raise DataError(
            f"cannot tell the separator of {path} from its suffix {suffix!r}; "
            "pass sep=',' or sep='\\t', or use .csv / .tsv / .parquet"
        )
    return read_delimited(
        path,
        sep=sep,
        quoted=True,
        dtype={c: str for c in id_columns},
        fmt=f"{sep!r}-separated columns with a header line",
    )


def _read_parquet(path: Path) -> Parsed:
    require("pyarrow", "parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own exception types
        raise DataError(f"{path}: not a readable Parquet file ({exc}); re-export it") from None
    if frame.empty:
        raise DataError(f"{path} has no rows; it must hold one interaction a row")
    return Parsed(frame, path, header=0, rows="row")

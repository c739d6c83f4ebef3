"""RecBole atomic files: ``<name>.inter`` with optional ``<name>.item`` and ``<name>.user``.

Each file is tab-separated with a header of ``field:type`` (types token, token_seq, float,
float_seq). :func:`load_recbole_atomic` maps RecBole's field names onto genrec's (``user_id``,
``item_id``, ``rating``, ``timestamp``; ``movie_title`` -> ``title`` and so on) and keeps every
other item or user field under its own name. Errors name the file and line (see
:mod:`~genrec.data.delimited`); a UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.dataset import Dataset, object_array
from genrec.data.delimited import NO_TABLE, Parsed, read_delimited
from genrec.data.textfiles import open_text, quote
from genrec.errors import DataError

__all__ = ["RECBOLE_TYPES", "load_recbole_atomic"]

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
_RECBOLE_ITEM_FIELDS = {
    "movie_title": "title",
    "title": "title",
    "release_year": "year",
    "year": "year",
    "class": "genres",
    "genre": "genres",
    "categories": "genres",
}
_NUMERIC_ATTRIBUTES = ("year", "age")  # stored as tokens in RecBole files, numbers here


def load_recbole_atomic(
    path, *, name: str | None = None, positive_threshold: float | None = None
) -> Dataset:
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
    inter.require_columns(
        "user_id",
        "item_id",
        fix="a RecBole .inter file needs the fields user_id:token and item_id:token",
    )
    fields = inter.frame.columns
    item_ids, item_rows = _recbole_rows(
        inter_path.with_suffix(".item"), "item_id", _RECBOLE_ITEM_FIELDS
    )
    user_ids, user_rows = _recbole_rows(inter_path.with_suffix(".user"), "user_id", {})
    return Dataset.from_interactions(
        inter.ids("user_id"),
        inter.ids("item_id"),
        inter.numbers("rating") if "rating" in fields else None,
        inter.timestamps("timestamp") if "timestamp" in fields else None,
        item_rows=item_rows,
        item_row_ids=item_ids,
        user_rows=user_rows,
        user_row_ids=user_ids,
        name=name or inter_path.stem,
        positive_threshold=positive_threshold if "rating" in fields else None,
    )


def _recbole_inter_file(path: Path, name: str | None) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(
            f"{path} does not exist; pass a folder holding <name>.inter "
            "(RecBole atomic files) or the .inter file itself"
        )
    if name is not None and (path / f"{name}.inter").is_file():
        return path / f"{name}.inter"
    found = sorted(path.glob("*.inter"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"{path} holds no .inter file; RecBole atomic datasets are "
            "<name>.inter (+ optional <name>.item, <name>.user)"
        )
    raise DataError(
        f"{path} holds several .inter files ({', '.join(p.name for p in found)}); "
        "pass name=<file stem> or the .inter file itself"
    )


def _read_atomic(path: Path) -> Parsed:
    """An atomic file with columns renamed to the bare field names and ``.types`` set."""
    header = _first_line(path)
    types = {}
    for column in header.split("\t"):
        field, _, kind = column.rpartition(":")
        if not field or kind not in RECBOLE_TYPES or field in types:
            raise DataError(
                f"{path}, line 1: bad header field {quote(column)}; RecBole headers are "
                f"distinct 'name:type' with type one of {list(RECBOLE_TYPES)}"
            )
        types[field] = kind
    text = {f"{f}:{k}": str for f, k in types.items() if k != "float"}
    table = read_delimited(path, sep="\t", dtype=text, fmt="tab-separated name:type fields")
    table.frame.columns = list(types)
    table.types = types
    return table


def _recbole_rows(path: Path, key: str, renames: Mapping[str, str]):
    """``(ids, columns)`` of an optional ``.item`` / ``.user`` file; ``NO_TABLE`` if absent."""
    if not path.is_file():
        return NO_TABLE
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


def _atomic_column(table: Parsed, field: str, kind: str, target: str) -> np.ndarray:
    if target in _NUMERIC_ATTRIBUTES or kind == "float":
        return table.numbers(field, strict=False)
    if target == "title" or kind == "token":
        return table.texts(field)[field]
    values = table.frame[field].fillna("").to_numpy(object)
    if kind == "float_seq":
        return object_array([tuple(pd.to_numeric(v.split(), errors="coerce")) for v in values])
    return object_array([tuple(v.split()) for v in values])


def _first_line(path: Path) -> str:
    with open_text(path) as lines:
        line = next(lines, "").rstrip("\r\n")
    if not line.strip():
        raise DataError(
            f"{path} is empty; a RecBole atomic file starts with a header line of "
            "tab-separated name:type fields"
        )
    return line

"""Amazon review dumps: the 2014/2018 releases (McAuley et al.) and Amazon Reviews 2023.

Both are JSON lines (optionally gzipped, told by the first bytes), one review a line, with an
optional metadata file of one item a line. Reviews become interactions; review text and summary
become the per-interaction extras ``review_text`` and ``review_summary``; metadata becomes the
item catalog. Lines are parsed one by one (that is the format); a line that is not JSON is tried
as a Python literal (the 2014 meta dumps), never evaluated. A UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.data.dataset import INT64_END, INT64_MIN, STARS_LIKED, Dataset, object_array
from genrec.data.delimited import NO_TABLE
from genrec.data.textfiles import open_text, quote
from genrec.errors import DataError

__all__ = ["load_amazon_2018", "load_amazon_2023"]


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


_AMAZON_2018 = _ReviewFormat(
    "Amazon 2014/2018",
    "reviewerID",
    ("asin",),
    "overall",
    "unixReviewTime",
    1,
    "reviewText",
    "summary",
)
_AMAZON_2023 = _ReviewFormat(
    "Amazon 2023", "user_id", ("parent_asin", "asin"), "rating", "timestamp", 1000, "text", "title"
)


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
    return _amazon(
        reviews_path,
        meta_path,
        _AMAZON_2018,
        _meta_2018,
        ("asin",),
        ("title", "brand", "genres", "description"),
        name,
    )


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
    return _amazon(
        reviews_path,
        meta_path,
        _AMAZON_2023,
        _meta_2023,
        ("parent_asin", "asin"),
        ("title", "store", "genres", "features", "description"),
        name,
    )


def _amazon(
    reviews_path,
    meta_path,
    fmt: _ReviewFormat,
    meta_columns: Callable[[dict], dict],
    meta_key: tuple[str, ...],
    text_fields: tuple[str, ...],
    name,
) -> Dataset:
    reviews_path = Path(reviews_path)
    rows = _read_reviews(reviews_path, fmt)
    item_ids, item_rows = NO_TABLE
    if meta_path is not None:
        item_ids, item_rows = _read_meta(Path(meta_path), meta_key, meta_columns, fmt.label)
    data = Dataset.from_interactions(
        rows["user"],
        rows["item"],
        rows["rating"],
        rows["time"],
        item_rows=item_rows,
        item_row_ids=item_ids,
        text_fields=text_fields,
        positive_threshold=STARS_LIKED,
        extras={
            "review_text": object_array(rows["text"]),
            "review_summary": object_array(rows["summary"]),
        },
        name=name or reviews_path.name.split(".")[0],
    )
    return data


def _read_reviews(path: Path, fmt: _ReviewFormat) -> dict[str, list]:
    rows: dict[str, list] = {
        "user": [],
        "item": [],
        "rating": [],
        "time": [],
        "text": [],
        "summary": [],
    }
    for number, record in _json_records(path):
        where = f"{path}, line {number}"
        rows["user"].append(_required(record, (fmt.user,), where, fmt))
        rows["item"].append(_required(record, fmt.item, where, fmt))
        rows["rating"].append(
            _number(_required(record, (fmt.rating,), where, fmt), where, fmt.rating)
        )
        time = _number(_required(record, (fmt.time,), where, fmt), where, fmt.time)
        if not INT64_MIN <= time // fmt.time_per_second < INT64_END:
            raise DataError(
                f"{where}: {fmt.time} {time!r} is outside the int64 range of "
                "seconds since the epoch; fix or drop the line"
            )
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
    raise DataError(
        f"{where}: no {' or '.join(repr(k) for k in keys)} field; {fmt.label} "
        f"review lines need {', '.join(needed)}"
    )


def _number(value, where: str, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{where}: {field} {value!r} is not a finite number; fix or drop the line")
    return number


def _read_meta(
    path: Path, keys: tuple[str, ...], columns_of: Callable[[dict], dict], label: str
) -> tuple[list, dict[str, np.ndarray]]:
    ids: list = []
    rows: list[dict] = []
    for number, record in _json_records(path):
        key = next((record[k] for k in keys if record.get(k) not in (None, "")), None)
        if key is None:
            raise DataError(
                f"{path}, line {number}: no {' or '.join(map(repr, keys))} field; "
                f"every {label} meta line needs the item id"
            )
        ids.append(str(key))
        rows.append(columns_of(record))
    if not ids:
        raise DataError(f"{path} holds no item metadata; expected one JSON object a line")
    # a repeated asin keeps its first line: Dataset.from_interactions drops the later rows
    return ids, {column: object_array([r[column] for r in rows]) for column in rows[0]}


def _meta_2018(record: dict) -> dict:
    categories = record.get("category", record.get("categories"))
    return {
        "title": _text(record.get("title")),
        "description": _text(record.get("description")),
        "genres": _flat_tuple(categories),
        "brand": _text(record.get("brand")),
        "price": _price(record.get("price")),
        "image": _first_url(
            record.get("imageURLHighRes") or record.get("imageURL") or record.get("imUrl")
        ),
    }


def _meta_2023(record: dict) -> dict:
    images = record.get("images") or []
    image = None
    if isinstance(images, list) and images and isinstance(images[0], dict):
        image = next((images[0][k] for k in ("large", "hi_res", "thumb") if images[0].get(k)), None)
    return {
        "title": _text(record.get("title")),
        "description": _text(record.get("description")),
        "features": _text(record.get("features")),
        "genres": _flat_tuple(record.get("categories")),
        "store": _text(record.get("store")),
        "price": _price(record.get("price")),
        "image": image,
    }


def _json_records(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` of a JSON-lines file (gzip detected by its magic bytes).

    Lines that are not JSON are tried as Python literals (``ast.literal_eval``, never eval):
    the 2014 Amazon meta dumps are written that way.
    """
    with open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = _literal(line, f"{path}, line {number}")
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}, line {number}: expected one object ({{...}}) a line, "
                    f"got {type(record).__name__}"
                )
            yield number, record


def _literal(line: str, where: str):
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DataError(
            f"{where}: neither JSON nor a Python dict literal: {quote(line, 60)}; "
            "the file must hold one object a line"
        ) from None


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

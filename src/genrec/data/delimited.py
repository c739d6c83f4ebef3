"""The delimited-text parser behind every tabular loader: pandas' C parser, errors by line.

:func:`read_delimited` reads a file of ``sep``-separated fields (with or without a header) into
a :class:`Parsed` frame that remembers where its rows came from, so that a bad id, rating or
timestamp is reported with its file, line number and raw text ("u.data, line 3: the rating is
'x', not a number; fix or remove that line"). No Python loop runs per line on a well-formed
file; the raw lines are read again only to describe an error.

Shared by :mod:`~genrec.data.movielens`, :mod:`~genrec.data.atomic` and
:mod:`~genrec.data.tables`; not part of the public API.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.dataset import INT64_END, INT64_MIN
from genrec.data.textfiles import (
    compression_of,
    decompressed_bytes,
    echo,
    guess_encoding,
    line_number,
    open_text,
    quote,
    reading,
    starts_with_bom,
)
from genrec.errors import DataError

# ``(ids, columns)`` of an item or user table that the files do not have
NO_TABLE: tuple[None, None] = (None, None)


class Parsed:
    """A parsed file and where its rows came from, so that errors can name the line."""

    def __init__(
        self,
        frame: pd.DataFrame,
        path: Path,
        *,
        header: int,
        rows: str = "line",
        sep: str = "\t",
        quoted: bool = False,
        fmt: str = "",
    ):
        self.frame, self.path = frame, path
        self.header = header  # non-blank lines before the first data row
        self.rows = rows  # "line" (text files) or "row" (Parquet)
        self.sep, self.quoted, self.fmt = sep, quoted, fmt  # as written in the file
        self.types: dict[str, str] = {}

    def where(self, row: int) -> str:
        if self.rows == "row":
            return f"{self.path}, row {row + 1}"
        return f"{self.path}, line {line_number(self.path, self.header + row)[0]}"

    def require_columns(self, *columns: str, fix: str) -> None:
        """Raise naming the first of ``columns`` the file lacks, its columns and ``fix``."""
        for column in columns:
            if column not in self.frame.columns:
                raise DataError(
                    f"{self.path} has no column {column!r}; its columns are "
                    f"{echo(str([str(c) for c in self.frame.columns]))}; {fix}"
                )

    def bad_cell(
        self,
        row: int,
        column: str,
        what: str,
        *,
        expected: str = "number",
        fix: str = "fix or remove that line",
    ) -> DataError:
        """The error for a bad cell, described from the raw text of its line (error path only):
        a short line, an empty cell, NaN, infinity or text that is not a ``expected``."""
        if self.rows == "row":
            cell = self.frame[column].iloc[row]
            return DataError(f"{self.where(row)}: {what} is {_describe(cell, expected)}; {fix}")
        number, line = line_number(self.path, self.header + row)
        fields = _split_line(line, self.sep, quoted=self.quoted)
        n_fields = self.frame.shape[1]
        if len(fields) < n_fields:
            return DataError(
                f"{self.path}, line {number}: {len(fields)} fields separated by "
                f"{self.sep!r}, expected {n_fields}: {self.fmt}"
            )
        cell = fields[self.frame.columns.get_loc(column)]
        return DataError(
            f"{self.path}, line {number}: {what} is {_describe(cell, expected)}; {fix}"
        )

    def ids(self, column: str) -> np.ndarray:
        """(n,) external ids as str; an empty id raises naming its line."""
        values = self.frame[column]
        missing = values.isna().to_numpy()
        if missing.any():
            raise self.bad_cell(
                int(np.argmax(missing)),
                column,
                f"the {column!r} id",
                expected="id",
                fix="every row needs an id",
            )
        if pd.api.types.is_float_dtype(values) and (values % 1 == 0).all():
            values = values.astype(np.int64)  # Parquet ids stored as floats
        return values.astype(str).to_numpy(object)

    def numbers(self, column: str, *, what: str | None = None, strict: bool = True) -> np.ndarray:
        """(n,) float64; strict: a missing, NaN or non-numeric cell raises naming its line."""
        numbers = pd.to_numeric(self.frame[column], errors="coerce").to_numpy(
            np.float64, na_value=np.nan
        )
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
            raise DataError(
                f"{self.where(row)}: {what} is a number ({numbers[row]:g}) but "
                f"{self.where(first_date)} holds a date "
                f"({self.frame[column].iloc[first_date]!r}); use one format, "
                "seconds since the epoch or dates, for the whole column"
            )
        return ((dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)

    def texts(self, *columns: str) -> dict[str, np.ndarray]:
        """Text columns as object arrays with None for empty cells."""
        return {c: cells(self.frame[c].astype(str).where(self.frame[c].notna())) for c in columns}


def cells(column: pd.Series) -> np.ndarray:
    """A column as table cells: floats (NaN missing) if numeric, else objects (None missing)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(np.float64, na_value=np.nan)
    values = column.to_numpy(object)
    values[column.isna().to_numpy()] = None
    return values


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
        return f"{quote(text)}, which is read as a missing value (like NA, null or nan)"
    if expected == "range":
        return f"{quote(text)}, outside the int64 range of seconds since the epoch"
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and math.isnan(number):
        return "NaN (not a number)"
    if number is not None and math.isinf(number):
        return f"infinite ({quote(text)})"
    return f"{quote(text)}, {'neither' if 'nor' in expected else 'not'} a {expected}"


def _split_line(line: str, sep: str, *, quoted: bool) -> list[str]:
    """The fields of one raw line (error path only)."""
    line = line.rstrip("\r\n")
    if quoted and len(sep) == 1:
        return next(csv.reader([line], delimiter=sep), [])
    return line.split(sep)


def read_delimited(
    path: Path,
    *,
    sep: str,
    fmt: str,
    names: Sequence[str] | None = None,
    encoding: str | None = "utf-8",
    quoted: bool = False,
    dtype=None,
) -> Parsed:
    """Read a delimited text file with pandas' C parser.

    ``names`` given: the file has no header and exactly ``len(names)`` fields a line (a short
    line raises). No ``names``: the first line is a header of distinct column names. A
    multi-character ``sep`` (MovieLens ``::``) is turned into a tab first, so the C parser can
    read it. ``encoding=None`` tries UTF-8, then latin-1. Compression and a byte-order mark are
    handled as :mod:`~genrec.data.textfiles` describes. ``fmt`` describes the expected format
    for error messages.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {fmt}")
    written_sep = sep
    if isinstance(dtype, Mapping) and names is not None:
        dtype = {names.index(c): t for c, t in dtype.items()}
    with reading(path, encoding or "utf-8"):
        source, sep, encoding, compression = _pandas_source(path, sep, encoding)
        read = {
            "sep": sep,
            "encoding": encoding,
            "compression": compression,
            "index_col": False,
            "engine": "c",
            "quoting": csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        }
        try:
            frame = pd.read_csv(source, header=None if names else 0, dtype=dtype, **read)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path} is empty; expected {fmt}") from None
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: {_parser_problem(exc)}; expected {fmt}") from None
        if names is None:
            _check_header(path, frame, source, read)
    if names is not None and frame.shape[1] != len(names):
        raise DataError(
            f"{path}, line 1: {frame.shape[1]} fields separated by {written_sep!r}, "
            f"expected {len(names)}: {fmt}"
        )
    if names is not None:
        frame.columns = list(names)
    if frame.empty:
        raise DataError(f"{path} has a header but no rows; expected {fmt}")
    parsed = Parsed(frame, path, header=0 if names else 1, sep=written_sep, quoted=quoted, fmt=fmt)
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
        raise DataError(
            f"{path}, line 1: the header repeats the column name(s) {repeated}; "
            "give every column a distinct name"
        )


def _check_short_lines(parsed: Parsed) -> None:
    """Raise naming the first line with too few fields (pandas fills them with NaN).

    Only lines whose last field is missing are candidates, so a well-formed file costs one
    vectorised ``isna``; the candidates' lines are then read (a loop, on that rare path only).
    """
    frame = parsed.frame
    candidates = np.flatnonzero(frame.iloc[:, -1].isna().to_numpy())
    if candidates.size == 0:
        return
    wanted = set((parsed.header + candidates).tolist())
    with open_text(parsed.path) as lines:
        data_row = -1
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            data_row += 1
            if data_row in wanted:
                fields = _split_line(line, parsed.sep, quoted=parsed.quoted)
                if len(fields) < frame.shape[1]:
                    raise DataError(
                        f"{parsed.path}, line {number}: {len(fields)} fields "
                        f"separated by {parsed.sep!r}, expected {frame.shape[1]}: "
                        f"{parsed.fmt}"
                    )
                wanted.discard(data_row)
                if not wanted:
                    return


def _pandas_source(path: Path, sep: str, encoding: str | None):
    """``(source, sep, encoding, compression)`` to hand pandas.

    The path itself when pandas can read it as it is. Otherwise (a byte-order mark, a
    multi-character ``sep``, an unknown encoding) the decompressed bytes without the mark, with
    ``sep`` turned into a tab; the encoding is guessed when None or when a mark says UTF-8.
    """
    compression = compression_of(path)
    bom = starts_with_bom(path, compression)
    if len(sep) == 1 and encoding is not None and not bom:
        return path, sep, encoding, compression
    data = decompressed_bytes(path, compression)
    if len(sep) > 1:
        data = data.replace(sep.encode(), b"\t")
        sep = "\t"
    if encoding is None or bom:
        encoding = guess_encoding(data)
    return io.BytesIO(data), sep, encoding, None


def _parser_problem(exc: Exception) -> str:
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if match:
        expected, line, seen = match.groups()
        return f"line {line} has {seen} fields, the lines before it {expected}"
    return echo(str(exc).strip().replace("Error tokenizing data. C error: ", ""))

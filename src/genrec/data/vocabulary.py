"""External id <-> contiguous index."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from genrec.errors import ConfigError, DataError, UnknownIdError


class Vocabulary:
    """An ordered set of external ids (strings) mapped to indices ``0 .. n-1``.

    Every method that takes several ids wants a sequence (list, tuple, 1-D array, Series or
    any iterable, read once); a bare ``str`` or ``bytes`` raises :class:`ConfigError` rather
    than being read character by character.

    Example:
        >>> v = Vocabulary(["u7", "u3"])
        >>> v.index(["u3"]).tolist(), v.ids_of([0]).tolist()
        ([1], ['u7'])
    """

    def __init__(self, ids: Iterable, *, kind: str = "id"):
        self.kind = kind
        self._ids = np.asarray([str(x) for x in _id_list(ids, f"{_noun(kind)}s")], dtype=object)
        self._index = {x: i for i, x in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            raise DataError(f"{_noun(kind)} vocabulary has duplicate ids; each external id must "
                            "appear once")

    @classmethod
    def from_values(cls, values: Sequence, *, kind: str = "id") -> tuple["Vocabulary", np.ndarray]:
        """Vocabulary of the distinct values in first-seen order, and the values' indices.

        Raises:
            DataError: ``values`` is not 1-D, holds unhashable values (lists), or holds missing
                ids (None or NaN); the message names the first positions.
        """
        codes, uniques = _factorize(values, kind)
        return cls(uniques, kind=kind), codes

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id) -> bool:
        return str(external_id) in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and len(self) == len(other) and bool(
            np.all(self._ids == other._ids)
        )

    def __repr__(self) -> str:
        return f"Vocabulary({self.kind}, n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """External ids in index order (object array of str)."""
        return self._ids

    def index(self, external_ids: Iterable) -> np.ndarray:
        """Indices of ``external_ids``; raises :class:`UnknownIdError` naming the unknown ones.

        ``external_ids`` is a sequence of ids (a one-id list for a single id), never a bare str.
        """
        external_ids = _id_list(external_ids, f"{_noun(self.kind)}s")
        idx, known = self.lookup(external_ids)
        if not known.all():
            missing = [str(x) for x, ok in zip(external_ids, known) if not ok]
            shown = ", ".join(repr(x) for x in missing[:5]) + (" ..." if len(missing) > 5 else "")
            noun = _noun(self.kind)
            like = (f"known {noun}s look like {', '.join(repr(x) for x in self._ids[:3])}"
                    if len(self) else f"the {noun} vocabulary is empty")
            raise UnknownIdError(f"{len(missing)} unknown {noun}(s): {shown}; {like}", missing)
        return idx

    def lookup(self, external_ids: Iterable) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, known)``: unknown ids get index -1 and ``known`` False.

        Never raises for unknown ids; a bare str or bytes raises :class:`ConfigError`.
        """
        external_ids = _id_list(external_ids, f"{_noun(self.kind)}s")
        get = self._index.get
        idx = np.fromiter((get(str(x), -1) for x in external_ids), dtype=np.int64,
                          count=len(external_ids))
        return idx, idx >= 0

    def ids_of(self, indices) -> np.ndarray:
        """External ids of ``indices`` (object array)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise DataError(f"{self.kind} index out of range 0..{len(self) - 1}")
        return self._ids[indices]


# ---- checks of Dataset.from_interactions' inputs (kept here, beside the id checks) -----------


def interaction_numbers(values, what: str, meaning: str) -> np.ndarray:
    """(n,) float64 of ``values``; anything that is not a number raises naming its position.

    Used by ``Dataset.from_interactions``.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{what} must be 1-D, one entry per interaction; got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    import pandas as pd

    numbers = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(
        np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & ~pd.isna(pd.Series(arr, dtype=object)).to_numpy()
    if arr.dtype.kind == "M" or bad.any():
        j = int(np.argmax(bad)) if bad.any() else 0
        hint = ("; convert dates first, e.g. "
                "(pd.to_datetime(dates, utc=True) - pd.Timestamp(0, tz='UTC')) "
                "// pd.Timedelta('1s')") if what == "timestamp" else ""
        raise DataError(f"{what}[{j}] is {_plain(arr[j])!r}, not a number; {what}s must be numbers "
                        f"({meaning}){hint}")
    return numbers


def interaction_seconds(timestamp) -> np.ndarray:
    """(n,) int64 seconds from numbers; floats are floored, NaN or out-of-range ones raise."""
    arr = np.asarray(timestamp)
    if arr.dtype.kind in "iu" and arr.ndim == 1:
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            j = int(np.argmax(arr > np.iinfo(np.int64).max))
            raise DataError(f"timestamp[{j}] is {arr[j]}, beyond int64 seconds; fix it")
        return arr.astype(np.int64)
    seconds = interaction_numbers(arr, "timestamp", "seconds since the epoch")
    bad = ~(np.isfinite(seconds) & (seconds >= -(2.0 ** 63)) & (seconds < 2.0 ** 63))
    if bad.any():
        j = int(np.argmax(bad))
        raise DataError(f"timestamp[{j}] is {_plain(arr[j])!r}: timestamps must be finite seconds "
                        "since the epoch within int64; drop or fix that interaction")
    return np.floor(seconds).astype(np.int64)


def first_rows(ids, columns: Mapping, kind: str) -> tuple[np.ndarray, dict]:
    """``ids`` and ``columns`` of an attribute table, keeping the first row of a repeated id."""
    if ids is None:
        raise DataError(f"{kind}_rows needs {kind}_row_ids: the external id of each row")
    ids = ids if isinstance(ids, np.ndarray) else _objects(ids)
    for name, col in columns.items():
        if len(col) != len(ids):
            raise DataError(f"{kind} column {name!r} has {len(col)} rows but {kind}_row_ids has "
                            f"{len(ids)}; pass one value per id")
    import pandas as pd

    first = ~pd.Series(ids, dtype=object).astype(str).duplicated().to_numpy()
    if first.all():
        return ids, dict(columns)
    return ids[first], {name: (col if isinstance(col, np.ndarray) else _objects(col))[first]
                        for name, col in columns.items()}


def _plain(x):
    """A numpy scalar as the Python value it holds (for messages: 'good', not np.str_('good'))."""
    return x.item() if isinstance(x, np.generic) else x


def _objects(values) -> np.ndarray:
    """1-D object array (tuples stay elements, not a second dimension)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _noun(kind: str) -> str:
    """'user' -> 'user id'; the default kind 'id' stays 'id' (not 'id id')."""
    return "id" if kind in ("id", "") else f"{kind} id"


def _id_list(ids, what: str):
    """``ids`` as something indexable with a length, read once (generators become lists)."""
    if isinstance(ids, (str, bytes)):
        raise ConfigError(f"expected a sequence of {what}, got the single {type(ids).__name__} "
                          f"{ids!r}, which would be read character by character; pass a list, "
                          f"e.g. [{ids!r}]")
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise DataError(f"expected a 1-D sequence of {what}, got an array of shape "
                            f"{ids.shape}; pass one id per element (e.g. ids.ravel())")
        return ids
    if hasattr(ids, "__len__") and hasattr(ids, "__getitem__") and not isinstance(ids, dict):
        return ids
    try:
        return list(ids)
    except TypeError:
        raise ConfigError(f"expected a sequence of {what}, got {type(ids).__name__}; "
                          "pass a list") from None


def _factorize(values: Sequence, kind: str = "id") -> tuple[np.ndarray, np.ndarray]:
    """Codes and first-seen uniques as strings; groups raw values first (fast), then converts
    only the uniques, falling back to string grouping when two raw values print the same."""
    import pandas as pd

    noun = _noun(kind)
    values = _id_list(values, f"{noun}s")
    try:
        series = pd.Series(values)
        codes, uniques = pd.factorize(series, sort=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{noun}s must be one hashable id (str or int) per interaction in a 1-D "
                        f"sequence; got {type(values).__name__} that cannot be read that way "
                        f"({exc})") from None
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        shown = ", ".join(str(j) for j in missing[:5]) + (" ..." if missing.size > 5 else "")
        raise DataError(f"{missing.size} missing {noun}(s) (None or NaN) at position(s) {shown}; "
                        f"every interaction needs a {noun}: drop those rows or fill them in")
    as_str = np.asarray([str(x) for x in uniques], dtype=object)
    if len(set(as_str)) != len(as_str):
        codes, uniques = pd.factorize(series.astype(str), sort=False)
        as_str = np.asarray(uniques, dtype=object)
    return codes.astype(np.int64), as_str

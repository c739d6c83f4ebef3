"""External id <-> contiguous index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
        self._map = {x: i for i, x in enumerate(self._ids)}
        if len(self._map) != len(self._ids):
            raise DataError(
                f"{_noun(kind)} vocabulary has duplicate ids; each external id must appear once"
            )

    _pending = None  # distinct stored ids not turned into str yet (see from_distinct)

    @classmethod
    def from_distinct(cls, ids: np.ndarray, *, kind: str = "id") -> Vocabulary:
        """A vocabulary of ``ids``, a 1-D array of ids known to be distinct (e.g. read from a
        cache that grouped them), taken as is: an object array of str, or int64 or fixed-width
        text ids, which become str only when :attr:`ids` or a lookup first needs them. The id
        -> index map is built on the first lookup, so opening a million-id vocabulary costs
        neither a million str nor a dict until one is needed.

        >>> Vocabulary.from_distinct(np.array(["u7", "u3"], dtype=object)).index(["u3"]).tolist()
        [1]
        >>> Vocabulary.from_distinct(np.array([7, 3])).ids.tolist()
        ['7', '3']
        """
        vocab = cls.__new__(cls)
        vocab.kind, vocab._map = kind, None
        if ids.dtype == object:
            vocab._ids = ids
        else:
            vocab._ids, vocab._pending = None, ids
        return vocab

    @property
    def _index(self) -> dict:
        """External id -> index, built on first use."""
        if self._map is None:
            self._map = {x: i for i, x in enumerate(self.ids)}
        return self._map

    @classmethod
    def from_values(cls, values: Sequence, *, kind: str = "id") -> tuple[Vocabulary, np.ndarray]:
        """Vocabulary of the distinct values in first-seen order, and the values' indices.

        Raises:
            DataError: ``values`` is not 1-D, holds unhashable values (lists), or holds missing
                ids (None or NaN); the message names the first positions.
        """
        codes, uniques = _factorize(values, kind)
        return cls(uniques, kind=kind), codes

    def __len__(self) -> int:
        return len(self._pending if self._ids is None else self._ids)

    def __contains__(self, external_id) -> bool:
        return str(external_id) in self._index

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Vocabulary)
            and len(self) == len(other)
            and bool(np.all(self.ids == other.ids))
        )

    def __repr__(self) -> str:
        return f"Vocabulary({self.kind}, n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """External ids in index order (object array of str)."""
        if self._ids is None:
            self._ids, self._pending = _id_strings(self._pending), None
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
            like = (
                f"known {noun}s look like {', '.join(repr(x) for x in self.ids[:3])}"
                if len(self)
                else f"the {noun} vocabulary is empty"
            )
            raise UnknownIdError(f"{len(missing)} unknown {noun}(s): {shown}; {like}", missing)
        return idx

    def lookup(self, external_ids: Iterable) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, known)``: unknown ids get index -1 and ``known`` False.

        Never raises for unknown ids; a bare str or bytes raises :class:`ConfigError`.
        """
        external_ids = _id_list(external_ids, f"{_noun(self.kind)}s")
        get = self._index.get
        idx = np.fromiter(
            (get(str(x), -1) for x in external_ids), dtype=np.int64, count=len(external_ids)
        )
        return idx, idx >= 0

    def ids_of(self, indices) -> np.ndarray:
        """External ids of ``indices`` (object array)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise DataError(f"{self.kind} index out of range 0..{len(self) - 1}")
        return self.ids[indices]


def _id_strings(ids: np.ndarray) -> np.ndarray:
    """(n,) object array of the str of each id (int64 or fixed-width text)."""
    if ids.dtype.kind == "U":
        return ids.astype(object)
    return np.array(list(map(str, ids.tolist())), dtype=object)


def _noun(kind: str) -> str:
    """'user' -> 'user id'; the default kind 'id' stays 'id' (not 'id id')."""
    return "id" if kind in ("id", "") else f"{kind} id"


def _id_list(ids, what: str):
    """``ids`` as something indexable with a length, read once (generators become lists)."""
    if isinstance(ids, (str, bytes)):
        raise ConfigError(
            f"expected a sequence of {what}, got the single {type(ids).__name__} "
            f"{ids!r}, which would be read character by character; pass a list, "
            f"e.g. [{ids!r}]"
        )
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise DataError(
                f"expected a 1-D sequence of {what}, got an array of shape "
                f"{ids.shape}; pass one id per element (e.g. ids.ravel())"
            )
        return ids
    if hasattr(ids, "__len__") and hasattr(ids, "__getitem__") and not isinstance(ids, dict):
        return ids
    try:
        return list(ids)
    except TypeError:
        raise ConfigError(
            f"expected a sequence of {what}, got {type(ids).__name__}; pass a list"
        ) from None


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
        raise DataError(
            f"{noun}s must be one hashable id (str or int) per interaction in a 1-D "
            f"sequence; got {type(values).__name__} that cannot be read that way "
            f"({exc})"
        ) from None
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        shown = ", ".join(str(j) for j in missing[:5]) + (" ..." if missing.size > 5 else "")
        raise DataError(
            f"{missing.size} missing {noun}(s) (None or NaN) at position(s) {shown}; "
            f"every interaction needs a {noun}: drop those rows or fill them in"
        )
    as_str = np.asarray([str(x) for x in uniques], dtype=object)
    if len(set(as_str)) != len(as_str):
        codes, uniques = pd.factorize(series.astype(str), sort=False)
        as_str = np.asarray(uniques, dtype=object)
    return codes.astype(np.int64), as_str

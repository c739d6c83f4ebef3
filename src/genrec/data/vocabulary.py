"""External id <-> contiguous index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from genrec.errors import DataError, UnknownIdError


class Vocabulary:
    """An ordered set of external ids (strings) mapped to indices ``0 .. n-1``.

    Example:
        >>> v = Vocabulary(["u7", "u3"])
        >>> v.index(["u3"]).tolist(), v.ids_of([0]).tolist()
        ([1], ['u7'])
    """

    def __init__(self, ids: Iterable, *, kind: str = "id"):
        self.kind = kind
        self._ids = np.asarray([str(x) for x in ids], dtype=object)
        self._index = {x: i for i, x in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            raise DataError(f"{kind} vocabulary has duplicate ids; each external id must appear once")

    @classmethod
    def from_values(cls, values: Sequence, *, kind: str = "id") -> tuple["Vocabulary", np.ndarray]:
        """Vocabulary of the distinct values in first-seen order, and the values' indices."""
        codes, uniques = _factorize(values)
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
        """Indices of ``external_ids``; raises :class:`UnknownIdError` naming the unknown ones."""
        idx, known = self.lookup(external_ids)
        if not known.all():
            missing = [str(x) for x, ok in zip(external_ids, known) if not ok]
            shown = ", ".join(repr(x) for x in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise UnknownIdError(
                f"{len(missing)} unknown {self.kind} id(s): {shown}; "
                f"known {self.kind} ids look like {', '.join(repr(x) for x in self._ids[:3])}",
                missing,
            )
        return idx

    def lookup(self, external_ids: Iterable) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, known)``: unknown ids get index -1 and ``known`` False; never raises."""
        get = self._index.get
        idx = np.fromiter((get(str(x), -1) for x in external_ids), dtype=np.int64)
        return idx, idx >= 0

    def ids_of(self, indices) -> np.ndarray:
        """External ids of ``indices`` (object array)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise DataError(f"{self.kind} index out of range 0..{len(self) - 1}")
        return self._ids[indices]


def _factorize(values: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Codes and first-seen uniques as strings; groups raw values first (fast), then converts
    only the uniques, falling back to string grouping when two raw values print the same."""
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(values), sort=False)
    as_str = np.asarray([str(x) for x in uniques], dtype=object)
    if len(set(as_str)) != len(as_str):
        codes, uniques = pd.factorize(pd.Series(values).astype(str), sort=False)
        as_str = np.asarray(uniques, dtype=object)
    return codes.astype(np.int64), as_str

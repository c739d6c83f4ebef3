"""The data model every model and evaluator shares: built once, passed down.

``Dataset`` holds interactions as aligned arrays of indices into two vocabularies, derives the
user x item CSR matrix, time-ordered sequences and counts on demand, and carries the item catalog
and user attributes. Subsets (split parts) keep the same vocabularies, catalog and user table, so a
model trained on ``split.train`` scores items by the same indices the evaluator uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from genrec.data.vocabulary import Vocabulary
from genrec.errors import DataError

# Genre labels that say nothing about an item (MovieLens' "unknown", "(no genres listed)").
NO_GENRE = frozenset({"", "unknown", "(no genres listed)"})
# Timestamps are int64 seconds: a number of seconds t fits when INT64_MIN <= t < INT64_END.
INT64_MIN, INT64_END = -(2.0**63), 2.0**63


class Table:
    """Columns of attributes aligned to a vocabulary (row i describes index i).

    Built from rows keyed by external id; ids absent from the source get ``None`` (object
    columns) or NaN (numeric columns). Use it for user attributes (age, gender, occupation).
    """

    def __init__(self, vocab: Vocabulary, columns: Mapping[str, Sequence]):
        self.vocab = vocab
        self.columns: dict[str, np.ndarray] = {}
        for name, col in columns.items():
            col = col if isinstance(col, np.ndarray) else object_array(col)
            if len(col) != len(vocab):
                raise DataError(f"column {name!r} has {len(col)} rows, expected {len(vocab)}")
            self.columns[name] = col

    @classmethod
    def from_rows(cls, vocab: Vocabulary, ids: Sequence, columns: Mapping[str, Sequence], **kw):
        """Align ``columns`` (rows keyed by external ``ids``) to ``vocab``; extra ids are dropped."""
        idx, known = vocab.lookup(ids)
        aligned = {}
        for name, values in columns.items():
            values = object_array(values)
            out = np.full(len(vocab), None, dtype=object)
            out[idx[known]] = values[known]
            aligned[name] = _narrow(out)
        return cls(vocab, aligned, **kw)

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise DataError(f"no column {name!r}; available: {sorted(self.columns)}") from None

    def row(self, index: int) -> dict:
        return {name: _plain(col[index]) for name, col in self.columns.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self.vocab)}, columns={sorted(self.columns)})"


class ItemCatalog(Table):
    """What we know about items: text fields, structured attributes, optional image references.

    Conventional column names: ``title``, ``description``, ``genres`` (tuple of str per item),
    ``year`` (float, NaN when unknown), ``image`` (path or URL). ``text_fields`` names the columns
    a text encoder should render.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        columns: Mapping[str, Sequence],
        *,
        text_fields: Sequence[str] = ("title", "genres", "description"),
    ):
        super().__init__(vocab, columns)
        self.text_fields = tuple(f for f in text_fields if f in self.columns)

    def title(self, index: int) -> str:
        if "title" in self.columns and self.columns["title"][index] is not None:
            return str(self.columns["title"][index])
        return str(self.vocab.ids[index])

    def genres(self, index: int) -> tuple[str, ...]:
        """The item's genre names; () without a ``genres`` column or a known genre (labels in
        ``NO_GENRE`` such as "unknown" are left out)."""
        if "genres" not in self.columns:
            return ()
        value = self.columns["genres"][index]
        if value is None or isinstance(value, float):
            return ()
        return tuple(str(g) for g in value if str(g) not in NO_GENRE)

    def year(self, index: int) -> int | None:
        """The item's year; None without a ``year`` column or a finite year."""
        if "year" not in self.columns:
            return None
        try:
            year = float(self.columns["year"][index])
        except (TypeError, ValueError):
            return None
        return int(year) if np.isfinite(year) else None

    def feature_matrix(self, name: str) -> sp.csr_matrix:
        """One-hot (n_items, n_values) CSR of a set-valued or categorical column (e.g. genres)."""
        col = self[name]
        values = [
            tuple(v)
            if isinstance(v, (list, tuple, set, np.ndarray))
            else (() if v is None else (v,))
            for v in col
        ]
        names = sorted({x for v in values for x in v}, key=str)
        pos = {x: j for j, x in enumerate(names)}
        rows = np.repeat(np.arange(len(values)), [len(v) for v in values])
        cols = np.fromiter((pos[x] for v in values for x in v), dtype=np.int64, count=len(rows))
        return sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(values), len(names))
        )


def index_dtype(n: int) -> np.dtype:
    """The dtype of indices into a vocabulary of ``n`` entries: int32 when 0..n-1 fit in it
    (``n <= 2**31``), int64 beyond."""
    return np.dtype(np.int32) if n <= 2**31 else np.dtype(np.int64)


def integer_column(values) -> np.ndarray:
    """``values`` as an int32 array when it already is one (no copy), else as int64 (as
    ``np.asarray(values, np.int64)`` converts)."""
    arr = np.asarray(values)
    return arr if arr.dtype == np.int32 else np.asarray(values, dtype=np.int64)


# Star ratings (MovieLens, Amazon: 1-5; ML-20M and later: 0.5-5): 4 stars or more means liked.
STARS_LIKED = 4.0


class Dataset:
    """Interactions (user, item, value, timestamp) over fixed user and item vocabularies.

    Args:
        users, items: vocabularies; shared by every subset of this dataset.
        user_idx, item_idx: (n,) indices into them; kept as int32 when the vocabulary has at
            most 2**31 entries (:func:`index_dtype`), int64 beyond (half the memory of
            int64 columns at any size people have). Arithmetic that can exceed the vocabulary
            (``user * n_items + item`` keys) widens to int64 first.
        value: (n,) ratings or weights (1.0 for implicit feedback).
        timestamp: (n,) seconds; zeros when the source has none.
        catalog: item catalog aligned to ``items`` (optional).
        user_table: user attributes aligned to ``users`` (optional).
        extras: further per-interaction columns, each (n,), e.g. ``review_text`` and
            ``review_summary`` from the Amazon loaders; subsets and filters carry them.
        name: a label such as "ml-100k".
        positive_threshold: the value at or above which an interaction means the user liked
            the item (4.0 for 1-5 star ratings: 4 and 5 stars); None (the default) for implicit
            feedback, where the data says only that the user interacted. Loaders of rated data
            set it; subsets and filters keep it.

    Attributes:
        split_store: where splits of exactly this data are kept between runs, or None (the
            default). The out-of-core cache (:func:`genrec.data.scan.open_scan`) sets one;
            :func:`~genrec.data.splits.make_split` then reuses a stored split instead of
            computing it again. Subsets and filtered copies have none.
    """

    split_store = None

    def __init__(
        self,
        users: Vocabulary,
        items: Vocabulary,
        user_idx,
        item_idx,
        value=None,
        timestamp=None,
        *,
        catalog: ItemCatalog | None = None,
        user_table: Table | None = None,
        extras: Mapping[str, Sequence] | None = None,
        name: str = "data",
        positive_threshold: float | None = None,
    ):
        self.users, self.items, self.name = users, items, name
        self.positive_threshold = check_positive_threshold(positive_threshold)
        self.user_idx, self.item_idx = integer_column(user_idx), integer_column(item_idx)
        n = len(self.user_idx)
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused by _check
            self.value = np.ones(n, np.float32) if value is None else np.asarray(value, np.float32)
        self.timestamp = (
            np.zeros(n, np.int64) if timestamp is None else np.asarray(timestamp, np.int64)
        )
        self.catalog, self.user_table = catalog, user_table
        self.extras = {
            k: v if isinstance(v, np.ndarray) else object_array(v)
            for k, v in (extras or {}).items()
        }
        self._check()  # on the unnarrowed columns: a value that would wrap is out of range here
        self.user_idx = self.user_idx.astype(index_dtype(self.n_users), copy=False)
        self.item_idx = self.item_idx.astype(index_dtype(self.n_items), copy=False)

    def _check(self) -> None:
        n = len(self.user_idx)
        lengths = {
            "user": n,
            "item": len(self.item_idx),
            "value": len(self.value),
            "timestamp": len(self.timestamp),
        }
        if len(set(lengths.values())) != 1:
            raise DataError(
                f"user, item, value and timestamp arrays must have the same length, "
                f"got {lengths}; pass one entry per interaction in each"
            )
        for key, col in self.extras.items():
            if len(col) != n:
                raise DataError(f"extra column {key!r} has {len(col)} rows, expected {n}")
        check_columns(
            self.user_idx, self.item_idx, self.value, n_users=self.n_users, n_items=self.n_items
        )

    @classmethod
    def from_checked(
        cls,
        users: Vocabulary,
        items: Vocabulary,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        value: np.ndarray,
        timestamp: np.ndarray,
        *,
        like: Dataset | None = None,
        catalog: ItemCatalog | None = None,
        user_table: Table | None = None,
        extras: Mapping[str, np.ndarray] | None = None,
        name: str = "data",
        positive_threshold: float | None = None,
    ) -> Dataset:
        """A dataset over columns already known to be valid, taken as they are: a subset of a
        dataset's own columns, or columns read from a cache whose files were checked when read
        (:func:`check_columns`, a chunk at a time). Nothing is copied or read, so memory-mapped
        columns stay on disk until used.

        The columns must have the dtypes the constructor gives (indices in
        :func:`index_dtype`, float32 values, int64 seconds) and one length. ``like`` (when
        given) supplies the vocabularies' companions: catalog, user table and threshold.
        """
        if like is not None:
            catalog, user_table = like.catalog, like.user_table
            positive_threshold = like.positive_threshold
        data = cls.__new__(cls)
        data.users, data.items, data.name = users, items, name
        data.positive_threshold = positive_threshold
        data.user_idx, data.item_idx, data.value, data.timestamp = (
            user_idx,
            item_idx,
            value,
            timestamp,
        )
        data.catalog, data.user_table = catalog, user_table
        data.extras = dict(extras or {})
        expected = (index_dtype(len(users)), index_dtype(len(items)), np.float32, np.int64)
        columns = (user_idx, item_idx, value, timestamp)
        if (
            any(c.dtype != want for c, want in zip(columns, expected))
            or len({len(c) for c in columns + tuple(data.extras.values())}) > 1
        ):
            raise DataError(
                "checked columns must be int32/int64 indices, float32 values and int64 "
                "seconds of one length; build the dataset with Dataset(...) instead"
            )
        return data

    @classmethod
    def from_interactions(
        cls,
        user_ids: Sequence,
        item_ids: Sequence,
        value=None,
        timestamp=None,
        *,
        item_rows: Mapping | None = None,
        item_row_ids: Sequence | None = None,
        user_rows: Mapping | None = None,
        user_row_ids: Sequence | None = None,
        text_fields=None,
        extras: Mapping[str, Sequence] | None = None,
        name: str = "data",
        positive_threshold: float | None = None,
    ) -> Dataset:
        """Build vocabularies (first-seen order) and tables from external ids.

        ``user_ids`` and ``item_ids`` are 1-D, one id per interaction (None or NaN is an
        error). ``value`` holds numbers; ``timestamp`` holds numbers of seconds since the
        epoch (floats are floored; convert dates first). ``item_rows`` maps column name ->
        values for the items in ``item_row_ids``; items that never interact are kept out of the
        vocabulary, and an id listed twice keeps its first row. Same for ``user_rows``.

        Raises:
            DataError: no interactions, missing or 2-D ids, non-numeric values or timestamps,
                timestamps outside int64 seconds, lengths that disagree.
        """
        if not hasattr(user_ids, "__len__"):
            user_ids = list(user_ids)
        if len(user_ids) == 0:
            raise DataError(f"dataset {name!r} has no interactions; check the file and filters")
        users, u = Vocabulary.from_values(user_ids, kind="user")
        items, i = Vocabulary.from_values(item_ids, kind="item")
        value = None if value is None else interaction_numbers(value, "value", "ratings or weights")
        timestamp = None if timestamp is None else interaction_seconds(timestamp)
        catalog = None
        if item_rows is not None:
            kw = {} if text_fields is None else {"text_fields": text_fields}
            catalog = ItemCatalog.from_rows(
                items, *first_rows(item_row_ids, item_rows, "item"), **kw
            )
        user_table = None
        if user_rows is not None:
            user_table = Table.from_rows(users, *first_rows(user_row_ids, user_rows, "user"))
        return cls(
            users,
            items,
            u,
            i,
            value,
            timestamp,
            catalog=catalog,
            user_table=user_table,
            extras=extras,
            name=name,
            positive_threshold=positive_threshold,
        )

    # ---- sizes and derived views -------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return len(self.user_idx)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={len(self)})"
        )

    @property
    def has_timestamps(self) -> bool:
        """False when the source had no timestamps (all zero)."""
        return bool(np.any(self.timestamp != 0))

    @cached_property
    def user_items(self) -> sp.csr_matrix:
        """Binary (n_users, n_items) CSR: 1 where the user interacted with the item."""
        m = sp.csr_matrix(
            (np.ones(len(self), np.float32), (self.user_idx, self.item_idx)),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    @cached_property
    def user_item_order(self) -> sp.csr_matrix:
        """(n_users, n_items) CSR with the same entries as :attr:`user_items` whose values order
        each user's items in time: larger = later (1-based position in the time-ordered
        history; a repeated item keeps its latest position). Binary models read any positive
        value as 1; sequential models read the order (see :func:`history_sequences`)."""
        order = self.time_order
        u, i = self.user_idx[order], self.item_idx[order]
        starts = np.r_[0, np.cumsum(self.user_counts)[:-1]]
        pos = (np.arange(len(u)) - starts[u] + 1).astype(np.float32)
        by_pair = np.lexsort((pos, i, u))
        u, i, pos = u[by_pair], i[by_pair], pos[by_pair]
        last = np.ones(len(u), bool)
        last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        return sp.csr_matrix((pos[last], (u[last], i[last])), shape=(self.n_users, self.n_items))

    @cached_property
    def ratings(self) -> sp.csr_matrix:
        """(n_users, n_items) CSR of values; a repeated pair keeps its latest value."""
        order = np.lexsort((self.timestamp, self.item_idx, self.user_idx))
        u, i, v = self.user_idx[order], self.item_idx[order], self.value[order]
        last = np.ones(len(u), bool)
        last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        return sp.csr_matrix((v[last], (u[last], i[last])), shape=(self.n_users, self.n_items))

    @property
    def duplicate_interactions(self) -> int:
        """Rows that repeat an earlier (user, item) pair (re-ratings, repeated purchases).

        Full-ranking evaluation excludes a user's history items, so a test interaction whose
        pair is also in train is dropped as seen; :func:`~genrec.data.filters.drop_duplicates`
        keeps one row per pair."""
        return len(self) - self.user_items.nnz

    @cached_property
    def user_counts(self) -> np.ndarray:
        """(n_users,) number of interactions per user."""
        return np.bincount(self.user_idx, minlength=self.n_users)

    @cached_property
    def item_counts(self) -> np.ndarray:
        """(n_items,) number of interactions per item (its popularity)."""
        return np.bincount(self.item_idx, minlength=self.n_items)

    @cached_property
    def time_order(self) -> np.ndarray:
        """Permutation sorting interactions by user, then timestamp (stable: ties keep file order)."""
        return np.lexsort((self.timestamp, self.user_idx))

    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Time-ordered item sequences in CSR form: ``(indptr (n_users+1,), items (n,))``.

        User u's history is ``items[indptr[u]:indptr[u+1]]`` (item indices, oldest first).
        """
        items = self.item_idx[self.time_order].astype(np.int64, copy=False)
        indptr = np.zeros(self.n_users + 1, np.int64)
        np.cumsum(self.user_counts, out=indptr[1:])
        return indptr, items

    def padded_sequences(self, max_len: int, users=None) -> np.ndarray:
        """(n_users or len(users), max_len) last ``max_len`` items, right-aligned.

        Items are shifted by one so that 0 is padding: the value ``i + 1`` means item index ``i``.
        """
        indptr, items = self.sequences()
        users = np.arange(self.n_users) if users is None else np.asarray(users, np.int64)
        lengths = np.minimum(indptr[users + 1] - indptr[users], max_len)  # (B,)
        rows = np.repeat(np.arange(len(users)), lengths)
        # position of each kept item counted from the end of its sequence: 1 = newest
        from_end = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        from_end = np.repeat(lengths, lengths) - from_end
        src = np.repeat(indptr[users + 1], lengths) - from_end
        out = np.zeros((len(users), max_len), np.int64)  # (B, L)
        out[rows, max_len - from_end] = items[src] + 1
        return out

    def has_view(self, name: str) -> bool:
        """Whether the derived view ``name`` (one :meth:`preset` takes) is computed or preset
        already, so that reading it costs nothing."""
        return name in self.__dict__

    def preset(self, **views) -> Dataset:
        """Give derived views computed elsewhere (e.g. read from a cache) instead of computing
        them here: any of ``user_items``, ``user_counts``, ``item_counts``, ``time_order``, each
        exactly what the property would return. Returns self.

        Raises:
            DataError: an unknown view or one of the wrong shape.
        """
        shapes = {
            "user_items": (self.n_users, self.n_items),
            "user_counts": (self.n_users,),
            "item_counts": (self.n_items,),
            "time_order": (len(self),),
        }
        for name, view in views.items():
            if name not in shapes:
                raise DataError(f"cannot preset {name!r}; allowed: {', '.join(shapes)}")
            if view.shape != shapes[name]:
                raise DataError(f"{name} has shape {view.shape}, expected {shapes[name]}")
            self.__dict__[name] = view  # what functools.cached_property reads first
        return self

    # ---- subsets -----------------------------------------------------------------------------
    def subset(self, mask_or_index, *, name: str | None = None) -> Dataset:
        """The same vocabularies, catalog and user table over a subset of the interactions.

        A boolean mask is the lighter selector for a large subset: the columns are copied
        through it directly, where an index array costs 8 bytes per selected interaction."""
        sel = np.asarray(mask_or_index)
        if sel.dtype != bool:
            sel = sel.astype(np.int64, copy=False)
        return Dataset.from_checked(  # a subset of valid columns is valid: not checked again
            self.users,
            self.items,
            self.user_idx[sel],
            self.item_idx[sel],
            self.value[sel],
            self.timestamp[sel],
            like=self,
            name=name or self.name,
            extras={k: v[sel] for k, v in self.extras.items()},
        )

    def concat(self, other: Dataset, *, name: str | None = None) -> Dataset:
        """Interactions of both (same vocabularies required)."""
        if other.users is not self.users or other.items is not self.items:
            raise DataError("can only concatenate parts of the same dataset (same vocabularies)")
        return Dataset(
            self.users,
            self.items,
            np.r_[self.user_idx, other.user_idx],
            np.r_[self.item_idx, other.item_idx],
            np.r_[self.value, other.value],
            np.r_[self.timestamp, other.timestamp],
            catalog=self.catalog,
            user_table=self.user_table,
            name=name or self.name,
            extras={
                k: np.concatenate([v, other.extras[k]])
                for k, v in self.extras.items()
                if k in other.extras
            },
            positive_threshold=self.positive_threshold,
        )

    def checksum(self) -> str:
        """sha256 of the interactions and vocabularies: identifies the exact data of a run."""
        h = hashlib.sha256()
        for arr in (self.user_idx, self.item_idx):  # hashed as int64, whatever they are stored as
            for start in range(0, len(arr), 1 << 20):
                h.update(arr[start : start + (1 << 20)].astype(np.int64).tobytes())
        for arr in (self.value, self.timestamp):
            h.update(np.ascontiguousarray(arr).tobytes())
        for vocab in (self.users, self.items):
            h.update("\x00".join(vocab.ids).encode())
        return h.hexdigest()

    def stats(self) -> dict:
        """Users, items, interactions, density and which attributes are present."""
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(self),
            "duplicates": self.duplicate_interactions,
            "density": len(self) / max(1, self.n_users * self.n_items),
            "has_timestamps": self.has_timestamps,
            "value_range": [float(self.value.min()), float(self.value.max())]
            if len(self)
            else None,
            "item_attributes": sorted(self.catalog.columns) if self.catalog else [],
            "user_attributes": sorted(self.user_table.columns) if self.user_table else [],
        }


class Split:
    """Train / valid / test parts of one dataset, sharing its vocabularies.

    ``fold_in`` holds interactions given to a model as history at evaluation time but never
    trained on (the held-out users of a cold-start split). ``info`` says how the split was made
    and what it dropped (e.g. ``{"method": "holdout", "seed": 2020, "dropped": {"test": {"interactions": 3, ...}}}``).
    ``code`` is the (n,) int8 part code of each interaction of the split dataset when the split
    was made by :func:`~genrec.data.splits.split_by_code` (every splitter), else None.
    """

    code = None

    def __init__(
        self,
        train: Dataset,
        valid: Dataset,
        test: Dataset,
        *,
        fold_in: Dataset | None = None,
        info: Mapping | None = None,
    ):
        for part in (valid, test) + ((fold_in,) if fold_in is not None else ()):
            if part.users is not train.users or part.items is not train.items:
                raise DataError("split parts must share the train part's vocabularies")
        self.train, self.valid, self.test, self.fold_in = train, valid, test, fold_in
        self.info = dict(info or {})

    def history(self, part: str) -> Dataset:
        """What a model may see when evaluated on ``part``: train (+ valid for test) + fold-in."""
        if part not in ("valid", "test"):
            raise DataError(f"part must be 'valid' or 'test', got {part!r}")
        seen = self.train if part == "valid" else self.train.concat(self.valid)
        return seen if self.fold_in is None else seen.concat(self.fold_in)

    def __repr__(self) -> str:
        return (
            f"Split(train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)}"
            f"{'' if self.fold_in is None else f', fold_in={len(self.fold_in)}'}, info={self.info})"
        )


# ---- checks of Dataset.from_interactions' inputs ----------------------------------------------
def check_columns(user_idx, item_idx, value, *, n_users: int, n_items: int, start: int = 0):
    """Raise :class:`DataError` when an index is outside its vocabulary or a value is NaN or
    infinite. The columns may be one chunk of longer ones starting at position ``start`` (the
    messages count positions from there)."""
    for what, idx, n in (("user", user_idx, n_users), ("item", item_idx, n_items)):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            j = int(np.argmax((idx < 0) | (idx >= n)))
            raise DataError(
                f"{what} index out of range 0..{n - 1}: {idx[j]} at position {start + j}"
            )
    bad = ~np.isfinite(value)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} interaction value(s) are NaN or infinite (first at position "
            f"{start + int(np.argmax(bad))}); values are float32, so beyond "
            f"{np.finfo(np.float32).max:.4g} is infinite too: drop or fill them before "
            "building the dataset"
        )


def check_positive_threshold(threshold) -> float | None:
    """``threshold`` as a float, or None; anything else (a string, NaN, a bool) raises."""
    if threshold is None:
        return None
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, np.number))
        or not np.isfinite(threshold)
    ):
        raise DataError(
            f"positive_threshold must be a finite number (e.g. 4.0 for 1-5 stars) "
            f"or None for implicit feedback, got {threshold!r}"
        )
    return float(threshold)


def interaction_numbers(values, what: str, meaning: str) -> np.ndarray:
    """(n,) float64 of ``values``; anything that is not a number raises naming its position."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{what} must be 1-D, one entry per interaction; got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    import pandas as pd

    series = pd.Series(arr, dtype=object)
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & ~series.isna().to_numpy()
    if arr.dtype.kind == "M" or bad.any():
        j = int(np.argmax(bad)) if bad.any() else 0
        hint = (
            (
                "; convert dates first, e.g. "
                "(pd.to_datetime(dates, utc=True) - pd.Timestamp(0, tz='UTC')) "
                "// pd.Timedelta('1s')"
            )
            if what == "timestamp"
            else ""
        )
        raise DataError(
            f"{what}[{j}] is {_plain(arr[j])!r}, not a number; {what}s must be numbers "
            f"({meaning}){hint}"
        )
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
    bad = ~(np.isfinite(seconds) & (seconds >= INT64_MIN) & (seconds < INT64_END))
    if bad.any():
        j = int(np.argmax(bad))
        shown = None if arr[j] is None else float(seconds[j])
        raise DataError(
            f"timestamp[{j}] is {shown!r}: timestamps must be finite seconds "
            "since the epoch within int64; drop or fix that interaction"
        )
    return np.floor(seconds).astype(np.int64)


def first_rows(ids, columns: Mapping, kind: str) -> tuple[np.ndarray, dict]:
    """``ids`` and ``columns`` of an attribute table, keeping the first row of a repeated id."""
    if ids is None:
        raise DataError(f"{kind}_rows needs {kind}_row_ids: the external id of each row")
    ids = ids if isinstance(ids, np.ndarray) else object_array(ids)
    for name, col in columns.items():
        if len(col) != len(ids):
            raise DataError(
                f"{kind} column {name!r} has {len(col)} rows but {kind}_row_ids has "
                f"{len(ids)}; pass one value per id"
            )
    import pandas as pd

    first = ~pd.Series(ids, dtype=object).astype(str).duplicated().to_numpy()
    if first.all():
        return ids, dict(columns)
    return ids[first], {
        name: (col if isinstance(col, np.ndarray) else object_array(col))[first]
        for name, col in columns.items()
    }


def object_array(values: Sequence) -> np.ndarray:
    """1-D object array of ``values`` (tuples stay tuples, not a second dimension)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _narrow(col: np.ndarray) -> np.ndarray:
    """Numeric object columns become float arrays (NaN for missing)."""
    present = [x for x in col if x is not None]
    if present and all(
        isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
        for x in present
    ):
        return np.array([np.nan if x is None else float(x) for x in col], dtype=np.float64)
    return col


def _plain(x):
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and np.isnan(x):
        return None
    return x


def as_history_matrix(item_lists: Iterable[Sequence[int]], n_items: int) -> sp.csr_matrix:
    """(len(item_lists), n_items) history CSR from lists of item indices, oldest first.

    Each entry's value is its 1-based position in its list (a repeated item keeps the later
    one), so sequential models can read the order; binary models read any positive value as 1.

    >>> as_history_matrix([[4, 2, 4]], 5).toarray()
    array([[0., 0., 2., 0., 3.]], dtype=float32)
    """
    lists = [np.asarray(x, np.int64) for x in item_lists]
    indptr = np.r_[0, np.cumsum([len(x) for x in lists])]
    indices = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(lists)), np.diff(indptr))
    positions = (np.arange(len(indices)) - indptr[rows] + 1).astype(np.float32)
    order = np.lexsort((positions, indices, rows))  # a repeated item: its latest position last
    r, c, v = rows[order], indices[order], positions[order]
    last = np.ones(len(r), bool)
    last[:-1] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    return sp.csr_matrix((v[last], (r[last], c[last])), shape=(len(lists), n_items))


def history_sequences(histories: sp.csr_matrix, max_len: int) -> np.ndarray:
    """(B, max_len) int64 item sequences from history rows whose values give the time order.

    Row b holds its ``max_len`` latest items (largest values; ties by item index), oldest first,
    right-aligned, shifted by one so that 0 is padding (``i + 1`` means item ``i``): the layout of
    :meth:`Dataset.padded_sequences`. Rows of :attr:`Dataset.user_item_order` or
    :func:`as_history_matrix` give the true order; a binary row orders its items by index.

    >>> history_sequences(as_history_matrix([[4, 2, 0], [1]], 5), 2)
    array([[3, 1],
           [0, 2]])
    """
    histories = sp.csr_matrix(histories)
    counts = np.diff(histories.indptr)
    rows = np.repeat(np.arange(histories.shape[0]), counts)
    order = np.lexsort((histories.indices, histories.data, rows))  # by row, then time
    items = histories.indices[order].astype(np.int64)
    from_end = np.repeat(counts, counts) - (np.arange(len(rows)) - histories.indptr[rows])
    keep = from_end <= max_len  # 1 = newest
    out = np.zeros((histories.shape[0], max_len), np.int64)
    out[rows[keep], max_len - from_end[keep]] = items[keep] + 1
    return out

"""Filters that keep part of a dataset's interactions and re-index what remains.

Each filter returns a NEW :class:`~genrec.data.Dataset` whose vocabularies hold only the users
and items that still have an interaction (in their original relative order), with the catalog
and user table re-aligned and per-interaction ``extras`` (e.g. review text) carried over. A filter that leaves nothing raises :class:`~genrec.errors.DataError` naming itself.

Example:
    >>> from genrec.data import Dataset
    >>> data = Dataset.from_interactions(["a", "a", "b"], ["x", "y", "x"], [5, 2, 4])
    >>> filter_rating(data, 4).items.ids.tolist()
    ['x']
"""

from __future__ import annotations

import numpy as np

from genrec.data.dataset import Dataset, ItemCatalog, Table
from genrec.data.vocabulary import Vocabulary
from genrec.errors import ConfigError, DataError

__all__ = ["drop_duplicates", "filter_rating", "k_core"]


def filter_rating(data: Dataset, threshold: float) -> Dataset:
    """Keep interactions whose value is at least ``threshold`` (e.g. 4 on a 1-5 scale)."""
    return keep_interactions(
        data, data.value >= threshold, what=f"filter_rating(threshold={threshold})"
    )


def k_core(
    data: Dataset, k: int = 5, *, user_k: int | None = None, item_k: int | None = None
) -> Dataset:
    """The k-core: repeatedly drop users and items with fewer than k interactions.

    Stops when every remaining user has at least ``user_k`` and every remaining item at least
    ``item_k`` interactions (both default to ``k``); the result is the largest such subset, so
    applying ``k_core`` again changes nothing. Repeated user-item pairs count once each time
    they occur; call :func:`drop_duplicates` first to count distinct pairs.

    Raises:
        ConfigError: a threshold below 1.
        DataError: no interaction survives.
    """
    user_k = k if user_k is None else user_k
    item_k = k if item_k is None else item_k
    for label, value in (("k", k), ("user_k", user_k), ("item_k", item_k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"k_core: {label} must be an int >= 1, got {value!r}")
    kept = np.arange(len(data))  # indices of the interactions still in
    while True:
        users, items = data.user_idx[kept], data.item_idx[kept]
        user_counts = np.bincount(users, minlength=data.n_users)
        item_counts = np.bincount(items, minlength=data.n_items)
        ok = (user_counts[users] >= user_k) & (item_counts[items] >= item_k)
        if ok.all():
            break
        kept = kept[ok]
    mask = np.zeros(len(data), bool)
    mask[kept] = True
    return keep_interactions(data, mask, what=f"k_core(user_k={user_k}, item_k={item_k})")


def drop_duplicates(data: Dataset, *, keep: str = "latest") -> Dataset:
    """One interaction per user-item pair.

    ``keep="latest"`` keeps the pair's interaction with the largest timestamp (ties: the last
    in file order); ``keep="earliest"`` the smallest (ties: the first in file order). Kept
    interactions stay in their original order.
    """
    if keep not in ("latest", "earliest"):
        raise ConfigError(f"drop_duplicates: keep must be 'latest' or 'earliest', got {keep!r}")
    n = len(data)
    order = np.lexsort((np.arange(n), data.timestamp, data.item_idx, data.user_idx))
    users, items = data.user_idx[order], data.item_idx[order]
    new_pair = np.ones(n, bool)  # sorted position starts a pair's run
    new_pair[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    chosen = new_pair if keep == "earliest" else np.r_[new_pair[1:], True]  # run's first / last
    mask = np.zeros(n, bool)
    mask[order[chosen]] = True
    return keep_interactions(data, mask, what=f"drop_duplicates(keep={keep!r})")


def keep_interactions(data: Dataset, mask: np.ndarray, *, what: str) -> Dataset:
    """A new Dataset of the interactions where ``mask`` (n,) is True, re-indexed.

    Users and items left without interactions leave the vocabularies; the rest keep their
    relative order. ``what`` names the filter in the error raised when nothing remains.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise DataError(
            f"{what} removed every interaction of dataset {data.name!r} "
            f"({len(data)} before); loosen the filter"
        )
    user_idx, item_idx = data.user_idx[mask], data.item_idx[mask]
    kept_users = np.flatnonzero(np.bincount(user_idx, minlength=data.n_users))  # old indices
    kept_items = np.flatnonzero(np.bincount(item_idx, minlength=data.n_items))
    users = Vocabulary(data.users.ids[kept_users], kind=data.users.kind)
    items = Vocabulary(data.items.ids[kept_items], kind=data.items.kind)
    new_user = _renumber(kept_users, data.n_users)
    new_item = _renumber(kept_items, data.n_items)
    out = Dataset(
        users,
        items,
        new_user[user_idx],
        new_item[item_idx],
        data.value[mask],
        data.timestamp[mask],
        catalog=_take_rows(data.catalog, items, kept_items),
        user_table=_take_rows(data.user_table, users, kept_users),
        name=data.name,
        extras={k: v[mask] for k, v in data.extras.items()},
        positive_threshold=data.positive_threshold,
    )
    return out


def _renumber(kept: np.ndarray, n: int) -> np.ndarray:
    """(n,) old index -> new index (-1 for dropped ones)."""
    new = np.full(n, -1, np.int64)
    new[kept] = np.arange(len(kept))
    return new


def _take_rows(table: Table | None, vocab: Vocabulary, rows: np.ndarray) -> Table | None:
    if table is None:
        return None
    columns = {name: col[rows] for name, col in table.columns.items()}
    if isinstance(table, ItemCatalog):
        return ItemCatalog(vocab, columns, text_fields=table.text_fields)
    return Table(vocab, columns)

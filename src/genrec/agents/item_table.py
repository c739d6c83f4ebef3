"""The item table the agent filters: catalog attributes in an embedded SQLite database.

Tools never pass SQL. A filter is a list of :class:`~genrec.agents.session.Condition` whose
column and operator must come from :data:`OPERATORS`; the query text is assembled from fixed
fragments and every value travels as a bound parameter, so no input can change the statement.

Columns:
    ``genre``: a genre of the item (``has`` / ``lacks``), names as in the catalog;
    ``year``: the release year (``=``, ``<``, ``<=``, ``>``, ``>=``, ``between`` [low, high]);
    ``popularity``: the number of training interactions (``>=``, ``<=``).

Example:
    >>> from genrec.data import ItemCatalog, Vocabulary
    >>> from genrec.agents.session import Condition
    >>> catalog = ItemCatalog(Vocabulary(["a", "b", "c"], kind="item"), {
    ...     "title": ["Heat", "Casper", "Alien"], "year": [1995.0, 1995.0, 1979.0],
    ...     "genres": [("Action",), ("Comedy",), ("Horror", "Sci-Fi")]})
    >>> table = ItemTable(catalog)
    >>> table.filter([Condition("year", "<", 1990)]).tolist()
    [2]
    >>> table.filter([Condition("genre", "lacks", "Action"), Condition("year", "=", 1995)]).tolist()
    [1]
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from genrec.agents.session import Condition
from genrec.errors import ConfigError

# column -> operator -> SQL fragment with ? placeholders (the only SQL a condition can reach).
OPERATORS: dict[str, dict[str, str]] = {
    "genre": {
        "has": "item IN (SELECT item FROM genres WHERE genre = ?)",
        "lacks": "item NOT IN (SELECT item FROM genres WHERE genre = ?)",
    },
    "year": {
        "=": "year = ?",
        "<": "year < ?",
        "<=": "year <= ?",
        ">": "year > ?",
        ">=": "year >= ?",
        "between": "year BETWEEN ? AND ?",
    },
    "popularity": {">=": "popularity >= ?", "<=": "popularity <= ?"},
}


class ItemTable:
    """Catalog attributes of every item, queryable by whitelisted conditions.

    Args:
        catalog: the dataset's :class:`~genrec.data.ItemCatalog` (title, genres, year).
        popularity: (n_items,) interaction counts (default: zeros).
    """

    def __init__(self, catalog, popularity: Sequence[int] | None = None):
        self.catalog = catalog
        self.n_items = len(catalog.vocab)
        pop = np.zeros(self.n_items, np.int64) if popularity is None else np.asarray(popularity)
        self.years = np.array(
            [
                catalog.year(i) if catalog.year(i) is not None else np.nan
                for i in range(self.n_items)
            ],
            dtype=float,
        )
        self.item_genres = [catalog.genres(i) for i in range(self.n_items)]
        self.genre_names = sorted({g for gs in self.item_genres for g in gs})
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE items (item INTEGER PRIMARY KEY, year INTEGER, popularity INTEGER)"
        )
        self._db.execute("CREATE TABLE genres (item INTEGER, genre TEXT)")
        self._db.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [
                (i, None if np.isnan(y) else int(y), int(p))
                for i, (y, p) in enumerate(zip(self.years, pop))
            ],
        )
        self._db.executemany(
            "INSERT INTO genres VALUES (?, ?)",
            [(i, g) for i, gs in enumerate(self.item_genres) for g in gs],
        )
        self._db.execute("CREATE INDEX genre_items ON genres (genre, item)")

    def check(self, condition: Condition) -> Condition:
        """``condition`` with its value coerced, or ConfigError naming the allowed values."""
        ops = OPERATORS.get(condition.column)
        if ops is None:
            raise ConfigError(
                f"unknown filter column {condition.column!r}; allowed: {', '.join(OPERATORS)}"
            )
        if condition.op not in ops:
            raise ConfigError(
                f"operator {condition.op!r} is not allowed on "
                f"{condition.column!r}; allowed: {', '.join(ops)}"
            )
        value = condition.value
        if condition.column == "genre":
            if value not in self.genre_names:
                raise ConfigError(f"unknown genre {value!r}; known: {', '.join(self.genre_names)}")
            return condition
        if condition.op == "between":
            if not (
                isinstance(value, (list, tuple))
                and len(value) == 2
                and all(_is_number(v) for v in value)
            ):
                raise ConfigError(f"'between' takes [low, high] numbers, got {value!r}")
            return Condition(condition.column, "between", sorted(int(v) for v in value))
        if not _is_number(value):
            raise ConfigError(f"{condition.column} {condition.op} takes a number, got {value!r}")
        return Condition(condition.column, condition.op, int(value))

    def filter(self, conditions: Sequence[Condition]) -> np.ndarray:
        """Sorted item indices satisfying every condition (all items for none)."""
        conditions = [self.check(c) for c in conditions]
        where, params = [], []
        for c in conditions:
            where.append(OPERATORS[c.column][c.op])
            params += c.value if c.op == "between" else [c.value]
        sql = "SELECT item FROM items" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY item", params).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def decade(self, item: int) -> int | None:
        year = self.years[item]
        return None if np.isnan(year) else int(year) // 10 * 10

    def value_counts(self, attribute: str, items: Sequence[int]) -> Counter:
        """How often each value of ``attribute`` ("genre" or "decade") occurs among ``items``;
        an item with several genres counts 1/len(genres) for each."""
        counts: Counter = Counter()
        for i in items:
            if attribute == "genre":
                genres = self.item_genres[i]
                for g in genres:
                    counts[g] += 1.0 / len(genres)
            elif attribute == "decade" and (d := self.decade(i)) is not None:
                counts[d] += 1.0
        return counts


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and np.isfinite(value)
    )

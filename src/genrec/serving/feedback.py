"""Feedback events: durable, idempotent storage for ``POST /feedback`` and reading for refits.

A :class:`FeedbackStore` is one SQLite file in WAL mode with ``synchronous=FULL``: when
:meth:`~FeedbackStore.add` returns, the events are on disk (the WAL is fsynced at each commit),
so a server that acknowledges them with a 200 loses none to a crash or ``kill -9``. Each event
carries a client event id; sending the same id again stores nothing new (the answer counts it
as a duplicate), so a client can retry safely.

:func:`read_feedback` reads the events back and :func:`with_feedback` appends them to a dataset
(new users get new indices after the dataset's own, items must be in its catalog), which is
what ``genrec train --feedback FILE`` fits on.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "feedback.db")
    >>> store = FeedbackStore(path)
    >>> store.add([Event("e1", "u1", "i3", 1.0, 0)])
    (1, 0)
    >>> store.add([Event("e1", "u1", "i3", 1.0, 0)])
    (0, 1)
    >>> [e.item for e in read_feedback(path)]
    ['i3']
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.errors import DataError

_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    value REAL NOT NULL,
    timestamp INTEGER NOT NULL
)"""


@dataclass(frozen=True)
class Event:
    """One interaction a client reports: ``value`` 1.0 for implicit feedback, ``timestamp`` in
    seconds since the epoch."""

    event_id: str
    user: str
    item: str
    value: float
    timestamp: int


class FeedbackStore:
    """Feedback events in an SQLite file (WAL, synchronous=FULL); thread-safe."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DataError(
                f"{self.path} cannot use SQLite's WAL mode (got {mode!r}); put the "
                "feedback file on a local disk"
            )
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def add(self, events: Iterable[Event]) -> tuple[int, int]:
        """Store ``events`` in one transaction, durable on return; ``(stored, duplicates)``."""
        rows = [(e.event_id, e.user, e.item, float(e.value), int(e.timestamp)) for e in events]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO feedback (event_id, user_id, item_id,"
                    " value, timestamp) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            stored = self._db.total_changes - before
        return stored, len(rows) - stored

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_feedback(path: str | os.PathLike) -> list[Event]:
    """Every event of the feedback file at ``path``, in arrival order.

    Raises:
        DataError: the file is missing or is not a genrec feedback file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"no feedback file at {path}; give the file `genrec serve --feedback` writes"
        )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT event_id, user_id, item_id, value, timestamp FROM feedback ORDER BY seq"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(
            f"{path} is not a genrec feedback file ({exc}); give the file "
            "`genrec serve --feedback` writes"
        ) from None
    return [Event(str(e), str(u), str(i), float(v), int(t)) for e, u, i, v, t in rows]


def with_feedback(data, events: list[Event]):
    """``data`` plus ``events`` as interactions: ``(dataset, n_added)``.

    Users not in ``data`` are appended to its user vocabulary (the user table is dropped: it has
    no rows for them); events whose item is not in the catalog are an error.
    """
    from genrec.data.dataset import Dataset
    from genrec.data.vocabulary import Vocabulary

    if not events:
        return data, 0
    items, known = data.items.lookup([e.item for e in events])
    if not known.all():
        bad = sorted({e.item for e, ok in zip(events, known) if not ok})
        raise DataError(
            f"{len(bad)} feedback item(s) are not in {data.name}: {bad[:5]}; "
            "refit on the dataset the server served"
        )
    user_ids = [e.user for e in events]
    _, known_users = data.users.lookup(user_ids)
    new = list(dict.fromkeys(u for u, ok in zip(user_ids, known_users) if not ok))
    users = Vocabulary([*data.users.ids, *new], kind="user") if new else data.users
    combined = Dataset(
        users,
        data.items,
        np.r_[data.user_idx, users.index(user_ids)],
        np.r_[data.item_idx, items],
        np.r_[data.value, [e.value for e in events]],
        np.r_[data.timestamp, [e.timestamp for e in events]],
        catalog=data.catalog,
        user_table=None if new else data.user_table,
        name=data.name,
    )
    return combined, len(events)


__all__ = ["Event", "FeedbackStore", "read_feedback", "with_feedback"]

"""Where sessions live between turns: SQLite in WAL mode, or memory.

:class:`SqliteSessionStore` keeps one row per session (its JSON), so a conversation resumes
after a process restart; WAL lets readers and one writer work at once, and every call opens its
own connection, so threads and processes can share the file. Sessions are isolated by key: a
store hands out only the session asked for by id, and the id comes from the caller, never from
an utterance. :class:`MemorySessionStore` is the same contract in a dict (simulations, tests).

Example:
    >>> from genrec.agents.session import Session
    >>> store = MemorySessionStore()
    >>> store.put(Session("a", liked=[1]))
    >>> store.get("a").liked, store.get("b")
    ([1], None)
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from genrec.agents.session import Session
from genrec.errors import ConfigError

_SESSION_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")


def check_session_id(session_id: object) -> str:
    """``session_id`` if it is 1-128 letters, digits or ``_.:@-``; ConfigError otherwise."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise ConfigError(
            f"session id {session_id!r} is invalid; use 1-128 letters, digits or "
            "the characters _ . : @ -"
        )
    return session_id


class MemorySessionStore:
    """Sessions in a dict (copied in and out, so callers never share state by accident)."""

    def __init__(self):
        self._rows: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            row = self._rows.get(check_session_id(session_id))
        return None if row is None else Session.from_dict(json.loads(row))

    def put(self, session: Session) -> None:
        row = json.dumps(session.to_dict())
        with self._lock:
            self._rows[check_session_id(session.session_id)] = row


class SqliteSessionStore:
    """Sessions in the SQLite file ``path`` (created with its folder; WAL journal)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, state TEXT "
                "NOT NULL, updated REAL NOT NULL DEFAULT (julianday('now')))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, session_id: str) -> Session | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT state FROM sessions WHERE id = ?", (check_session_id(session_id),)
            ).fetchone()
        return None if row is None else Session.from_dict(json.loads(row[0]))

    def put(self, session: Session) -> None:
        state = json.dumps(session.to_dict())
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO sessions (id, state) VALUES (?, ?) ON CONFLICT(id) DO "
                "UPDATE SET state = excluded.state, updated = julianday('now')",
                (check_session_id(session.session_id), state),
            )

    def ids(self) -> list[str]:
        with closing(self._connect()) as db:
            return [r[0] for r in db.execute("SELECT id FROM sessions ORDER BY id")]

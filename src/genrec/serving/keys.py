"""API keys and per-key rate limits for ``genrec serve --api-keys FILE``.

The key file is JSON, ``{"keys": [{"name", "scope", "sha256", "created"}]}``: only a hash of
each key is stored (a key is 32 random bytes, so a plain SHA-256 cannot be reversed by
guessing). ``genrec keys add NAME --scope read|write|admin --file FILE`` makes a key with
:func:`add_key` and prints it once.

Scopes nest: ``admin`` may do everything, ``write`` may read, ``read`` only reads.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "keys.json")
    >>> key = add_key(path, "web", scope="read")
    >>> ring = KeyRing.from_file(path)
    >>> ring.check(key).name, ring.check("wrong") is None
    ('web', True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from genrec.errors import ConfigError, DataError
from genrec.io import atomic_write

SCOPES = ("read", "write", "admin")  # each includes the ones before it


@dataclass(frozen=True)
class Key:
    name: str
    scope: str
    sha256: str

    def allows(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def add_key(path: str | os.PathLike, name: str, *, scope: str) -> str:
    """Add a key called ``name`` to the key file at ``path`` (made when missing); returns the
    key, which is stored nowhere (only its hash is)."""
    if scope not in SCOPES:
        raise ConfigError(f"--scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    name = str(name).strip()
    if not name:
        raise ConfigError("the key needs a NAME, e.g. `genrec keys add web --scope read`")
    path = Path(path)
    entries = _read(path) if path.exists() else []
    if any(e["name"] == name for e in entries):
        raise ConfigError(f"{path} already has a key called {name!r}; choose another name")
    key = "grk_" + secrets.token_urlsafe(32)
    entries.append(
        {"name": name, "scope": scope, "sha256": _digest(key), "created": int(time.time())}
    )
    atomic_write(path, json.dumps({"keys": entries}, indent=2) + "\n")
    os.chmod(path, 0o600)
    return key


def _read(path: Path) -> list[dict]:
    try:
        entries = json.loads(path.read_text())["keys"]
        for e in entries:
            if e["scope"] not in SCOPES or len(e["sha256"]) != 64:
                raise ValueError(e.get("name"))
        return entries
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path} is not a genrec key file ({type(exc).__name__}); make one with "
            "`genrec keys add NAME --scope read --file FILE`"
        ) from None


class KeyRing:
    """The keys a server accepts."""

    def __init__(self, keys: list[Key]):
        self._by_hash = {k.sha256: k for k in keys}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> KeyRing:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"no key file at {path}; make one with `genrec keys add NAME "
                f"--scope read --file {path}`"
            )
        return cls([Key(e["name"], e["scope"], e["sha256"]) for e in _read(path)])

    def check(self, key: str | None) -> Key | None:
        """The key ``key`` is, or None (compared in constant time)."""
        if not key:
            return None
        digest = _digest(key)
        found = self._by_hash.get(digest)
        return found if found is not None and hmac.compare_digest(found.sha256, digest) else None


class RateLimiter:
    """A token bucket per client: ``rate`` requests per second on average, bursts of ``burst``.
    :meth:`take` returns 0 when a request may pass, else the seconds until it could."""

    def __init__(self, rate: float, burst: int):
        if not rate > 0 or burst < 1:
            raise ConfigError(f"--rate-limit must be > 0 and --burst >= 1, got {rate}, {burst}")
        self.rate, self.burst = float(rate), int(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > 100_000:  # forget idle clients (bounded memory)
                self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < 60}
            return (1 - tokens) / self.rate


class SharedRateLimiter(RateLimiter):
    """The same token buckets kept in the SQLite file ``path``, which every worker process of
    one server opens (``genrec serve --workers N``), so a client's limit holds for the server
    rather than once per worker. Each :meth:`take` is one short write transaction (WAL, no
    fsync: the buckets need not survive a crash). The clock is ``time.monotonic``, one clock for
    every process of the machine.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "rates.sqlite")
        >>> one, two = SharedRateLimiter(0.001, 2, path), SharedRateLimiter(0.001, 2, path)
        >>> [one.take("k") == 0, two.take("k") == 0, one.take("k") == 0]
        [True, True, False]
    """

    FORGET_EVERY = 10_000  # takes between sweeps of clients idle for a minute

    def __init__(self, rate: float, burst: int, path: str | os.PathLike):
        super().__init__(rate, burst)
        self.path = str(path)
        self._local = threading.local()
        self._takes = 0
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS buckets (client TEXT PRIMARY KEY, tokens REAL NOT NULL, "
            "last REAL NOT NULL)"
        )

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA synchronous=OFF")
            self._local.db = db
        return db

    def take(self, client: str) -> float:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # one writer at a time across processes
        try:
            now = time.monotonic()
            row = db.execute(
                "SELECT tokens, last FROM buckets WHERE client = ?", (client,)
            ).fetchone()
            tokens, last = row if row else (float(self.burst), now)
            tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            db.execute(
                "INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                (client, tokens - 1 if wait == 0 else tokens, now),
            )
            self._takes += 1
            if self._takes % self.FORGET_EVERY == 0:
                db.execute("DELETE FROM buckets WHERE last < ?", (now - 60,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return wait


__all__ = ["SCOPES", "Key", "KeyRing", "RateLimiter", "SharedRateLimiter", "add_key"]

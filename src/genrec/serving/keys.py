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


__all__ = ["SCOPES", "Key", "KeyRing", "RateLimiter", "add_key"]

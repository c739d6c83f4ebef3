"""Conversations over HTTP: ``POST /chat`` drives the conversational agent of
:mod:`genrec.agents` with a served model as its ranker.

A conversation is a session the server opens: the first turn (no ``session`` in the body)
gets a fresh unguessable token, and later turns send it back. Sessions belong to the caller: the
store's id is the token joined to a digest of the API key's name (``public`` without keys), so a
token used with another key is an unknown session, never someone else's conversation. The
agent saves the session before the answer leaves, in the store the server was given (SQLite in
WAL mode with ``genrec serve --sessions FILE``, shared by workers and kept across restarts;
memory otherwise).

An answer is JSON, or with ``"stream": true`` server-sent events: ``session`` (the token),
``items`` (the list shown), ``delta`` events carrying the reply text a few words at a time, and
``done`` with the whole answer. The agent runs its tools first, so the events describe a
finished turn: streaming lets a page show the list and the text as they arrive.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> from genrec.models import EASE
    >>> from genrec.serving.service import RecService, Served
    >>> data = planted_clusters(n_users=8, n_items=12, n_clusters=2).data
    >>> chats = Conversations(RecService(data, {"ease": Served.fitted("ease", EASE().fit(data))}))
    >>> first = chats.turn("public", text="something in group1 please")
    >>> len(first["session"]) >= 16 and all(i["id"] for i in first["items"])
    True
    >>> chats.turn("public", text="more", session=first["session"])["session"] == first["session"]
    True
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence

from genrec.agents import Agent
from genrec.agents.store import MemorySessionStore, SqliteSessionStore
from genrec.errors import ConfigError, UnknownIdError

TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
WORDS_PER_DELTA = 6


class Conversations:
    """The agents of a :class:`~genrec.serving.service.RecService`, one per served model, built
    on first use and rebuilt when a reload swaps the model, over one session store."""

    def __init__(self, service, store=None):
        self.service = service
        self.store = store if store is not None else MemorySessionStore()
        self._agents: dict[str, tuple[object, Agent]] = {}
        self._lock = threading.Lock()

    def agent(self, model: str | None) -> tuple[str, Agent]:
        """The served model's name and its agent (the agent follows hot reloads)."""
        served = self.service.served(model)
        with self._lock:
            cached = self._agents.get(served.spec)
            if cached is None or cached[0] is not served:
                cached = (served, Agent(self.service.data, served.model, store=self.store))
                self._agents[served.spec] = cached
        return served.spec, cached[1]

    def turn(
        self,
        owner: str,
        *,
        text: str,
        session: str | None = None,
        model: str | None = None,
        user: str | None = None,
        history: Sequence[str] = (),
    ) -> dict:
        """One turn of ``owner``'s conversation; a new one when ``session`` is None (seeded
        with a dataset ``user``'s history or an anonymous ``history`` of item ids).

        Raises:
            UnknownIdError: ``session`` is not one of ``owner``'s conversations, or ``user`` or
                an item of ``history`` is unknown.
        """
        name, agent = self.agent(model)
        if session is None:
            session = secrets.token_urlsafe(18)
            seen = self._history(user, history)
            agent.start(_store_id(owner, session), history=seen)
        elif not TOKEN.fullmatch(session) or self.store.get(_store_id(owner, session)) is None:
            raise UnknownIdError(
                "session: no conversation with this token for this caller; leave session out "
                "to start a new one"
            )
        reply = agent.respond(_store_id(owner, session), text)
        catalog = self.service.data.catalog
        items = [
            {"id": item_id, "title": catalog.title(index)}
            for index, item_id in zip(reply.items, reply.item_ids)
        ]
        return {
            "session": session,
            "model": name,
            "text": reply.text,
            "items": items,
            "question": reply.question,
        }

    def _history(self, user: str | None, history: Sequence[str]) -> list[int]:
        if user is not None:
            return self.service.user_items(self.service.user_index(user)).tolist()
        return self.service.item_indices(list(history)).tolist() if history else []


def open_sessions(path) -> SqliteSessionStore:
    """The SQLite session store at ``path`` (``genrec serve --sessions``).

    Raises:
        ConfigError: the file cannot be created or is not a session store.
    """
    try:
        return SqliteSessionStore(path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"--sessions {path}: cannot keep conversations there ({exc}); give a writable file path"
        ) from None


def _store_id(owner: str, token: str) -> str:
    """The store's session id: the caller's digest and the token (ids of two callers never
    meet)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:16] + ":" + token


def events(answer: dict) -> Iterator[str]:
    """``answer`` (a :meth:`Conversations.turn` result) as server-sent events."""
    yield _event("session", {"session": answer["session"], "model": answer["model"]})
    yield _event("items", {"items": answer["items"]})
    words = answer["text"].split(" ")
    for start in range(0, len(words), WORDS_PER_DELTA):
        chunk = " ".join(words[start : start + WORDS_PER_DELTA])
        yield _event("delta", {"text": chunk if start == 0 else " " + chunk})
    yield _event("done", answer)


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

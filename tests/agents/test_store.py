"""Sessions persist in SQLite (WAL), resume after a restart, and stay isolated."""

import sqlite3
import threading

import pytest

from genrec.agents import Agent, SqliteSessionStore
from genrec.errors import ConfigError


def test_the_store_uses_wal_and_rejects_bad_session_ids(tmp_path):
    store = SqliteSessionStore(tmp_path / "s.sqlite")
    mode = sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    for bad in ["", "a b", "x' OR '1'='1", "../etc", "a" * 200, 5]:
        with pytest.raises(ConfigError, match="session id"):
            store.get(bad)


def test_a_conversation_resumes_after_a_restart(world, ranker, tmp_path):
    path = tmp_path / "sessions.sqlite"
    first = Agent(world.split.train, ranker, store=SqliteSessionStore(path))
    first.start("alice", history=[0, 4])
    shown = first.respond("alice", "a comedy please").items
    del first  # the process ends; a new one opens the same file
    second = Agent(world.split.train, ranker, store=SqliteSessionStore(path))
    reply = second.respond("alice", "not the first")
    session = second.store.get("alice")
    assert session.unwanted == [shown[0]]
    assert [t.role for t in session.turns] == ["user", "agent", "user", "agent"]
    assert all(world.data.catalog.genres(i) == ("Comedy",) for i in reply.items)  # kept the wish
    assert not set(reply.items) & set(shown)


def test_concurrent_sessions_do_not_see_each_other(world, ranker, tmp_path):
    agent = Agent(world.split.train, ranker, store=SqliteSessionStore(tmp_path / "s.sqlite"))
    wishes = {f"user{n}": genre for n, genre in enumerate(["comedy", "horror", "drama", "action"])}
    for session_id in wishes:
        agent.start(session_id)
    errors = []

    def talk(session_id, genre):
        try:
            for text in [f"a {genre} please", "not the first", "something else"]:
                agent.respond(session_id, text)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=item) for item in wishes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for session_id, genre in wishes.items():
        session = agent.store.get(session_id)
        assert [t.text for t in session.turns if t.role == "user"] == [
            f"a {genre} please",
            "not the first",
            "something else",
        ]
        assert [c.value.lower() for c in session.constraints] == [genre]


def test_turns_of_one_session_from_many_threads_all_land_and_leave_no_lock_behind(world, ranker):
    agent = Agent(world.split.train, ranker)
    agent.start("shared")
    errors = []

    def talk(n):
        try:
            for turn in range(3):
                agent.respond("shared", f"thread {n} turn {turn}")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    said = [t.text for t in agent.store.get("shared").turns if t.role == "user"]
    assert sorted(said) == sorted(f"thread {n} turn {t}" for n in range(4) for t in range(3))
    for n in range(50):  # many short-lived sessions: the lock table does not keep them
        agent.respond(f"visitor{n}", "a comedy please")
    assert agent._locks == {}

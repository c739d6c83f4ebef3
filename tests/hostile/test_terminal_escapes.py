"""Item text cannot drive the user's terminal.

A catalog title carrying a terminal escape sequence (clear the screen, retitle the window, a
hyperlink) or a bidirectional override used to reach the terminal raw: ``genrec recommend``
printed titles as they were, ``genrec chat`` printed replies quoting them, and ``--lm`` plans
streamed whatever the model wrote. Now every printed data value shows such characters as their
escapes (``\\x1b``), and newlines and tabs stay as they are.
"""

import io
import re

import pytest

from genrec.cli import _PlanEcho, main

HOSTILE = "Heat\x1b]0;owned\x07\x1b[2J\u202eevil (1995)"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A MovieLens folder whose most popular movie carries the hostile title; user 1 has not
    seen it."""
    root = tmp_path_factory.mktemp("movies")
    rows = ["userId,movieId,rating,timestamp"]
    for u in range(1, 13):
        items = [1] * (u > 1) + [2 + (u + k) % 9 for k in range(4)]
        rows += [f"{u},{i},5,{1000 * u + k}" for k, i in enumerate(items)]
    (root / "ratings.csv").write_text("\n".join(rows) + "\n")
    movies = ["movieId,title,genres", f'1,"{HOSTILE}",Action']
    movies += [f"{i},Movie {i} (1990),Drama" for i in range(2, 12)]
    (root / "movies.csv").write_text("\n".join(movies) + "\n")
    return root


def test_recommend_prints_escape_sequences_as_text(folder, tmp_path, capsys):
    code = main(
        ["recommend", "--dataset", str(folder), "--model", "pop", "--items", "2", "--k", "3"]
        + ["--artifact", str(tmp_path / "pop")]
    )
    out = capsys.readouterr()
    assert code == 0
    assert "Heat\\x1b]0;owned\\x07\\x1b[2J\\u202eevil" in out.out
    assert not RAW.search(out.out + out.err)


def test_chat_replies_quote_titles_without_their_escapes(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("something popular\n"))
    code = main(
        ["chat", "--dataset", str(folder), "--model", "pop", "--user", "1"]
        + ["--sessions", str(tmp_path / "s.sqlite"), "--artifact", str(tmp_path / "pop")]
    )
    out = capsys.readouterr()
    assert code == 0 and "owned" in out.out  # the hostile title was recommended, as text
    assert not RAW.search(out.out + out.err)


def test_streamed_plan_text_is_shown_escaped(capsys):
    echo = _PlanEcho()
    for piece in ("plan: \x1b", "[2J search\u202e", "\n"):
        echo(piece)
    echo.end()
    err = capsys.readouterr().err
    assert err == "(planning) plan: \\x1b[2J search\\u202e\n\n"

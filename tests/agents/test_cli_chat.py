"""``genrec chat`` with piped lines (and resuming), ``genrec simulate`` end to end, bad flags."""

import io
import json

import pytest

from genrec.cli import main
from genrec.data.synthetic import movie_clusters


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The movie world as a user's own MovieLens folder (ratings.csv + movies.csv)."""
    world = movie_clusters(n_users=40, n_items=48)
    data, catalog = world.data, world.data.catalog
    root = tmp_path_factory.mktemp("movies")
    rows = ["userId,movieId,rating,timestamp"] + [
        f"{data.users.ids[u][1:]},{data.items.ids[i][1:]},5,{t}"
        for u, i, t in zip(data.user_idx, data.item_idx, data.timestamp)
    ]
    (root / "ratings.csv").write_text("\n".join(rows) + "\n")
    movies = ["movieId,title,genres"] + [
        f"{data.items.ids[i][1:]},{catalog.title(i)} ({catalog.year(i)}),{'|'.join(catalog.genres(i))}"
        for i in range(data.n_items)
    ]
    (root / "movies.csv").write_text("\n".join(movies) + "\n")
    return root


def chat(monkeypatch, capsys, args, lines):
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code = main(["chat", *args])
    return code, capsys.readouterr()


def test_chat_reads_piped_lines_and_resumes_the_session(folder, tmp_path, monkeypatch, capsys):
    args = [
        "--dataset",
        str(folder),
        "--model",
        "ease",
        "--user",
        "1",
        "--session",
        "me",
        "--sessions",
        str(tmp_path / "s.sqlite"),
        "--artifact",
        str(tmp_path / "ease"),
    ]
    code, out = chat(monkeypatch, capsys, args, ["a horror movie please"])
    assert code == 0 and "Here are my suggestions:" in out.out
    first = [line for line in out.out.splitlines() if line.startswith("1. ")][0]
    code, out = chat(monkeypatch, capsys, args, ["not the first", "quit", "never read"])
    assert code == 0 and "resuming session 'me' (1 turns so far)" in out.err
    assert first not in out.out and "Here are my suggestions:" in out.out


def test_simulate_writes_results_and_transcripts(folder, tmp_path, capsys):
    output = tmp_path / "sim.json"
    code = main(
        [
            "simulate",
            "--dataset",
            str(folder),
            "--agents",
            "pop,chat:ease",
            "--users",
            "8",
            "--turns",
            "3",
            "--seed",
            "0",
            "--output",
            str(output),
            "--quiet",
        ]
    )
    assert code == 0
    results = json.loads(output.read_text())
    assert [r["model"] for r in results["results"]] == ["pop", "chat:ease"]
    assert results["protocol"]["episodes"] == 8 and results["protocol"]["split"] == "loo"
    lines = (tmp_path / "sim.transcripts.jsonl").read_text().splitlines()
    assert len(lines) == 16
    assert "chat:ease" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--simulator", "llm"], "--simulator llm needs a language model"),
        (["--dialogues", "crs:x.jsonl"], "write redial:PATH"),
        (["--dialogues", "redial:/no/such.jsonl"], "no ReDial file"),
        (["--replay", "/no/such.jsonl"], "no transcript file"),
        (["--agents", "chatrec:ease"], "needs a language model to choose"),
        (["--agents", "chat:"], "names no model"),
        (["--agents", "chat:nosuchmodel"], "unknown model"),
        (["--turns", "0"], "--turns"),
    ],
)
def test_bad_simulate_flags_are_one_line_errors(folder, flags, message, capsys):
    code = main(["simulate", "--dataset", str(folder), "--users", "4", "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_llm_simulator_replay_and_dialogues_through_the_cli(folder, tmp_path, capsys):
    base = ["simulate", "--dataset", str(folder), "--seed", "0", "--quiet"]
    recorded = tmp_path / "t.jsonl"
    code = main(
        [*base, "--agents", "chat:ease", "--simulator", "llm", "--simulator-lm", "fake"]
        + ["--users", "4", "--turns", "2", "--transcripts", str(recorded)]
    )
    assert code == 0
    lines = [json.loads(x) for x in recorded.read_text().splitlines()]
    assert len(lines) == 4 and {x["simulator"] for x in lines} == {"llm"}
    out = tmp_path / "replay.json"
    code = main(
        [*base, "--agents", "ease,chat:ease", "--replay", str(recorded)] + ["--output", str(out)]
    )
    results = json.loads(out.read_text())
    assert code == 0 and results["protocol"]["simulator"] == "replay"
    assert [r["evaluated_users"] for r in results["results"]] == [4, 4]
    conversation = {
        "conversationId": "1",
        "initiatorWorkerId": 0,
        "respondentWorkerId": 1,
        "movieMentions": {"7": "Silent River (1950)", "8": "Not In The Catalog (2001)"},
        "messages": [
            {"messageId": 1, "senderWorkerId": 0, "text": "Any comedy? I heard of @7"},
            {"messageId": 2, "senderWorkerId": 1, "text": "@7 is great, or @8"},
        ],
        "initiatorQuestions": {"7": {"suggested": 1, "seen": 0, "liked": 1}},
        "respondentQuestions": [],
    }
    redial = tmp_path / "redial.jsonl"
    redial.write_text(json.dumps(conversation) + "\n")
    out = tmp_path / "dialogues.json"
    code = main([*base, "--agents", "pop", "--dialogues", f"redial:{redial}", "--output", str(out)])
    results = json.loads(out.read_text())
    assert code == 0 and results["protocol"]["dialogues"]["mapped_share"] == 0.5
    first = json.loads(out.with_suffix(".transcripts.jsonl").read_text().splitlines()[0])
    assert first["turns"][0]["user"] == "Any comedy? I heard of Silent River"
    assert first["turns"][0]["leak"] is True  # the recorded context names the target
    assert results["results"][0]["leak"]["leaked_episodes"] == 1


def test_chat_shows_a_plan_on_stderr_as_the_lm_writes_it(folder, tmp_path, monkeypatch, capsys):
    from tests.agents.test_streaming import PLAN, ChunkedLM

    monkeypatch.setattr("genrec.cli._planner_lm", lambda args: ChunkedLM([]))
    args = ["--dataset", str(folder), "--model", "ease", "--lm", "chunked", "--trace"]
    args += ["--sessions", str(tmp_path / "s.sqlite"), "--artifact", str(tmp_path / "m")]
    code, out = chat(monkeypatch, capsys, [*args, "--lm-every-turn"], ["anything spooky?"])
    assert code == 0 and "(planning) " + PLAN in out.err and PLAN not in out.out
    assert "Here are my suggestions:" in out.out

"""Transcripts as JSONL and their replay: the recorded seeker side re-run against agents."""

import json

import pytest

from genrec.agents import Agent
from genrec.agents.simulation import (
    ChatAgent,
    RankerOnly,
    read_transcripts,
    replay,
    simulate,
    write_transcripts,
)
from genrec.errors import ConfigError, DataError
from genrec.models import MODELS

TIMINGS = ("seconds",)


def agents_for(world, ranker):
    train = world.split.train
    return {
        "pop": RankerOnly("pop", MODELS["pop"]().fit(train), train.n_items),
        "chat:ease": ChatAgent("chat:ease", Agent(train, ranker)),
    }


@pytest.fixture(scope="module")
def recorded(world, ranker, tmp_path_factory):
    results, transcripts = simulate(
        world.split, agents_for(world, ranker), users=16, turns=4, seed=0
    )
    path = tmp_path_factory.mktemp("replay") / "sim.transcripts.jsonl"
    write_transcripts(path, transcripts)
    return results, path


def means(results, model):
    row = next(r for r in results["results"] if r["model"] == model)
    return {m: v["mean"] for m, v in row["metrics"].items() if m not in TIMINGS}


def test_each_line_has_the_episode_and_every_turn(world, recorded):
    _, path = recorded
    lines = read_transcripts(path)
    assert len(lines) == 32
    line = lines[-1]
    assert line["agent"] == "chat:ease" and line["budget"] == 4
    assert {"history", "target", "targets", "success_turn", "leaked_utterances"} <= set(line)
    turn = line["turns"][0]
    assert {"user", "items", "agent", "tools", "plan", "unmatched", "leak"} <= set(turn)
    assert all(0 <= i < world.data.n_items for t in line["turns"] for i in t["items"])


def test_replay_against_the_same_agent_gives_the_same_metrics(world, ranker, recorded):
    results, path = recorded
    lines = [x for x in read_transcripts(path) if x["agent"] == "chat:ease"]
    fresh = {"chat:ease": agents_for(world, ranker)["chat:ease"]}
    replayed, out = replay(
        lines, fresh, catalog=world.data.catalog, n_items=world.split.train.n_items
    )
    assert means(replayed, "chat:ease") == means(results, "chat:ease")
    assert [t["user"] for t in out[0]["turns"]] == [t["user"] for t in lines[0]["turns"]]
    assert replayed["protocol"]["replayed_from"] == ["chat:ease"]


def test_replay_compares_agents_on_the_same_episodes(world, ranker, recorded):
    _, path = recorded
    lines = [x for x in read_transcripts(path) if x["agent"] == "chat:ease"]
    replayed, out = replay(
        lines,
        agents_for(world, ranker),
        catalog=world.data.catalog,
        n_items=world.split.train.n_items,
    )
    by = {r["model"]: r for r in replayed["results"]}
    assert by["chat:ease"]["significance"]["success"]["best"]
    assert by["pop"]["significance"]["success"]["mean_diff"] < 0
    assert [x["episode"] for x in out if x["agent"] == "pop"] == [x["episode"] for x in lines]
    # the replayed seeker cannot answer beyond its recorded turns
    assert all(len(x["turns"]) <= len(y["turns"]) for x, y in zip(out, lines + lines))


def test_bad_replay_input_is_refused(tmp_path, world):
    with pytest.raises(ConfigError, match="no transcript file"):
        read_transcripts(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"agent": "x"}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1 lacks \['target', 'history', 'turns'\]"):
        replay(read_transcripts(bad), {}, catalog=world.data.catalog, n_items=3)
    bad.write_text("{oops\n")
    with pytest.raises(DataError, match="line 1 is not JSON"):
        read_transcripts(bad)

"""Simulated users: the rule simulator's limits, the episode metrics and the results shape."""

import json
import re

import pytest
from rapidfuzz import fuzz

from genrec.agents import Agent
from genrec.agents.simulation import (
    ChatAgent,
    Episode,
    RankerOnly,
    TurnResult,
    episode_metrics,
    simulate,
    write_transcripts,
)
from genrec.agents.simulator import RuleSimulator, TargetProfile
from genrec.errors import ConfigError
from genrec.models import MODELS


@pytest.fixture(scope="module")
def outcome(world, ranker):
    train = world.split.train
    agents = {
        "pop": RankerOnly("pop", MODELS["pop"]().fit(train), train.n_items),
        "chat:ease": ChatAgent("chat:ease", Agent(train, ranker)),
    }
    return simulate(world.split, agents, users=24, turns=4, seed=0)


def test_the_simulator_reveals_at_most_two_attributes_a_turn_and_never_the_title(world, outcome):
    catalog = world.data.catalog
    genre_words = {g.lower() for i in range(world.data.n_items) for g in catalog.genres(i)}
    _, transcripts = outcome
    assert transcripts
    for episode in transcripts:
        title = catalog.title(episode["target"]).lower()
        revealed_so_far = set()
        for turn in episode["turns"]:
            assert len(turn["revealed"]) <= 2
            revealed_so_far |= {str(v).lower() for _, v in turn["revealed"]}
            text = turn["user"].lower()
            assert fuzz.partial_ratio(title, text) < 60, (title, text)
            said = {g for g in genre_words if re.search(rf"\b{re.escape(g)}\b", text)}
            assert said <= revealed_so_far  # names no attribute it has not revealed


def test_the_simulator_never_receives_the_title():
    assert set(TargetProfile.__dataclass_fields__) == {"genres", "year", "keywords"}
    sim = RuleSimulator(TargetProfile(("Horror",), 1972), lambda i: (("Comedy",), 1995))
    assert sim.opening() == "I am looking for a horror movie from the 1970s."
    assert sim.reply([5, 6, 7], question=None) == "Something older."
    sim = RuleSimulator(TargetProfile(("Horror", "Comedy", "Drama"), 1972))
    sim.opening()
    assert sim.reply([], question="which decade do you prefer?") == (
        "Not these. Something from the 1970s. It should be a drama movie."
    )


def test_episode_metrics_by_hand():
    episode = Episode(user=0, history=(1, 2), target=9)
    results = [
        TurnResult([3, 1, 4], [3, 1, 4, 5], plan={"valid": True}, tool_calls=2),
        TurnResult(
            [3, 9, 7],
            [3, 9, 7, 8],
            plan={"valid": False, "lm_calls": 2},
            tool_calls=2,
            tool_failures=1,
        ),
    ]
    m = episode_metrics(results, episode, hit_turn=2, turns=5, n_items=10)
    assert m["success"] == 1 and m["turns"] == 2 and m["first_turn_success"] == 0
    assert m["recall@1"] == 0 and m["recall@10"] == 1
    assert m["repeat_rate"] == pytest.approx(1 / 6) and m["seen_rate"] == pytest.approx(1 / 6)
    assert m["plan_validity"] == 0.5 and m["tool_failure_rate"] == 0.25 and m["lm_calls"] == 2
    miss = episode_metrics(results[:1], episode, hit_turn=None, turns=5, n_items=10)
    assert miss["success"] == 0 and miss["turns"] == 6


def test_results_have_the_results_json_shape_and_the_agent_wins(outcome, tmp_path):
    results, transcripts = outcome
    assert results["protocol"]["episodes"] == 24 and results["protocol"]["simulator"] == "rule"
    by_model = {r["model"]: r for r in results["results"]}
    for r in by_model.values():
        for name in [
            "success",
            "turns",
            "recall@1",
            "recall@50",
            "first_turn_success",
            "out_of_catalog_rate",
            "repeat_rate",
            "seen_rate",
        ]:
            m = r["metrics"][name]
            assert m["ci_low"] <= m["mean"] <= m["ci_high"]
        assert r["metrics"]["out_of_catalog_rate"]["mean"] == 0
    assert (
        by_model["chat:ease"]["metrics"]["success"]["mean"]
        > by_model["pop"]["metrics"]["success"]["mean"]
    )
    assert by_model["chat:ease"]["metrics"]["repeat_rate"]["mean"] == 0
    assert by_model["chat:ease"]["significance"]["success"]["best"]
    write_transcripts(tmp_path / "t.jsonl", transcripts)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == 48 and json.loads(lines[0])["agent"] == "pop"
    json.dumps(results)


def test_bad_simulation_settings_are_refused(world):
    with pytest.raises(ConfigError, match="unknown simulator 'gpt'.*rule, llm"):
        simulate(world.split, {}, simulator="gpt")
    with pytest.raises(ConfigError, match="--simulator-lm"):
        simulate(world.split, {}, simulator="llm")
    with pytest.raises(ConfigError, match="--turns"):
        simulate(world.split, {}, turns=0)


def test_the_attribute_oracle_shows_only_matching_items_ten_new_a_turn(world):
    from genrec.agents.simulation import AttributeOracle

    oracle = AttributeOracle(
        "oracle:ease", MODELS["ease"]().fit(world.split.train), world.split.train
    )
    catalog = world.data.catalog
    target = 7
    episode = Episode(user=0, history=(3,), target=target)
    oracle.begin("e", episode)
    shown = [oracle.turn("e", "x").items for _ in range(3)]
    want = {
        i
        for i in range(world.data.n_items)
        if i != 3
        and set(catalog.genres(target)) <= set(catalog.genres(i))
        and catalog.year(i) // 10 == catalog.year(target) // 10
    }
    assert target in want and sorted(i for s in shown for i in s) == sorted(want)
    assert all(len(s) <= 10 for s in shown) and shown[-1] == []

"""An utterance (or an LM plan it provokes) cannot run a tool or argument outside the schema."""

import json

from genrec.agents import Agent
from genrec.data.synthetic import movie_clusters
from genrec.models import EASE
from genrec.text.lm import FakeLanguageModel

WORLD = movie_clusters(n_users=40, n_items=24)
RANKER = EASE().fit(WORLD.split.train)
EVIL_PLANS = [
    {"steps": [{"tool": "sql", "args": {"query": "DROP TABLE items"}}]},
    {
        "steps": [
            {
                "tool": "filter",
                "args": {"add": [{"column": "title; DROP TABLE items", "op": "=", "value": 1}]},
            }
        ]
    },
    {
        "steps": [
            {
                "tool": "filter",
                "args": {"add": [{"column": "genre", "op": "has", "value": "x' OR '1'='1"}]},
            }
        ]
    },
    {"steps": [{"tool": "recommend", "args": {"k": 10, "session": "other"}}]},
    {"steps": [{"tool": "__class__", "args": {}}]},
]


class TestToolOutsideSchema:
    def test_an_lm_plan_outside_the_schema_is_never_run(self):
        for plan in EVIL_PLANS:
            lm = FakeLanguageModel(generate_fn=lambda prompt: json.dumps(plan))
            agent = Agent(WORLD.split.train, RANKER, lm=lm)
            reply = agent.respond("s", "SELECT * FROM items; drop table items")
            run = [step["tool"] for step in reply.trace]
            assert "sql" not in run and "__class__" not in run
            assert all("session" not in step["args"] for step in reply.trace)
            assert reply.plan["fallback"] or any("error" in step for step in reply.trace)
            assert len(agent.tools.table.filter([])) == WORLD.data.n_items  # table intact
            assert all(0 <= i < WORLD.data.n_items for i in reply.items)

    def test_sql_in_an_utterance_is_only_words(self):
        agent = Agent(WORLD.split.train, RANKER)
        reply = agent.respond("s", "comedy'; DROP TABLE items; --")
        assert [step["tool"] for step in reply.trace] == ["filter"]
        assert all(WORLD.data.catalog.genres(i) == ("Comedy",) for i in reply.items)
        assert len(agent.tools.table.filter([])) == WORLD.data.n_items

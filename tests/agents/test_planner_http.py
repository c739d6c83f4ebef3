"""The LM planner through an OpenAI-compatible server (genrec's own, serving a scripted model)."""

import json

import pytest

from genrec.agents import Agent
from genrec.text.lm import FakeLanguageModel

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def test_plans_come_back_over_http_and_are_validated(world, ranker):
    from genrec.serving.lm_server import serve_in_thread
    from genrec.text.openai_lm import OpenAICompatibleLM

    plan = {
        "steps": [
            {
                "tool": "filter",
                "args": {"add": [{"column": "year", "op": "between", "value": [1970, 1979]}]},
            },
            {"tool": "rank", "args": {"by": "popularity"}},
        ]
    }
    for constrained in (True, False):  # a server that constrains (JSON mode) and one that refuses
        scripted = FakeLanguageModel(
            constrained_json=constrained,
            generate_fn=lambda prompt: "Here you go:\n" + json.dumps(plan),
        )
        with serve_in_thread(scripted) as url:
            agent = Agent(
                world.split.train, ranker, lm=OpenAICompatibleLM(url, model="fake"), fast_path=False
            )
            reply = agent.respond("h", "seventies classics everyone watched")
            assert reply.plan["valid"] and reply.plan["constrained"] is constrained
            # a refused JSON mode costs one request, then the server is asked plainly
            assert reply.plan["lm_calls"] == (1 if constrained else 2)
            again = agent.respond("h2", "seventies classics everyone watched")
            assert again.plan["lm_calls"] == 1 and not again.plan["errors"]
        assert [s["tool"] for s in reply.trace] == ["filter", "rank"]
        assert reply.items and all(1970 <= world.data.catalog.year(i) <= 1979 for i in reply.items)

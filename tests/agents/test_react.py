"""Step-by-step (ReAct) control: thought, tool call, observation, until finish or the cap."""

import json
import re

import pytest

from genrec.agents import Agent
from genrec.agents.react import MAX_STEPS, ReactPlanner
from genrec.agents.schema import parse_plan
from genrec.errors import ConfigError
from genrec.text.json_schema import validate
from genrec.text.lm import FakeLanguageModel

HORROR = {"column": "genre", "op": "has", "value": "Horror"}


def scripted(*steps):
    """A fake LM answering step n of a turn with ``steps[n - 1]`` (n read off the prompt's
    last "Step n:" cue), as JSON."""

    def answer(prompt: str) -> str:
        n = int(re.findall(r"Step (\d+):$", prompt.rstrip())[-1])
        step = steps[min(n, len(steps)) - 1]
        return step if isinstance(step, str) else json.dumps(step)

    return FakeLanguageModel(generate_fn=answer)


def step(tool, args=None, thought="t"):
    return {"thought": thought, "tool": tool, "args": args or {}}


def test_each_step_runs_before_the_next_is_asked_and_sees_its_observation(world, ranker):
    lm = scripted(step("filter", {"add": [HORROR]}), step("recommend", {"k": 3}), step("finish"))
    agent = Agent(world.split.train, ranker, lm=lm, control="react")
    reply = agent.respond("r", "anything spooky?")
    assert [s["tool"] for s in reply.trace] == ["filter", "recommend"]
    assert reply.plan["planner"] == "react" and reply.plan["lm_calls"] == 3
    assert reply.plan["steps"] == 2 and reply.plan["valid"] and not reply.plan["capped"]
    prompts = [p for _, p, _ in lm.calls]
    assert "Observation" not in prompts[0].split('"anything spooky?"')[1]
    # the second prompt holds the first step and what the filter did (the constraint)
    assert '"tool":"filter"' in prompts[1] and 'Observation: {"constraints":[' in prompts[1]
    assert len(reply.items) == 3
    assert all(world.data.catalog.genres(i) == ("Horror",) for i in reply.items)


def test_the_loop_stops_at_the_step_cap(world, ranker):
    lm = scripted(step("rank", {"by": "popularity"}))  # never finishes
    reply = Agent(world.split.train, ranker, lm=lm, control="react").respond("c", "hmm, well")
    assert reply.plan["capped"] and reply.plan["steps"] == MAX_STEPS
    assert reply.plan["lm_calls"] == MAX_STEPS and len(reply.trace) == MAX_STEPS


def test_an_invalid_step_gets_one_repair_then_the_rules_take_the_turn(world, ranker):
    repaired = scripted('{"thought": "x", "tool": "sql", "args": {}}')
    lm_calls = []

    def answers(prompt):
        lm_calls.append(prompt)
        return [
            '{"thought": "x", "tool": "rank", "args": {"by": "price"}}',  # invalid
            json.dumps(step("rank", {"by": "popularity"})),  # the repair
            json.dumps(step("finish")),
        ][len(lm_calls) - 1]

    agent = Agent(
        world.split.train, ranker, lm=FakeLanguageModel(generate_fn=answers), control="react"
    )
    reply = agent.respond("p", "stuff everyone watched")
    assert reply.plan["repaired"] and not reply.plan["valid"]
    assert "That step is invalid" in lm_calls[1] and "must be one of" in lm_calls[1]
    assert [s["tool"] for s in reply.trace] == ["rank"]
    broken = Agent(world.split.train, ranker, lm=repaired, control="react", fast_path=False)
    fallback = broken.respond("f", "a comedy please")
    assert fallback.plan["fallback"] and fallback.plan["lm_calls"] == 2
    assert all(world.data.catalog.genres(i) == ("Comedy",) for i in fallback.items)


def test_the_fast_path_and_the_step_schema(world, ranker):
    lm = scripted(step("finish"))
    agent = Agent(world.split.train, ranker, lm=lm, control="react")
    assert agent.respond("f", "a comedy please").plan["planner"] == "rules" and not lm.calls
    schema = agent.planner.step_schema
    good = step("filter", {"add": [HORROR]})
    assert validate(good, schema) is None and validate(step("finish"), schema) is None
    assert validate(step("sql", {"query": "DROP"}), schema) is not None
    good.pop("thought")
    assert parse_plan({"steps": [good]})[0].tool == "filter"
    assert isinstance(agent.planner, ReactPlanner)


def test_an_unknown_control_is_refused(world, ranker):
    with pytest.raises(ConfigError, match="control must be one of"):
        Agent(world.split.train, ranker, lm=FakeLanguageModel(), control="tree")

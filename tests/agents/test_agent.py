"""The agent end to end: grounded replies, critiques, clarifying questions, the LM planner."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genrec.agents import Agent
from genrec.agents.clarify import entropy
from genrec.agents.item_table import ItemTable
from genrec.agents.planner import INSTRUCTIONS
from genrec.agents.schema import TOOL_SCHEMAS
from genrec.text.lm import FakeLanguageModel

SCRIPT = [
    "hello",
    "a comedy please",
    "not the first",
    "more like the second",
    "something older",
    "why the third?",
    "tell me about the second",
    "do you have Wild Garden?",
    "no comedy",
    "drama from the 80s",
]


def titles_in(text, catalog):
    """Every catalog item whose title the text names (titles are distinct two-word names)."""
    return {i for i in range(len(catalog.vocab)) if catalog.title(i) in text}


def test_replies_are_grounded_and_never_show_seen_unwanted_or_repeated_items(world, ranker):
    data = world.split.train
    agent = Agent(data, ranker)
    history = data.user_items[0].indices.tolist()
    agent.start("s", history=history)
    shown_before, asked_for = set(), {data.catalog.title(i): i for i in range(data.n_items)}
    for text in SCRIPT:
        reply = agent.respond("s", text)
        session = agent.store.get("s")
        assert all(0 <= i < data.n_items for i in reply.items)  # catalog ids
        assert reply.item_ids == data.items.ids[reply.items].tolist()
        pinned = {i for i in reply.items if "Here is what I found" in reply.text}
        for i in set(reply.items) - pinned:  # nothing seen/unwanted
            assert i not in history and i not in session.unwanted and i not in shown_before
        named = titles_in(reply.text, data.catalog)  # names only mentions
        assert named <= set(reply.mentions)
        liked = set(session.liked)  # the user's own words: "I loved X"
        assert set(reply.mentions) <= set(reply.items) | shown_before | set(history) | liked
        shown_before |= set(reply.items)
    assert asked_for["Wild Garden"] in shown_before  # asked by title: shown although seen or not


def test_critiques_move_the_list(world, ranker):
    data, catalog = world.split.train, world.split.train.catalog
    agent = Agent(data, ranker, k=3)
    agent.start("c")
    first = agent.respond("c", "a drama please").items
    assert first and all("Drama" in catalog.genres(i) for i in first)
    older = agent.respond("c", "something older").items
    median = sorted(catalog.year(i) for i in first)[len(first) // 2]
    assert older and all(catalog.year(i) < median for i in older)
    seed = older[1]
    liked = agent.respond("c", "more like the second")
    assert agent.store.get("c").liked == [seed]
    assert all(catalog.genres(i) == catalog.genres(seed) for i in liked.items[:3])
    agent.respond("c", "not the first")
    assert agent.store.get("c").unwanted == [liked.items[0]]


def test_the_clarifying_question_asks_about_the_most_informative_attribute(world, ranker):
    data = world.split.train
    agent = Agent(data, ranker, ask_above=20)
    agent.start("q")
    reply = agent.respond("q", "hi, what should I watch?")
    table = ItemTable(data.catalog)
    items = list(range(data.n_items))
    gains = {a: entropy(table.value_counts(a, items)) for a in ("genre", "decade")}
    best = max(gains, key=gains.get)
    assert reply.question and best in reply.question and reply.items
    second = agent.respond("q", "hmm, anything")  # the other attribute next time
    assert second.question and (set(gains) - {best}).pop() in second.question
    narrowed = agent.respond("q", "comedy please")  # a constraint: no question
    assert narrowed.question is None


def plan_answer(steps):
    return json.dumps({"steps": steps})


def test_the_lm_planner_runs_a_valid_plan(world, ranker):
    lm = FakeLanguageModel(
        generate_fn=lambda prompt: (
            "Plan: "
            + plan_answer(
                [
                    {
                        "tool": "filter",
                        "args": {"add": [{"column": "genre", "op": "has", "value": "Horror"}]},
                    },
                    {"tool": "recommend", "args": {"k": 3}},
                ]
            )
        )
    )
    agent = Agent(world.split.train, ranker, lm=lm)
    reply = agent.respond("p", "anything spooky?")
    assert reply.plan["valid"] and not reply.plan["fallback"] and reply.plan["lm_calls"] == 1
    assert len(reply.items) == 3
    assert all(world.data.catalog.genres(i) == ("Horror",) for i in reply.items)
    assert INSTRUCTIONS in lm.calls[0][1] and '"anything spooky?"' in lm.calls[0][1]


def test_one_repair_round_then_the_rules(world, ranker):
    answers = iter(
        [
            '{"steps": [{"tool": "rank", "args": {"by": "price"}}]}',
            plan_answer([{"tool": "rank", "args": {"by": "popularity"}}]),
        ]
    )
    agent = Agent(
        world.split.train, ranker, lm=FakeLanguageModel(generate_fn=lambda p: next(answers))
    )
    reply = agent.respond("r", "stuff everyone watched")  # nothing the rules parse
    assert reply.plan["repaired"] and not reply.plan["valid"] and reply.plan["lm_calls"] == 2
    assert "must be one of" in reply.plan["errors"][0]
    pop = world.split.train.item_counts
    assert pop[reply.items[0]] == max(pop)
    no_idea = FakeLanguageModel(generate_fn=lambda p: "no idea")
    broken = Agent(world.split.train, ranker, lm=no_idea, fast_path=False)
    fallback = broken.respond("f", "a comedy please")
    assert fallback.plan["fallback"] and fallback.plan["lm_calls"] == 2
    assert all(world.data.catalog.genres(i) == ("Comedy",) for i in fallback.items)


def test_a_bad_k_is_refused(world, ranker):
    from genrec.errors import ConfigError

    with pytest.raises(ConfigError, match="k must be"):
        Agent(world.split.train, ranker, k=0)


def test_answers_and_explanations_come_from_the_catalog(world, ranker):
    from genrec.pipelines.explain import TemplateExplainer

    data = world.split.train
    agent = Agent(data, ranker, k=3)
    agent.start("a", history=[0, 4, 8])
    shown = agent.respond("a", "a comedy please").items
    answer = agent.respond("a", "when was the second one made?")
    assert answer.items == [] and answer.text == (
        f"{data.catalog.title(shown[1])}: released in {data.catalog.year(shown[1])}."
    )
    why = agent.respond("a", "why the first?")
    assert why.text == TemplateExplainer(data.catalog).explain([0, 4, 8], shown[0]).text
    assert agent.store.get("a").last_shown == shown  # answers keep the list they refer to


UTTERANCES = SCRIPT + [
    "not the third",
    "something newer",
    "horror from the 70s",
    "start over",
    "I loved Silent River",
    "popular ones",
    "more like the last one",
    "no drama, no horror",
    "why the second?",
    "hmm",
]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    script=st.lists(st.sampled_from(UTTERANCES), min_size=1, max_size=6), user=st.integers(0, 79)
)
def test_grounding_holds_for_any_conversation(world, ranker, script, user):
    data = world.split.train
    agent = Agent(data, ranker, k=4)
    history = data.user_items[user].indices.tolist()
    agent.start("g", history=history)
    shown_before = set()
    for text in script:
        reply = agent.respond("g", text)
        unwanted = set(agent.store.get("g").unwanted)
        pinned = set(reply.items) if "Here is what I found" in reply.text else set()
        for i in reply.items:
            assert 0 <= i < data.n_items
            if i not in pinned:
                assert i not in history and i not in unwanted and i not in shown_before
        assert titles_in(reply.text, data.catalog) <= set(reply.mentions)
        liked = set(agent.store.get("g").liked)  # the user's own words: "I loved X"
        assert set(reply.mentions) <= set(reply.items) | shown_before | set(history) | liked
        shown_before |= set(reply.items)


def test_a_constraining_lm_plans_under_the_catalog_schema(world, ranker):
    wild = {
        "steps": [
            {
                "tool": "filter",
                "args": {"add": [{"column": "genre", "op": "has", "value": "Polka"}]},
            }
        ]
    }
    lm = FakeLanguageModel(constrained_json=True, generate_fn=lambda p: json.dumps(wild))
    agent = Agent(world.split.train, ranker, lm=lm)
    reply = agent.respond("c", "polka films")
    # "Polka" is no catalog genre: the schema's enum rules it out, so the constrained model
    # answers with a plan inside it (the fake: the smallest one) and the first answer is valid
    assert reply.plan["constrained"] and reply.plan["valid"] and reply.plan["lm_calls"] == 1
    schema = agent.planner.schema
    genres = schema["properties"]["steps"]["items"]["anyOf"][0]["properties"]["args"]
    genre_enum = genres["properties"]["add"]["items"]["anyOf"][0]["properties"]["value"]["enum"]
    assert genre_enum == agent.tools.table.genre_names and "Polka" not in genre_enum
    plain = Agent(world.split.train, ranker, lm=lm, constrained=False)
    unconstrained = plain.respond("c", "polka films")
    # without the constraint the plan passes the generic schema and fails at the tool
    assert not unconstrained.plan["constrained"] and unconstrained.plan["valid"]
    assert any("Polka" in step.get("error", "") for step in unconstrained.trace)


class CutShort:
    """A constraining model whose answers the token budget cut after the first step."""

    name, constrained_json = "cut", True

    def __init__(self, answer: str):
        self.answer, self.schemas = answer, []

    def generate(self, prompts, *, max_new_tokens=64, json_schema=None, **options):
        self.schemas.append(json_schema)
        return [self.answer for _ in prompts]

    def count_tokens(self, text):
        return len(text.split())


def test_a_cut_constrained_answer_keeps_its_complete_steps(world, ranker):
    step = {
        "tool": "filter",
        "args": {"add": [{"column": "genre", "op": "has", "value": "Horror"}]},
    }
    cut = '{"steps": [' + json.dumps(step) + ', {"tool": "recommend", "args": {"k'
    lm = CutShort(cut)
    reply = Agent(world.split.train, ranker, lm=lm).respond("t", "anything spooky?")
    assert reply.plan["valid"] and reply.plan["truncated"] == 1 and reply.plan["lm_calls"] == 1
    assert lm.schemas[0] is not None  # asked under the plan schema
    assert [s["tool"] for s in reply.trace][0] == "filter"
    assert all(world.data.catalog.genres(i) == ("Horror",) for i in reply.items)
    # an unconstrained model's cut answer is not trusted: repair, then the rules
    plain = Agent(world.split.train, ranker, lm=lm, constrained=False)
    assert plain.respond("u", "anything spooky?").plan["fallback"]
    nothing = Agent(world.split.train, ranker, lm=CutShort('{"steps": [{"tool": "fil'))
    assert nothing.respond("v", "anything spooky?").plan["fallback"]


def test_the_fast_path_leaves_the_lm_only_what_the_rules_do_not_parse(world, ranker):
    horror = plan_answer(
        [{"tool": "filter", "args": {"add": [{"column": "genre", "op": "has", "value": "Horror"}]}}]
    )
    lm = FakeLanguageModel(generate_fn=lambda prompt: horror)
    agent = Agent(world.split.train, ranker, lm=lm)
    parsed = agent.respond("f", "a comedy please")
    assert parsed.plan["planner"] == "rules" and parsed.plan["lm_calls"] == 0 and not lm.calls
    assert all(world.data.catalog.genres(i) == ("Comedy",) for i in parsed.items)
    unparsed = agent.respond("f", "anything spooky?")
    assert unparsed.plan["planner"] == "plan-first" and unparsed.plan["lm_calls"] == 1
    assert len(lm.calls) == 1 and '"anything spooky?"' in lm.calls[0][1]
    every = Agent(world.split.train, ranker, lm=lm, fast_path=False)
    assert every.respond("e", "a comedy please").plan["lm_calls"] == 1  # the LM plans it all


def test_the_planning_prompt_is_short(world, ranker):
    from genrec.agents.schema import schema_text

    planner = Agent(world.split.train, ranker, lm=FakeLanguageModel()).planner
    agent = Agent(world.split.train, ranker)
    agent.start("s", history=[0])
    agent.respond("s", "a comedy please")
    prompt = planner.prompt("more like the second", agent.store.get("s"))
    # every tool is named, yet the prompt is shorter than the full schemas alone
    assert all(f"\n{name} " in prompt for name in TOOL_SCHEMAS)
    assert len(prompt) < len(schema_text()) and "additionalProperties" not in prompt
    assert '"more like the second"' in prompt and "1. " in prompt

"""The item table, the plan schema, fuzzy titles and the rule-based understanding."""

import json

import numpy as np
import pytest

from genrec.agents.item_table import ItemTable
from genrec.agents.schema import TOOL_SCHEMAS, PlanError, parse_plan
from genrec.agents.session import Condition, Session
from genrec.agents.titles import TitleIndex
from genrec.agents.understanding import RuleUnderstanding
from genrec.errors import ConfigError


@pytest.fixture(scope="module")
def table(world):
    return ItemTable(world.data.catalog)


@pytest.fixture(scope="module")
def rules(world, table):
    return RuleUnderstanding(table, TitleIndex(world.data.catalog))


def test_filters_match_a_direct_computation(world, table):
    catalog = world.data.catalog
    got = table.filter(
        [Condition("genre", "has", "Drama"), Condition("year", "between", [1960, 1979])]
    )
    want = [
        i
        for i in range(world.data.n_items)
        if "Drama" in catalog.genres(i) and 1960 <= catalog.year(i) <= 1979
    ]
    assert got.tolist() == want and want
    lacks = table.filter([Condition("genre", "lacks", "Horror"), Condition("year", "<", 1960)])
    assert lacks.tolist() == [
        i
        for i in range(world.data.n_items)
        if "Horror" not in catalog.genres(i) and catalog.year(i) < 1960
    ]


@pytest.mark.parametrize(
    "condition, message",
    [
        (Condition("title", "=", "x"), "unknown filter column"),
        (Condition("year", "like", 1990), "not allowed"),
        (Condition("genre", "has", "Comedy' OR 1=1 --"), "unknown genre"),
        (Condition("year", "<", "1990; DROP TABLE items"), "takes a number"),
        (Condition("year", "between", [1990]), "low, high"),
    ],
)
def test_conditions_outside_the_whitelist_are_refused(table, condition, message):
    with pytest.raises(ConfigError, match=message):
        table.filter([condition])
    assert len(table.filter([])) == table.n_items  # the table is intact


def test_every_tool_schema_is_json_and_plans_are_validated():
    json.dumps(TOOL_SCHEMAS)
    ok = parse_plan('Sure! {"steps": [{"tool": "similar", "args": {"to": [{"position": 2}]}}]}')
    assert ok[0].args == {"to": [{"position": 2}]}
    for bad, message in [
        ({"steps": []}, "1 to 8 steps"),
        ({"steps": [{"tool": "rank", "args": {"by": "price"}}]}, "one of"),
        ({"steps": [{"tool": "rank", "args": {"by": "popularity", "sql": "x"}}]}, "unknown key"),
        ({"steps": [{"tool": "similar", "args": {"to": [{"position": 99}]}}]}, r"\[1, 50\]"),
        ({"steps": [{"tool": "search", "args": {"query": "x" * 500}}]}, "longer than"),
        (
            {"steps": [{"tool": "filter", "args": {"add": [{"column": "genre", "op": "has"}]}}]},
            "lacks",
        ),
        ({"plan": []}, "a plan is a JSON object"),
    ]:
        with pytest.raises(PlanError, match=message):
            parse_plan(bad)


def test_fuzzy_titles_find_the_item_and_refuse_strangers(world):
    titles = TitleIndex(world.data.catalog)
    assert titles.search("golden rivr", limit=1) == [1]
    assert titles.search("Casablanca") == []


def _plan(rules, text, last_shown=()):
    return [c.to_dict() for c in rules.plan(text, Session("s", last_shown=list(last_shown)))]


def test_rules_read_genres_negations_and_decades(rules):
    plan = _plan(rules, "Something funny from the 60s, but no horror")
    assert plan == [
        {
            "tool": "filter",
            "args": {
                "add": [
                    {"column": "genre", "op": "has", "value": "Comedy"},
                    {"column": "genre", "op": "lacks", "value": "Horror"},
                    {"column": "year", "op": "between", "value": [1960, 1969]},
                ]
            },
        }
    ]
    assert _plan(rules, "anything before 1970")[0]["args"]["add"] == [
        {"column": "year", "op": "<", "value": 1970}
    ]
    assert _plan(rules, "less violent please")[0]["args"]["add"] == [
        {"column": "genre", "op": "lacks", "value": g} for g in ("Action", "Horror")
    ]


def test_rules_read_references_to_the_latest_list(world, rules):
    shown = [4, 8, 12]
    assert _plan(rules, "not that one", shown)[0] == {
        "tool": "remember",
        "args": {"unwanted": [{"position": 1}]},
    }
    assert _plan(rules, "more like the second", shown) == [
        {"tool": "remember", "args": {"like": [{"position": 2}]}},
        {"tool": "similar", "args": {"to": [{"position": 2}]}},
    ]
    assert _plan(rules, "why the last one?", shown) == [
        {"tool": "explain", "args": {"item": {"position": 3}}}
    ]
    assert _plan(rules, "tell me about the third", shown)[0]["tool"] == "ask"
    older = _plan(rules, "something older", shown)[0]["args"]["add"][0]
    years = sorted(world.data.catalog.year(i) for i in shown)
    assert older == {"column": "year", "op": "<", "value": years[1]}


def test_rules_read_titles(rules):
    assert _plan(rules, "I loved Golden River!") == [
        {"tool": "remember", "args": {"like": [{"title": "golden river"}]}},
        {"tool": "similar", "args": {"to": [{"title": "golden river"}]}},
    ]
    assert _plan(rules, 'do you have "Wild Garden"?') == [
        {"tool": "lookup", "args": {"titles": ["wild garden"]}}
    ]
    assert _plan(rules, "hello") == [{"tool": "recommend", "args": {"k": 10}}]


def test_value_counts_split_multi_genre_items(world, table):
    counts = table.value_counts("genre", [1, 2])  # Drama+Romance, Horror
    assert counts == {"Drama": 0.5, "Romance": 0.5, "Horror": 1.0}
    assert np.isclose(sum(table.value_counts("decade", range(8)).values()), 8)

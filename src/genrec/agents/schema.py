"""The tools the agent may call, each with a JSON schema for its arguments, and plan validation.

A plan is ``{"steps": [{"tool": NAME, "args": {...}}, ...]}``. :func:`parse_plan` accepts it
only if every tool is in :data:`TOOL_SCHEMAS` and every argument object satisfies the tool's
schema (no unknown keys, right types, bounded strings and lists); anything else is a
:class:`PlanError` naming the offending step, so a planner cannot reach a tool or an argument
outside the schema. The schemas are plain JSON Schema (a subset checked by :func:`validate`), so
they can go verbatim into an LM prompt or an OpenAI-compatible server's JSON mode.

Example:
    >>> plan = parse_plan({"steps": [{"tool": "filter", "args": {"add": [
    ...     {"column": "genre", "op": "has", "value": "Comedy"}]}}]})
    >>> plan[0].tool, plan[0].args["add"][0]["value"]
    ('filter', 'Comedy')
    >>> try:
    ...     parse_plan({"steps": [{"tool": "sql", "args": {"query": "DROP TABLE items"}}]})
    ... except PlanError as exc:
    ...     print(str(exc)[:31])
    step 1: unknown tool 'sql'; too
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genrec.errors import ConfigError
from genrec.text.json_schema import validate

MAX_STEPS = 8
_TEXT = {"type": "string", "maxLength": 200}
ITEM_REF = {
    "type": "object",
    "description": "an item: its 1-based position in the latest list, or its title",
    "properties": {"position": {"type": "integer", "minimum": 1, "maximum": 50}, "title": _TEXT},
    "additionalProperties": False,
    "minProperties": 1,
}
_ITEM_REFS = {"type": "array", "items": ITEM_REF, "maxItems": 10}
CONDITION = {
    "type": "object",
    "properties": {
        "column": {"type": "string", "enum": ["genre", "year", "popularity"]},
        "op": {"type": "string", "enum": ["has", "lacks", "=", "<", "<=", ">", ">=", "between"]},
        "value": {
            "type": ["string", "integer", "number", "array"],
            "maxLength": 60,
            "items": {"type": "integer"},
            "maxItems": 2,
        },
    },
    "required": ["column", "op", "value"],
    "additionalProperties": False,
}


def _tool(description: str, properties: dict | None = None, required=()) -> dict:
    return {
        "description": description,
        "type": "object",
        "properties": properties or {},
        "required": list(required),
        "additionalProperties": False,
    }


# tool name -> JSON schema of its arguments (the description is what an LM planner reads).
TOOL_SCHEMAS: dict[str, dict] = {
    "filter": _tool(
        "add or remove constraints on genre, year and popularity (a number of ratings)",
        {
            "add": {"type": "array", "items": CONDITION, "maxItems": 6},
            "remove": {
                "type": "array",
                "maxItems": 3,
                "items": {"type": "string", "enum": ["genre", "year", "popularity"]},
            },
            "reset": {"type": "boolean"},
        },
    ),
    "search": _tool(
        "keep the items whose text best matches a free-text query", {"query": _TEXT}, ["query"]
    ),
    "similar": _tool("prefer items similar to these items", {"to": _ITEM_REFS}, ["to"]),
    "rank": _tool(
        "how to order the candidates",
        {"by": {"type": "string", "enum": ["preference", "popularity"]}},
        ["by"],
    ),
    "lookup": _tool(
        "find items by (approximate) title and show them",
        {"titles": {"type": "array", "items": _TEXT, "maxItems": 5}},
        ["titles"],
    ),
    "remember": _tool(
        "record items the user likes or does not want", {"like": _ITEM_REFS, "unwanted": _ITEM_REFS}
    ),
    "ask": _tool(
        "answer a question about one item from its text and reviews",
        {"item": ITEM_REF, "question": _TEXT},
        ["item"],
    ),
    "explain": _tool("explain why an item is recommended", {"item": ITEM_REF}, ["item"]),
    "clarify": _tool("ask the user the most informative question about their preference"),
    "recommend": _tool(
        "show the top items of the candidates",
        {"k": {"type": "integer", "minimum": 1, "maximum": 50}},
    ),
}


class PlanError(ConfigError):
    """A plan that does not satisfy the tool schemas (the message names the step and the fix)."""


@dataclass(frozen=True)
class ToolCall:
    """One validated step of a plan."""

    tool: str
    args: dict

    def to_dict(self) -> dict:
        return {"tool": self.tool, "args": self.args}


def parse_plan(plan: Any) -> list[ToolCall]:
    """Validated steps of ``plan`` (a dict or its JSON text); PlanError otherwise."""
    if isinstance(plan, str):
        plan = json.loads(extract_json(plan))
    if not isinstance(plan, dict) or set(plan) != {"steps"} or not isinstance(plan["steps"], list):
        raise PlanError('a plan is a JSON object {"steps": [{"tool": NAME, "args": {...}}]}')
    if not 1 <= len(plan["steps"]) <= MAX_STEPS:
        raise PlanError(f"a plan has 1 to {MAX_STEPS} steps, got {len(plan['steps'])}")
    calls = []
    for n, step in enumerate(plan["steps"], start=1):
        if not isinstance(step, dict) or not set(step) <= {"tool", "args"} or "tool" not in step:
            raise PlanError(
                f'step {n}: write {{"tool": NAME, "args": {{...}}}}, got {step!r}'[:300]
            )
        schema = TOOL_SCHEMAS.get(step["tool"]) if isinstance(step["tool"], str) else None
        if schema is None:
            raise PlanError(
                f"step {n}: unknown tool {step['tool']!r}; tools: {', '.join(TOOL_SCHEMAS)}"
            )
        args = step.get("args", {})
        problem = validate(args, schema, "args")
        if problem:
            raise PlanError(f"step {n} ({step['tool']}): {problem}")
        calls.append(ToolCall(step["tool"], args))
    return calls


def check_call(call: ToolCall) -> None:
    """PlanError unless ``call`` names a tool of :data:`TOOL_SCHEMAS` with arguments its schema
    accepts: the tools check every call again, whoever planned it.

    >>> check_call(ToolCall("recommend", {"k": 500}))
    Traceback (most recent call last):
    ...
    genrec.agents.schema.PlanError: recommend: args.k must lie in [1, 50]
    """
    schema = TOOL_SCHEMAS.get(call.tool) if isinstance(call.tool, str) else None
    if schema is None:
        raise PlanError(f"unknown tool {call.tool!r}; tools: {', '.join(TOOL_SCHEMAS)}")
    problem = validate(call.args, schema, "args")
    if problem:
        raise PlanError(f"{call.tool}: {problem}")


def complete_steps(text: str) -> str | None:
    """The plan made of the steps that are complete in ``text``, a plan cut short (by a token
    budget) after ``{"steps": [``; None when no step is complete. Under constrained decoding a
    cut answer is a prefix of a valid plan, so its complete steps are valid steps.

    >>> complete_steps('{"steps": [{"tool": "rank", "args": {"by": "popularity"}}, {"tool": "fi')
    '{"steps": [{"tool": "rank", "args": {"by": "popularity"}}]}'
    """
    start = text.find("[", text.find('"steps"'))
    if text.find('"steps"') < 0 or start < 0:
        return None
    depth, in_string, escaped, end = 0, False, False, None
    for i in range(start + 1, len(text)):
        ch = text[i]
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0 and ch == "}":
                end = i + 1  # a step object closed
            if depth < 0:
                break
    return None if end is None else '{"steps": [' + text[start + 1 : end].strip() + "]}"


def extract_json(text: str) -> str:
    """The first balanced ``{...}`` in ``text`` (an LM often wraps JSON in prose); PlanError
    when there is none."""
    start = text.find("{")
    depth, in_string, escaped = 0, False, False
    for i in range(max(start, 0), len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    raise PlanError(f"no JSON object in the planner's answer {text[:120]!r}")


# Bounds of the schema for constrained decoding (tighter than validation's: a small model
# writes strings until their limit, so shorter limits keep a whole plan within its token budget).
CONSTRAINED_STEPS = 3
CONSTRAINED_TEXT = 40  # characters per string
CONSTRAINED_LIST = 3  # entries per list
POPULARITY_LEVELS = [10, 20, 50, 100, 200, 300, 500]  # interaction counts a filter may name


def plan_schema(*, genres: Sequence[str], years: Sequence[int]) -> dict:
    """The JSON schema of a whole plan for constrained decoding: every instance passes
    :func:`parse_plan`, and its enums narrow it to this catalog.

    Each step is one ``anyOf`` option per tool (``tool`` a constant, ``args`` that tool's
    schema), so only tools of :data:`TOOL_SCHEMAS` can be named and each with its own
    arguments. A filter condition names a catalog genre (``genres``), a year within
    ``min(years)..max(years)``, or a popularity level of :data:`POPULARITY_LEVELS`; an item is
    a position 1-10 in the latest list or a title; numbers are enums (decoders do not enforce
    ``minimum``/``maximum``); strings, lists and steps are shorter than validation allows.

    >>> schema = plan_schema(genres=["Comedy", "Drama"], years=[1990, 1995])
    >>> [o["properties"]["tool"]["const"] for o in schema["properties"]["steps"]["items"]["anyOf"]][:3]
    ['filter', 'search', 'similar']
    """
    if not genres or not years:
        raise ConfigError("plan_schema needs the catalog's genres and years (both non-empty)")
    narrow = functools.partial(_narrow, genres=list(genres), years=[int(y) for y in years])
    steps = [
        {
            "type": "object",
            "properties": {"tool": {"const": name}, "args": narrow(schema)},
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
        for name, schema in TOOL_SCHEMAS.items()
    ]
    return {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {"anyOf": steps},
                "minItems": 1,
                "maxItems": CONSTRAINED_STEPS,
            }
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def _narrow(schema: dict, *, genres: list[str], years: list[int]) -> dict:
    """``schema`` with item references and conditions spelled out as ``anyOf`` options, numbers
    as enums and the constrained length limits (see :func:`plan_schema`)."""
    if schema is ITEM_REF:
        return {"anyOf": [_object({"position": _ints(range(1, 11))}), _object({"title": _text()})]}
    if schema is CONDITION:
        low, high = min(years), max(years)
        year = _ints(range(low, high + 1))
        return {
            "anyOf": [
                _condition("genre", ["has", "lacks"], {"type": "string", "enum": genres}),
                _condition("year", ["=", "<", "<=", ">", ">="], year),
                _condition(
                    "year",
                    ["between"],
                    {"type": "array", "items": year, "minItems": 2, "maxItems": 2},
                ),
                _condition("popularity", [">=", "<="], _ints(POPULARITY_LEVELS)),
            ]
        }
    out = {k: v for k, v in schema.items() if k != "description"}
    if schema.get("type") == "integer" and "minimum" in schema:
        out = _ints(range(schema["minimum"], min(schema["maximum"], 20) + 1))
    if "maxLength" in schema:
        out["maxLength"] = min(schema["maxLength"], CONSTRAINED_TEXT)
    if "maxItems" in schema:
        out["maxItems"] = min(schema["maxItems"], CONSTRAINED_LIST)
    if "items" in schema:
        out["items"] = _narrow(schema["items"], genres=genres, years=years)
    if "properties" in schema:
        out["properties"] = {
            k: _narrow(v, genres=genres, years=years) for k, v in schema["properties"].items()
        }
    return out


def _object(properties: dict) -> dict:
    """An object with exactly these (required) properties."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _condition(column: str, ops: list[str], value: dict) -> dict:
    return _object(
        {"column": {"const": column}, "op": {"type": "string", "enum": ops}, "value": value}
    )


def _ints(values) -> dict:
    return {"type": "integer", "enum": [int(v) for v in values]}


def _text() -> dict:
    return {"type": "string", "maxLength": CONSTRAINED_TEXT}


def schema_text() -> str:
    """The tools and their argument schemas as compact JSON lines (for a planner prompt)."""
    return "\n".join(
        f"{name}: {json.dumps(schema, separators=(',', ':'))}"
        for name, schema in TOOL_SCHEMAS.items()
    )


def tool_lines() -> str:
    """The tools as one short signature line each, for a planner prompt a small model reads
    quickly (about a fifth of :func:`schema_text`'s tokens): arguments as JSON with their types
    spelled ``TEXT``, ``N``, ``ITEM`` (an item reference), ``COND`` (a filter condition) and
    enums as ``"a"|"b"``, then the tool's description. Validation and constrained decoding use
    the full schemas; this only tells the model what exists.

    >>> tool_lines().splitlines()[3]
    'rank {"by":"preference"|"popularity"} - how to order the candidates'
    """
    lines = [
        f"{name} {_signature(schema)} - {schema['description']}"
        for name, schema in TOOL_SCHEMAS.items()
    ]
    return "\n".join(
        lines
        + [
            'ITEM = {"position":N} (in the latest list) or {"title":TEXT}',
            'COND = {"column":"genre","op":"has"|"lacks","value":GENRE} or '
            '{"column":"year","op":"<"|"<="|"="|">="|">","value":YEAR} or '
            '{"column":"year","op":"between","value":[LOW,HIGH]} or '
            '{"column":"popularity","op":">="|"<=","value":N}',
        ]
    )


def _signature(schema: dict) -> str:
    """A JSON-like type sketch of ``schema`` (see :func:`tool_lines`)."""
    if schema is ITEM_REF:
        return "ITEM"
    if schema is CONDITION:
        return "COND"
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        inner = ",".join(f'"{k}":{_signature(v)}' for k, v in schema.get("properties", {}).items())
        return "{" + inner + "}"
    if kind == "array":
        return "[" + _signature(schema["items"]) + "]"
    return {"string": "TEXT", "integer": "N", "boolean": "true|false"}.get(kind, "VALUE")

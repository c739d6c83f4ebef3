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

import json
from dataclasses import dataclass
from typing import Any

from genrec.errors import ConfigError

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
        "add or remove constraints on catalog attributes (genre has/lacks NAME; "
        "year =,<,<=,>,>=,between [LOW, HIGH]; popularity >=,<=)",
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
        "answer a question about one item from its catalog text",
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
        problem = validate(args, schema)
        if problem:
            raise PlanError(f"step {n} ({step['tool']}): {problem}")
        calls.append(ToolCall(step["tool"], args))
    return calls


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


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def validate(value: Any, schema: dict, where: str = "args") -> str | None:
    """The first way ``value`` breaks ``schema`` (the JSON Schema subset used above), or None."""
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types or []
    if types and not any(_is(value, t) for t in types):
        return f"{where} must be {' or '.join(types)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {schema['enum']}, got {value!r}"[:300]
    if isinstance(value, str) and len(value) > schema.get("maxLength", 10_000):
        return f"{where} is longer than {schema['maxLength']} characters"
    if _is(value, "number"):
        if value < schema.get("minimum", -float("inf")) or value > schema.get(
            "maximum", float("inf")
        ):
            return f"{where} must lie in [{schema.get('minimum')}, {schema.get('maximum')}]"
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", 1_000):
            return f"{where} has more than {schema['maxItems']} entries"
        for i, v in enumerate(value):
            if "items" in schema and (problem := validate(v, schema["items"], f"{where}[{i}]")):
                return problem
    if isinstance(value, dict):
        return _validate_object(value, schema, where)
    return None


def _validate_object(value: dict, schema: dict, where: str) -> str | None:
    props = schema.get("properties", {})
    unknown = [k for k in value if k not in props]
    if unknown and schema.get("additionalProperties") is False:
        return f"{where} has unknown key(s) {unknown}; allowed: {sorted(props)}"[:300]
    missing = [k for k in schema.get("required", []) if k not in value]
    if missing:
        return f"{where} lacks {missing}"
    if len(value) < schema.get("minProperties", 0):
        return f"{where} needs one of {sorted(props)}"
    for key, v in value.items():
        if problem := validate(v, props[key], f"{where}.{key}"):
            return problem
    return None


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool):
        return type_name == "boolean"
    return isinstance(value, _TYPES[type_name])


def schema_text() -> str:
    """The tools and their argument schemas as compact JSON lines (for a planner prompt)."""
    return "\n".join(
        f"{name}: {json.dumps(schema, separators=(',', ':'))}"
        for name, schema in TOOL_SCHEMAS.items()
    )

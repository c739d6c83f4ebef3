"""The JSON Schema subset genrec uses for structured LM output: checking a value, and the
smallest value a schema accepts.

Keywords understood: ``type`` (a name or a list of names), ``enum``, ``const``, ``anyOf``,
``properties``, ``required``, ``additionalProperties: false``, ``minProperties``, ``items``,
``minItems``, ``maxItems``, ``maxLength``, ``minimum`` and ``maximum``. The same schemas go to
constrained decoding (:mod:`genrec.text.constrained`), to an OpenAI-compatible server's JSON
mode, and into prompts.

Example:
    >>> schema = {"type": "object", "properties": {"k": {"type": "integer", "enum": [5, 10]}},
    ...           "required": ["k"], "additionalProperties": False}
    >>> validate({"k": 5}, schema) is None, validate({"k": 7}, schema)
    (True, 'value.k must be one of [5, 10], got 7')
    >>> minimal_instance(schema)
    {'k': 5}
"""

from __future__ import annotations

from typing import Any

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "null": type(None),
}


def validate(value: Any, schema: dict, where: str = "value") -> str | None:
    """The first way ``value`` breaks ``schema`` (the subset above), or None when it fits."""
    if "anyOf" in schema:
        problems = [validate(value, option, where) for option in schema["anyOf"]]
        if all(problems):
            return min(problems, key=len)  # the closest option's complaint
        return None
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types or []
    if types and not any(_is(value, t) for t in types):
        return f"{where} must be {' or '.join(types)}, got {type(value).__name__}"
    if "const" in schema and (value != schema["const"] or type(value) is not type(schema["const"])):
        return f"{where} must be {schema['const']!r}, got {value!r}"[:300]
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        return f"{where} must be one of {schema['enum']}, got {value!r}"[:300]
    if isinstance(value, str) and len(value) > schema.get("maxLength", 10_000):
        return f"{where} is longer than {schema['maxLength']} characters"
    if _is(value, "number"):
        low, high = schema.get("minimum", -float("inf")), schema.get("maximum", float("inf"))
        if not low <= value <= high:
            return f"{where} must lie in [{schema.get('minimum')}, {schema.get('maximum')}]"
    if isinstance(value, list):
        return _validate_array(value, schema, where)
    if isinstance(value, dict):
        return _validate_object(value, schema, where)
    return None


def _validate_array(value: list, schema: dict, where: str) -> str | None:
    if len(value) > schema.get("maxItems", 1_000):
        return f"{where} has more than {schema['maxItems']} entries"
    if len(value) < schema.get("minItems", 0):
        return f"{where} has fewer than {schema['minItems']} entries"
    for i, v in enumerate(value):
        if "items" in schema and (problem := validate(v, schema["items"], f"{where}[{i}]")):
            return problem
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
        if key in props and (problem := validate(v, props[key], f"{where}.{key}")):
            return problem
    return None


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool):
        return type_name == "boolean"
    return isinstance(value, _TYPES[type_name])


def _same(value: Any, allowed: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    return value == allowed and isinstance(value, bool) == isinstance(allowed, bool)


def minimal_instance(schema: dict) -> Any:
    """The smallest value ``schema`` accepts: the first ``anyOf`` option, ``const`` or ``enum``
    value; objects with their required keys only; arrays of ``minItems`` entries; ``""``,
    ``false``, ``null`` or the lowest allowed number. It fits ``schema`` whenever ``schema`` has
    a value and needs no ``minProperties`` beyond its required keys."""
    if "anyOf" in schema:
        return minimal_instance(schema["anyOf"][0])
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties", {})
        return {k: minimal_instance(props.get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        return [minimal_instance(schema.get("items", {}))] * schema.get("minItems", 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    return {"string": "", "boolean": False, "null": None}[kind]


__all__ = ["minimal_instance", "validate"]

"""JSON-schema constrained decoding (lm-format-enforcer under a transformers logits processor)
on a tiny random model: whatever the weights prefer, the text is JSON the schema accepts."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers", reason="needs the llm extra: pip install 'genrec[llm]'")
pytest.importorskip("lmformatenforcer", reason="needs the llm extra: pip install 'genrec[llm]'")

from genrec.errors import ConfigError  # noqa: E402
from genrec.text.json_schema import validate  # noqa: E402
from genrec.text.lm import FakeLanguageModel, generate_json  # noqa: E402
from genrec.text.transformers_lm import TransformersLM, tiny_test_model  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "mood": {"type": "string", "enum": ["happy", "sad", "so-so"]},
        "count": {"type": "integer", "enum": [1, 2, 10]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 2},
        "pick": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"position": {"type": "integer", "enum": [1, 2]}},
                    "required": ["position"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"title": {"type": "string", "maxLength": 6}},
                    "required": ["title"],
                    "additionalProperties": False,
                },
            ]
        },
        "loud": {"type": "boolean"},
    },
    "required": ["mood", "count"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tiny():
    return TransformersLM.wrap(*tiny_test_model(), threads=1)


def test_sampled_answers_are_always_schema_valid_json(tiny):
    assert tiny.constrained_json
    seen_moods = set()
    for seed in range(12):
        text = tiny.generate(
            ['Answer {"mood": "angry", "extra": 1}'],
            max_new_tokens=120,
            temperature=1.5,
            seed=seed,
            json_schema=SCHEMA,
        )[0]
        value = json.loads(text)  # strict JSON: no control characters inside strings
        assert validate(value, SCHEMA) is None, (text, validate(value, SCHEMA))
        assert not outside_strings_spaced(text), text  # compact JSON
        seen_moods.add(value["mood"])
    assert seen_moods <= {"happy", "sad", "so-so"}


def outside_strings_spaced(text: str) -> bool:
    """Whether JSON ``text`` has whitespace outside strings or a string starting with it."""
    in_string = escaped = False
    for before, ch in zip(" " + text, text):
        if in_string:
            if before == '"' and not escaped and ch.isspace():
                return True
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch.isspace():
            return True
    return False


def test_greedy_batches_are_constrained_row_by_row(tiny):
    texts = tiny.generate(
        ["a cat sat on", "Toy Story (1995)", "I liked these movies"],
        max_new_tokens=120,
        json_schema=SCHEMA,
    )
    for text in texts:
        assert validate(json.loads(text), SCHEMA) is None
    unconstrained = tiny.generate(["a cat sat on"], max_new_tokens=20)[0]
    with pytest.raises(ValueError):
        json.loads(unconstrained)  # the same model without the mask writes no JSON


def test_schemas_it_cannot_enforce_are_config_errors(tiny):
    with pytest.raises(ConfigError, match="json_schema must be a dict"):
        tiny.generate(["x"], json_schema='{"type": "object"}')


def test_generate_json_says_whether_the_answer_was_constrained():
    plain = FakeLanguageModel(generate_fn=lambda p: "maybe")
    assert generate_json(plain, "q", SCHEMA) == ("maybe", False)
    with pytest.raises(ConfigError, match="cannot constrain"):
        plain.generate(["q"], json_schema=SCHEMA)
    fake = FakeLanguageModel(constrained_json=True, generate_fn=lambda p: 'ok {"mood": "sad"}')
    text, constrained = generate_json(fake, "q", SCHEMA)
    assert constrained and json.loads(text) == {"mood": "happy", "count": 1}  # count missing
    fake = FakeLanguageModel(
        constrained_json=True, generate_fn=lambda p: 'x {"mood": "sad", "count": 2} y'
    )
    assert json.loads(generate_json(fake, "q", SCHEMA)[0]) == {"mood": "sad", "count": 2}

"""JSON-schema constrained decoding for transformers models: at every step, only the tokens
that keep the text a prefix of some JSON value the schema accepts can be chosen.

Built on lm-format-enforcer (the ``llm`` extra): its character-level JSON-schema parser walks
a prefix tree of the vocabulary and returns the allowed tokens; :class:`JsonSchemaLogits` turns
them into a mask for ``model.generate``. Why this library:

* it installs from PyPI as pure Python (plus ``interegular``) and leaves torch alone, whereas
  xgrammar 0.2.9 pulls triton and apache-tvm-ffi (a GPU compiler stack) into a CPU-only
  environment, and outlines 1.x brings outlines-core and a larger dependency tree;
* it needs nothing but a token list and a decode function, so it works with any tokenizer
  (SmolLM2's byte-level BPE, Gemma's SentencePiece, the tiny test tokenizer);
* its parser covers the keywords the agent's plan schema uses: ``anyOf``, ``const``, string and
  number ``enum``, ``required``, ``additionalProperties: false``, ``minItems``/``maxItems`` and
  ``maxLength`` (not ``minimum``/``maximum`` or ``minProperties``: express those as enums or
  ``anyOf`` options).

Only its core (``JsonSchemaParser``, ``TokenEnforcer``) is used: its own transformers
integration imports ``transformers.tokenization_utils``, which transformers 5 no longer has.
No whitespace is allowed between JSON tokens (compact JSON: ``{"a":[1,2]}``; inside strings at
most :data:`MAX_WHITESPACE` in a row) and object keys must follow the ``required`` order, so a
small model spends no tokens on indentation. The decoder guarantees a prefix of a valid value; the value is
complete only if generation ends before ``max_new_tokens``: callers should still validate.

Example (a tiny random model: its text is nonsense, yet schema-valid):
    >>> import json
    >>> from genrec.text.transformers_lm import TransformersLM, tiny_test_model
    >>> lm = TransformersLM.wrap(*tiny_test_model(), threads=1)
    >>> schema = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}},
    ...           "required": ["mood"], "additionalProperties": False}
    >>> json.loads(lm.generate(["How are you?"], max_new_tokens=20, json_schema=schema)[0])["mood"] in ("happy", "sad")
    True
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from genrec.errors import ConfigError, require

MAX_WHITESPACE = 1  # whitespace characters allowed in a row inside a string


def available() -> bool:
    """Whether lm-format-enforcer is installed (without importing it)."""
    return importlib.util.find_spec("lmformatenforcer") is not None


def tokenizer_data(tokenizer, *, vocab_size: int, eos_ids: Sequence[int]):
    """lm-format-enforcer's per-tokenizer tables (a prefix tree of every regular token's text);
    build once per tokenizer and reuse: it decodes the whole vocabulary (seconds for 262k
    tokens). ``vocab_size`` is the model's output size (it may exceed the tokenizer's);
    ``eos_ids`` are the tokens that may end a complete value."""
    require("lmformatenforcer", "llm")
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

    special = set(tokenizer.all_special_ids)
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    regular = []
    for token in range(min(len(tokenizer), vocab_size)):
        if token in special:
            continue
        # decoding after "0" keeps a word-start token's leading space, which decoding alone drops
        after_zero = tokenizer.decode([zero, token])[1:]
        if not _usable(after_zero):
            continue
        regular.append((token, after_zero, len(after_zero) > len(tokenizer.decode([token]))))

    def decode(tokens: list[int]) -> str:
        return tokenizer.decode(tokens).rstrip("\ufffd")  # an incomplete UTF-8 sequence

    return TokenEnforcerTokenizerData(regular, decode, list(eos_ids), False, vocab_size)


def _usable(text: str) -> bool:
    """Whether a token's text can appear in strict JSON output: no control characters inside
    strings (newlines only as whitespace between tokens) and no piece of a UTF-8 sequence."""
    return "\ufffd" not in text and all(c >= " " or c == "\n" for c in text)


class JsonSchemaLogits:
    """A transformers logits processor that masks every token outside ``schema``'s language.

    Args:
        data: :func:`tokenizer_data` of the model's tokenizer.
        schema: the JSON schema (a dict; see the module docstring for the keywords enforced).

    Rows are told apart by their token prefix, so one processor serves a left-padded batch.
    When nothing is allowed (the value is complete), only the end-of-sequence tokens are.

    Raises:
        ConfigError: ``schema`` is not a dict or uses a construct the parser rejects.
    """

    def __init__(self, data, schema: dict):
        if not isinstance(schema, dict):
            raise ConfigError(f"json_schema must be a dict, got {type(schema).__name__}")
        require("lmformatenforcer", "llm")
        from lmformatenforcer import JsonSchemaParser
        from lmformatenforcer.tokenenforcer import TokenEnforcer

        try:
            parser = JsonSchemaParser(_for_parser(schema))
        except Exception as exc:  # noqa: BLE001 (pydantic and the parser raise many kinds)
            raise ConfigError(
                f"json_schema cannot be enforced: {exc}"[:300]
                + "; use the keywords listed in genrec.text.constrained"
            ) from None
        self.enforcer = TokenEnforcer(data, parser)
        parser.config.max_consecutive_whitespaces = MAX_WHITESPACE  # TokenEnforcer set config
        parser.config.force_json_field_order = True
        parser.config.alphabet = "".join(c for c in parser.config.alphabet if c >= " ")
        self.eos, self.decode = list(data.eos_token_id), data.decoder
        if not hasattr(data, "genrec_masks"):  # once per tokenizer
            data.genrec_masks = _closer_tokens(data.regular_tokens), _spacing_tokens(data)
        (self.closers, self.comma_closers), self.spacing = data.genrec_masks
        self.start: int | None = None  # the prompt width, seen at the first call

    def __call__(self, input_ids, scores):
        import torch

        self.start = input_ids.shape[1] if self.start is None else self.start
        mask = torch.full_like(scores, float("-inf"))  # (B, V)
        for row, ids in enumerate(input_ids.tolist()):
            allowed = self.enforcer.get_allowed_tokens(ids).allowed_tokens or self.eos
            mask[row, allowed] = 0.0
            # the parser accepts "}" or "]" right after a comma; JSON does not
            mask[row, self.comma_closers] = float("-inf")
            last, in_string, opened = _json_state(self.decode(ids[self.start :]))
            if last == "," and not in_string:
                mask[row, self.closers] = float("-inf")
            mask[row, self.spacing[in_string]] = float("-inf")  # compact JSON only
            if opened:  # the parser does not count a string's leading spaces in its length
                mask[row, self.spacing[2]] = float("-inf")
            if not torch.isfinite(mask[row]).any():  # never reached with a sound schema
                mask[row, self.eos] = 0.0
        return scores + mask


def _for_parser(schema):
    """``schema`` with every ``maxLength`` one lower: the parser's shortcut for free text inside
    strings lets a string run one character past its ``maxLength``."""
    if isinstance(schema, list):
        return [_for_parser(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _for_parser(v) for k, v in schema.items()}
    if isinstance(schema.get("maxLength"), int) and schema["maxLength"] > 0:
        out["maxLength"] = schema["maxLength"] - 1
    return out


def _closer_tokens(regular_tokens) -> tuple[list[int], list[int]]:
    """(tokens whose text starts with "}" or "]" after whitespace, tokens holding "," then one
    of them): lm-format-enforcer's parser lets an object or array close right after a comma,
    so :class:`JsonSchemaLogits` masks these itself (losing ",}" and ",]" inside strings)."""
    closers, comma_closers = [], []
    for token, text, _ in regular_tokens:
        packed = "".join(text.split())
        if packed[:1] in ("}", "]"):
            closers.append(token)
        if ",}" in packed or ",]" in packed:
            comma_closers.append(token)
    return closers, comma_closers


def _spacing_tokens(data) -> tuple[list[int], list[int], list[int]]:
    """(tokens that put whitespace between JSON tokens when written outside a string, the same
    when written inside one, tokens starting with whitespace): masked so that answers are
    compact JSON and no string starts with whitespace."""
    outside, inside, leading = [], [], []
    for token, text, _ in data.regular_tokens:
        if any(c.isspace() for c in text):
            for start_in, into in ((False, outside), (True, inside)):
                if _spaces_outside_strings(text, start_in):
                    into.append(token)
            if text[:1].isspace():
                leading.append(token)
    return outside, inside, leading


def _spaces_outside_strings(text: str, in_string: bool) -> bool:
    """Whether ``text``, read from inside a string or not, has whitespace outside strings."""
    escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch.isspace():
            return True
    return False


def _json_state(text: str) -> tuple[str, bool, bool]:
    """(the last character of ``text`` outside strings and whitespace, whether ``text`` ends
    inside a string, whether it ends right after a string's opening quote)."""
    last, in_string, escaped, opened = "", False, False, False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
            opened = False
        elif ch == '"':
            in_string, last, opened = True, '"', True
        elif not ch.isspace():
            last = ch
    return last, in_string, opened


__all__ = ["JsonSchemaLogits", "MAX_WHITESPACE", "available", "tokenizer_data"]

"""Language models behind one small protocol: generate text, and score continuations.

* :class:`LanguageModel` — the protocol every backend follows. ``score(prompt, continuations)``
  returns the log-probability of each continuation given one shared prompt; backends compute the
  prompt once and reuse it (KV cache) across the continuations, in batches.
* :class:`ContinuationScores` — summed log-probabilities and token counts, with the per-token
  mean (``mean``) that length-normalised ranking uses.
* :class:`FakeLanguageModel` — deterministic, instant, dependency-free: for tests, and to run
  every LLM pipeline end to end without weights. Its "knowledge" is word overlap with the prompt.
* :mod:`genrec.text.backends` builds a backend from a spec string (``"fake"``,
  ``"transformers:gemma-3-270m"``, ``"openai:http://host:8000/v1?model=NAME"``, ...).
* Optional capabilities a backend may add (``genrec serve-lm`` uses them when present):
  ``stream(prompt, **generate_options)`` yields one prompt's completion in pieces as it is
  generated (their concatenation equals ``generate([prompt])[0]``; closing the iterator stops
  generation), and ``context_length``, the most tokens prompt plus completion may have.
  :func:`stream_text` streams any model (one piece from ``generate`` when it cannot stream).
  ``span_states(text, spans)`` returns the model's hidden state averaged over each character
  span of ``text`` (what a probe trained on the model's reading uses; the transformers backend
  and the fake have it).
* Structured output: a backend whose ``constrained_json`` is true accepts
  ``generate(prompts, json_schema=SCHEMA)`` and returns text that is (a prefix, when
  ``max_new_tokens`` cuts it, of) a JSON value ``SCHEMA`` accepts: the transformers backend by
  constrained decoding (:mod:`genrec.text.constrained`), the OpenAI-compatible client through
  the server's JSON mode, the fake by construction. Backends without it (llama.cpp, tuned
  adapters) do not take ``json_schema``; :func:`generate_json` calls either kind and says
  whether the output was constrained, so callers validate and repair what was not.

Example:
    >>> lm = FakeLanguageModel()
    >>> scores = lm.score("I liked Toy Story and Heat.", ["Toy Story 2", "Casablanca"])
    >>> bool(scores.mean[0] > scores.mean[1])  # shares words with the prompt
    True
    >>> lm.generate(["Say hello"], max_new_tokens=3)[0]
    'Say hello'
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from genrec.errors import ConfigError
from genrec.text.json_schema import minimal_instance, validate


@dataclass(frozen=True)
class ContinuationScores:
    """Log-probabilities of continuations given one prompt.

    Attributes:
        logprob: (C,) sum over each continuation's tokens of log p(token | prompt, earlier tokens).
        n_tokens: (C,) how many tokens each continuation has (>= 1).
    """

    logprob: np.ndarray
    n_tokens: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """(C,) per-token mean log-probability: the length-normalised score."""
        return self.logprob / np.maximum(self.n_tokens, 1)


@runtime_checkable
class LanguageModel(Protocol):
    """What genrec needs from a language model.

    ``name`` identifies the model (reports, caches). Prompts are plain text; a backend serving an
    instruction-tuned model may wrap them in its chat template (a backend option).
    """

    name: str

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[str]:
        """One completion per prompt (without the prompt). ``temperature=0`` is greedy decoding;
        generation ends at ``max_new_tokens``, end-of-sequence, or before the first ``stop``."""
        ...

    def score(self, prompt: str, continuations: Sequence[str]) -> ContinuationScores:
        """Log-probability of each continuation right after ``prompt`` (the prompt computed once)."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this model (for budgets and tokens/s)."""
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest of the ``stop`` strings."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def cut_stream(pieces: Iterable[str], stop: Sequence[str]) -> Iterator[str]:
    """The text of ``pieces`` up to the earliest ``stop`` string, yielded as it arrives.

    The concatenation of what is yielded equals ``cut_at_stop("".join(pieces), stop)``: the last
    ``max(len(stop)) - 1`` characters are held back until no stop string can start in them, and
    ``pieces`` is closed as soon as the cut is certain (so the model stops generating).

    >>> list(cut_stream(["Hello", " wor", "ld\\nBye"], ["\\n"]))
    ['Hello', ' wor', 'ld']
    """
    stop = [s for s in stop if s]
    hold = max(map(len, stop), default=1) - 1
    text, sent = "", 0
    try:
        for piece in pieces:
            text += piece
            cut = min((i for s in stop if (i := text.find(s)) >= 0), default=None)
            if cut is not None and cut <= len(text) - hold:  # no longer stop can start earlier
                if cut > sent:
                    yield text[sent:cut]
                return
            if len(text) - hold > sent:
                yield text[sent : len(text) - hold]
                sent = len(text) - hold
        rest = cut_at_stop(text, stop)
        if len(rest) > sent:
            yield rest[sent:]
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def stream_text(
    lm: LanguageModel,
    prompt: str,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    stop: Sequence[str] = (),
    seed: int = 0,
    json_schema: dict | None = None,
) -> Iterator[str]:
    """``lm``'s completion of ``prompt`` in pieces: its ``stream`` method when it has one, else
    the whole of ``generate([prompt])`` as one piece. ``json_schema`` needs a backend whose
    ``constrained_json`` is true; a streaming one streams constrained output too. Closing the
    iterator stops a streaming backend at its next token."""
    options = dict(max_new_tokens=max_new_tokens, temperature=temperature, stop=stop, seed=seed)
    if json_schema is not None:
        options["json_schema"] = json_schema
    stream = getattr(lm, "stream", None)
    if stream is None:
        yield lm.generate([prompt], **options)[0]
    else:
        yield from stream(prompt, **options)


def generate_json(
    lm: LanguageModel, prompt: str, json_schema: dict, **generate_options
) -> tuple[str, bool]:
    """``(text, constrained)``: ``lm``'s completion of ``prompt`` under ``json_schema`` when the
    backend can constrain its output (``constrained`` true), else its plain completion (the
    schema should then be in the prompt, and the caller must validate the text).

    >>> generate_json(FakeLanguageModel(constrained_json=True), "Answer:", {"enum": ["yes"]})
    ('"yes"', True)
    """
    if getattr(lm, "constrained_json", False):
        return lm.generate([prompt], json_schema=json_schema, **generate_options)[0], True
    return lm.generate([prompt], **generate_options)[0], False


_WORD = re.compile(r"\w+|[^\w\s]")
FAKE_STATE_DIM = 16  # width of the fake's span states


class FakeLanguageModel:
    """A deterministic stand-in language model for tests; tokens are words and punctuation.

    Scoring: each continuation token costs ``-1`` if the (lower-cased) token occurs in the prompt,
    otherwise ``-4 - h`` with ``h`` in [0, 1) a fixed hash of the token, so continuations that
    echo the prompt are the likely ones and ties are broken deterministically.
    Generation: ``generate_fn(prompt)`` if given, else the prompt's last line, truncated to
    ``max_new_tokens`` tokens and cut at ``stop``; :meth:`stream` yields it token by token
    (``generate_fn``'s answer in one piece).

    Args:
        generate_fn: optional prompt -> completion function (scripted answers in tests).
        score_fn: optional (prompt, continuation) -> (sum logprob, n_tokens) function.
        name: model name to report.
        context_length: the context window it claims, in its tokens (None: unlimited).

    With ``constrained_json=True`` it plays a backend that constrains its output:
    ``generate(..., json_schema=S)`` returns the first JSON object in the scripted answer when
    ``S`` accepts it, else the smallest value ``S`` accepts (always schema-valid JSON). By
    default it plays one that cannot (scripted answers come back as they are).

    Every call is recorded in ``calls`` as ``(method, prompt, n_continuations)``.
    """

    def __init__(
        self,
        *,
        generate_fn: Callable[[str], str] | None = None,
        score_fn: Callable[[str, str], tuple[float, int]] | None = None,
        name: str = "fake",
        context_length: int | None = None,
        constrained_json: bool = False,
    ):
        self.generate_fn, self.score_fn, self.name = generate_fn, score_fn, name
        self.context_length, self.constrained_json = context_length, constrained_json
        self.calls: list[tuple[str, str, int]] = []
        self.piece_chars: int | None = None  # stream scripted answers in pieces this long

    def tokens(self, text: str) -> list[str]:
        return _WORD.findall(text)

    def count_tokens(self, text: str) -> int:
        return len(self.tokens(text))

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        json_schema: dict | None = None,
    ) -> list[str]:
        check_generation_args(max_new_tokens, temperature)
        if json_schema is not None and not self.constrained_json:
            raise ConfigError(
                f"{self.name} cannot constrain output to a JSON schema; make it with "
                "constrained_json=True or call generate_json(), which checks"
            )
        out = []
        for prompt in prompts:
            self.calls.append(("generate", prompt, 0))
            if self.generate_fn is not None:
                text = self.generate_fn(prompt)
            else:
                text = prompt.rstrip("\n").rsplit("\n", 1)[-1]
                text = " ".join(self.tokens(text)[:max_new_tokens])
            if json_schema is not None:
                text = _fitting_json(text, json_schema)
            out.append(cut_at_stop(text, stop))
        return out

    def stream(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        json_schema: dict | None = None,
    ) -> Iterator[str]:
        """:meth:`generate` of one prompt, one token (with its leading space) at a time; a
        ``generate_fn`` answer or a ``json_schema`` one in pieces of :attr:`piece_chars`
        characters (None: in one piece)."""
        if self.generate_fn is not None or json_schema is not None:
            text = self.generate(
                [prompt],
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                stop=stop,
                seed=seed,
                json_schema=json_schema,
            )[0]
            size = self.piece_chars or max(len(text), 1)
            for start in range(0, len(text), size):
                yield text[start : start + size]
            return
        check_generation_args(max_new_tokens, temperature)
        self.calls.append(("generate", prompt, 0))
        tokens = self.tokens(prompt.rstrip("\n").rsplit("\n", 1)[-1])[:max_new_tokens]
        yield from cut_stream((t if i == 0 else " " + t for i, t in enumerate(tokens)), stop)

    def score(self, prompt: str, continuations: Sequence[str]) -> ContinuationScores:
        continuations = check_continuations(continuations)
        self.calls.append(("score", prompt, len(continuations)))
        if self.score_fn is not None:
            pairs = [self.score_fn(prompt, c) for c in continuations]
            return ContinuationScores(
                np.array([p[0] for p in pairs], np.float64),
                np.array([max(int(p[1]), 1) for p in pairs], np.int64),
            )
        known = {t.lower() for t in self.tokens(prompt)}
        logprob, n_tokens = [], []
        for text in continuations:
            toks = self.tokens(text) or ["<eos>"]
            costs = [
                -1.0
                if t.lower() in known
                else -4.0 - (zlib.crc32(t.lower().encode()) % 1000) / 1000
                for t in toks
            ]
            logprob.append(sum(costs))
            n_tokens.append(len(toks))
        return ContinuationScores(np.array(logprob, np.float64), np.array(n_tokens, np.int64))

    def span_states(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """(S, FAKE_STATE_DIM) float32: each span's words hashed to random signs, averaged
        (the same words always give the same state; the context is not read)."""
        bounds = check_spans(text, spans)
        self.calls.append(("span_states", text, len(bounds)))
        states = np.zeros((len(bounds), FAKE_STATE_DIM), np.float32)
        for row, (start, end) in enumerate(bounds):
            words = self.tokens(text[start:end]) or ["<empty>"]
            for w in words:
                rng = np.random.default_rng(zlib.crc32(w.lower().encode()))
                states[row] += rng.choice([-1.0, 1.0], FAKE_STATE_DIM) / len(words)
        return states


def check_spans(text: str, spans) -> list[tuple[int, int]]:
    """``spans`` as (start, end) int pairs, each a non-empty ``[start, end)`` inside ``text``."""
    out = []
    for span in spans:
        start, end = (int(x) for x in span)
        if not 0 <= start < end <= len(text):
            raise ConfigError(
                f"span {(start, end)} must be a non-empty [start, end) inside the text's "
                f"{len(text)} characters"
            )
        out.append((start, end))
    return out


def _fitting_json(text: str, schema: dict) -> str:
    """The first JSON value in ``text`` (from its first ``{``, or all of it) when ``schema``
    accepts it, else the smallest value ``schema`` accepts; as compact JSON text."""
    start = text.find("{")
    try:
        value, _ = json.JSONDecoder().raw_decode(text[max(start, 0) :].strip())
    except ValueError:
        value = None
    if value is None or validate(value, schema) is not None:
        value = minimal_instance(schema)
    return json.dumps(value, separators=(",", ":"))


def check_continuations(continuations: Sequence[str]) -> list[str]:
    """The continuations as a list of strings, or a :class:`ConfigError` saying what is wrong."""
    if isinstance(continuations, str):
        raise ConfigError("continuations must be a list of strings, not one string")
    continuations = list(continuations)
    bad = [c for c in continuations if not isinstance(c, str)]
    if bad:
        raise ConfigError(f"continuations must be strings, got {type(bad[0]).__name__}")
    return continuations


def check_generation_args(max_new_tokens, temperature) -> None:
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not np.isfinite(temperature)
        or temperature < 0
    ):
        raise ConfigError(f"temperature must be a finite number >= 0, got {temperature!r}")


__all__ = [
    "ContinuationScores",
    "FakeLanguageModel",
    "LanguageModel",
    "check_continuations",
    "check_generation_args",
    "cut_at_stop",
    "cut_stream",
    "generate_json",
    "stream_text",
]

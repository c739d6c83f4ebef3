"""Language-model rewrites of an item's title that keep its meaning: the in-context form of
adversarial text rewriting (ATR-ICL, Oh et al., "Adversarial Text Rewriting for Text-aware
Recommender Systems", CIKM 2024), with a meaning check by embedding similarity.

1. :func:`propose`: a language model is asked ``n`` times to rewrite the title so that viewers of
   the catalogue's most popular titles would pick it, each request with its own hint (more
   exciting, more dramatic, ...) and its own sampling seed; its first line is the rewrite.
2. :func:`screen`: a rewrite is *accepted* only when the cosine similarity of its text
   embedding to the original title's (unit vectors from a :class:`~genrec.text.TextEncoder`,
   all-MiniLM-L6-v2 by default) is at least ``threshold``, and it is not empty and not the
   original. Titles are compared, not whole item texts: the genres and year an item text adds
   are the same on both sides and would hide how far the title moved.
3. :func:`best_accepted`: the accepted rewrite the attacker's score (the target's mean score
   for surrogate users, as in the word-edit search) rates highest, used only when it beats the
   original title's score (a rational attacker keeps the original otherwise).

Deliberate deviations from ATR: no fine-tuning of the rewriter (ATR-2FT), and the title, not a
description, is rewritten (MovieLens items have none); the year stays as it is.

Example:
    >>> from genrec.text.encoder import HashingEncoder
    >>> from genrec.text.lm import FakeLanguageModel
    >>> lm = FakeLanguageModel(generate_fn=lambda p: '"The Silent River Returns"')
    >>> out = screen(HashingEncoder(), "Silent River", propose(lm, "Silent River", [], n=1),
    ...              threshold=0.3)
    >>> out[0].text, out[0].accepted
    ('The Silent River Returns', True)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from genrec.text import prompts

HINTS = (
    "more exciting",
    "more appealing to the viewers of those films",
    "more dramatic",
    "more memorable",
    "like a blockbuster",
    "more intriguing",
)
TEMPERATURE = 0.8  # sampling temperature of every rewrite request
MAX_NEW_TOKENS = 24  # tokens a rewrite may take
AUDIENCE = 5  # popular titles named in the prompt
_SENTENCE_END = re.compile(r"(?<=[a-z]{2})\"?[.!?]\"?\s+(?=[A-Z])")  # "here. Then", not "Mr. X"


@dataclass(frozen=True)
class Rewrite:
    """One proposed rewrite: its text, its similarity to the original title, accepted or not."""

    text: str
    similarity: float
    accepted: bool


def rewrite_prompt(title: str, audience: Sequence[str], hint: str) -> str:
    """The request for one rewrite of ``title`` in the style of ``hint``, naming the
    ``audience`` titles (the films whose viewers the rewrite should win)."""
    liked = ", ".join(prompts.quote(prompts.natural_title(t)) for t in audience)
    viewers = f" Viewers loved {liked}." if liked else ""
    return (
        f"Rewrite the movie title {prompts.quote(prompts.natural_title(title))} to sound "
        f"{hint}, keeping its meaning.{viewers} Answer with the new title only.\nNew title:"
    )


def clean(output: str) -> str:
    """The rewrite in a model's ``output``: its first non-empty line up to the end of its first
    sentence, without a ``Title:`` label, surrounding quotes or asterisks, or a final full stop
    or colon.

    >>> clean('  New title: "Heat Wave". It is a film about...\\nMore text')
    'Heat Wave'
    """
    line = next((s.strip() for s in str(output).splitlines() if s.strip()), "")
    line = _SENTENCE_END.split(line, maxsplit=1)[0]
    for label in ("new title:", "movie title:", "title:"):
        if line.lower().startswith(label):
            line = line[len(label) :].strip()
    return line.strip(" *\"'`").rstrip(".:").strip(" *\"'`")


def propose(lm, title: str, audience: Sequence[str], *, n: int, seed: int = 0) -> list[str]:
    """``n`` rewrites of ``title`` by ``lm``: request i uses hint ``HINTS[i % len(HINTS)]``
    and seed ``seed + i`` at :data:`TEMPERATURE` (one ``generate`` call each)."""
    out = []
    for i in range(n):
        prompt = rewrite_prompt(title, audience, HINTS[i % len(HINTS)])
        text = lm.generate(
            [prompt], max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, seed=seed + i
        )[0]
        out.append(clean(text))
    return out


def screen(encoder, title: str, proposals: Sequence[str], *, threshold: float) -> list[Rewrite]:
    """Each proposal with its cosine similarity to ``title`` under ``encoder`` (natural titles,
    unit embeddings) and whether it is accepted (similarity >= ``threshold``, not empty, not
    the original)."""
    if not proposals:
        return []
    original = prompts.natural_title(title)
    vectors = encoder.encode([original] + [prompts.natural_title(p) for p in proposals])
    sims = np.asarray(vectors[1:] @ vectors[0], np.float64)  # (P,) cosines of unit rows
    return [
        Rewrite(
            p,
            float(s),
            bool(s >= threshold and p.strip() and prompts.natural_title(p) != original),
        )
        for p, s in zip(proposals, sims)
    ]


def best_accepted(
    score: Callable[[list[str]], np.ndarray], title: str, rewrites: Sequence[Rewrite]
) -> Rewrite | None:
    """The accepted rewrite ``score`` (titles -> their mean score on the surrogate users) rates
    highest, when it rates it above ``title``; None otherwise (the original stays)."""
    accepted = list({r.text: r for r in rewrites if r.accepted}.values())
    if not accepted:
        return None
    values = np.asarray(score([title] + [r.text for r in accepted]), np.float64)
    best = int(np.argmax(values[1:]))
    return accepted[best] if values[1 + best] > values[0] else None


__all__ = [
    "AUDIENCE",
    "HINTS",
    "MAX_NEW_TOKENS",
    "Rewrite",
    "TEMPERATURE",
    "best_accepted",
    "clean",
    "propose",
    "rewrite_prompt",
    "screen",
]

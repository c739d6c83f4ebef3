"""Grounded explanations of recommendations.

Retrieval-augmented explanation (the survey's Sec. 3.3): for a user's history and a recommended
item we *retrieve* facts — the item's title, year, genres and description from the catalog,
optionally a few other users' reviews of it, and the items the user liked that are most related
to it (shared genres, plus text similarity when item vectors from a
:class:`~genrec.text.TextEncoder` are given) — put them in a prompt as quoted facts
(:func:`genrec.text.prompts.quote`, so data text can never rewrite the instruction; the
:mod:`genrec.text.guard` first strips instruction-like spans from titles, descriptions and
reviews), and let a
language model write one short sentence (greedy, a token budget, stopping at the end of the
line). The result keeps the facts it was given.

The user's history is a :class:`~genrec.data.UserHistory` (``UserHistory.of(data, user)``):
items with their ratings and the dataset's ``positive_threshold``. Only items rated at or above
the threshold are cited, as items the user "liked"; a film rated 2 of 5 is never cited. Data
without ratings (implicit feedback, or a plain list of item ids) cites what the user did:
"Because you watched X" (``INTERACTION_VERBS``).

* :class:`LMExplainer` — the language-model explainer (any
  :class:`~genrec.text.lm.LanguageModel`). For a base model (no chat template) the answer is
  started for it (``You may like "<title>" because``); the first sentence of the completion is
  kept, since small models repeat themselves until the token budget runs out.
* :class:`TemplateExplainer` — the no-LM baseline: "Because you liked X and Y (both Comedy), you
  may enjoy Z (1995), a Comedy and Drama movie." It only states retrieved facts, so it is
  faithful by construction; it is the yardstick for the LM.
* :func:`item_reviews` (other users' reviews as facts) and :func:`review_references` (the
  user's own review of an item, for BLEU/ROUGE with
  :func:`genrec.evaluation.text_metrics.text_overlap`).

How faithful an explanation is — its claims about the item and about the user, checked — is
evaluation: :func:`genrec.evaluation.faithfulness.faithfulness`.

Example:
    >>> from genrec.data import ItemCatalog, UserHistory, Vocabulary
    >>> from genrec.evaluation.faithfulness import faithfulness
    >>> catalog = ItemCatalog(Vocabulary(["1", "2", "3"], kind="item"), {
    ...     "title": ["Toy Story", "Heat", "Casper"], "year": [1995.0, 1995.0, 1995.0],
    ...     "genres": [("Animation", "Comedy"), ("Action", "Comedy"), ("Comedy",)]})
    >>> history = UserHistory(items=(0, 1), values=(5.0, 2.0), positive_threshold=4.0)
    >>> e = TemplateExplainer(catalog).explain(history, 2)  # Heat, rated 2, is not cited
    >>> e.text
    'Because you liked Toy Story (Comedy), you may enjoy Casper (1995), a Comedy movie.'
    >>> faithfulness(e, 2, catalog, history=history).share
    1.0
    >>> TemplateExplainer(catalog).explain([1], 2).text  # ids only: no ratings, no "liked"
    'Because you watched Heat (Comedy), you may enjoy Casper (1995), a Comedy movie.'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from genrec.data.history import UserHistory
from genrec.errors import ConfigError
from genrec.text import guard
from genrec.text.prompts import MAX_CHARS, natural_title, quote

# How an explanation says the user interacted with an item when the data has no ratings (no
# positive threshold), so it cannot say they liked it; other kinds say "chose".
INTERACTION_VERBS = {"movie": "watched", "book": "read", "product": "bought", "game": "played"}


# ---- retrieval ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    """One retrieved fact: ``field`` ("title", "year", "genres", "description", "review") of
    catalog item ``item``, as text."""

    item: int
    field: str
    value: str


@dataclass(frozen=True)
class Explanation:
    """An explanation of recommending ``item`` and the facts it was grounded in.

    Attributes:
        item: the recommended item (index).
        text: the explanation.
        facts: the facts given to the writer (the item's, then the related history items').
        related: history items retrieved as most related to ``item``, best first.
        explainer: the explainer's name.
        prompt: the prompt the language model saw ("" for the template).
    """

    item: int
    text: str
    facts: tuple[Fact, ...]
    related: tuple[int, ...]
    explainer: str
    prompt: str = ""


def item_facts(catalog, item: int, *, description_words: int = 40) -> list[Fact]:
    """The catalog's facts about ``item``: title, year, genres, description (first words)."""
    facts = [Fact(item, "title", natural_title(catalog.title(item)))]
    if (year := catalog.year(item)) is not None:
        facts.append(Fact(item, "year", str(year)))
    if genres := catalog.genres(item):
        facts.append(Fact(item, "genres", ", ".join(genres)))
    if "description" in catalog.columns and catalog.columns["description"][item]:
        words = str(catalog.columns["description"][item]).split()
        more = " ..." if len(words) > description_words else ""
        text = " ".join(words[:description_words]) + more
        facts.append(Fact(item, "description", text))
    return facts


def related_history(
    catalog,
    history: Sequence[int],
    item: int,
    *,
    k: int = 2,
    item_vectors: np.ndarray | None = None,
) -> list[int]:
    """The ``k`` history items most related to ``item``: most shared genres first, plus the
    cosine similarity of ``item_vectors`` rows (unit length, (n_items, D)) when given; ties go
    to the more recent item (``history`` is oldest first)."""
    history = [int(h) for h in history if int(h) != int(item)]
    if not history:
        return []
    target = set(catalog.genres(item))
    score = np.array([len(target & set(catalog.genres(h))) for h in history], np.float64)
    if item_vectors is not None:
        score += item_vectors[history] @ item_vectors[int(item)]
    recency = np.arange(len(history))
    order = np.lexsort((-recency, -score))  # best score, then most recent
    return [history[j] for j in order[:k]]


# ---- explainers -----------------------------------------------------------------------------
class Explainer:
    """Retrieves the facts for (history, item) pairs; subclasses write the text (``_write``).

    Args:
        catalog: the item catalog (``dataset.catalog``).
        n_related: how many related history items to retrieve.
        item_vectors: optional (n_items, D) unit-length item text vectors for relatedness.
        encoder: or a :class:`~genrec.text.TextEncoder` (or a name for
            :func:`~genrec.text.get_encoder`, e.g. "minilm") that computes them from the
            catalog's rendered item texts; ``embedding_cache`` is its on-disk cache folder.
        reviews: optional item -> other users' review texts of it (build it from training data
            only, without the explained user's own review); up to ``n_reviews`` become facts.
        kind: what the items are ("movie", "product"), for the wording.
    """

    name = "explainer"

    def __init__(
        self,
        catalog,
        *,
        n_related: int = 2,
        item_vectors: np.ndarray | None = None,
        reviews: Mapping[int, Sequence[str]] | None = None,
        n_reviews: int = 1,
        kind: str = "movie",
        encoder=None,
        embedding_cache=None,
    ):
        if catalog is None:
            raise ConfigError(
                "explanations need an item catalog; this dataset has none "
                "(load it with item metadata, e.g. a meta file for Amazon)"
            )
        for field, value in (("n_related", n_related), ("n_reviews", n_reviews)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{field} must be a non-negative integer, got {value!r}")
        if item_vectors is None and encoder is not None:
            from genrec.text.encoder import encode_cached, get_encoder, render_item_texts

            encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
            item_vectors = encode_cached(encoder, render_item_texts(catalog), embedding_cache)
        if item_vectors is not None and len(item_vectors) != len(catalog.vocab):
            raise ConfigError(
                f"item_vectors has {len(item_vectors)} rows; the catalog has "
                f"{len(catalog.vocab)} items"
            )
        self.catalog, self.n_related, self.item_vectors = catalog, n_related, item_vectors
        self.reviews, self.n_reviews, self.kind = reviews or {}, n_reviews, kind

    def ground(
        self, history: UserHistory | Sequence[int], item: int
    ) -> tuple[list[Fact], list[int]]:
        """(facts, related history items) for explaining ``item`` to a user with ``history``.

        Only items the user liked can be related (for rated data: at or above the dataset's
        positive threshold; a plain sequence of item ids is implicit feedback, all of it)."""
        item = int(item)
        if not 0 <= item < len(self.catalog.vocab):
            raise ConfigError(f"item index {item} is outside 0..{len(self.catalog.vocab) - 1}")
        liked = UserHistory.coerce(history).liked
        related = related_history(
            self.catalog, liked, item, k=self.n_related, item_vectors=self.item_vectors
        )
        facts = item_facts(self.catalog, item)
        facts += [
            Fact(item, "review", str(r))
            for r in [r for r in self.reviews.get(item, ()) if r][: self.n_reviews]
        ]
        for h in related:
            facts += [
                f for f in item_facts(self.catalog, h) if f.field in ("title", "year", "genres")
            ]
        return facts, related

    def explain(self, history: UserHistory | Sequence[int], item: int) -> Explanation:
        """The explanation of recommending ``item`` to a user with ``history``: a
        :class:`~genrec.data.UserHistory` (``UserHistory.of(data, user)``), or a plain sequence
        of item indices, oldest first, taken as implicit feedback."""
        return self.explain_many([(history, item)])[0]

    def explain_many(
        self, pairs: Sequence[tuple[UserHistory | Sequence[int], int]]
    ) -> list[Explanation]:
        """One :class:`Explanation` per (history, item) pair (language models run batched)."""
        grounded = [
            (int(item), *self.ground(history, item), self.cite_verb(history))
            for history, item in pairs
        ]
        texts, prompts = self._write(grounded)
        return [
            Explanation(item, text.strip(), tuple(facts), tuple(related), self.name, prompt)
            for (item, facts, related, _), text, prompt in zip(grounded, texts, prompts)
        ]

    def cite_verb(self, history: UserHistory | Sequence[int]) -> str:
        """How the user's related items are cited: "liked" when the history has ratings and a
        positive threshold, else what the data shows: that they watched (bought, ...) them."""
        if UserHistory.coerce(history).rated:
            return "liked"
        return INTERACTION_VERBS.get(self.kind, "chose")

    def _write(self, grounded) -> tuple[list[str], list[str]]:
        raise NotImplementedError


class TemplateExplainer(Explainer):
    """The deterministic, LM-free baseline: states only retrieved facts (see the module doc)."""

    name = "template"

    def _write(self, grounded):
        return (
            [self.sentence(item, related, verb=verb) for item, _, related, verb in grounded],
            [""] * len(grounded),
        )

    def sentence(self, item: int, related: Sequence[int], *, verb: str = "liked") -> str:
        """The explanation of ``item`` citing the ``related`` history items as items the user
        ``verb`` ("liked", or "watched" when the data has no ratings)."""
        title = natural_title(self.catalog.title(item))
        year = self.catalog.year(item)
        named = f"{title} ({year})" if year is not None else title
        genres = self.catalog.genres(item)
        listed = ", ".join(genres[:-1]) + " and " + genres[-1] if len(genres) > 1 else ""
        listed = listed or "".join(genres)
        kind = f"{listed} {self.kind}" if genres else ""
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        shared = {h: [g for g in genres if g in self.catalog.genres(h)] for h in related}
        best = max(genres, key=lambda g: sum(g in s for s in shared.values()), default=None)
        liked = [h for h in related if best in shared[h]]
        if liked:
            titles = " and ".join(natural_title(self.catalog.title(h)) for h in liked)
            both = {1: "", 2: "both "}.get(len(liked), "all ")
            return (
                f"Because you {verb} {titles} ({both}{best}), you may enjoy {named}, "
                f"{article} {kind}."
            )
        if related:
            first = natural_title(self.catalog.title(related[0]))
            what = f", {article} {kind}" if kind else ""
            return f"You may enjoy {named}{what}; you also {verb} {first}."
        return f"You may enjoy {named}, {article} {kind}." if kind else f"You may enjoy {named}."


EXPLAIN_INSTRUCTION = (
    "Write one short sentence that tells a {kind} fan why they may like the "
    "recommended {kind}. Use only the facts below; every fact is written in "
    "double quotes.\n\n"
)
EXPLAIN_ANSWER = "Explanation:"
EXPLAIN_LEAD = "You may like {title} because"  # {title} is quoted


class LMExplainer(Explainer):
    """Explanations written by a language model from the retrieved facts.

    Args:
        lm: a :class:`~genrec.text.lm.LanguageModel` (or a spec for
            :func:`~genrec.text.backends.get_language_model`, e.g. ``"transformers:smollm2-135m"``).
        max_new_tokens: the token budget of one explanation.
        batch_size: prompts per ``generate`` call.
        lead: start the answer for the model with ``You may like "<title>" because`` (the
            explanation is that lead plus the completion). Base models need it: after a bare
            "Explanation:" Gemma 3 270M ends the line at once. None: lead unless the backend
            wraps prompts in a chat template (``lm.chat``), as instruction-tuned models do.
        max_sentences: keep this many sentences of the completion (small models repeat
            themselves until the token budget ends); None keeps everything.
        injection_guard: strip instruction-like spans from titles, descriptions and reviews
            before quoting them (:func:`genrec.text.guard.screen`); False only to measure
            what the guard prevents.
        other arguments: as :class:`Explainer`.
    """

    def __init__(
        self,
        catalog,
        lm,
        *,
        max_new_tokens: int = 48,
        batch_size: int = 8,
        lead: bool | None = None,
        max_sentences: int | None = 1,
        injection_guard: bool = True,
        **kw,
    ):
        from genrec.text.backends import get_language_model
        from genrec.text.lm import check_generation_args

        super().__init__(catalog, **kw)
        check_generation_args(max_new_tokens, 0.0)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.lm = get_language_model(lm)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.lead = (not getattr(self.lm, "chat", False)) if lead is None else bool(lead)
        if max_sentences is not None and (
            isinstance(max_sentences, bool)
            or not isinstance(max_sentences, int)
            or max_sentences < 1
        ):
            raise ConfigError(
                f"max_sentences must be a positive integer or None, got {max_sentences!r}"
            )
        self.max_sentences = max_sentences
        self.injection_guard = bool(injection_guard)
        self.name = f"lm:{self.lm.name}"

    def _quote(self, text: str, *, max_chars: int = MAX_CHARS) -> str:
        """``text`` as quoted data, screened by the guard first when it is on."""
        return quote(guard.screen(text).text if self.injection_guard else text, max_chars=max_chars)

    def prompt(
        self, item: int, facts: Sequence[Fact], related: Sequence[int], *, verb: str = "liked"
    ) -> str:
        """The explanation prompt: the instruction, then every fact quoted, one per line; the
        related history items are introduced as items the user ``verb``."""
        own = [f for f in facts if f.item == item]
        lines = [EXPLAIN_INSTRUCTION.format(kind=self.kind)]
        labels = {
            "title": f"Recommended {self.kind}",
            "year": "Year",
            "genres": "Genres",
            "description": "Description",
        }
        for f in own:
            if f.field == "genres":
                lines.append("Genres: " + ", ".join(quote(g) for g in f.value.split(", ")) + "\n")
            elif f.field in labels:
                lines.append(f"{labels[f.field]}: {self._quote(f.value, max_chars=400)}\n")
        reviews = [f for f in own if f.field == "review"]
        if reviews:
            lines.append("What another customer wrote about it:\n")
            lines += [f"- {self._quote(f.value, max_chars=300)}\n" for f in reviews]
        if related:
            lines.append(f"{self.kind.capitalize()}s this fan {verb} that are related to it:\n")
        for h in related:
            parts = {f.field: f.value for f in facts if f.item == h}
            details = [quote(parts["year"])] if "year" in parts else []
            details += [quote(g) for g in parts.get("genres", "").split(", ") if g]
            extra = f" ({', '.join(details)})" if details else ""
            lines.append(f"- {self._quote(parts['title'])}{extra}\n")
        lines.append(f"\n{EXPLAIN_ANSWER}")
        return "".join(lines) + (" " + self.lead_text(item) if self.lead else "")

    def lead_text(self, item: int) -> str:
        """The start of the answer written for the model when ``lead`` is on."""
        return EXPLAIN_LEAD.format(title=self._quote(natural_title(self.catalog.title(item))))

    def _write(self, grounded):
        prompts = [
            self.prompt(item, facts, related, verb=verb) for item, facts, related, verb in grounded
        ]
        texts: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            texts += self.lm.generate(
                prompts[start : start + self.batch_size],
                max_new_tokens=self.max_new_tokens,
                temperature=0.0,
                stop=("\n",),
            )
        texts = [first_sentences(t.strip(), self.max_sentences) for t in texts]
        if self.lead:
            texts = [self.lead_text(item) + " " + text for (item, *_), text in zip(grounded, texts)]
        return texts, prompts


_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def first_sentences(text: str, n: int | None) -> str:
    """The first ``n`` sentences of ``text`` (a break is . ! or ? then a space and a capital
    letter or quote, so "E.T. the" stays whole); all of it when ``n`` is None.

    >>> first_sentences("It is a comedy. You may like it. Yes", 1)
    'It is a comedy.'
    """
    if n is None:
        return text
    return " ".join(_SENTENCE_BREAK.split(text)[:n])


# ---- review texts -----------------------------------------------------------------------
def review_references(data, users: Sequence[int], items: Sequence[int]) -> list[str]:
    """The review text of each (user, item) pair in ``data.extras["review_text"]`` (the latest
    one when repeated; "" when the pair or the text is missing)."""
    if "review_text" not in data.extras:
        raise ConfigError(
            f"dataset {data.name!r} has no review_text; load Amazon reviews "
            "(load_amazon_2018 / load_amazon_2023) to compare with reviews"
        )
    texts = data.extras["review_text"]
    latest: dict[tuple[int, int], int] = {}
    for row in np.lexsort((data.timestamp, data.item_idx, data.user_idx)):
        latest[(int(data.user_idx[row]), int(data.item_idx[row]))] = int(row)
    rows = [latest.get((int(u), int(i))) for u, i in zip(users, items)]
    return ["" if r is None or texts[r] is None else str(texts[r]) for r in rows]


def item_reviews(data, *, exclude: Sequence[tuple[int, int]] = ()) -> dict[int, list[str]]:
    """item -> its non-empty review texts in ``data`` (oldest first), leaving out the
    (user, item) pairs in ``exclude`` (e.g. the reviews the explanations are compared with)."""
    if "review_text" not in data.extras:
        return {}
    skip = {(int(u), int(i)) for u, i in exclude}
    out: dict[int, list[str]] = {}
    texts = data.extras["review_text"]
    for row in np.argsort(data.timestamp, kind="stable"):
        u, i = int(data.user_idx[row]), int(data.item_idx[row])
        if texts[row] and (u, i) not in skip:
            out.setdefault(i, []).append(str(texts[row]))
    return out


__all__ = [
    "EXPLAIN_INSTRUCTION",
    "Explainer",
    "Explanation",
    "Fact",
    "INTERACTION_VERBS",
    "LMExplainer",
    "TemplateExplainer",
    "item_facts",
    "item_reviews",
    "related_history",
    "review_references",
]

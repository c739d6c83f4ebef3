"""Grounded explanations of recommendations, and how faithful they are.

Retrieval-augmented explanation (the survey's Sec. 3.3): for a user's history and a recommended
item we *retrieve* facts — the item's title, year, genres and description from the catalog,
optionally a few other users' reviews of it, and the history items most related to it (shared
genres, plus text similarity when item vectors from a :class:`~genrec.text.TextEncoder` are
given) — put them in a prompt as quoted facts (:func:`genrec.text.prompts.quote`, so data text
can never rewrite the instruction), and let a language model write one short sentence (greedy,
a token budget, stopping at the end of the line). The result keeps the facts it was given.

* :class:`LMExplainer` — the language-model explainer (any
  :class:`~genrec.text.lm.LanguageModel`). For a base model (no chat template) the answer is
  started for it (``You may like "<title>" because``); the first sentence of the completion is
  kept, since small models repeat themselves until the token budget runs out.
* :class:`TemplateExplainer` — the no-LM baseline: "Because you liked X and Y (both Comedy), you
  may enjoy Z (1995), a Comedy and Drama movie." It only states retrieved facts, so it is
  faithful by construction; it is the yardstick for the LM.
* :func:`faithfulness` — extracts the checkable claims of an explanation and checks them:
  years ("1995") and decades ("'90s", "1990s") against the item's year; genre names of the
  catalog's genre vocabulary (with plurals and a few aliases such as "romantic" or "science
  fiction") against its genres; titles of other catalog items against the user's history (a
  mentioned item the user never interacted with is a false claim). A year or genre claim is
  also true when it holds for a history item named in the same sentence ("you liked Heat, a
  1995 thriller"). Explanations with no checkable claim are reported as such, never as faithful.
* :func:`summarize_faithfulness`, :func:`review_references` (the user's own review of an item,
  for BLEU/ROUGE with :func:`genrec.evaluation.text_metrics.text_overlap`).

Limits of the claim extractor: titles are matched case-sensitively as written in the catalog or
with a trailing article moved to the front ("Godfather, The" -> "The Godfather"); a one-word
title counts only when it does not start a sentence; paraphrased facts ("a film about a heist")
are not checked.

Example:
    >>> from genrec.data import ItemCatalog, Vocabulary
    >>> catalog = ItemCatalog(Vocabulary(["1", "2", "3"], kind="item"), {
    ...     "title": ["Toy Story", "Heat", "Casper"], "year": [1995.0, 1995.0, 1995.0],
    ...     "genres": [("Animation", "Comedy"), ("Action", "Thriller"), ("Comedy",)]})
    >>> template = TemplateExplainer(catalog)
    >>> e = template.explain([0, 1], 2)
    >>> e.text
    'Because you liked Toy Story (Comedy), you may enjoy Casper (1995), a Comedy movie.'
    >>> faithfulness(e.text, 2, catalog, history=[0, 1]).share
    1.0
    >>> report = faithfulness("Casper is a 1987 action comedy.", 2, catalog)
    >>> [(c.kind, c.value, c.true) for c in report.claims]
    [('year', '1987', False), ('genre', 'Action', False), ('genre', 'Comedy', True)]
"""

from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from genrec.errors import ConfigError
from genrec.text.prompts import natural_title, quote

NO_GENRE = {"", "unknown", "(no genres listed)"}
# Extra surface forms of MovieLens genres (plurals are added for every genre automatically).
GENRE_ALIASES = {"Sci-Fi": ("science fiction", "sci fi", "scifi"), "Children's": ("children",),
                 "Romance": ("romantic", "romances"), "Animation": ("animated",),
                 "Comedy": ("comedic",), "Drama": ("dramatic",), "Film-Noir": ("film noir", "noir"),
                 "Mystery": ("mysteries",), "Documentary": ("documentaries",)}


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


def _genres(catalog, item: int) -> tuple[str, ...]:
    if catalog is None or "genres" not in catalog.columns:
        return ()
    value = catalog.columns["genres"][item]
    if value is None or isinstance(value, float):
        return ()
    return tuple(str(g) for g in value if str(g) not in NO_GENRE)


def _year(catalog, item: int) -> str:
    if catalog is None or "year" not in catalog.columns:
        return ""
    value = catalog.columns["year"][item]
    try:
        year = float(value)
    except (TypeError, ValueError):
        return ""
    return str(int(year)) if math.isfinite(year) else ""


def item_facts(catalog, item: int, *, description_words: int = 40) -> list[Fact]:
    """The catalog's facts about ``item``: title, year, genres, description (first words)."""
    facts = [Fact(item, "title", natural_title(catalog.title(item)))]
    if year := _year(catalog, item):
        facts.append(Fact(item, "year", year))
    if genres := _genres(catalog, item):
        facts.append(Fact(item, "genres", ", ".join(genres)))
    if "description" in catalog.columns and catalog.columns["description"][item]:
        words = str(catalog.columns["description"][item]).split()
        more = " ..." if len(words) > description_words else ""
        text = " ".join(words[:description_words]) + more
        facts.append(Fact(item, "description", text))
    return facts


def related_history(catalog, history: Sequence[int], item: int, *, k: int = 2,
                    item_vectors: np.ndarray | None = None) -> list[int]:
    """The ``k`` history items most related to ``item``: most shared genres first, plus the
    cosine similarity of ``item_vectors`` rows (unit length, (n_items, D)) when given; ties go
    to the more recent item (``history`` is oldest first)."""
    history = [int(h) for h in history if int(h) != int(item)]
    if not history:
        return []
    target = set(_genres(catalog, item))
    score = np.array([len(target & set(_genres(catalog, h))) for h in history], np.float64)
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

    def __init__(self, catalog, *, n_related: int = 2, item_vectors: np.ndarray | None = None,
                 reviews: Mapping[int, Sequence[str]] | None = None, n_reviews: int = 1,
                 kind: str = "movie", encoder=None, embedding_cache=None):
        if catalog is None:
            raise ConfigError("explanations need an item catalog; this dataset has none "
                              "(load it with item metadata, e.g. a meta file for Amazon)")
        for field, value in (("n_related", n_related), ("n_reviews", n_reviews)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{field} must be a non-negative integer, got {value!r}")
        if item_vectors is None and encoder is not None:
            from genrec.text.encoder import encode_cached, get_encoder, render_item_texts

            encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
            item_vectors = encode_cached(encoder, render_item_texts(catalog), embedding_cache)
        if item_vectors is not None and len(item_vectors) != len(catalog.vocab):
            raise ConfigError(f"item_vectors has {len(item_vectors)} rows; the catalog has "
                              f"{len(catalog.vocab)} items")
        self.catalog, self.n_related, self.item_vectors = catalog, n_related, item_vectors
        self.reviews, self.n_reviews, self.kind = reviews or {}, n_reviews, kind

    def ground(self, history: Sequence[int], item: int) -> tuple[list[Fact], list[int]]:
        """(facts, related history items) for explaining ``item`` to a user with ``history``."""
        item = int(item)
        if not 0 <= item < len(self.catalog.vocab):
            raise ConfigError(f"item index {item} is outside 0..{len(self.catalog.vocab) - 1}")
        related = related_history(self.catalog, history, item, k=self.n_related,
                                  item_vectors=self.item_vectors)
        facts = item_facts(self.catalog, item)
        facts += [Fact(item, "review", str(r)) for r in
                  [r for r in self.reviews.get(item, ()) if r][: self.n_reviews]]
        for h in related:
            facts += [f for f in item_facts(self.catalog, h)
                      if f.field in ("title", "year", "genres")]
        return facts, related

    def explain(self, history: Sequence[int], item: int) -> Explanation:
        return self.explain_many([(history, item)])[0]

    def explain_many(self, pairs: Sequence[tuple[Sequence[int], int]]) -> list[Explanation]:
        """One :class:`Explanation` per (history, item) pair (language models run batched)."""
        grounded = [(int(item), *self.ground(history, item)) for history, item in pairs]
        texts, prompts = self._write(grounded)
        return [Explanation(item, text.strip(), tuple(facts), tuple(related), self.name, prompt)
                for (item, facts, related), text, prompt in zip(grounded, texts, prompts)]

    def _write(self, grounded) -> tuple[list[str], list[str]]:
        raise NotImplementedError


class TemplateExplainer(Explainer):
    """The deterministic, LM-free baseline: states only retrieved facts (see the module doc)."""

    name = "template"

    def _write(self, grounded):
        return [self.sentence(item, related) for item, _, related in grounded], [""] * len(grounded)

    def sentence(self, item: int, related: Sequence[int]) -> str:
        title = natural_title(self.catalog.title(item))
        year = _year(self.catalog, item)
        named = f"{title} ({year})" if year else title
        genres = _genres(self.catalog, item)
        listed = ", ".join(genres[:-1]) + " and " + genres[-1] if len(genres) > 1 else ""
        listed = listed or "".join(genres)
        kind = f"{listed} {self.kind}" if genres else ""
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        shared = {h: [g for g in genres if g in _genres(self.catalog, h)] for h in related}
        best = max(genres, key=lambda g: sum(g in s for s in shared.values()), default=None)
        liked = [h for h in related if best in shared[h]]
        if liked:
            titles = " and ".join(natural_title(self.catalog.title(h)) for h in liked)
            both = {1: "", 2: "both "}.get(len(liked), "all ")
            return (f"Because you liked {titles} ({both}{best}), you may enjoy {named}, "
                    f"{article} {kind}.")
        if related:
            first = natural_title(self.catalog.title(related[0]))
            what = f", {article} {kind}" if kind else ""
            return f"You may enjoy {named}{what}; you recently liked {first}."
        return f"You may enjoy {named}, {article} {kind}." if kind else f"You may enjoy {named}."


EXPLAIN_INSTRUCTION = ("Write one short sentence that tells a {kind} fan why they may like the "
                       "recommended {kind}. Use only the facts below; every fact is written in "
                       "double quotes.\n\n")
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
        other arguments: as :class:`Explainer`.
    """

    def __init__(self, catalog, lm, *, max_new_tokens: int = 48, batch_size: int = 8,
                 lead: bool | None = None, max_sentences: int | None = 1, **kw):
        from genrec.text.backends import get_language_model
        from genrec.text.lm import check_generation_args

        super().__init__(catalog, **kw)
        check_generation_args(max_new_tokens, 0.0)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.lm = get_language_model(lm)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.lead = (not getattr(self.lm, "chat", False)) if lead is None else bool(lead)
        if max_sentences is not None and (isinstance(max_sentences, bool) or not isinstance(
                max_sentences, int) or max_sentences < 1):
            raise ConfigError("max_sentences must be a positive integer or None, got "
                              f"{max_sentences!r}")
        self.max_sentences = max_sentences
        self.name = f"lm:{self.lm.name}"

    def prompt(self, item: int, facts: Sequence[Fact], related: Sequence[int]) -> str:
        """The explanation prompt: the instruction, then every fact quoted, one per line."""
        own = [f for f in facts if f.item == item]
        lines = [EXPLAIN_INSTRUCTION.format(kind=self.kind)]
        labels = {"title": f"Recommended {self.kind}", "year": "Year", "genres": "Genres",
                  "description": "Description"}
        for f in own:
            if f.field == "genres":
                lines.append("Genres: " + ", ".join(quote(g) for g in f.value.split(", ")) + "\n")
            elif f.field in labels:
                lines.append(f"{labels[f.field]}: {quote(f.value, max_chars=400)}\n")
        reviews = [f for f in own if f.field == "review"]
        if reviews:
            lines.append("What another customer wrote about it:\n")
            lines += [f"- {quote(f.value, max_chars=300)}\n" for f in reviews]
        if related:
            lines.append(f"{self.kind.capitalize()}s this fan liked that are related to it:\n")
        for h in related:
            parts = {f.field: f.value for f in facts if f.item == h}
            details = [quote(parts["year"])] if "year" in parts else []
            details += [quote(g) for g in parts.get("genres", "").split(", ") if g]
            extra = f" ({', '.join(details)})" if details else ""
            lines.append(f"- {quote(parts['title'])}{extra}\n")
        lines.append(f"\n{EXPLAIN_ANSWER}")
        return "".join(lines) + (" " + self.lead_text(item) if self.lead else "")

    def lead_text(self, item: int) -> str:
        """The start of the answer written for the model when ``lead`` is on."""
        return EXPLAIN_LEAD.format(title=quote(natural_title(self.catalog.title(item))))

    def _write(self, grounded):
        prompts = [self.prompt(item, facts, related) for item, facts, related in grounded]
        texts: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            texts += self.lm.generate(prompts[start:start + self.batch_size],
                                      max_new_tokens=self.max_new_tokens, temperature=0.0,
                                      stop=("\n",))
        texts = [first_sentences(t.strip(), self.max_sentences) for t in texts]
        if self.lead:
            texts = [self.lead_text(item) + " " + text
                     for (item, _, _), text in zip(grounded, texts)]
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


# ---- faithfulness ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """A checkable statement found in an explanation.

    Attributes:
        kind: "year", "decade", "genre" or "title".
        text: the words as written.
        value: the normalised claim: "1995", "1990s", a catalog genre, or the title's item index.
        true: whether it holds (for the item, or a history item named in the same sentence; for
            a title, whether the user has that item).
    """

    kind: str
    text: str
    value: str
    true: bool


@dataclass(frozen=True)
class Faithfulness:
    claims: tuple[Claim, ...]

    @property
    def n_claims(self) -> int:
        return len(self.claims)

    @property
    def n_true(self) -> int:
        return sum(c.true for c in self.claims)

    @property
    def share(self) -> float | None:
        """Share of claims that are true; None when the explanation states no checkable fact."""
        return self.n_true / self.n_claims if self.claims else None


class _ClaimPatterns:
    """Title variants and genre patterns of one catalog (built once per catalog)."""

    def __init__(self, catalog):
        self.titles: dict[str, list[int]] = {}
        for i in range(len(catalog.vocab)):
            raw = str(catalog.title(i)).strip()
            for variant in {raw, natural_title(raw), re.sub(r"\s*\(.*\)$", "", raw)}:
                if len(variant) >= 3:
                    self.titles.setdefault(variant, []).append(i)
        vocabulary = sorted({g for i in range(len(catalog.vocab)) for g in _genres(catalog, i)})
        self.genres: list[tuple[str, re.Pattern]] = []
        for g in vocabulary:
            forms = {g, g + "s", g[:-1] + "ies" if g.endswith("y") else g + "s",
                     *GENRE_ALIASES.get(g, ())}
            alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
            self.genres.append((g, re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.I)))


_PATTERNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(s?)(?![\d\w])")
_SHORT_DECADE = re.compile(r"(?<![\w\d])['\u2019]?(\d)0s\b")


def _patterns(catalog) -> _ClaimPatterns:
    if catalog not in _PATTERNS:
        _PATTERNS[catalog] = _ClaimPatterns(catalog)
    return _PATTERNS[catalog]


def _title_spans(text: str, patterns: _ClaimPatterns) -> list[tuple[int, int, list[int]]]:
    """Non-overlapping (start, end, items) of catalog titles in ``text``, longest first."""
    found = []
    for variant, items in patterns.titles.items():
        start = text.find(variant)
        while start >= 0:
            end = start + len(variant)
            bounded = ((start == 0 or not text[start - 1].isalnum())
                       and (end == len(text) or not text[end].isalnum()))
            sentence_start = not text[:start].strip() or text[:start].rstrip()[-1] in ".!?"
            if bounded and not (" " not in variant and sentence_start):
                found.append((start, end, items))
            start = text.find(variant, start + 1)
    spans: list[tuple[int, int, list[int]]] = []
    for s, e, items in sorted(found, key=lambda x: (x[0] - x[1], x[0])):
        if all(e <= s2 or s >= e2 for s2, e2, _ in spans):
            spans.append((s, e, items))
    return sorted(spans)


def faithfulness(explanation, item: int, catalog, *, history: Sequence[int] | None = None
                 ) -> Faithfulness:
    """The checkable claims of ``explanation`` (a string or :class:`Explanation`) about
    recommending ``item``, each marked true or false (see the module docstring).

    Args:
        history: the user's items; needed to check title claims (without it they are skipped)
            and lets year/genre claims about a history item named in the same sentence count.
    """
    text = explanation.text if isinstance(explanation, Explanation) else str(explanation)
    item, patterns = int(item), _patterns(catalog)
    owned = set() if history is None else {int(h) for h in history}
    claims: list[tuple[int, Claim]] = []
    mentioned: list[tuple[int, set[int]]] = []  # (position, history items it may name)
    masked = list(text)
    for start, end, items in _title_spans(text, patterns):
        masked[start:end] = " " * (end - start)
        if item in items:
            continue
        if history is not None:
            mine = set(items) & owned
            mentioned.append((start, mine))
            claims.append((start, Claim("title", text[start:end], str(items[0]), bool(mine))))
    masked = "".join(masked)  # titles blanked: their words, years and dots are not claims
    sentences = [(m.start(), m.end()) for m in re.finditer(r"[^.!?]+(?:[.!?]+|$)", masked)]

    def sentence_of(pos: int) -> int:
        return next((j for j, (s, e) in enumerate(sentences) if s <= pos < e), -1)

    def holds(pos: int, check) -> bool:
        if check(item):
            return True
        here = sentence_of(pos)
        return any(check(h) for p, hs in mentioned if sentence_of(p) == here for h in hs)

    year_of = lambda i: _year(catalog, i)  # noqa: E731
    for m in _YEAR.finditer(masked):
        year, decade = m.group(1), bool(m.group(2))
        if decade:
            value = year[:3] + "0s"
            ok = holds(m.start(), lambda i: year_of(i)[:3] == year[:3] and bool(year_of(i)))
        else:
            value = year
            ok = holds(m.start(), lambda i: year_of(i) == year)
        claims.append((m.start(), Claim("decade" if decade else "year", m.group(0), value, ok)))
    for m in _SHORT_DECADE.finditer(masked):
        d = int(m.group(1))
        century = "20" if d <= 2 else "19"
        prefix = f"{century}{d}"
        ok = holds(m.start(), lambda i: year_of(i)[:3] == prefix)
        claims.append((m.start(), Claim("decade", m.group(0), prefix + "0s", ok)))
    found = sorted(((m.start(), m.end(), genre) for genre, pattern in patterns.genres
                    for m in pattern.finditer(masked)), key=lambda x: (x[0], x[0] - x[1]))
    last_end = -1
    for start, end, genre in found:  # "Film-Noir" is one claim, not also "noir"
        if start < last_end:
            continue
        last_end = end
        ok = holds(start, lambda i: genre in _genres(catalog, i))
        claims.append((start, Claim("genre", text[start:end], genre, ok)))
    return Faithfulness(tuple(c for _, c in sorted(claims, key=lambda x: x[0])))


def summarize_faithfulness(reports: Sequence[Faithfulness]) -> dict[str, float]:
    """Aggregate over explanations.

    Returns:
        ``explanations``; ``claim_share`` (true claims / all claims, pooled);
        ``mean_share`` (mean per-explanation share, over explanations with claims);
        ``faithful`` (share of ALL explanations whose claims are all true and that state at
        least one); ``no_fact`` (share that state no checkable fact); ``claims_per_explanation``;
        and ``false_<kind>`` (false claims of each kind per explanation).
    """
    n = len(reports)
    if not n:
        raise ConfigError("summarize_faithfulness needs at least one report")
    with_claims = [r for r in reports if r.claims]
    claims = [c for r in reports for c in r.claims]
    out = {"explanations": n,
           "claim_share": (sum(c.true for c in claims) / len(claims)) if claims else float("nan"),
           "mean_share": (float(np.mean([r.share for r in with_claims])) if with_claims
                          else float("nan")),
           "faithful": sum(r.share == 1.0 for r in with_claims) / n,
           "no_fact": (n - len(with_claims)) / n,
           "claims_per_explanation": len(claims) / n}
    for kind in ("year", "decade", "genre", "title"):
        out[f"false_{kind}"] = sum(c.kind == kind and not c.true for c in claims) / n
    return out


def review_references(data, users: Sequence[int], items: Sequence[int]) -> list[str]:
    """The review text of each (user, item) pair in ``data.extras["review_text"]`` (the latest
    one when repeated; "" when the pair or the text is missing)."""
    if "review_text" not in data.extras:
        raise ConfigError(f"dataset {data.name!r} has no review_text; load Amazon reviews "
                          "(load_amazon_2018 / load_amazon_2023) to compare with reviews")
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


__all__ = ["Claim", "EXPLAIN_INSTRUCTION", "Explainer", "Explanation", "Fact", "Faithfulness",
           "LMExplainer", "TemplateExplainer", "faithfulness", "item_facts", "item_reviews",
           "related_history", "review_references", "summarize_faithfulness"]

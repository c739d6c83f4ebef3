"""Facts about items for a language model's prompt: retrieved from several sources, ranked by
relevance to the user, and fitted within a token budget.

A reranker that reads only titles knows what a 270M model remembers about each title. The facts
here are what the data knows, written as short text (Sec. 3.2 of the survey, retrieval-augmented
recommendation; the fusion of several, possibly subjective, sources such as reviews):

* ``catalog``: the year and genres (``"1995; Animation, Children's, Comedy"``);
* ``tags``: the item's ``tags`` catalog column (a tuple of labels), most frequent first as given;
* ``ratings``: the training interactions aggregated as text, ``"rated 4.1/5 by 230 users"``
  (``"chosen by 230 users"`` for implicit feedback); only the data the facts are built from is
  read, so built from a split's training part nothing of validation or test leaks in. An item
  without training interactions (a held-out item) has no ratings fact;
* ``reviews``: sentences of the item's reviews (the per-interaction ``review_text`` extra of the
  Amazon loaders, training part only), ranked by cosine similarity to the user's history text
  under a text encoder (MiniLM by default), most similar first; ties keep the reviews' order.

**Guard.** Every fact is screened by :mod:`genrec.text.guard` when the facts are built; a fact
(for reviews: the whole review, all its sentences) with an instruction-like span, hidden markup
or a unicode trick is dropped whole (and counted in :attr:`ItemFacts.dropped`), never shown in
part. Dropping (rather than flagging the item, as
titles are) means that a hostile review written by anyone cannot demote the item it is about.
The kept facts still enter a prompt only through :func:`genrec.text.prompts.quote`.

**Budget.** Each candidate gets ``budget`` tokens (with a prompt-wide ``total``, at most an equal
share of it). One candidate's facts are joined with ``"; "`` in the order of ``sources`` (within a
source: the order above), and kept while the joined text has at most ``budget`` tokens counted by
the language model's own ``count_tokens``; the first fact that does not fit is cut to its longest
word prefix that fits (followed by ``...``), and nothing after it is kept. The result is a
deterministic function of the facts, the user's history text and the tokenizer.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters(n_users=6, n_items=6, n_clusters=2)
    >>> facts = ItemFacts.from_dataset(world.split.train, sources=("catalog", "ratings"))
    >>> words = lambda text: len(text.split())  # a tokenizer of whitespace-separated words
    >>> facts.describe([1], count_tokens=words, budget=40)[0]
    'group1; chosen by 2 users'
    >>> facts.describe([1], count_tokens=words, budget=2)[0]
    'group1; chosen...'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from genrec.errors import ConfigError, DataError
from genrec.text import guard

SOURCES = ("catalog", "tags", "ratings", "reviews")
SEPARATOR = "; "
ELLIPSIS = "..."
MAX_SENTENCES = 40  # review sentences kept per item (the first ones, reviews in data order)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def parse_sources(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"catalog,ratings"`` (or a sequence) as a tuple of :data:`SOURCES`, in the given order,
    repeats dropped; ``""`` is no source.

    Raises:
        ConfigError: an unknown source (the message names the allowed ones).
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ConfigError(
            f"unknown fact source(s) {unknown}; choose from {list(SOURCES)}, comma-separated "
            "(e.g. 'catalog,ratings'), or '' for titles only"
        )
    return tuple(dict.fromkeys(names))


@dataclass
class ItemFacts:
    """Each item's facts by source (see the module docstring).

    Attributes:
        facts: source -> (n_items,) lists of fact strings (reviews: sentences).
        n_items: how many items there are.
        dropped: how many facts (reviews: whole reviews) the guard dropped, by source.
    """

    facts: dict[str, list[list[str]]]
    n_items: int
    dropped: dict[str, int] = field(default_factory=dict)
    _vectors: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.facts)

    @classmethod
    def from_dataset(cls, data, *, sources: Sequence[str] = SOURCES) -> ItemFacts:
        """The facts of every item of ``data`` (a dataset or a split's training part) from
        ``sources``; a source the data lacks (no ``tags`` column, no ``review_text``) gives no
        facts rather than an error, so one configuration serves several datasets.

        Raises:
            ConfigError: an unknown source.
        """
        builders = {
            "catalog": _catalog_facts,
            "tags": _tag_facts,
            "ratings": _rating_facts,
            "reviews": _review_facts,
        }
        out = cls({}, data.n_items)
        for source in parse_sources(sources):
            out.facts[source], out.dropped[source] = builders[source](data)
        return out

    def describe(
        self,
        items: Sequence[int],
        *,
        count_tokens: Callable[[str], int],
        budget: int,
        total: int | None = None,
        query: np.ndarray | None = None,
        encoder=None,
    ) -> list[str]:
        """One fact text per item of ``items``, each within ``budget`` tokens of
        ``count_tokens`` and, with ``total``, all of them within ``total`` (each item then gets
        ``min(budget, total // len(items))``); review sentences ranked by similarity to
        ``query`` ((D,) unit vector of the user's history text under ``encoder``; without
        either, in data order).

        Raises:
            ConfigError: a negative budget.  DataError: an item outside 0..n_items-1.
        """
        for name, value in (("budget", budget), ("total", 0 if total is None else total)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"the fact {name} must be an integer >= 0 tokens, got {value!r}")
        items = [int(i) for i in items]
        if total is not None and items:
            budget = min(budget, int(total) // len(items))
        bad = [i for i in items if not 0 <= i < self.n_items]
        if bad:
            raise DataError(f"items {bad} are not item indices in 0..{self.n_items - 1}")
        return [
            fit_budget(self._ranked(i, query, encoder), count_tokens=count_tokens, budget=budget)
            for i in items
        ]

    def _ranked(self, item: int, query, encoder) -> list[str]:
        """``item``'s facts in source order, review sentences most relevant first."""
        out = []
        for source, per_item in self.facts.items():
            facts = per_item[item]
            if source == "reviews" and facts and query is not None and encoder is not None:
                similarity = self._sentence_vectors(item, encoder) @ np.asarray(query, np.float32)
                facts = [facts[j] for j in np.argsort(-similarity, kind="stable")]
            out += facts
        return out

    def _sentence_vectors(self, item: int, encoder) -> np.ndarray:
        """(S, D) unit vectors of ``item``'s review sentences, encoded once."""
        if item not in self._vectors:
            self._vectors[item] = np.asarray(encoder.encode(self.facts["reviews"][item]))
        return self._vectors[item]

    # ---- persistence (plain arrays, no pickle) ----------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays (``source``, ``item``, ``text``) that :meth:`from_arrays` reads back."""
        rows = [
            (s, i, text)
            for s, per_item in enumerate(self.facts.values())
            for i, texts in enumerate(per_item)
            for text in texts
        ]
        return {
            "sources": np.array(self.sources, dtype=str),
            "n_items": np.array([self.n_items], np.int64),
            "source": np.array([r[0] for r in rows], np.int64),
            "item": np.array([r[1] for r in rows], np.int64),
            "text": np.array([r[2] for r in rows], dtype=str),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ItemFacts:
        n_items = int(np.asarray(arrays["n_items"]).ravel()[0])
        out = cls({str(s): [[] for _ in range(n_items)] for s in arrays["sources"]}, n_items)
        per_source = list(out.facts.values())
        for s, i, text in zip(arrays["source"], arrays["item"], arrays["text"]):
            per_source[int(s)][int(i)].append(str(text))
        return out


def fit_budget(facts: Sequence[str], *, count_tokens: Callable[[str], int], budget: int) -> str:
    """``facts`` joined with ``"; "`` within ``budget`` tokens: whole facts while they fit, then
    the longest word prefix of the next one (with ``...``) that fits; ``""`` when nothing does.

    >>> fit_budget(["a b", "c d e f"], count_tokens=lambda t: len(t.split()), budget=4)
    'a b; c...'
    """
    kept = ""
    for fact in facts:
        joined = kept + SEPARATOR + fact if kept else fact
        if count_tokens(joined) <= budget:
            kept = joined
            continue
        words = fact.split()
        low, high = 0, len(words) - 1  # the longest prefix of words that fits, by bisection
        while low < high:
            mid = (low + high + 1) // 2
            cut = " ".join(words[:mid]) + ELLIPSIS
            if count_tokens(kept + SEPARATOR + cut if kept else cut) <= budget:
                low = mid
            else:
                high = mid - 1
        if low:
            cut = " ".join(words[:low]) + ELLIPSIS
            kept = kept + SEPARATOR + cut if kept else cut
        break
    return kept


# ---- sources ---------------------------------------------------------------------------------
def _catalog_facts(data) -> tuple[list[list[str]], int]:
    catalog = data.catalog
    out: list[list[str]] = [[] for _ in range(data.n_items)]
    if catalog is None:
        return out, 0
    for item in range(data.n_items):
        year, genres = catalog.year(item), catalog.genres(item)
        parts = ([str(year)] if year is not None else []) + ([", ".join(genres)] if genres else [])
        if parts:
            out[item].append(SEPARATOR.join(parts))
    return _screened(out)


def _tag_facts(data) -> tuple[list[list[str]], int]:
    out: list[list[str]] = [[] for _ in range(data.n_items)]
    if data.catalog is None or "tags" not in data.catalog.columns:
        return out, 0
    for item, tags in enumerate(data.catalog["tags"]):
        if isinstance(tags, str):
            tags = [tags]
        labels = [str(t).strip() for t in (tags if tags is not None else ()) if str(t).strip()]
        if labels:
            out[item].append("tagged " + ", ".join(dict.fromkeys(labels)))
    return _screened(out)


def _rating_facts(data) -> tuple[list[list[str]], int]:
    """``"rated 4.1/5 by 230 users"`` (the mean of each user's latest value) per item with
    interactions in ``data``; ``"chosen by N users"`` for implicit feedback."""
    ratings = data.ratings.tocsc()  # (n_users, n_items), one value per pair
    counts = np.diff(ratings.indptr)
    sums = np.asarray(ratings.sum(axis=0)).ravel()
    rated = data.positive_threshold is not None
    scale = max(5, int(np.ceil(ratings.data.max()))) if rated and ratings.nnz else 5
    out: list[list[str]] = []
    for item in range(data.n_items):
        n = int(counts[item])
        users = f"{n} user" + ("s" if n != 1 else "")
        if n == 0:
            out.append([])
        elif rated:
            out.append([f"rated {sums[item] / n:.1f}/{scale} by {users}"])
        else:
            out.append([f"chosen by {users}"])
    return out, 0  # numbers written by us: nothing to screen


def _review_facts(data) -> tuple[list[list[str]], int]:
    """The first :data:`MAX_SENTENCES` sentences of each item's reviews (data order); a review
    the guard flags is dropped whole (all its sentences) and counted."""
    out: list[list[str]] = [[] for _ in range(data.n_items)]
    texts = data.extras.get("review_text")
    if texts is None:
        return out, 0
    dropped = 0
    for item, text in zip(data.item_idx, texts):
        sentences = out[int(item)]
        if len(sentences) >= MAX_SENTENCES or not text:
            continue
        if guard.screen(text).flagged:
            dropped += 1
            continue
        pieces = [" ".join(s.split()) for s in _SENTENCE.split(str(text))]
        sentences += [s for s in pieces if s][: MAX_SENTENCES - len(sentences)]
    return out, dropped


def _screened(per_item: list[list[str]]) -> tuple[list[list[str]], int]:
    """Facts the guard finds clean (whole), and how many it dropped."""
    kept, dropped = [], 0
    for facts in per_item:
        clean = [f for f in facts if not guard.screen(f).flagged]
        dropped += len(facts) - len(clean)
        kept.append(clean)
    return kept, dropped


__all__ = ["SOURCES", "ItemFacts", "fit_budget", "parse_sources"]

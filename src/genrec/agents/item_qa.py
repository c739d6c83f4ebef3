"""Item question answering: "is it scary?", "who directed it?" answered from one item's own text.

The passages of an item are its catalog fields as short sentences ("director: Stanley
Kubrick", "year: 1980", "genres: Horror") and the sentences of its description and of the
reviews written about it (a dataset's ``review_text`` / ``review_summary`` extras). A question
retrieves among the passages of that one item with a hybrid score over its content words
(stop words such as "who" and "it" dropped): BM25 plus the cosine of text-encoder vectors, each scaled to [0, 1] over the item's
passages. The encoder is :class:`~genrec.text.encoder.HashingEncoder` by default (character
trigrams: "directed" meets "director", no weights needed); pass
``get_encoder("minilm")`` for all-MiniLM-L6-v2, which also matches "scary" with "frightening".

The answer is extractive: the best passages quoted verbatim with where they come from, so it
says nothing the item's text does not. Every passage first goes through
:func:`genrec.text.guard.screen`: instruction-like spans are stripped and a passage holding one
is never quoted, so a review that says "ignore your instructions" cannot speak through the
agent. When no passage shares a word or enough character trigrams with the question
(:data:`MIN_SCORE`), the answer says the item's text does not tell.

Example:
    >>> from genrec.data import ItemCatalog, Vocabulary
    >>> catalog = ItemCatalog(Vocabulary(["s"], kind="item"), {
    ...     "title": ["Shining, The"], "director": ["Stanley Kubrick"],
    ...     "description": ["A writer guards a hotel in winter. It slowly drives him mad."]})
    >>> qa = ItemQA(catalog)
    >>> qa.answer(0, "Who directed it?").text
    'About The Shining: director: Stanley Kubrick.'
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from genrec.retrieval.bm25 import BM25Index, tokenize
from genrec.text.encoder import HashingEncoder, _field_text
from genrec.text.guard import screen
from genrec.text.prompts import natural_title

MAX_PASSAGES = 2  # passages an answer quotes
MIN_SCORE = 0.25  # best hybrid score (0-2) below which the item's text does not answer
RELATIVE = 0.6  # a second passage is quoted when it scores this share of the best one
MAX_REVIEWS = 50  # reviews per item kept (the first ones in the data)
REVIEW_COLUMNS = ("review_summary", "review_text")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])|\n+")
_SKIPPED_FIELDS = ("title", "description")  # the title names the item; the description is split


@dataclass(frozen=True)
class Passage:
    """One sentence about an item and where it comes from (a field name, or "review")."""

    text: str
    source: str


@dataclass(frozen=True)
class Answer:
    """An extractive answer: its text and the passages it quotes (empty: the text does not
    tell)."""

    item: int
    text: str
    passages: tuple[Passage, ...]


class ItemQA:
    """Answers questions about items from their catalog text and reviews.

    Args:
        catalog: the item catalog.
        reviews: ``(item index, review text)`` pairs (see :meth:`from_dataset`).
        encoder: a text encoder for the dense half of the score (default: hashing trigrams).
    """

    def __init__(self, catalog, *, reviews: Iterable[tuple[int, str]] = (), encoder=None):
        self.catalog = catalog
        self.encoder = encoder if encoder is not None else HashingEncoder()
        self._reviews: dict[int, list[str]] = defaultdict(list)
        for item, text in reviews:
            if text and len(self._reviews[int(item)]) < MAX_REVIEWS:
                self._reviews[int(item)].append(str(text))

    @classmethod
    def from_dataset(cls, data, *, encoder=None) -> ItemQA:
        """An ItemQA over ``data``'s catalog and the reviews among its extras."""
        reviews = [
            (int(item), str(text))
            for column in REVIEW_COLUMNS
            if column in data.extras
            for item, text in zip(data.item_idx, data.extras[column], strict=True)
            if isinstance(text, str) and text.strip()
        ]
        return cls(data.catalog, reviews=reviews, encoder=encoder)

    def passages(self, item: int) -> list[Passage]:
        """The item's screened sentences: fields, description, reviews (flagged ones left
        out)."""
        found = []
        for field, column in self.catalog.columns.items():
            value = _field_text(column[item])
            if field not in _SKIPPED_FIELDS and value:
                found.append(Passage(f"{field.replace('_', ' ')}: {value}", field))
        if "description" in self.catalog.columns:
            for sentence in _sentences(_field_text(self.catalog.columns["description"][item])):
                found.append(Passage(sentence, "description"))
        for review in self._reviews.get(int(item), []):
            found += [Passage(s, "review") for s in _sentences(review)]
        kept = []
        for passage in found:
            screened = screen(passage.text)
            if not screened.flagged and passage not in kept:
                kept.append(passage)
        return kept

    def scores(self, question: str, passages: list[Passage]) -> np.ndarray:
        """(P,) hybrid scores in [0, 2]: BM25 and encoder cosine, each scaled by its maximum
        over the passages (a half that is zero everywhere stays zero)."""
        texts = [p.text for p in passages]
        lexical = BM25Index.fit(texts, stop_words=True).score_texts([question])[0]
        content = " ".join(tokenize(question, stop_words=True))  # "who", "it" match anything
        vectors = self.encoder.encode([content, *texts])
        dense = np.clip(vectors[1:] @ vectors[0], 0.0, None)
        return _scaled(lexical) + _scaled(dense) * (dense.max() > 0.2)

    def answer(self, item: int, question: str) -> Answer:
        """The best passages of ``item`` for ``question``, quoted (see the module doc)."""
        title = natural_title(self.catalog.title(item))
        passages = self.passages(item)
        if not passages:
            return Answer(item, f"I know nothing about {title} beyond its title.", ())
        if not any(tokenize(question, stop_words=True)):
            return Answer(item, _summary(title, passages[:MAX_PASSAGES]), ())
        scores = self.scores(question, passages)
        order = np.argsort(-scores, kind="stable")
        if scores[order[0]] < MIN_SCORE:
            return Answer(item, f"What I know about {title} does not say.", ())
        floor = max(MIN_SCORE, RELATIVE * scores[order[0]])
        chosen = tuple(passages[j] for j in order[:MAX_PASSAGES] if scores[j] >= floor)
        return Answer(item, _summary(title, chosen), chosen)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text or "") if len(s.strip()) > 2]


def _scaled(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def _summary(title: str, passages: Iterable[Passage]) -> str:
    """ "About TITLE: passage; a viewer wrote: "passage"." """
    parts = [
        f'a viewer wrote: "{p.text}"' if p.source == "review" else p.text.rstrip(".")
        for p in passages
    ]
    return f"About {title}: " + "; ".join(parts) + "."


__all__ = ["Answer", "ItemQA", "Passage"]

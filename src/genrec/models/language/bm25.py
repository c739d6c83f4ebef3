"""BM25 recommender: lexical retrieval of items with the words of the user's liked items.

Method: Okapi BM25 (Robertson et al., "Okapi at TREC-3", 1994) as a content-based recommender:
each item's text (rendered from ``train.catalog`` by ``text_template``) is a document; a user's
query is the bag of words of the texts of the items in their history; items are ranked by BM25
(:mod:`genrec.retrieval.bm25`, Lucene's form of the formula). It is the lexical counterpart of
the ``dense`` model and, like it, scores items without interactions (cold-start items).

Deliberate choices and deviations:

* A query of a long history repeats words (a drama fan's query holds "drama" many times). The
  query-term frequency is saturated with Okapi's ``k3``: ``(k3 + 1) qtf / (k3 + qtf)``; the
  original BM25 ranking function has this term, Lucene does not (``k3=0``: each distinct word
  once). The tuned default ``k3 = 1000`` uses the counts nearly linearly.
* Only the history's *set* of items is used (not their order or ratings).
* "Training" builds the term weights; interactions and ``valid`` are not used.
* An empty history has an empty query: every item scores 0 (uniform).
* Tokens are lower-cased ``\\w+`` words, optionally without a small English stop-word list.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = BM25Recommender().fit(world.split.train)
    >>> model.index_.weights.shape  # (n_items, words)
    (60, 66)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.models.base import ModelConfig, Recommender
from genrec.retrieval.bm25 import BM25Index, bm25_weights, term_counts
from genrec.text.items import catalog_texts, check_text_fields


@dataclass(frozen=True)
class BM25Config(ModelConfig):
    """Hyper-parameters of :class:`BM25Recommender`.

    Defaults tuned on ML-100K validation NDCG@10 (holdout 0.8/0.1/0.1, split seed 2020): k1 in
    {0.5, 1.2, 2}, b in {0.3, 0.75, 1}, k3 in {0, 1, 3, 10, 30, 100, 300, 1000, 1e6}, stop words
    on/off. The query-term frequency mattered most (NDCG@10 0.046 at k3 = 1, 0.056 at 10, 0.066
    at 1000, about the same beyond: a history's word counts are best used nearly linearly);
    k1 and b moved it by < 0.002; removing stop words cost 0.004. ``paper`` preset: Robertson
    et al.'s usual k1 = 1.2, b = 0.75, each distinct query word once (Lucene's form, k3 = 0).
    """

    presets = {"paper": {"k1": 1.2, "b": 0.75, "k3": 0.0, "stop_words": False}}

    text_template: str = ""  # item text template over catalog columns; "" = text fields + year
    k1: float = 1.2  # term-frequency saturation in a document (0 = binary)
    b: float = 0.75  # document-length normalisation, 0..1
    k3: float = 1000.0  # query-term saturation; 0 = each distinct query word counts once
    stop_words: bool = False  # drop English stop words

    def __post_init__(self):
        check_text_fields(self)
        self.check(self.k1 >= 0, "k1", "a number >= 0 (1.2-2.0 is usual)")
        self.check(0 <= self.b <= 1, "b", "a number in [0, 1]")
        self.check(self.k3 >= 0, "k3", "a number >= 0 (0 = each query word once)")


class BM25Recommender(Recommender):
    """Items ranked by BM25 of their text against the words of the history's item texts.

    Learned attributes: ``index_`` (a :class:`~genrec.retrieval.bm25.BM25Index` over the item
    texts) and ``item_terms_`` (n_items, V) word counts of each item text.
    """

    name = "bm25"
    Config = BM25Config

    def _fit(self, train, valid, options):
        texts = catalog_texts(train, self.config.text_template, model=self.name)
        self.item_terms_, vocab = term_counts(texts, stop_words=self.config.stop_words)
        self._build(vocab)

    def _build(self, vocab: dict[str, int]) -> None:
        c = self.config
        self.index_ = BM25Index(
            bm25_weights(self.item_terms_, k1=c.k1, b=c.b), vocab, c.k1, c.b, c.k3, c.stop_words
        )

    def _score(self, histories, users):
        query = histories @ self.item_terms_  # (B, I) @ (I, V): word counts of the history
        return self.index_.score_terms(query)  # (B, I)

    def score_item_texts(self, histories: sp.csr_matrix, texts: list[str]) -> np.ndarray:
        """(B, len(texts)) scores an item would get for each history row if its text were each
        of ``texts`` (weighted with the fitted corpus's idf and mean length; words the corpus
        lacks match no query): how an edit of one item's text moves it, other items unchanged.
        """
        self._require_fitted()
        histories, _ = self._check_batch(histories, None)  # binary rows, as in score
        counts, _ = term_counts(
            list(texts), self.index_.vocabulary, stop_words=self.config.stop_words
        )
        c = self.config
        documents = bm25_weights(counts, k1=c.k1, b=c.b, corpus=self.item_terms_)
        return self.index_.score_terms(histories @ self.item_terms_, documents)

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), n_items) BM25 scores of free-text queries."""
        self._require_fitted()
        return self.index_.score_texts([texts] if isinstance(texts, str) else list(texts))

    def _state(self):
        words = sorted(self.index_.vocabulary, key=self.index_.vocabulary.get)
        terms = self.item_terms_.tocsr()
        return {
            "terms_data": terms.data,
            "terms_indices": terms.indices,
            "terms_indptr": terms.indptr,
            "words": np.array(words, dtype=str),
        }

    def _load_state(self, state):
        words = [str(w) for w in state["words"]]
        self.item_terms_ = sp.csr_matrix(
            (state["terms_data"], state["terms_indices"], state["terms_indptr"]),
            shape=(self.n_items_, len(words)),
            dtype=np.float32,
        )
        self._build({w: j for j, w in enumerate(words)})

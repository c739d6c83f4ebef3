"""Okapi BM25 over short documents (item texts) as sparse matrices: no dependencies.

Robertson et al., "Okapi at TREC-3" (1994), in the Lucene form (Kamphuis et al., ECIR 2020):
a document d scores a query q as

    sum over terms t of q:  w(t, q) * idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

with ``w(t, q)`` the query-term weight: 1 per distinct term, or with ``k3`` the classic Okapi
query-term saturation ``(k3 + 1) qtf / (k3 + qtf)`` (useful when a query is long, such as all
the words of a user's liked items). The Lucene form drops the constant ``(k1 + 1)`` factor of
the tf part (ranking-neutral) and keeps idf positive. With ``k3=0``, scores equal the ``bm25s``
package's ``method="lucene"`` (a test checks this when bm25s is installed).

Everything is a scipy sparse product: ``query_terms (B, V) @ weights.T (V, N)``.

Example:
    >>> index = BM25Index.fit(["the toy story", "heat", "toy soldiers"])
    >>> scores = index.score_texts(["toy"])
    >>> [round(float(x), 3) for x in scores[0]]
    [0.153, 0.0, 0.188]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError

# A small English stop-word list (articles, pronouns, prepositions, auxiliaries).
STOP_WORDS = frozenset(
    """a an and are as at be but by for from has have he her his i if in into is
it its me my no not of on or our she so that the their them then there these they this to was we
were what when where which who will with you your""".split()
)
_WORD = re.compile(r"\w+")


def tokenize(text: str, *, stop_words: bool = False) -> list[str]:
    """Lower-cased words (``\\w+`` runs), optionally without :data:`STOP_WORDS`.

    >>> tokenize("The Good, the Bad and the Ugly (1966)", stop_words=True)
    ['good', 'bad', 'ugly', '1966']
    """
    words = _WORD.findall(str(text).lower())
    return [w for w in words if w not in STOP_WORDS] if stop_words else words


def term_counts(
    texts: list[str], vocabulary: dict[str, int] | None = None, *, stop_words: bool = False
) -> tuple[sp.csr_matrix, dict[str, int]]:
    """(len(texts), V) float32 CSR of word counts, and the word -> column vocabulary.

    With ``vocabulary`` given, words outside it are dropped (how queries are encoded); without,
    it is built from ``texts`` in order of first appearance.
    """
    grow = vocabulary is None
    vocab: dict[str, int] = {} if grow else vocabulary
    rows, cols = [], []
    for row, text in enumerate(texts):
        for word in tokenize(text, stop_words=stop_words):
            col = vocab.setdefault(word, len(vocab)) if grow else vocab.get(word)
            if col is not None:
                rows.append(row)
                cols.append(col)
    counts = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), len(vocab))
    )
    counts.sum_duplicates()
    return counts, vocab


@dataclass
class BM25Index:
    """Fitted BM25 weights of N documents over a vocabulary of V words.

    Attributes:
        weights: (N, V) CSR, ``idf(t) * tf part(t, d)`` for every term of every document.
        vocabulary: word -> column.
        k1, b, k3: the parameters it was fitted / queries with.
        stop_words: whether stop words were removed.
    """

    weights: sp.csr_matrix
    vocabulary: dict[str, int]
    k1: float = 1.5
    b: float = 0.75
    k3: float = 0.0
    stop_words: bool = False

    @classmethod
    def fit(
        cls,
        texts: list[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        k3: float = 0.0,
        stop_words: bool = False,
    ) -> BM25Index:
        """Index ``texts`` (the documents).

        Raises:
            ConfigError: k1 < 0, b outside [0, 1] or k3 < 0.  DataError: no documents.
        """
        check_bm25_params(k1=k1, b=b, k3=k3)
        if not len(texts):
            raise DataError("BM25 needs at least one document to index")
        counts, vocab = term_counts(list(texts), stop_words=stop_words)
        return cls(bm25_weights(counts, k1=k1, b=b), vocab, k1, b, k3, stop_words)

    @property
    def n_docs(self) -> int:
        return self.weights.shape[0]

    def query_terms(self, texts: list[str]) -> sp.csr_matrix:
        """(B, V) CSR of the query-term counts of ``texts`` (unknown words dropped)."""
        return term_counts(list(texts), self.vocabulary, stop_words=self.stop_words)[0]

    def score_terms(self, query_counts: sp.spmatrix, documents=None) -> np.ndarray:
        """(B, N) float32 scores of query-term count rows (B, V), weighted per the class doc;
        with ``documents`` ((M, V) weight rows, :func:`bm25_weights` with ``corpus``), (B, M)
        scores of those documents instead of the indexed ones."""
        q = sp.csr_matrix(query_counts, dtype=np.float32)
        if q.shape[1] != len(self.vocabulary):
            raise DataError(
                f"query term rows have {q.shape[1]} columns, the index has "
                f"{len(self.vocabulary)} words"
            )
        q = q.copy()
        if self.k3 > 0:
            q.data = (self.k3 + 1) * q.data / (self.k3 + q.data)
        else:
            q.data = (q.data > 0).astype(np.float32)
        weights = self.weights if documents is None else sp.csr_matrix(documents)
        return np.asarray((q @ weights.T).toarray(), np.float32)  # (B, V) @ (V, N)

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), N) scores of free-text queries."""
        return self.score_terms(self.query_terms(texts))


def bm25_weights(
    counts: sp.csr_matrix, *, k1: float, b: float, corpus: sp.csr_matrix | None = None
) -> sp.csr_matrix:
    """(N, V) float32 CSR of ``idf(t) * tf / (tf + k1 (1 - b + b |d| / avgdl))`` from counts;
    idf and avgdl are those of ``corpus`` (counts over the same words) when given, so new
    documents are weighted as if added to a fitted index without changing it."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    stats = counts if corpus is None else sp.csr_matrix(corpus, dtype=np.float64)
    n_docs = stats.shape[0]
    lengths = np.asarray(counts.sum(axis=1)).ravel()  # (N,) words per document
    corpus_lengths = np.asarray(stats.sum(axis=1)).ravel()
    avg = corpus_lengths.mean() if corpus_lengths.sum() > 0 else 1.0
    df = np.bincount(stats.indices, minlength=stats.shape[1])  # (V,)
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    norm = k1 * (1.0 - b + b * lengths / avg)  # (N,)
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    tf = counts.data
    weights = counts.copy()
    weights.data = idf[counts.indices] * tf / (tf + norm[rows])
    return weights.astype(np.float32)


def check_bm25_params(*, k1: float, b: float, k3: float = 0.0) -> None:
    """ConfigError unless k1 >= 0, 0 <= b <= 1 and k3 >= 0."""
    if not (np.isfinite(k1) and k1 >= 0):
        raise ConfigError(f"BM25 k1 = {k1!r} must be a number >= 0 (1.2-2.0 is usual)")
    if not (np.isfinite(b) and 0 <= b <= 1):
        raise ConfigError(f"BM25 b = {b!r} must be in [0, 1] (0.75 is usual)")
    if not (np.isfinite(k3) and k3 >= 0):
        raise ConfigError(f"BM25 k3 = {k3!r} must be a number >= 0 (0 = each query term once)")

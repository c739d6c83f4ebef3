"""BM25: a hand computation, agreement with the bm25s package, tokenisation, bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genrec.errors import ConfigError, DataError
from genrec.retrieval import BM25Index, tokenize

DOCS = [
    "the quick brown fox",
    "a quick quick dog",
    "brown bears and brown dogs",
    "lazy afternoon",
    "the fox and the hound",
]


def test_matches_a_hand_computation():
    k1, b = 1.2, 0.75
    index = BM25Index.fit(DOCS, k1=k1, b=b)
    lengths = [4, 4, 5, 2, 5]
    avg = sum(lengths) / 5

    def term(tf, df, length):
        idf = math.log(1 + (5 - df + 0.5) / (df + 0.5))
        return idf * tf / (tf + k1 * (1 - b + b * length / avg))

    expected = [term(1, 2, 4), term(2, 2, 4), 0, 0, 0]  # "quick": docs 0 and 1 (twice)
    expected[0] += term(1, 2, 4)  # "fox": docs 0 and 4
    expected[4] += term(1, 2, 5)
    np.testing.assert_allclose(index.score_texts(["quick fox"])[0], expected, rtol=1e-6)


def test_query_term_saturation():
    plain = BM25Index.fit(DOCS, k3=0.0)
    saturated = BM25Index.fit(DOCS, k3=1.0)
    once = plain.score_texts(["fox"])
    np.testing.assert_allclose(plain.score_texts(["fox fox fox"]), once)  # k3 = 0: distinct words
    np.testing.assert_allclose(saturated.score_texts(["fox fox fox"]), once * 2 * 3 / 4, rtol=1e-6)


def test_agrees_with_bm25s():
    import bm25s  # the dev extra: an independent BM25

    corpus = DOCS + ["quick brown dogs and quick brown foxes", "afternoon tea"]
    ours = BM25Index.fit(corpus, k1=1.5, b=0.75)
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index([tokenize(d) for d in corpus], show_progress=False)
    for query in ["quick fox", "brown dogs afternoon", "the"]:
        words = list(dict.fromkeys(w for w in tokenize(query) if w in ours.vocabulary))
        np.testing.assert_allclose(
            ours.score_texts([query])[0], retriever.get_scores(words), rtol=1e-5, atol=1e-6
        )


def test_tokenize_and_stop_words():
    assert tokenize("Star Wars (1977)") == ["star", "wars", "1977"]
    assert tokenize("The Fox and THE Hound", stop_words=True) == ["fox", "hound"]
    index = BM25Index.fit(DOCS, stop_words=True)
    assert "the" not in index.vocabulary and "fox" in index.vocabulary
    assert not index.score_texts(["the and a"]).any()


def test_unknown_words_and_batches():
    index = BM25Index.fit(DOCS)
    scores = index.score_texts(["zebra", "quick", ""])
    assert scores.shape == (3, 5) and scores.dtype == np.float32
    assert not scores[0].any() and not scores[2].any()
    np.testing.assert_array_equal(scores[1], index.score_texts(["quick"])[0])


@pytest.mark.parametrize(
    "bad", [{"k1": -1.0}, {"b": 1.5}, {"b": -0.1}, {"k3": -2.0}, {"k1": float("nan")}]
)
def test_bad_parameters(bad):
    with pytest.raises(ConfigError):
        BM25Index.fit(DOCS, **bad)


def test_no_documents():
    with pytest.raises(DataError, match="at least one"):
        BM25Index.fit([])

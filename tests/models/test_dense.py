"""Dense retrieval under the shared contract, plus cold items, free text, recency and caching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.data import Dataset, as_history_matrix
from genrec.data.splits import held_out_items_split
from genrec.data.synthetic import planted_clusters
from genrec.errors import DataError
from genrec.evaluation.protocol import evaluate_split
from genrec.models import DenseRetrieval, Pop
from genrec.models.language.dense import recency_weights
from genrec.text import EmbeddingCache, HashingEncoder

from .contract import OPTIONS, ModelContract

TINY = {"text_encoder": "hashing", "text_cache": "off"}


class TestDenseRetrieval(ModelContract):
    model_cls = DenseRetrieval
    config = TINY  # items say their cluster in the text ("Genres: group2"): content finds it
    quality_floor = 0.95
    bad_configs = [
        {"recency": -0.1},
        {"index": "annoy"},
        {"index_candidates": 0},
        {"text_encoder": ""},
        {"text_cache": ""},
    ]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


def test_cold_items_are_ranked_where_popularity_cannot():
    """Items never trained on are found by their text; Pop gives them nothing."""
    split = held_out_items_split(planted_clusters(noise=2).data, 0.2, seed=0)
    cold = np.flatnonzero(split.train.item_counts == 0)
    assert len(cold) >= 6
    dense = DenseRetrieval(TINY).fit(split.train, options=OPTIONS)
    pop = Pop().fit(split.train)
    d = evaluate_split(dense, split, "test", ks=(10,), metrics=("hit", "ndcg"))
    p = evaluate_split(pop, split, "test", ks=(10,), metrics=("hit", "ndcg"))
    assert d.mean("hit@10") >= 0.9 > 0.1 >= p.mean("hit@10")
    assert np.isin(d.top_items, cold).any()


def test_scores_are_inner_products_of_centred_unit_vectors(world):
    model = DenseRetrieval(TINY).fit(world.split.train)
    histories = world.split.train.user_items[:5]
    e = model.item_embeddings_ - model.item_embeddings_.mean(axis=0)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    q = histories.toarray() @ e
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(model.score(histories), q @ e.T, rtol=1e-4, atol=1e-5)


def test_empty_history_scores_uniform_zero(world):
    model = DenseRetrieval(TINY).fit(world.split.train)
    scores = model.score(sp.csr_matrix((2, world.data.n_items), dtype=np.float32))
    assert not scores.any()


def test_free_text_preference(world):
    model = DenseRetrieval(TINY).fit(world.split.train)
    items, scores = model.recommend_text(["films of genre group3", "group0"], k=5)
    genres = world.data.catalog["genres"]
    assert all(genres[i] == ("group3",) for i in items[0])
    assert all(genres[i] == ("group0",) for i in items[1])
    assert np.all(np.diff(scores, axis=1) <= 0)
    np.testing.assert_array_equal(model.score_texts("group0")[0], model.score_texts(["group0"])[0])


def test_recency_weights_favour_the_newest_items():
    histories = as_history_matrix([[3, 1, 2], []], 5)  # item 2 newest, then 1, then 3
    w = recency_weights(histories, 1.0).toarray()
    np.testing.assert_allclose(w[0, [2, 1, 3]], np.exp([0.0, -1.0, -2.0]), rtol=1e-6)
    assert not w[1].any()
    np.testing.assert_array_equal(
        recency_weights(histories, 0.0).toarray(), (histories.toarray() > 0).astype(np.float32)
    )


def test_recency_changes_the_query(world):
    plain = DenseRetrieval(TINY).fit(world.split.train)
    recent = DenseRetrieval({**TINY, "recency": 2.0}).fit(world.split.train)
    histories = as_history_matrix([[0, 5, 1]], world.data.n_items)  # item 1 (group1) newest
    assert plain.score(histories)[0, 9] < recent.score(histories)[0, 9]  # 9 is in group1


def test_second_fit_hits_the_cache(world, tmp_path):
    model = DenseRetrieval({**TINY, "text_cache": str(tmp_path)}).fit(world.split.train)
    cache = EmbeddingCache(tmp_path)
    again = cache.encode(HashingEncoder(), model.item_texts_)
    assert cache.last_encoded == 0
    np.testing.assert_array_equal(again, model.item_embeddings_)


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_faiss_indexes_rank_like_exact(world, index):
    exact = DenseRetrieval(TINY).fit(world.split.train)
    other = DenseRetrieval({**TINY, "index": index, "index_candidates": 20}).fit(world.split.train)
    histories = world.split.train.user_items[:8]
    top_exact = exact.recommend(histories, k=5, exclude_seen=False)[0]
    top_other = other.recommend(histories, k=5, exclude_seen=False)[0]
    assert (top_exact == top_other).mean() >= 0.9
    assert np.isfinite(other.score(histories)).all()


def test_template_and_missing_text(world):
    model = DenseRetrieval({**TINY, "text_template": "{genres}"}).fit(world.split.train)
    assert model.item_texts_[0] == "group0"
    bare = world.split.train
    no_text = Dataset(bare.users, bare.items, bare.user_idx, bare.item_idx, name="bare")
    with pytest.raises(DataError, match="title"):
        DenseRetrieval(TINY).fit(no_text)

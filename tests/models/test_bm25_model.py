"""The BM25 recommender under the shared contract, plus its query and cold items."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from genrec.data.splits import held_out_items_split
from genrec.data.synthetic import planted_clusters
from genrec.evaluation.protocol import evaluate_split
from genrec.models import BM25Recommender
from genrec.retrieval import BM25Index

from .contract import OPTIONS, ModelContract


class TestBM25(ModelContract):
    model_cls = BM25Recommender
    config = {}
    quality_floor = 0.95
    bad_configs = [{"k1": -1.0}, {"b": 1.5}, {"k3": -1.0}]


def test_scores_equal_bm25_of_the_history_words():
    world = planted_clusters(noise=2)
    model = BM25Recommender(k3=0.0).fit(world.split.train)
    texts = ["Item 0. Genres: group0", "Item 4. Genres: group0"]  # the catalog's texts of 0 and 4
    index = BM25Index.fit(
        [f"Item {i}. Genres: group{i % 4}" for i in range(60)], k1=1.2, k3=0.0, stop_words=False
    )
    history = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 4])), shape=(1, 60))
    np.testing.assert_allclose(
        model.score(history)[0], index.score_texts([" ".join(texts)])[0], rtol=1e-6
    )


def test_cold_items_found_and_empty_history_uniform():
    split = held_out_items_split(planted_clusters(noise=2).data, 0.2, seed=0)
    model = BM25Recommender().fit(split.train, options=OPTIONS)
    assert evaluate_split(model, split, "test", ks=(10,), metrics=("hit",)).mean("hit@10") >= 0.9
    assert not model.score(sp.csr_matrix((1, 60), dtype=np.float32)).any()
    assert model.score_texts("group2").argmax() % 4 == 2

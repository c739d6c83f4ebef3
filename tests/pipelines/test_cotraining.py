"""Retriever-reranker co-training: the reranker's preferences and the refitted retriever."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, DataError
from genrec.models import EASE
from genrec.models.classic.ease import ease_weights
from genrec.options import RunOptions
from genrec.pipelines.cotraining import reranker_preferences, retriever_from_reranker
from genrec.pipelines.two_stage import Shortlist


def shortlist(candidates, reranker):
    c = np.asarray(candidates)
    return Shortlist(c, c, -np.arange(len(c), dtype=float), np.asarray(reranker, float))


def test_preferences_are_each_users_top_items_by_the_reranker():
    lists = [shortlist([5, 1, 7], [0.1, 0.9, 0.5]), shortlist([2, 3, 4], [1.0, 1.0, 0.0])]
    m = reranker_preferences(np.array([3, 0]), lists, n_users=4, n_items=8, top=2)
    assert m.shape == (4, 8) and m.dtype == np.float64
    assert sorted(zip(*m.nonzero())) == [(0, 2), (0, 3), (3, 1), (3, 7)]  # ties: given order
    assert set(m.data) == {1.0}
    with pytest.raises(ConfigError, match="top"):
        reranker_preferences([0], lists[:1], n_users=1, n_items=8, top=0)
    with pytest.raises(DataError, match="2 shortlists"):
        reranker_preferences([0], lists, n_users=4, n_items=8, top=1)
    with pytest.raises(DataError, match="rerank=True"):
        reranker_preferences(
            [0],
            [Shortlist(lists[0].order, lists[0].candidates, lists[0].retriever, None)],
            n_users=4,
            n_items=8,
            top=1,
        )


def test_the_retriever_learns_the_preferred_items_and_beta_zero_changes_nothing():
    world = planted_clusters(n_users=40, n_items=20, n_clusters=2, seed=0)
    train = world.split.train
    ease = EASE().fit(train, options=RunOptions(seed=0, threads=1))
    x = train.user_items
    weighted = sp.csr_matrix(x, dtype=np.float64)
    weighted.data[:] = 3.0  # binarised by default, weights kept on request
    np.testing.assert_allclose(ease_weights(weighted, reg=10.0), ease_weights(x, reg=10.0))
    assert set(weighted.data) == {3.0}  # the caller's matrix is never binarised in place
    assert not np.allclose(
        ease_weights(weighted, reg=10.0, binarize=False), ease_weights(x, reg=10.0)
    )
    # every user "prefers" items 0 and 19 together: their weight must grow
    prefs = sp.csr_matrix(
        (np.ones(2 * x.shape[0]), (np.repeat(np.arange(x.shape[0]), 2), [0, 19] * x.shape[0])),
        shape=x.shape,
    )
    same = retriever_from_reranker(ease, x, prefs, beta=0.0)
    np.testing.assert_allclose(same.weights_, ease.weights_, rtol=1e-4, atol=1e-6)
    moved = retriever_from_reranker(ease, x, prefs, beta=2.0)
    assert moved is not ease and moved.weights_[0, 19] > ease.weights_[0, 19] + 0.05
    np.testing.assert_array_equal(ease.weights_, EASE().fit(train).weights_)  # ease untouched
    with pytest.raises(ConfigError, match="beta"):
        retriever_from_reranker(ease, x, prefs, beta=-1.0)
    with pytest.raises(ConfigError, match="fitted EASE"):
        retriever_from_reranker(EASE(), x, prefs)
    with pytest.raises(DataError, match="shape"):
        retriever_from_reranker(ease, x, prefs[:3])

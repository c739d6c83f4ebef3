"""Reciprocal rank fusion: the formula, ties, excluded items, weights, ranked lists."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genrec.errors import ConfigError, DataError
from genrec.retrieval import fuse_rankings, ranks, reciprocal_rank_fusion


def test_formula():
    a = np.array([[0.9, 0.5, 0.1]])
    b = np.array([[0.1, 0.9, 0.5]])
    fused = reciprocal_rank_fusion([a, b], k=60)
    expected = [1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62]
    np.testing.assert_allclose(fused[0], expected, rtol=1e-6)


def test_ties_share_the_mean_rank_and_minus_inf_ranks_last():
    scores = np.array([[0.0, 0.0, 1.0, -np.inf]])
    assert ranks(scores).tolist() == [[2.5, 2.5, 1.0, 4.0]]
    fused = reciprocal_rank_fusion([scores], k=0)
    assert np.isfinite(fused).all()
    assert fused[0, 0] == fused[0, 1] < fused[0, 2]


def test_weights():
    a = np.array([[1.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    assert np.argmax(reciprocal_rank_fusion([a, b], weights=[2, 1])) == 0
    assert np.argmax(reciprocal_rank_fusion([a, b], weights=[1, 2])) == 1
    only_a = reciprocal_rank_fusion([a, b], weights=[1, 0])
    np.testing.assert_allclose(only_a, reciprocal_rank_fusion([a]))


def test_fuse_rankings_equals_score_fusion_on_full_lists():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8)), rng.random((3, 8))
    lists = [np.argsort(-s, axis=1) for s in (a, b)]
    np.testing.assert_allclose(
        fuse_rankings(lists, 8, k=10), reciprocal_rank_fusion([a, b], k=10), rtol=1e-6
    )


@given(
    arrays(np.float64, (2, 6), elements=st.floats(-5, 5)),
    arrays(np.float64, (2, 6), elements=st.floats(-5, 5)),
)
@settings(max_examples=50, deadline=None)
def test_fusion_is_symmetric_and_monotone(a, b):
    np.testing.assert_allclose(reciprocal_rank_fusion([a, b]), reciprocal_rank_fusion([b, a]))
    same = reciprocal_rank_fusion([a, a])
    order = np.argsort(-a, axis=1, kind="stable")
    assert np.all(np.diff(np.take_along_axis(same, order, axis=1), axis=1) <= 1e-7)


def test_bad_input():
    with pytest.raises(ConfigError):
        reciprocal_rank_fusion([])
    with pytest.raises(ConfigError, match="k"):
        reciprocal_rank_fusion([np.zeros((1, 2))], k=-1)
    with pytest.raises(ConfigError, match="weights"):
        reciprocal_rank_fusion([np.zeros((1, 2))], weights=[1, 2])
    with pytest.raises(DataError, match="same shape"):
        reciprocal_rank_fusion([np.zeros((1, 2)), np.zeros((1, 3))])
    with pytest.raises(DataError, match="NaN"):
        reciprocal_rank_fusion([np.array([[np.nan, 1.0]])])
    with pytest.raises(DataError):
        fuse_rankings([np.array([[5]])], 3)

"""Learned fusion over shortlist features: it finds the feature that knows the targets, falls
back to the retriever's exact order when the others are noise, and its listwise loss and NDCG
agree with independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.errors import ConfigError, DataError
from genrec.pipelines import learned_fusion as lf
from genrec.pipelines.fusion import standardize


def users(n: int, *, informative: bool, seed: int = 0, c: int = 8):
    """Shortlists of ``c`` in the retriever's order: column 0 the retriever (decreasing), column
    1 noise or (``informative``) a signal that marks the target, column 2 noise."""
    rng = np.random.default_rng(seed)
    feats, hits = [], []
    for _ in range(n):
        target = int(rng.integers(c))
        signal = rng.normal(size=c) + (3.0 * (np.arange(c) == target) if informative else 0)
        raw = np.c_[-np.arange(c, dtype=float), signal, rng.normal(size=c)]
        feats.append(lf.standardize_columns(raw))
        hits.append(np.arange(c) == target)
    return feats, hits


def test_an_informative_feature_is_learned_and_kept():
    feats, hits = users(60, informative=True)
    fusion = lf.fit_feature_fusion(feats, hits, names=("retriever", "signal", "noise"))
    assert fusion.kept and fusion.cv_gain > 2 * fusion.cv_se > 0
    assert fusion.weights == fusion.fitted and abs(fusion.weights[1]) > abs(fusion.weights[2])


def test_noise_features_fall_back_to_the_retrievers_exact_order():
    feats, hits = users(60, informative=False)
    fusion = lf.fit_feature_fusion(feats, hits, names=("retriever", "a", "b"))
    assert not fusion.kept and fusion.weights == (1.0, 0.0, 0.0)
    for x in feats:  # the retriever's order, exactly
        assert np.argsort(-fusion.scores(x), kind="stable").tolist() == list(range(len(x)))


def test_the_fit_maximises_the_targets_log_softmax_and_ndcg_is_the_usual_one():
    feats, hits = users(30, informative=True, seed=1)
    base = np.array([1.0, 0.0, 0.0])
    w = lf._fit(feats, hits, base, l2=0.0)

    def log_lik(weights):  # an independent computation of the objective
        return np.mean(
            [
                np.log(np.exp(x @ weights)[t].sum() / np.exp(x @ weights).sum())
                for x, t in zip(feats, hits)
            ]
        )

    assert log_lik(w) > log_lik(base) and log_lik(w) >= log_lik(w + 0.05) - 1e-9
    scores, targets = np.array([3.0, 2.0, 1.0, 0.0]), np.array([False, True, False, True])
    ideal = 1 + 1 / np.log2(3)
    assert lf._ndcg(scores, targets, 2, 10) == pytest.approx(
        (1 / np.log2(3) + 1 / np.log2(5)) / ideal
    )
    assert lf._ndcg(scores, targets, 3, 1) == 0.0
    np.testing.assert_allclose(
        lf.standardize_columns(np.c_[[1.0, 2.0, 4.0]])[:, 0], standardize([1, 2, 4])
    )


def test_bad_input():
    feats, hits = users(12, informative=True)
    with pytest.raises(ConfigError, match="folds"):
        lf.fit_feature_fusion(feats, hits, names=("a", "b", "c"), folds=1)
    with pytest.raises(ConfigError, match="retriever column"):
        lf.fit_feature_fusion(feats, hits, names=("a", "b", "c"), retriever=3)
    with pytest.raises(DataError, match="at least 10 users"):
        lf.fit_feature_fusion(feats[:9], hits[:9], names=("a", "b", "c"))
    with pytest.raises(DataError, match=r"\(C, 2\)"):
        lf.fit_feature_fusion(feats, hits, names=("a", "b"))
    with pytest.raises(DataError, match="finite"):
        lf.standardize_columns(np.array([[np.nan, 1.0]]))

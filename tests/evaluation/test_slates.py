"""Slate metrics: hand-computed cases, Hypothesis properties against naive loops, the baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, DataError
from genrec.evaluation import slates as S
from genrec.models import EASE

SETTINGS = settings(max_examples=60, deadline=None)


def naive(slate: list[int], targets: set[int]) -> dict[str, float]:
    """Textbook definitions for one user, with loops and sets."""
    if not targets:
        return {name: math.nan for name in ("hit", "clicks", "precision", "ndcg")}
    hits = [item in targets for item in slate]
    dcg = sum(1 / math.log2(r + 1) for r, h in enumerate(hits, 1) if h)
    idcg = sum(1 / math.log2(r + 1) for r in range(1, min(len(targets), len(slate)) + 1))
    return {
        "hit": float(any(hits)),
        "clicks": float(sum(hits)),
        "precision": sum(hits) / len(slate),
        "ndcg": dcg / idcg,
    }


def naive_jaccard_diversity(slate: list[int], sets: list[set]) -> float:
    items = [i for i in slate if i >= 0]
    sims = []
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            x, y = sets[items[a]], sets[items[b]]
            sims.append(len(x & y) / len(x | y) if x | y else 0.0)
    return 1 - sum(sims) / len(sims) if sims else math.nan


@st.composite
def slates_and_targets(draw):
    n_items = draw(st.integers(3, 12))
    n_users = draw(st.integers(1, 6))
    k = draw(st.integers(1, n_items))
    rows, target_rows = [], []
    for _ in range(n_users):
        slate = draw(st.permutations(range(n_items)))[:k]
        n_empty = draw(st.integers(0, k - 1))
        rows.append(list(slate[: k - n_empty]) + [-1] * n_empty)
        target_rows.append(draw(st.sets(st.integers(0, n_items - 1), max_size=n_items)))
    return np.array(rows), target_rows, n_items


def as_csr(target_rows, n_items):
    dense = np.zeros((len(target_rows), n_items), np.float32)
    for u, items in enumerate(target_rows):
        dense[u, list(items)] = 1
    return sp.csr_matrix(dense)


@SETTINGS
@given(slates_and_targets())
def test_metrics_match_naive_loops(case):
    slates, target_rows, n_items = case
    targets = as_csr(target_rows, n_items)
    got = {
        "hit": S.slate_hit_rate(slates, targets),
        "clicks": S.slate_clicks(slates, targets),
        "precision": S.slate_precision(slates, targets),
        "ndcg": S.slate_ndcg(slates, targets),
    }
    for u in range(len(slates)):
        want = naive([i for i in slates[u].tolist()], target_rows[u])
        for name, values in got.items():
            assert values[u] == pytest.approx(want[name], nan_ok=True), name
    assert S.catalog_coverage(slates, n_items) == len(set(slates[slates >= 0].tolist())) / n_items


@SETTINGS
@given(slates_and_targets(), st.integers(0, 2**31 - 1))
def test_jaccard_diversity_matches_naive_loops(case, seed):
    slates, _, n_items = case
    features = np.random.default_rng(seed).random((n_items, 4)) < 0.4
    sets = [set(np.flatnonzero(row).tolist()) for row in features]
    got = S.slate_diversity(slates, sp.csr_matrix(features.astype(np.float32)))
    for u in range(len(slates)):
        assert got[u] == pytest.approx(
            naive_jaccard_diversity(slates[u].tolist(), sets), nan_ok=True
        )
        assert np.isnan(got[u]) or 0 <= got[u] <= 1


def test_hand_computed_slate():
    slates = np.array([[4, 0, 2]])
    targets = sp.csr_matrix(np.array([[1, 0, 1, 0, 0]]))
    assert S.slate_hits(slates, targets).tolist() == [[False, True, True]]
    assert S.slate_precision(slates, targets)[0] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    assert S.slate_ndcg(slates, targets)[0] == pytest.approx(dcg / (1 + 1 / math.log2(3)))


def test_report_averages_users_with_targets_only():
    slates = np.array([[0, 1], [2, 3], [1, 2]])
    targets = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]))
    report = S.slate_report(slates, targets, item_features=sp.identity(4, format="csr"))
    assert report["hit"] == 0.5 and report["clicks"] == 0.5 and report["precision"] == 0.25
    assert report["diversity"] == 1.0 and report["coverage"] == 1.0
    with pytest.raises(DataError, match="no user has a target"):
        S.slate_report(slates, sp.csr_matrix((3, 4)))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0, 0, 1]]), "repeats an item"),
        (np.array([[0, 9]]), "must lie in"),
        (np.array([0, 1]), "\\(U, k\\)"),
        (np.array([[0.0, 1.0]]), "integer item indices"),
    ],
)
def test_bad_slates_raise(bad, match):
    with pytest.raises(DataError, match=match):
        S.slate_hit_rate(bad, sp.csr_matrix((np.atleast_2d(bad).shape[0], 5)))


def test_row_count_must_match_targets():
    with pytest.raises(DataError, match="slates for"):
        S.slate_hits(np.array([[0, 1]]), sp.csr_matrix((2, 5)))
    with pytest.raises(ConfigError, match="n_items"):
        S.catalog_coverage(np.array([[0]]), 0)


def test_greedy_slates_are_the_models_top_k():
    world = planted_clusters()
    model = EASE(reg=10.0).fit(world.split.train)
    histories = world.split.history("test").user_items[:8]
    slates = S.greedy_slates(model, histories, k=4)
    np.testing.assert_array_equal(slates, model.recommend(histories, k=4)[0])
    targets = world.split.test.user_items[:8]
    assert S.slate_hit_rate(slates, targets).mean() == 1.0  # EASE finds the planted answer
    with pytest.raises(ConfigError, match="Recommender"):
        S.greedy_slates(object(), histories)

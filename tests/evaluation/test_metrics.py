"""Metrics: Hypothesis properties plus a cross-check against naive textbook implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.errors import ConfigError, DataError
from genrec.evaluation import metrics as M

NAMES = M.RANKING_METRICS
SETTINGS = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------- naive reference implementations


def naive_ranking(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """Textbook definitions for one user, with loops and sets."""
    top = ranked[:k]
    n_rel = len(relevant)
    n_hits = sum(1 for item in top if item in relevant)
    dcg = sum(1.0 / math.log2(r + 1) for r, item in enumerate(top, 1) if item in relevant)
    idcg = sum(1.0 / math.log2(r + 1) for r in range(1, min(n_rel, k) + 1))
    rr, ap_sum, seen = 0.0, 0.0, 0
    for r, item in enumerate(top, 1):
        if item in relevant:
            seen += 1
            ap_sum += seen / r
            if rr == 0.0:
                rr = 1.0 / r
    return {
        "recall": n_hits / n_rel,
        "precision": n_hits / k,
        "ndcg": dcg / idcg,
        "mrr": rr,
        "hit": 1.0 if n_hits else 0.0,
        "map": ap_sum / min(n_rel, k),
    }


def naive_auc(scores: list[float], positives: set[int]) -> float:
    negatives = [i for i in range(len(scores)) if i not in positives]
    if not negatives:
        return float("nan")
    total = 0.0
    for p in positives:
        for n in negatives:
            total += 1.0 if scores[p] > scores[n] else 0.5 if scores[p] == scores[n] else 0.0
    return total / (len(positives) * len(negatives))


def naive_ild(items: list[int], features: np.ndarray) -> float:
    items = [i for i in items if i >= 0]
    if len(items) < 2:
        return float("nan")
    dists = []
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            x, y = features[items[a]].tolist(), features[items[b]].tolist()
            nx = math.sqrt(sum(v * v for v in x))
            ny = math.sqrt(sum(v * v for v in y))
            cos = 0.0 if nx == 0 or ny == 0 else sum(u * v for u, v in zip(x, y)) / (nx * ny)
            dists.append(1.0 - cos)
    return sum(dists) / len(dists)


def naive_gini(counts: list[float]) -> float:
    """Gini as the relative mean absolute difference (a different formula from the library's)."""
    n = len(counts)
    mean = sum(counts) / n
    return sum(abs(a - b) for a in counts for b in counts) / (2 * n * n * mean)


# ---------------------------------------------------------------- strategies


@st.composite
def hit_matrices(draw):
    n_users = draw(st.integers(1, 6))
    depth = draw(st.integers(1, 10))
    flat = draw(st.lists(st.booleans(), min_size=n_users * depth, max_size=n_users * depth))
    hits = np.array(flat, dtype=bool).reshape(n_users, depth)
    extra = np.array(draw(st.lists(st.integers(0, 4), min_size=n_users, max_size=n_users)))
    n_relevant = np.maximum(1, hits.sum(axis=1) + extra)
    ks = sorted(draw(st.sets(st.integers(1, depth), min_size=1)))
    return hits, n_relevant, ks


@st.composite
def recommendation_lists(draw):
    n_items = draw(st.integers(2, 12))
    n_users = draw(st.integers(1, 6))
    depth = draw(st.integers(1, n_items))
    rows = []
    for _ in range(n_users):
        items = draw(st.permutations(range(n_items)))[:depth]
        n_empty = draw(st.integers(0, depth))
        rows.append(list(items[: depth - n_empty]) + [-1] * n_empty)  # empty slots at the end
    top = np.array(rows, dtype=np.int64)
    popularity = np.array(draw(st.lists(st.integers(0, 20), min_size=n_items, max_size=n_items)))
    feats = draw(st.lists(st.integers(0, 1), min_size=n_items * 4, max_size=n_items * 4))
    features = np.array(feats, dtype=np.float64).reshape(n_items, 4)
    k = draw(st.integers(1, depth))
    return top, n_items, popularity, features, k


# ---------------------------------------------------------------- ranking metrics: properties


@SETTINGS
@given(hit_matrices())
def test_ranking_metrics_lie_in_unit_interval(data):
    hits, n_relevant, ks = data
    out = M.ranking_metrics(hits, n_relevant, ks)
    assert set(out) == {f"{n}@{k}" for n in NAMES for k in ks}
    for values in out.values():
        assert values.dtype == np.float64 and values.shape == (hits.shape[0],)
        assert np.all((values >= 0) & (values <= 1 + 1e-12))


@SETTINGS
@given(st.integers(1, 10), st.integers(0, 5), st.data())
def test_perfect_ranking_scores_one(n_rel, tail, data):
    depth = n_rel + tail
    hits = np.zeros((1, depth), dtype=bool)
    hits[0, :n_rel] = True
    k = data.draw(st.integers(1, depth))
    out = M.ranking_metrics(hits, np.array([n_rel]), [k])
    for name in ("ndcg", "mrr", "hit", "map"):
        assert out[f"{name}@{k}"][0] == pytest.approx(1.0)
    if n_rel <= k:
        assert out[f"recall@{k}"][0] == pytest.approx(1.0)


@SETTINGS
@given(hit_matrices(), st.randoms(use_true_random=False))
def test_ranking_metrics_permute_with_users(data, rnd):
    hits, n_relevant, ks = data
    perm = np.array(rnd.sample(range(hits.shape[0]), hits.shape[0]))
    full = M.ranking_metrics(hits, n_relevant, ks)
    permuted = M.ranking_metrics(hits[perm], n_relevant[perm], ks)
    for key in full:
        np.testing.assert_allclose(permuted[key], full[key][perm])


@SETTINGS
@given(hit_matrices(), st.data())
def test_moving_a_hit_up_never_lowers_ndcg(data, draw):
    hits, n_relevant, ks = data
    u = draw.draw(st.integers(0, hits.shape[0] - 1))
    swaps = [r for r in range(1, hits.shape[1]) if hits[u, r] and not hits[u, r - 1]]
    if not swaps:
        return
    r = draw.draw(st.sampled_from(swaps))
    better = hits.copy()
    better[u, r - 1], better[u, r] = True, False
    before = M.ranking_metrics(hits, n_relevant, ks, names=("ndcg",))
    after = M.ranking_metrics(better, n_relevant, ks, names=("ndcg",))
    for key in before:
        assert after[key][u] >= before[key][u] - 1e-12


def test_batches_concatenate_to_the_full_result():
    rng = np.random.default_rng(3)
    hits = rng.random((40, 15)) < 0.2
    n_relevant = hits.sum(axis=1) + rng.integers(1, 4, size=40)
    full = M.ranking_metrics(hits, n_relevant, [5, 15])
    parts = [
        M.ranking_metrics(hits[s], n_relevant[s], [5, 15]) for s in (slice(0, 17), slice(17, None))
    ]
    for key in full:
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), full[key])


# ---------------------------------------------------------------- ranking metrics: cross-check


def test_ranking_metrics_match_naive_reference_on_random_rankings():
    rng = np.random.default_rng(0)
    n_users, n_items, depth, ks = 200, 60, 25, [1, 3, 10, 25]
    ranked, relevant = [], []
    for _ in range(n_users):
        ranked.append(rng.permutation(n_items)[:depth].tolist())
        n_rel = int(rng.integers(1, 30))
        relevant.append(set(rng.choice(n_items, size=n_rel, replace=False).tolist()))
    hits = np.array([[item in rel for item in row] for row, rel in zip(ranked, relevant)])
    n_relevant = np.array([len(rel) for rel in relevant])
    out = M.ranking_metrics(hits, n_relevant, ks)
    for k in ks:
        expected = [naive_ranking(row, rel, k) for row, rel in zip(ranked, relevant)]
        for name in NAMES:
            assert np.allclose(out[f"{name}@{k}"], [e[name] for e in expected]), (name, k)


def test_ranking_metrics_worked_example():
    # relevant items at ranks 2 and 4, three relevant in total
    hits = np.array([[False, True, False, True, False]])
    out = M.ranking_metrics(hits, np.array([3]), [5])
    assert out["recall@5"][0] == pytest.approx(2 / 3)
    assert out["precision@5"][0] == pytest.approx(2 / 5)
    assert out["mrr@5"][0] == pytest.approx(1 / 2)
    assert out["map@5"][0] == pytest.approx((1 / 2 + 2 / 4) / 3)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert out["ndcg@5"][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / idcg)


def test_ranking_metrics_names_subset_and_case():
    out = M.ranking_metrics(np.array([[True]]), np.array([1]), [1], names=("NDCG", "hit"))
    assert set(out) == {"ndcg@1", "hit@1"}


@pytest.mark.parametrize("ks", [[0], [4], [], [2.5]])
def test_ranking_metrics_rejects_bad_cutoffs(ks):
    with pytest.raises(ConfigError):
        M.ranking_metrics(np.zeros((2, 3), bool), np.array([1, 1]), ks)


def test_ranking_metrics_rejects_bad_inputs():
    with pytest.raises(DataError, match="n_relevant"):
        M.ranking_metrics(np.zeros((2, 3), bool), np.array([1, 0]), [1])
    with pytest.raises(DataError, match="more hits"):
        M.ranking_metrics(np.ones((1, 3), bool), np.array([2]), [1])
    with pytest.raises(ConfigError, match="unknown ranking metric"):
        M.ranking_metrics(np.zeros((1, 3), bool), np.array([1]), [1], names=("ndcgg",))


# ---------------------------------------------------------------- AUC


def test_auc_from_counts_matches_naive_pair_counting_with_ties():
    rng = np.random.default_rng(1)
    n_users, n_items = 80, 30
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(float)  # many ties
    positives = [
        set(rng.choice(n_items, size=int(rng.integers(1, 8)), replace=False).tolist())
        for _ in range(n_users)
    ]
    positives[0] = set(range(n_items))  # no negatives -> NaN
    above, tied, n_pos, n_neg = [], [], [], []
    for s, pos in zip(scores, positives):
        is_pos = np.zeros(n_items, bool)
        is_pos[list(pos)] = True
        p, n = s[is_pos][:, None], s[~is_pos][None, :]
        above.append(int((n > p).sum()))
        tied.append(int((n == p).sum()))
        n_pos.append(int(is_pos.sum()))
        n_neg.append(int((~is_pos).sum()))
    got = M.auc_from_counts(np.array(above), np.array(tied), np.array(n_pos), np.array(n_neg))
    expected = [naive_auc(s.tolist(), pos) for s, pos in zip(scores, positives)]
    assert np.isnan(got[0]) and math.isnan(expected[0])
    np.testing.assert_allclose(got[1:], expected[1:])


def test_auc_from_counts_rejects_inconsistent_counts():
    with pytest.raises(DataError):
        M.auc_from_counts(np.array([5]), np.array([0]), np.array([1]), np.array([2]))
    with pytest.raises(DataError):
        M.auc_from_counts(np.array([0]), np.array([0]), np.array([0]), np.array([2]))


# ---------------------------------------------------------------- rating errors


def test_rating_errors_match_naive_per_user_loops():
    rng = np.random.default_rng(2)
    n_users = 12
    user_idx = rng.integers(0, n_users - 2, size=200)  # the last two users have no ratings
    true = rng.integers(1, 6, size=200).astype(float)
    pred = true + rng.normal(0, 1, size=200)
    by_user: dict[int, list[float]] = {}
    for u, p, t in zip(user_idx.tolist(), pred.tolist(), true.tolist()):
        by_user.setdefault(u, []).append(p - t)
    exp_rmse = [
        math.sqrt(sum(e * e for e in by_user[u]) / len(by_user[u])) if u in by_user else math.nan
        for u in range(n_users)
    ]
    exp_mae = [
        sum(abs(e) for e in by_user[u]) / len(by_user[u]) if u in by_user else math.nan
        for u in range(n_users)
    ]
    np.testing.assert_allclose(M.rmse(pred, true, user_idx, n_users), exp_rmse)
    np.testing.assert_allclose(M.mae(pred, true, user_idx, n_users), exp_mae)
    errors = [p - t for p, t in zip(pred.tolist(), true.tolist())]
    glob = M.rating_errors(pred, true)
    assert glob["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / len(errors)))
    assert glob["mae"] == pytest.approx(sum(abs(e) for e in errors) / len(errors))


def test_rating_errors_reject_nan_predictions():
    pred, true = np.array([1.0, np.nan]), np.array([1.0, 2.0])
    with pytest.raises(DataError, match="NaN"):
        M.rmse(pred, true, np.array([0, 1]), 2)
    with pytest.raises(DataError, match="NaN"):
        M.rating_errors(pred, true)
    with pytest.raises(DataError, match="user_idx"):
        M.mae(np.ones(2), np.ones(2), np.array([0, 5]), 2)


# ---------------------------------------------------------------- beyond accuracy


def test_beyond_accuracy_matches_naive_reference():
    rng = np.random.default_rng(4)
    n_users, n_items, depth, k = 50, 40, 10, 7
    top = np.array([rng.permutation(n_items)[:depth] for _ in range(n_users)])
    top[rng.random(top.shape) < 0.1] = -1
    top[0, :] = -1  # a user with no recommendations
    top[1, 1:] = -1  # a user with a single item
    popularity = rng.integers(0, 25, size=n_items)
    features = (rng.random((n_items, 6)) < 0.3).astype(float)
    features[:3] = 0.0  # featureless items
    lists = [[i for i in row[:k].tolist() if i >= 0] for row in top]

    shown = {i for items in lists for i in items}
    assert M.item_coverage(top, n_items, k) == pytest.approx(len(shown) / n_items)
    counts = [sum(items.count(i) for items in lists) for i in range(n_items)]
    assert M.gini_exposure(top, n_items, k) == pytest.approx(naive_gini(counts))
    exp_pop = [
        sum(popularity[i] for i in items) / len(items) if items else math.nan for items in lists
    ]
    np.testing.assert_allclose(M.average_popularity(top, popularity, k), exp_pop)
    exp_nov = [
        sum(-math.log2(max(popularity[i], 1) / n_users) for i in items) / len(items)
        if items
        else math.nan
        for items in lists
    ]
    np.testing.assert_allclose(M.novelty(top, popularity, n_users, k), exp_nov)
    exp_ild = [naive_ild(row[:k].tolist(), features) for row in top]
    np.testing.assert_allclose(M.intra_list_diversity(top, sp.csr_matrix(features), k), exp_ild)


def test_gini_known_values():
    n_items = 5
    uniform = np.arange(n_items).reshape(n_items, 1)  # every item shown once
    assert M.gini_exposure(uniform, n_items, 1) == pytest.approx(0.0)
    single = np.zeros((7, 1), dtype=np.int64)  # one item takes all exposure
    assert M.gini_exposure(single, n_items, 1) == pytest.approx((n_items - 1) / n_items)
    assert math.isnan(M.gini_exposure(np.full((3, 2), -1), n_items, 2))


def test_intra_list_diversity_worked_example():
    feats = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [0, 0]]))
    got = M.intra_list_diversity(np.array([[0, 1, -1], [0, 2, 3], [3, -1, -1]]), feats, k=3)
    np.testing.assert_allclose(got[:2], [0.0, 1.0])
    assert np.isnan(got[2])


@SETTINGS
@given(recommendation_lists(), st.randoms(use_true_random=False))
def test_beyond_accuracy_invariant_to_relabelling_items(data, rnd):
    top, n_items, popularity, features, k = data
    relabel = np.array(rnd.sample(range(n_items), n_items))  # old id -> new id
    top2 = np.where(top >= 0, relabel[np.maximum(top, 0)], -1)
    pop2 = np.empty_like(popularity)
    pop2[relabel] = popularity
    feat2 = np.empty_like(features)
    feat2[relabel] = features
    assert M.item_coverage(top2, n_items, k) == pytest.approx(M.item_coverage(top, n_items, k))
    assert M.gini_exposure(top2, n_items, k) == pytest.approx(
        M.gini_exposure(top, n_items, k), nan_ok=True
    )
    n_users = 30
    for f, a, b in (
        (M.average_popularity, (top, popularity, k), (top2, pop2, k)),
        (M.novelty, (top, popularity, n_users, k), (top2, pop2, n_users, k)),
        (
            M.intra_list_diversity,
            (top, sp.csr_matrix(features), k),
            (top2, sp.csr_matrix(feat2), k),
        ),
    ):
        np.testing.assert_allclose(f(*b), f(*a), err_msg=f.__name__)


@SETTINGS
@given(recommendation_lists(), st.randoms(use_true_random=False))
def test_beyond_accuracy_permute_with_users(data, rnd):
    top, n_items, popularity, features, k = data
    perm = np.array(rnd.sample(range(top.shape[0]), top.shape[0]))
    assert M.item_coverage(top[perm], n_items, k) == M.item_coverage(top, n_items, k)
    assert M.gini_exposure(top[perm], n_items, k) == pytest.approx(
        M.gini_exposure(top, n_items, k), nan_ok=True
    )
    np.testing.assert_allclose(
        M.novelty(top[perm], popularity, 30, k), M.novelty(top, popularity, 30, k)[perm]
    )
    ild = M.intra_list_diversity(top, sp.csr_matrix(features), k)
    np.testing.assert_allclose(
        M.intra_list_diversity(top[perm], sp.csr_matrix(features), k), ild[perm]
    )
    assert np.all(np.isnan(ild) | ((ild >= -1e-12) & (ild <= 1 + 1e-12)))


def test_beyond_accuracy_rejects_bad_inputs():
    top = np.array([[0, 1]])
    with pytest.raises(ConfigError):
        M.item_coverage(top, 3, 3)
    with pytest.raises(DataError, match="top_items"):
        M.item_coverage(np.array([[0, 7]]), 3, 2)
    with pytest.raises(DataError, match="item_popularity"):
        M.average_popularity(top, np.array([1.0, -1.0]), 2)
